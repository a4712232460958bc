"""Contact sheet of random synthetic pairs: photo | drawing | drawing over the photo.

    python benchmarks/contact_sheet.py [--out docs/contact_sheet.png] [--n 16] [--size 192] [--seed 0]

Made for the README and for looking: are the heads recognisable, do the lines sit on them?
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from loomis.draw import DrawStyle, draw_strokes  # noqa: E402
from loomis.head import construction_lines  # noqa: E402
from loomis.synthetic import render_pair, scene  # noqa: E402


def sheet(n: int, size: int, seed: int, cols: int = 4) -> Image.Image:
    tiles = []
    for i in range(n):
        params = scene(seed, i)
        photo, drawing = render_pair(params, size)
        strokes = construction_lines(params.pose, params.camera(size), params.identity.proportions)
        overlay = draw_strokes(strokes, photo, DrawStyle(color=(255, 40, 30), hidden="omit"))
        tiles.append(np.concatenate([np.asarray(photo), np.asarray(drawing), np.asarray(overlay)], 1))
    gap = 6
    h, w = tiles[0].shape[:2]
    rows = (n + cols - 1) // cols
    out = np.full((rows * (h + gap) - gap, cols * (w + gap) - gap, 3), 255, np.uint8)
    for i, t in enumerate(tiles):
        r, c = divmod(i, cols)
        out[r * (h + gap): r * (h + gap) + h, c * (w + gap): c * (w + gap) + w] = t
    return Image.fromarray(out)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="docs/contact_sheet.png")
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--size", type=int, default=192)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cols", type=int, default=4)
    args = ap.parse_args(argv)
    img = sheet(args.n, args.size, args.seed, args.cols)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    img.save(args.out, optimize=True)
    print(f"wrote {args.out} ({img.size[0]}x{img.size[1]})")


if __name__ == "__main__":
    main()
