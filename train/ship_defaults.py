"""Package a trained generator as a bundled default under ``checkpoints/``.

    python train/ship_defaults.py package RUN_DIR/generator checkpoints/pix2pix-photo2drawing

``package`` turns a generator folder into a shipped one: half-precision weights (loading
casts them back), ``config.json``, and ``training.json``: the training run's own record
when the folder came from ``train/pix2pix.py`` / ``train/cyclegan.py`` (command, data,
steps, time, which epoch's weights), else the ``--command`` / ``--data-note`` given here.
``benchmarks/quality.py --update-cards`` then writes the model card with measured metrics.
The ONNX file, samples and loss curve stay in the run folder (checkpoints/ is kept small);
``Translator`` rebuilds the ONNX graph from the weights on first use.

The defaults are trained by ``train/pix2pix.py`` and ``train/cyclegan.py`` (each folder's
``training.json`` holds the command).
"""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from safetensors.torch import load_file, save_file


def package(args: argparse.Namespace) -> None:
    src, dst = Path(args.generator), Path(args.dest)
    for name in ("config.json", "model.safetensors"):
        if not (src / name).is_file():
            raise SystemExit(f"{src} is not a generator folder: it has no {name}")
    run_record = src / "training.json"
    record = json.loads(run_record.read_text()) if run_record.is_file() else {}
    given = {"command": args.command, "data": args.data_note, "model": args.family,
             "train_time": args.train_time}
    record |= {k: v for k, v in given.items() if v}
    flags = {"command": "--command", "data": "--data-note", "model": "--family"}
    missing = [flag for k, flag in flags.items() if not record.get(k)]
    if missing:  # checked before anything is written
        raise SystemExit(f"{src} has no training.json saying how it was trained; give "
                         + ", ".join(missing))
    dst.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src / "config.json", dst / "config.json")
    tensors = load_file(str(src / "model.safetensors"))
    half = {k: v.half() if v.is_floating_point() else v for k, v in tensors.items()}
    save_file(half, str(dst / "model.safetensors"))
    (dst / "training.json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"packaged {src} → {dst} ({(dst / 'model.safetensors').stat().st_size / 1e6:.1f} MB)")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("package", help="saved generator → shipped checkpoints/ folder")
    p.add_argument("generator")
    p.add_argument("dest")
    p.add_argument("--command", help="the exact command that trained it "
                                      "(default: from the folder's training.json)")
    p.add_argument("--data-note", help="what it was trained on (default: training.json)")
    p.add_argument("--family", choices=["pix2pix", "cyclegan"],
                   help="model family (default: training.json)")
    p.add_argument("--train-time", default="")
    p.set_defaults(func=package)
    args = ap.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
