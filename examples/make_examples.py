"""Regenerate the app's example images: rendered heads, their Loomis drawings, sketches.

Everything here is made by the project itself (loomis.train.synthetic's procedural heads), so
the examples carry no third-party content. Fixed seeds: running it again rewrites the
same bytes. Usage: ``python examples/make_examples.py [--out examples] [--size 256]``.

* ``photo_N.png``        a rendered head (input for Photo → Loomis)
* ``photo_N_loomis.png`` its Loomis construction on paper (what the drawing looks like)
* ``sketch_N.png``       a hand-made-looking construction of another head (Sketch → Photo)
"""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np

from loomis.train.synthetic import SceneParams, render_drawing, render_pair

PHOTO_SEEDS = (11, 23, 37)
SKETCH_SEEDS = (101, 202, 303)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    ap.add_argument("--size", type=int, default=256)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for i, seed in enumerate(PHOTO_SEEDS, 1):
        params = SceneParams.sample(np.random.default_rng(seed))
        params = dataclasses.replace(params, sketchy=False, hidden="dashed")
        photo, drawing = render_pair(params, args.size)
        photo.save(args.out / f"photo_{i}.png", optimize=True)
        drawing.save(args.out / f"photo_{i}_loomis.png", optimize=True)
    for i, seed in enumerate(SKETCH_SEEDS, 1):
        params = SceneParams.sample(np.random.default_rng(seed))
        params = dataclasses.replace(params, sketchy=True, hidden="omit", draw_seed=seed)
        render_drawing(params, args.size).save(args.out / f"sketch_{i}.png", optimize=True)
    print(f"wrote {len(PHOTO_SEEDS) * 2 + len(SKETCH_SEEDS)} images to {args.out}")


if __name__ == "__main__":
    main()
