"""Train pix2pix: `python train/pix2pix.py --synthetic --preset cpu-128 --out runs/pix2pix`.

All flags: `--help`; the loop, outputs and resume rules: train/_loop.py.
"""
import sys

from _loop import main  # train/ is the script's own folder, first on sys.path

if __name__ == "__main__":
    sys.exit(main("pix2pix"))
