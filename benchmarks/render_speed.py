"""How fast synthetic pairs render, and whether MediaPipe sees a face in them.

    python -m benchmarks.render_speed [--size 256] [--n 20] [--repeats 5] [--json OUT.json]
                                      [--mediapipe N]

Prints pairs per second for photo + drawing at ``--size``² (each repeat renders ``--n``
fresh scenes, identities included; the median repeat is reported), the photo and drawing
parts separately, and the 640x480 drawing time of the live webcam path. ``--mediapipe N``
also runs MediaPipe's Face Landmarker on N frontal-to-three-quarter renders (|yaw| <= 45°) and
reports the fraction in which it finds a face.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

from loomis.camera import Camera, HeadPose
from loomis.draw import DrawStyle, draw_strokes
from loomis.head import construction_lines
from loomis.train.synthetic import render_drawing, render_pair, render_photo, scene


def _rates(fns: dict, scenes, size: int) -> dict[str, float]:
    """Items per second for each function: the median over repeats, each over fresh scenes. The functions take turns within every repeat, so a busy moment
    on a shared machine hits them alike."""
    rates: dict[str, list[float]] = {k: [] for k in fns}
    for batches in scenes:
        for (name, fn), batch in zip(fns.items(), batches):
            t = time.perf_counter()
            for p in batch:
                fn(p, size)
            rates[name].append(len(batch) / (time.perf_counter() - t))
    return {k: statistics.median(v) for k, v in rates.items()}


def mediapipe_rate(n: int, size: int, seed: int = 1000) -> float:
    from loomis.landmarker import Landmarker

    found = 0
    mesh = Landmarker(max_faces=1)
    try:
        i = tried = 0
        while tried < n:
            params = scene(seed, i)
            i += 1
            if abs(params.pose.yaw) > 45:
                continue
            tried += 1
            photo = np.asarray(render_photo(params, size))
            found += bool(mesh.read(photo))
    finally:
        mesh.close()
    return found / max(n, 1)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--n", type=int, default=20, help="scenes per repeat")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    ap.add_argument("--mediapipe", type=int, default=0, metavar="N",
                    help="check MediaPipe face detection on N renders (|yaw| <= 45)")
    args = ap.parse_args(argv)
    render_pair(scene(args.seed, 10 ** 6), args.size)               # warm-up (imports, caches)
    # Every function gets scenes of its own (a head rendered twice would hit the mesh cache).
    scenes = [[[scene(args.seed + k, r * args.n + i) for i in range(args.n)] for k in range(3)]
              for r in range(args.repeats)]
    rates = _rates({"pairs_per_s": render_pair, "photos_per_s": render_photo,
                    "drawings_per_s": render_drawing}, scenes, args.size)
    res = {"size": args.size, "n": args.n, "repeats": args.repeats, **rates}
    cam = Camera.from_fov(640, 480, 40.0)
    strokes = construction_lines(HeadPose(25, 10, 5, position=(0, 0.3, -9)), cam)
    for name, style in (("draw_640x480_ms", DrawStyle()), ("draw_sketchy_640x480_ms", DrawStyle(sketchy=True))):
        times = []
        for _ in range(30):
            t = time.perf_counter()
            draw_strokes(strokes, (640, 480), style)
            times.append(time.perf_counter() - t)
        res[name] = statistics.median(times) * 1e3
    print(f"synthetic pairs {args.size}²: {res['pairs_per_s']:.1f}/s "
          f"(photo {res['photos_per_s']:.1f}/s, drawing {res['drawings_per_s']:.0f}/s); "
          f"640x480 drawing {res['draw_640x480_ms']:.1f} ms clean, "
          f"{res['draw_sketchy_640x480_ms']:.1f} ms sketchy")
    if args.mediapipe:
        res["mediapipe_detection_rate"] = mediapipe_rate(args.mediapipe, args.size)
        print(f"MediaPipe's Face Landmarker found a face in {res['mediapipe_detection_rate']:.0%} "
              f"of {args.mediapipe} renders with |yaw| <= 45°")
    if args.json:
        args.json.write_text(json.dumps(res, indent=1) + "\n")
    return res


if __name__ == "__main__":
    main()
