"""Train pix2pix: `python train/pix2pix.py --synthetic --preset cpu-128 --out runs/pix2pix`.

All flags: `--help`; the loop, outputs and resume rules: loomis/train/loop.py.
"""
import sys

from loomis.train.loop import main

if __name__ == "__main__":
    sys.exit(main("pix2pix"))
