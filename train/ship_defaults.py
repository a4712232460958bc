"""Package a trained generator as a bundled default under ``checkpoints/``.

    python train/ship_defaults.py package RUN_DIR/generator checkpoints/pix2pix-photo2drawing

``package`` turns a generator folder into a shipped one: half-precision weights (loading
casts them back), ``config.json``, and ``training.json``: the training run's own record
when the folder came from ``train/pix2pix.py`` / ``train/cyclegan.py`` (command, data,
steps, time, which epoch's weights), else the ``--command`` / ``--data-note`` given here.
``benchmarks/quality.py --update-cards`` then writes the model card with measured metrics.
The ONNX file, samples and loss curve stay in the run folder (checkpoints/ is kept small);
``Translator`` rebuilds the ONNX graph from the weights on first use.

The pix2pix defaults are trained by ``train/pix2pix.py --max-minutes … --load-best-at-end``.
``train`` is the smaller budgeted loop the bundled CycleGAN pair was trained with, kept
so that pair's recorded command still reproduces it; use the training scripts for
anything new (they add exact resume, validation metrics, DDP and Hub pushes).
"""
from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

from loomis.data import PairedFolder, UnpairedFolder  # noqa: E402
from loomis.models import CycleGAN, CycleGANConfig, Pix2Pix, Pix2PixConfig  # noqa: E402


def train(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    common = dict(arch=args.arch, ngf=args.ngf, ndf=args.ndf, image_size=args.size,
                  n_epochs=args.epochs, n_epochs_decay=args.decay)
    if args.model == "pix2pix":
        model = Pix2Pix(Pix2PixConfig(**common, direction=args.direction), "cpu")
        data = PairedFolder(args.data, "train", image_size=args.size, seed=0)
        generators = {"G": model.netG}
    else:
        model = CycleGAN(CycleGANConfig(**common), "cpu")
        data = UnpairedFolder(args.data, "train", image_size=args.size, seed=0)
        generators = {"G_A": model.netG_A, "G_B": model.netG_B}
    val = PairedFolder(args.data, "val", image_size=args.size, augment=False)
    val_a = torch.stack([val[j][0] for j in range(len(val))])
    val_b = torch.stack([val[j][1] for j in range(len(val))])
    print(model.config, f"{len(data)} training items", flush=True)

    t0 = time.time()
    deadline = t0 + args.hours * 3600
    with open(out / "losses.csv", "a", newline="") as log:
        writer = None
        for epoch in range(args.epochs + args.decay):
            data.set_epoch(epoch)
            loader = torch.utils.data.DataLoader(data, batch_size=args.batch, shuffle=True,
                                                 drop_last=True,
                                                 generator=torch.Generator().manual_seed(epoch))
            for i, (a, b) in enumerate(loader):
                losses = model.step(a, b)
                if writer is None:
                    writer = csv.DictWriter(log, ["epoch", "step", "seconds", *losses])
                    writer.writeheader()
                writer.writerow({"epoch": epoch, "step": model.step_count,
                                 "seconds": round(time.time() - t0, 1), **losses})
                if i % 50 == 0:
                    log.flush()
                    print(epoch, i, len(loader), {k: round(v, 3) for k, v in losses.items()},
                          round(time.time() - t0), flush=True)
                if time.time() > deadline:
                    break
            model.eval()
            score = model.validate(val_a, val_b)
            model.train()
            lr = model.end_epoch(score)
            print("EPOCH", epoch, "val", score, "lr", lr, round(time.time() - t0), flush=True)
            for name, g in generators.items():
                g.save_pretrained(out / name)
            with open(out / "val.txt", "a") as f:
                f.write(f"{epoch} {score} {time.time() - t0:.0f}\n")
            if time.time() > deadline:
                break
    print("DONE", flush=True)


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
    t = sub.add_parser("train", help="budgeted training run")
    t.add_argument("--model", choices=["pix2pix", "cyclegan"], required=True)
    t.add_argument("--direction", default="AtoB", choices=["AtoB", "BtoA"])
    t.add_argument("--data", default="data/synth256")
    t.add_argument("--out", required=True)
    t.add_argument("--size", type=int, default=256)
    t.add_argument("--arch", default="unet_256")
    t.add_argument("--ngf", type=int, default=16)
    t.add_argument("--ndf", type=int, default=32)
    t.add_argument("--batch", type=int, default=4)
    t.add_argument("--epochs", type=int, default=3)
    t.add_argument("--decay", type=int, default=3)
    t.add_argument("--threads", type=int, default=1)
    t.add_argument("--hours", type=float, default=1.0)
    t.set_defaults(func=train)
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
