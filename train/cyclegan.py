"""Train cyclegan: `python train/cyclegan.py --synthetic --preset cpu-128 --out runs/cyclegan`.

`--epochs N` counts every epoch, decay included; train a run longer with
`python train/cyclegan.py --out RUN --resume --epochs N` (N: the new total).
All flags: `--help`; the loop, outputs and resume rules: loomis/train/loop.py.
"""
import sys

from loomis.train.loop import main

if __name__ == "__main__":
    sys.exit(main("cyclegan"))
