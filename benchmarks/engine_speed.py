"""Speed of the geometric engine: detect + pose + draw on a 640×480 frame.

Goal (issue 4): median ≤ 30 ms on the 2-core machine, so a webcam stream runs at 20+ fps.
Measures the live path (video-mode estimator, :func:`loomis.engine.live_frame`) and the
photo path (detection on every call), and splits the time into its parts.

    python -m benchmarks.engine_speed [--runs 100] [--image PATH] [--features]
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import cv2
import numpy as np


from loomis.engine import draw_faces, live_frame, make_background, INK
from loomis.imageio import load_image
from loomis.pose import PoseEstimator
from loomis.smoothing import PoseTracker


def _frame(path: str | None, width: int, height: int) -> np.ndarray:
    if path:
        rgb = np.asarray(load_image(path))
    else:
        import skimage.data

        rgb = skimage.data.astronaut()
    # letterbox into the frame size, as a webcam frame of a person would be framed
    h, w = rgb.shape[:2]
    k = min(width / w, height / h)
    small = cv2.resize(rgb, (round(w * k), round(h * k)), interpolation=cv2.INTER_AREA)
    out = np.full((height, width, 3), 200, np.uint8)
    y0, x0 = (height - small.shape[0]) // 2, (width - small.shape[1]) // 2
    out[y0:y0 + small.shape[0], x0:x0 + small.shape[1]] = small
    return out


def _times(fn, runs: int) -> list[float]:
    for _ in range(5):                                  # warm up (graph init, caches)
        fn()
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000.0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--image", default=None, help="portrait to use (default: astronaut)")
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--features", action="store_true", help="also draw the features")
    args = ap.parse_args()
    frame = _frame(args.image, args.width, args.height)
    results = {"frame": f"{args.width}x{args.height}", "runs": args.runs,
               "threads": cv2.getNumThreads()}
    for mode, static in (("live (video mode)", False), ("photo (detect every call)", True)):
        with PoseEstimator(static_image_mode=static) as est:
            if not est.analyse_array(frame).faces:
                raise SystemExit("no face in the benchmark frame")
            # the live path steadies each stream with its own tracker
            tracker = None if static else PoseTracker()
            total = _times(lambda: live_frame(frame, est, tracker=tracker,
                                              features=args.features), args.runs)
            pose = _times(lambda: est.analyse_array(frame), args.runs)
            faces = est.analyse_array(frame).faces
            draw = _times(lambda: draw_faces(make_background(frame, "photo"), faces,
                                             style=INK, features=args.features,
                                             samples=48), args.runs)
        results[mode] = {
            "total_median_ms": round(statistics.median(total), 2),
            "total_p90_ms": round(float(np.percentile(total, 90)), 2),
            "landmarks+pose_median_ms": round(statistics.median(pose), 2),
            "draw_median_ms": round(statistics.median(draw), 2),
        }
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
