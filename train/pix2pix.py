"""Train pix2pix: `python train/pix2pix.py --synthetic --preset cpu-128 --out runs/pix2pix`.

`--epochs N` counts every epoch, decay included; train a run longer with
`python train/pix2pix.py --out RUN --resume --epochs N` (N: the new total).
All flags: `--help`; the loop, outputs and resume rules: loomis/train/loop.py.
"""
import sys

from loomis.train.loop import main

if __name__ == "__main__":
    sys.exit(main("pix2pix"))
