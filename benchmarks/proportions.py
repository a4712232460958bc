"""How steady and how spread are the faces' own proportions on real portraits?

    python -m benchmarks.proportions [--photos ../shared/data/portraits-pd] [--n 95] [--json FILE]

For each held-out portrait (``loomis.train.autopairs.held_out``: photos no training run
reads) and its mirror image: the middle third, lower third and width that
:mod:`loomis.proportions` reads, as ratios to the canon. A face and its mirror image are
the same face, so their difference is the measurement's own noise; the spread across
faces is how much real faces depart from the canon. Reported: the mean and standard
deviation of each ratio, the median and 90th percentile of the mirror difference, and how
often each sentence of the notes is said.
"""
from __future__ import annotations

import argparse
import collections
import json
import re
from pathlib import Path

import numpy as np
from PIL import ImageOps

from loomis.imageio import load_image
from loomis.pose import PoseEstimator
from loomis.proportions import measure

ROOT = Path(__file__).resolve().parent.parent
NAMES = ("middle", "lower", "width")


def run(photos: list[Path]) -> dict:
    rows, notes, missed = [], collections.Counter(), 0
    with PoseEstimator() as est:
        for path in photos:
            img = load_image(path)
            try:
                face = est.analyse(img).require()[0]
                mirrored = est.analyse(ImageOps.mirror(img)).require()[0]
            except ValueError:
                missed += 1
                continue
            a, b = measure(face), measure(mirrored)
            rows.append([getattr(a, n) for n in NAMES] + [getattr(b, n) for n in NAMES])
            notes.update(re.sub(r"\d+% ", "", note) for note in a.notes())
    r = np.array(rows)
    out = {"photos": len(photos), "measured": len(rows), "missed": missed,
           "notes": dict(notes.most_common())}
    for i, name in enumerate(NAMES):
        diff = np.abs(r[:, i] - r[:, i + 3])
        out[name] = {"mean": round(float(r[:, i].mean()), 3), "sd": round(float(r[:, i].std()), 3),
                     "mirror_median": round(float(np.median(diff)), 3),
                     "mirror_p90": round(float(np.percentile(diff, 90)), 3)}
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=Path, default=ROOT.parent / "shared" / "data" / "portraits-pd")
    ap.add_argument("--n", type=int, default=0, help="at most this many (0: every held-out photo)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    from loomis.train.autopairs import held_out

    photos = held_out(args.photos)
    if args.n:
        photos = photos[: args.n]
    if not photos:
        raise SystemExit(f"no held-out photos under {args.photos}")
    result = run(photos)
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    main()
