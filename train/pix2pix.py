"""Train pix2pix: `python train/pix2pix.py --synthetic --preset cpu-128 --out runs/pix2pix`.

All flags: `--help`; the loop, outputs and resume rules: train/_loop.py.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _loop import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main("pix2pix"))
