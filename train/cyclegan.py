"""Train cyclegan: `python train/cyclegan.py --synthetic --preset cpu-128 --out runs/cyclegan`.

All flags: `--help`; the loop, outputs and resume rules: loomis/train/loop.py.
"""
import sys

from loomis.train.loop import main

if __name__ == "__main__":
    sys.exit(main("cyclegan"))
