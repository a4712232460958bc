"""Measure a generator on a dataset's test split.

    python train/evaluate.py --model RUN_DIR/generator --data DIR [--split test] [--json FILE]

Drawings (the generator's target domain is "drawing"): line precision, recall and F1 at a
2-pixel tolerance (line pixels are those darker than mid-grey after binarisation).
Photos: L1, PSNR, SSIM. Images go through ``loomis.train.inference.Translator`` exactly as the
app runs them (any size in, the input's size out; drawings with the mirror pass, see
``Translator``; ``--no-mirror`` for the single pass) and are scored against the target at
that size. Exit code 2 on bad input (unknown model, empty or missing split).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from loomis.train import metrics as M
from loomis.train.data import DatasetError, PairedFolder
from loomis.train.inference import Translator


def evaluate(model: str, data: str, split: str = "test", tolerance: float = 2.0,
             max_items: int | None = None, runtime: str = "auto", device: str = "cpu",
             mirror: bool | None = None) -> dict:
    try:
        translate = Translator.from_pretrained(model, device=device, runtime=runtime,
                                               mirror=mirror)
    except (OSError, ValueError) as exc:
        raise DatasetError(f"--model {model}: cannot load a generator: {type(exc).__name__}: "
                           f"{str(exc).splitlines()[0]}") from None
    cfg = translate.config
    ds = PairedFolder(data, split, cfg.image_size, augment=False, max_items=max_items)
    kind = cfg.target_domain
    rows, t0 = [], time.perf_counter()
    for i in range(len(ds)):
        a, b = ds.load_pair(i)
        src, tgt = (a, b) if cfg.direction == "AtoB" else (b, a)
        out = translate(src)
        rows.append(M.line_scores(out, tgt, tolerance) if kind == "drawing"
                    else M.image_metrics(out, tgt, kind))
    return {"model": str(model), "data": str(ds.folder), "split": split, "n": len(ds),
            "skipped": ds.report.skipped, "target": kind, "direction": cfg.direction,
            "tolerance_px": tolerance if kind == "drawing" else None,
            "runtime": translate.runtime, "mirror": translate.mirror,
            "seconds_per_image": (time.perf_counter() - t0) / max(1, len(ds)),
            "metrics": M.mean_metrics(rows)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="Hub id or generator folder")
    p.add_argument("--data", required=True, help="paired dataset folder")
    p.add_argument("--split", default="test")
    p.add_argument("--json", help="also write the result here")
    p.add_argument("--tolerance", type=float, default=2.0)
    p.add_argument("--max-items", type=int)
    p.add_argument("--runtime", default="auto", choices=("auto", "torch", "onnxruntime"))
    p.add_argument("--device", default="cpu")
    p.add_argument("--mirror", action=argparse.BooleanOptionalAction, default=None,
                   help="drawings: also run the mirror image and keep the lines of both "
                   "(default: on for drawings, as the app runs them)")
    args = p.parse_args(argv)
    try:
        res = evaluate(args.model, args.data, args.split, args.tolerance, args.max_items,
                       args.runtime, args.device, args.mirror)
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{res['model']} on {res['data']} ({res['n']} images, {res['direction']}, "
          f"target {res['target']}, {res['runtime']}{', mirror' if res['mirror'] else ''})")
    print("| metric | value |\n|---|---|")
    for k, v in res["metrics"].items():
        print(f"| {k} | {v:.4f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
