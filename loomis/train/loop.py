"""The one training loop behind ``train/pix2pix.py`` and ``train/cyclegan.py``.

Read top to bottom: settings (papers' defaults < ``--preset`` < ``--init-from``'s config <
explicit flags), data, model, then one loop over epochs and steps. Everything a resumed
run needs is in ``RUN_DIR/last.safetensors`` (networks, optimisers, schedules, pools, RNGs,
and where in the epoch it stopped), saved at every epoch's end and, inside an epoch, every
``--save-minutes`` (and ``--save-every`` steps); the data order of an epoch is a pure
function of ``(seed, epoch)`` and every item of ``(seed, epoch, index)``, so skipping the
batches already done continues the run bit for bit. ``--epochs`` is the total, decay
included; ``--resume --epochs N`` trains a run to N epochs (the epoch counts are the only
settings a resume may change; ``run.json`` records each change under ``schedule_changes``).

RUN_DIR holds: ``run.json`` (model, settings, data, command), ``last``/``best.safetensors``,
``losses.csv``, ``loss_curve.png``, ``metrics.csv``/``metrics.json``, ``samples/epoch_NNN.png``
with ``index.html``, and at the end complete Hub folders ``generator/`` (pix2pix) or
``generator_A/`` + ``generator_B/`` (CycleGAN).

Exit codes: 0 done (or interrupted and saved), 1 the run finished but the push failed,
2 bad input (the message says what to change).
"""
from __future__ import annotations

import argparse
import copy
import csv
import gc
import html
import json
import math
import os
import shlex
import shutil
import signal
import sys
import time
from dataclasses import asdict, fields
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.distributed as dist
from PIL import Image
from tqdm import tqdm

from loomis.train import metrics as M
from loomis.train.checkpoint import (atomic_write, hash_weights, load_state,
                                     remove_stale_temporaries, save_state)
from loomis.train.data import DatasetError, PairedFolder, Unpaired, UnpairedFolder
from loomis.imageio import to_image
from loomis.train.inference import Translator
from loomis.train.model_card import TRAINING_FILE, render_model_card
from loomis.train.memory import retain_freed_memory
from loomis.train.models import (CycleGAN, CycleGANConfig, Pix2Pix, Pix2PixConfig, LR_POLICIES,
                                 rng_state, set_rng_state)
from loomis.train.nets import ARCHS, INITS, NORMS, Generator, widen
from loomis.train.losses import GAN_MODES

if TYPE_CHECKING:
    from loomis.pose import PoseEstimator

MODELS = {"pix2pix": (Pix2Pix, Pix2PixConfig), "cyclegan": (CycleGAN, CycleGANConfig)}

#: Settings outside the model config that still decide the numbers (checked on --resume).
RUN_DEFAULTS = {"batch_size": 1, "synthetic_n": 1000, "val_n": 8}

#: Presets on top of the papers' defaults. The cpu-* ones finish on 2 CPU cores in under
#: an hour with the default synthetic set. Measured on a loaded 2-core CPU, rendering
#: included (s/step): pix2pix cpu-128 6.7, cpu-256 6.1; cyclegan cpu-128 19.5, cpu-256 10.2.
PRESETS: dict[str, dict[str, dict]] = {
    "pix2pix": {
        "paper": {},
        "cpu-128": {"arch": "unet_128", "ngf": 32, "ndf": 32, "image_size": 128,
                    "n_epochs": 2, "n_epochs_decay": 2, "batch_size": 4, "synthetic_n": 400},
        "cpu-256": {"arch": "unet_256", "ngf": 16, "ndf": 16, "image_size": 256,
                    "n_epochs": 3, "n_epochs_decay": 3, "batch_size": 4, "synthetic_n": 200},
    },
    "cyclegan": {
        "paper": {},
        "cpu-128": {"arch": "resnet_6blocks", "ngf": 16, "ndf": 16, "image_size": 128,
                    "n_epochs": 2, "n_epochs_decay": 2, "batch_size": 2, "synthetic_n": 80,
                    "pool_size": 20},
        "cpu-256": {"arch": "resnet_6blocks", "ngf": 8, "ndf": 16, "image_size": 256,
                    "n_epochs": 2, "n_epochs_decay": 2, "batch_size": 2, "synthetic_n": 100,
                    "pool_size": 20},
    },
}

#: The files of RUN_DIR and RUN_DIR/samples written through atomic_write (regular
#: expressions): their temporaries left by a kill are removed on --resume.
RUN_FILES = (r"run\.json|last\.safetensors|best\.safetensors|losses\.csv|loss_curve\.png|"
             r"metrics\.csv|metrics\.json|index\.html|ddp_check\.json")
SAMPLE_FILES = r"epoch_\d+\.png"

#: Config fields that --init-from's config.json decides.
ARCH_FIELDS = ("arch", "ngf", "norm", "dropout", "image_size", "in_channels", "out_channels",
               "domain_a", "domain_b")


class UsageError(ValueError):
    """Bad command-line input: printed as ``error: ...`` with exit code 2."""


# ------------------------------------------------------------------------------ settings


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows a flag's default where it has one; None means the preset decides."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default is None:
            return action.help or ""
        return super()._get_help_string(action)


def _default_epochs(kind: str) -> str:
    """The total epochs each preset trains, for --epochs' help."""
    base = {f.name: f.default for f in fields(MODELS[kind][1])}
    totals = []
    for name, preset in PRESETS[kind].items():
        n = preset.get("n_epochs", base["n_epochs"])
        d = preset.get("n_epochs_decay", base["n_epochs_decay"])
        totals.append(f"{name} {n + d}")
    return "default: " + ", ".join(totals)


def build_parser(kind: str) -> argparse.ArgumentParser:
    """Every flag defaults to None so we know which ones the user typed (they win over
    presets, and on --resume they must agree with the saved run)."""
    p = argparse.ArgumentParser(
        prog=f"train/{kind}.py",
        description=f"Train {kind} (Loomis). Presets: {', '.join(PRESETS[kind])}.",
        formatter_class=_HelpFormatter)
    src = p.add_mutually_exclusive_group()
    src.add_argument("--data", help="dataset folder (make_dataset layout, or the papers')")
    src.add_argument("--synthetic", action="store_true", help="render pairs on the fly")
    p.add_argument("--synthetic-n", type=int, help="training items per epoch with --synthetic")
    p.add_argument("--val-n", type=int, help="validation images per epoch")
    p.add_argument("--out", required=True, help="RUN_DIR")
    p.add_argument("--init-from", help="Hub id or folder of a generator to fine-tune (with a "
                   "larger --ngf, a U-Net is first widened to it, computing the same output)")
    p.add_argument("--resume", action="store_true",
                   help="continue RUN_DIR exactly where it stopped; with another --epochs "
                        "(and --epochs-decay), train it to that many epochs in total")
    p.add_argument("--overwrite", action="store_true",
                   help="DELETE the trained run in RUN_DIR and start a new one there")
    p.add_argument("--preset", choices=list(PRESETS[kind]), default=None)
    p.add_argument("--device", default="auto")
    p.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--epochs", type=int, metavar="N",
                   help="epochs in total, decay included (" + _default_epochs(kind) + "); "
                        "without --epochs-decay the last half of them decay the lr linearly "
                        "toward 0. With --resume: the run's new total (more trains it longer)")
    p.add_argument("--epochs-decay", type=int, metavar="D",
                   help="how many of the --epochs decay the lr linearly (the first N - D "
                        "train at --lr); alone, it keeps the total")
    p.add_argument("--lr", type=float)
    p.add_argument("--beta1", type=float)
    p.add_argument("--lr-policy", choices=LR_POLICIES)
    p.add_argument("--lr-decay-iters", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--direction", choices=("AtoB", "BtoA"))
    p.add_argument("--image-size", type=int)
    p.add_argument("--arch", help=f"{', '.join(ARCHS)}")
    p.add_argument("--ngf", type=int)
    p.add_argument("--ndf", type=int)
    p.add_argument("--norm", choices=NORMS)
    p.add_argument("--dropout", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--netd", choices=("basic", "n_layers", "pixel"))
    p.add_argument("--n-layers-d", type=int)
    p.add_argument("--gan-mode", choices=GAN_MODES)
    p.add_argument("--lambda-gp", type=float)
    if kind == "pix2pix":
        p.add_argument("--lambda-l1", type=float)
        p.add_argument("--l1-ink-weight", type=float,
                       help="extra L1 weight on the target's dark pixels (line drawings); "
                            "0 = the paper")
    else:
        p.add_argument("--lambda-a", type=float)
        p.add_argument("--lambda-b", type=float)
        p.add_argument("--lambda-identity", type=float)
    p.add_argument("--pool-size", type=int)
    p.add_argument("--init", choices=INITS)
    p.add_argument("--init-gain", type=float)
    p.add_argument("--fused-adam", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--retain-freed-memory", action=argparse.BooleanOptionalAction, default=True,
                   help="on CPU, keep freed memory mapped instead of returning it to the system "
                        "each step (glibc; same maths, fewer page faults; see loomis.train.memory)")
    p.add_argument("--max-steps", type=int, help="stop after this global step (tests)")
    p.add_argument("--max-minutes", type=float,
                   help="stop after this many minutes of training in this session, save, "
                        "and write the Hub folders (continue later with --resume)")
    p.add_argument("--load-best-at-end", action="store_true",
                   help="write the Hub folders from the best validated epoch (line F1 for "
                        "drawings, SSIM for photos), not from the last step")
    p.add_argument("--save-every", type=int, default=0, help="also checkpoint every N steps")
    p.add_argument("--save-minutes", type=float, default=5.0,
                   help="also checkpoint when this many minutes have passed since the last "
                        "save, inside an epoch too (a kill loses at most that much); 0: off")
    p.add_argument("--save-dtype", choices=("float32", "float16"), default="float32")
    p.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    p.add_argument("--sync-bn", action="store_true", help="synchronized BatchNorm under DDP")
    p.add_argument("--push-to-hub", metavar="ORG/NAME")
    return p


SETTING_KEYS_OUTSIDE_CONFIG = ("batch_size", "synthetic_n", "val_n")


def resolve_settings(kind: str, args: argparse.Namespace, init_cfg: dict | None) -> dict:
    """Papers' defaults < preset < the init model's architecture < explicit flags."""
    cfg_cls = MODELS[kind][1]
    s = {f.name: f.default for f in fields(cfg_cls)} | RUN_DEFAULTS
    s |= PRESETS[kind][args.preset or "paper"]
    explicit = explicit_settings(kind, args)
    if init_cfg is not None:
        # a pix2pix generator also brings its direction; a CycleGAN run has both and the
        # initial generator goes to the one facing its way (see run)
        for k in ARCH_FIELDS + (("direction",) if kind == "pix2pix" else ()):
            if (k == "ngf" and init_cfg["arch"].startswith("unet_")
                    and explicit.get(k, 0) > init_cfg[k]):
                continue   # grow the U-Net: run() widens it, keeping what it computes
            if k in explicit and explicit[k] != init_cfg[k]:
                raise UsageError(f"--{k.replace('_', '-')} {explicit[k]} conflicts with "
                                 f"--init-from's config.json ({k}={init_cfg[k]}); the "
                                 "initial model decides the architecture: drop the flag")
            s[k] = init_cfg[k]
    s |= explicit
    s["n_epochs"], s["n_epochs_decay"] = epoch_split(
        args.epochs, args.epochs_decay, (s["n_epochs"], s["n_epochs_decay"]))
    return s


def epoch_split(total: int | None, decay: int | None, current: tuple[int, int],
                share: tuple[int, int] | None = None) -> tuple[int, int]:
    """(epochs at the initial lr, epochs of linear decay) from ``--epochs`` (the total) and
    ``--epochs-decay``, given the ``current`` split (the preset's, or a resumed run's).

    ``--epochs`` alone keeps the current total's decay share (``share``'s when given: a
    resumed run takes its preset's, so a run trained with no decay still decays when
    extended); the same total keeps the current split. ``--epochs-decay`` alone keeps the
    total."""
    for flag, v in (("--epochs", total), ("--epochs-decay", decay)):
        if v is not None and v < 0:
            raise UsageError(f"{flag} must be >= 0, got {v}")
    n, d = current
    if total is None and decay is None or (decay is None and total == n + d):
        return current
    given = total is not None
    if total is None:
        total = n + d
    if decay is None:
        sn, sd = share or current
        decay = total * sd // (sn + sd) if sn + sd else 0
    if decay > total:
        hint = (f" (for {total} at the initial lr, then {decay} decaying: --epochs "
                f"{total + decay} --epochs-decay {decay})" if given else "")
        raise UsageError(f"--epochs-decay {decay} is more than the {total} "
                         f"epoch{'' if total == 1 else 's'} in total; "
                         f"--epochs counts every epoch, decay included{hint}")
    return total - decay, decay


def preset_split(kind: str, preset: str | None) -> tuple[int, int]:
    """(epochs at the initial lr, epochs of decay) of a preset, the papers' for None."""
    base = {f.name: f.default for f in fields(MODELS[kind][1])} | PRESETS[kind][preset or "paper"]
    return base["n_epochs"], base["n_epochs_decay"]


def describe_epochs(counts: dict) -> str:
    n, d = counts["n_epochs"], counts["n_epochs_decay"]
    return f"{n + d} epoch{'' if n + d == 1 else 's'} ({n} at the initial lr + {d} decaying)"


def follow_schedule(model: Pix2Pix | CycleGAN) -> float:
    """Set each optimiser's learning rate to what the model's schedule, built from its
    (changed) epoch counts, gives at the epoch its schedulers stand at; the new lr.

    A resumed run whose epoch counts changed loads the old schedulers' state: the linear
    rule reads the new counts from the config when next called, but the learning rate in
    force, and cosine's period, are the old schedule's until set here. The step and
    plateau policies do not depend on the epoch counts."""
    for name, sched in model.schedulers.items():
        if isinstance(sched, torch.optim.lr_scheduler.LambdaLR):
            lrs = [base * rule(sched.last_epoch)
                   for base, rule in zip(sched.base_lrs, sched.lr_lambdas)]
        elif isinstance(sched, torch.optim.lr_scheduler.CosineAnnealingLR):
            sched.T_max = max(1, model.config.n_epochs)   # as models.py builds it
            lrs = [sched.eta_min + (base - sched.eta_min)
                   * (1 + math.cos(math.pi * sched.last_epoch / sched.T_max)) / 2
                   for base in sched.base_lrs]
        else:
            continue
        for group, lr in zip(model.optimizers[name].param_groups, lrs):
            group["lr"] = lr
    return model.lr


def explicit_settings(kind: str, args: argparse.Namespace) -> dict:
    names = {f.name for f in fields(MODELS[kind][1])} | set(SETTING_KEYS_OUTSIDE_CONFIG)
    return {k: v for k, v in vars(args).items() if k in names and v is not None}


def split_settings(kind: str, s: dict):
    cfg_cls = MODELS[kind][1]
    names = {f.name for f in fields(cfg_cls)}
    try:
        cfg = cfg_cls(**{k: v for k, v in s.items() if k in names})
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    for k in ("batch_size", "synthetic_n", "val_n"):
        if s[k] < 1:
            raise UsageError(f"--{k.replace('_', '-')} must be at least 1, got {s[k]}")
    return cfg


def load_init_generator(ref: str) -> Generator:
    try:
        return Generator.from_pretrained(ref)
    except (OSError, ValueError) as exc:
        offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
        hint = (" (HF_HUB_OFFLINE is set: only models already in the Hub cache load)"
                if offline else "")
        raise UsageError(f"--init-from {ref}: cannot load a generator from it: "
                         f"{type(exc).__name__}: {str(exc).splitlines()[0]}{hint}. Give a "
                         "folder with config.json + model.safetensors or an existing Hub id")


# ------------------------------------------------------------------------------ data


def make_data(kind: str, args_data: str | None, s: dict):
    """(train set, val set or None, val set is paired, description)."""
    size, seed = s["image_size"], s["seed"]
    if args_data is None:
        from loomis.train.synthetic import SyntheticPairs

        train = SyntheticPairs(s["synthetic_n"], size, seed)
        val = SyntheticPairs(s["val_n"], size, seed + 1)  # a different set of heads
        desc = f"{train.description}; validation: {s['val_n']} pairs of seed {seed + 1}"
        return (Unpaired(train, seed) if kind == "cyclegan" else train), val, True, desc
    if kind == "cyclegan":
        try:
            train = UnpairedFolder(args_data, "train", size, seed=seed)
            try:
                val = UnpairedFolder(args_data, "test", size, augment=False, max_items=s["val_n"])
            except DatasetError:
                val = None
            return train, val, False, train.description
        except DatasetError as exc:
            if "not a CycleGAN folder" not in str(exc):
                raise
        train = Unpaired(PairedFolder(args_data, "train", size, seed=seed), seed)
    else:
        train = PairedFolder(args_data, "train", size, seed=seed)
    val = None
    for split in ("val", "test"):
        try:
            val = PairedFolder(args_data, split, size, augment=False, max_items=s["val_n"])
            break
        except DatasetError:
            pass
    return train, val, True, train.description


def seed_rank(seed: int, rank: int) -> None:
    """Give rank ``rank`` > 0 random streams of its own (dropout masks, WGAN-GP mixing).

    Every rank builds the model from the same ``seed``, so weights start identical; left
    there, every rank would also draw the same dropout masks for different images. Rank 0
    keeps the single-process stream, so a one-process run is unchanged.
    """
    if rank:
        import random

        s = int(np.random.SeedSequence([seed, rank]).generate_state(1)[0])
        torch.manual_seed(s)
        np.random.seed(s)
        random.seed(s)


def epoch_order(n: int, seed: int, epoch: int, world: int, rank: int) -> list[int]:
    """This rank's item order for ``epoch``: a pure function of (seed, epoch)."""
    sampler = torch.utils.data.DistributedSampler(range(n), num_replicas=world, rank=rank,
                                                  shuffle=True, seed=seed)
    sampler.set_epoch(epoch)
    return list(sampler)


# ------------------------------------------------------------------------------ outputs


def _grid(rows: list[list[torch.Tensor]]) -> Image.Image:
    """Rows of (C, H, W) tensors in [-1, 1] → one image (input | output | target)."""
    return to_image(torch.cat([torch.cat(r, dim=2) for r in rows], dim=1))


#: Made photos are read back at this size at least (benchmarks/quality.py reads them at 256²).
READBACK_SIZE = 256


def reads_as_face(reader: PoseEstimator, out: torch.Tensor) -> bool:
    """Whether the face-landmark pose estimator ``reader`` finds a face in the made photo
    ``out`` (C×H×W in [-1, 1]), upscaled to :data:`READBACK_SIZE` as the benchmark does."""
    img = to_image(out)
    if min(img.size) < READBACK_SIZE:
        img = img.resize((READBACK_SIZE, READBACK_SIZE), Image.BICUBIC)
    return bool(reader.analyse(img).faces)


@torch.no_grad()
def validate(kind: str, model, val, paired: bool, n_grid: int = 4,
             reader: PoseEstimator | None = None):
    """(val_loss from model.validate, metric means, grid image).

    With a pose estimator as ``reader``, a pix2pix run that makes photos also reports
    ``faces``: the share of its validation photos that read as a face. SSIM and L1 prefer
    a soft average to a sharp face (benchmarks/quality.py's reference rows), so this is
    what picks the best photo epoch (:func:`selection_score`).

    Drawings are also scored as the app makes them, with the :class:`Translator`'s mirror
    pass: ``f1_mirror``, which picks the best drawing epoch. ``f1`` stays the single pass,
    so the curves of earlier runs read on."""
    losses, rows, grid_rows = [], [], []
    cfg = model.config
    gens = ([(model.netG, cfg.direction)] if kind == "pix2pix"
            else [(model.netG_A, "AtoB"), (model.netG_B, "BtoA")])
    translators = [(Translator(g, model.device, runtime="torch"), direction)
                   for g, direction in gens]  # also puts each generator in eval mode
    for i in range(len(val)):
        a, b = val[i]
        a, b = a[None], b[None]
        losses.append(model.validate(a, b))
        for j, (tr, direction) in enumerate(translators):
            src, tgt = (a, b) if direction == "AtoB" else (b, a)
            x = src.to(model.device)
            out = tr.run(x, mirror=False).float().cpu()
            if paired and j == 0:
                row = M.image_metrics(out[0], tgt[0], tr.config.target_domain)
                if tr.mirror:
                    both = tr.run(x, mirror=True).float().cpu()
                    row["f1_mirror"] = M.line_scores(both[0], tgt[0])["f1"]
                if reader is not None and tr.config.target_domain == "photo":
                    row["faces"] = float(reads_as_face(reader, out[0]))
                rows.append(row)
            if i < n_grid:
                grid_rows.append([src[0], out[0].clamp(-1, 1), tgt[0]])
    for g, _ in gens:
        g.train()
    return float(np.mean(losses)), M.mean_metrics(rows), _grid(grid_rows)


def metric_columns(row: dict) -> dict:
    """An epoch row of metrics.csv without its bookkeeping columns."""
    return {k: v for k, v in row.items() if k not in ("epoch", "step", "lr", "minutes")}


def selection_score(val_loss: float, mets: dict) -> float:
    """Which validated epoch is best (higher is better): the target domain's headline
    metric, line F1 for drawings (with the mirror pass when measured: what the app
    ships) and SSIM for photos, else minus the validation L1. The L1 alone would crown a
    blank page for line drawings (mostly white, so a low L1).

    Photos read back as faces come first when measured: the share that do, with SSIM
    (scaled into 1e-4, below one face's share of any validation set up to 5000 images)
    breaking ties."""
    faces, ssim = mets.get("faces"), mets.get("ssim")
    if faces is not None and ssim is not None and math.isfinite(faces) and math.isfinite(ssim):
        return float(faces) + 1e-4 * float(ssim)
    for key in ("f1_mirror", "f1", "ssim"):
        if key in mets and math.isfinite(mets[key]):
            return float(mets[key])
    return -val_loss if math.isfinite(val_loss) else -math.inf


def write_csv(path: Path, rows: list[dict]) -> None:
    if not rows:
        return
    keys = list(rows[0])
    for r in rows:
        keys += [k for k in r if k not in keys]

    def write(tmp: str) -> None:
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, keys)
            w.writeheader()
            w.writerows({k: (repr(v) if isinstance(v, float) else v) for k, v in r.items()}
                        for r in rows)
    atomic_write(path, write)


def read_csv(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return [{k: (int(v) if k in ("epoch", "step") else float(v) if v != "" else None)
                 for k, v in r.items()} for r in csv.DictReader(f)]


def plot_losses(path: Path, rows: list[dict]) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not rows:
        return
    steps = np.array([r["step"] for r in rows])
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    for k in rows[0]:
        if k in ("epoch", "step"):
            continue
        v = np.array([r[k] for r in rows], dtype=float)
        w = max(1, len(v) // 50)
        smooth = np.convolve(v, np.ones(w) / w, mode="valid")
        ax.plot(steps[w - 1:], smooth, label=k)
    ax.set_xlabel("step"), ax.set_ylabel("loss"), ax.set_yscale("symlog", linthresh=1.0)
    ax.legend(fontsize=8), ax.grid(alpha=0.3)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)


def write_index(out: Path, kind: str, epoch_rows: list[dict], desc: str) -> None:
    parts = [f"<!doctype html><meta charset='utf-8'><title>{kind} run {html.escape(out.name)}"
             "</title><style>body{font-family:sans-serif}img{max-width:100%}</style>",
             f"<h1>{kind}: {html.escape(str(out))}</h1><p>{html.escape(desc)}</p>",
             "<p>Rows: input | output | target. <a href='metrics.csv'>metrics.csv</a> · "
             "<a href='losses.csv'>losses.csv</a></p><img src='loss_curve.png'>"]
    for r in reversed(epoch_rows):
        nums = ", ".join(f"{k} {v:.4g}" for k, v in r.items()
                         if k != "epoch" and isinstance(v, float))
        parts.append(f"<h2>epoch {r['epoch']}</h2><p>{html.escape(nums)}</p>"
                     f"<img src='samples/epoch_{r['epoch']:03d}.png'>")
    atomic_write(out / "index.html", lambda tmp: Path(tmp).write_text("\n".join(parts)))


def sync_buffers(model) -> None:
    """Copy rank 0's BatchNorm running statistics to every rank.

    DDP averages gradients (so parameters agree) and broadcasts buffers only at the start
    of a wrapped forward; the later forwards of a step update each rank's running stats
    with its own shard. Rank 0's buffers are the ones saved, so make them everyone's.
    """
    for net in model.networks.values():
        for buf in net.buffers():
            dist.broadcast(buf.data, 0)


def weights_digest(module: torch.nn.Module) -> str:
    return hash_weights(module).hexdigest()


def export_generator(gen: Generator, folder: Path, dtype: str, record: dict, run_dir: Path,
                     last_metrics: dict) -> Path:
    """A complete Hub folder: config.json, model.safetensors, model.onnx, README.md card,
    training.json, samples.png, loss_curve.png."""
    from loomis.train.inference import export_onnx

    if folder.exists():
        shutil.rmtree(folder)
    g = copy.deepcopy(gen).cpu().eval()
    g = g.half() if dtype == "float16" else g.float()
    g.save_pretrained(folder)
    back = Generator.from_pretrained(str(folder))  # what users will load, float32
    export_onnx(back, folder / "model.onnx")
    samples = sorted((run_dir / "samples").glob("epoch_*.png"))
    if samples:
        shutil.copyfile(samples[-1], folder / "samples.png")
    if (run_dir / "loss_curve.png").is_file():
        shutil.copyfile(run_dir / "loss_curve.png", folder / "loss_curve.png")
    (folder / TRAINING_FILE).write_text(json.dumps(record, indent=2))
    card = render_model_card(folder)
    lines = ["", "## This training run", "",
             f"Validation of these weights, from {record.get('weights_from', 'the last step')} "
             f"({record.get('validation_set', '')}):", ""]
    if last_metrics:
        lines += ["| " + " | ".join(last_metrics) + " |", "|---" * len(last_metrics) + "|",
                  "| " + " | ".join(f"{v:.4f}" for v in last_metrics.values()) + " |"]
    else:
        lines += ["No epoch finished (the run stopped inside the first epoch)."]
    if samples:
        lines += ["", "Samples (input | output | target):", "", "![samples](samples.png)"]
    lines += ["", "Loss curve:", "", "![loss curve](loss_curve.png)", ""]
    (folder / "README.md").write_text(card + "\n".join(lines))
    return folder


# ------------------------------------------------------------------------------ main


class Stop:
    """Set by SIGINT/SIGTERM; the loop checks it between steps and saves before leaving."""

    def __init__(self) -> None:
        self.flag = False
        self.signame = ""

    def __call__(self, signum, frame) -> None:
        self.flag = True
        self.signame = signal.Signals(signum).name


def main(kind: str, argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(kind).parse_args(argv)
    try:
        rc = run(kind, args, argv)
    except (UsageError, DatasetError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if dist.is_initialized():   # torchrun: every path out of run() leaves, a halt included
        leave_process_group()
    return rc


def leave_process_group() -> None:
    """Leave torchrun's process group once every process has arrived (rank 0 may still be
    writing: a process that leaves gloo while another is inside a collective aborts it).
    Call it after the function holding the DistributedDataParallel wrappers has returned:
    they and their reducers hold the group, and left to the interpreter's exit their
    teardown aborted a process ("terminate called without an active exception", no
    Python frame): 4 of about 50 two-process train/pose_net.py runs that stopped after an
    epoch, 0 of 100 since they are collected first."""
    gc.collect()
    dist.barrier()
    dist.destroy_process_group()


def check_out_dir(out: Path) -> None:
    """Refuse, before any work, an ``--out`` that cannot be a folder this process writes:
    a file, a path under a file, or a folder (or the nearest existing folder above it)
    that is read-only or not ours to write."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file, not a folder; give a folder path")
    if out.is_symlink() and not out.exists():
        raise UsageError(f"--out {out} is a link to nothing ({os.readlink(out)}); give a "
                         "folder path")
    above = out
    while not above.exists() and above.parent != above:
        above = above.parent
    if not above.is_dir():
        raise UsageError(f"--out {out}: {above} is a file, so no folder can be made under "
                         "it; give a folder path")
    if not os.access(above, os.W_OK | os.X_OK):
        where = "it" if above == out else f"{above}, where it would be made"
        raise UsageError(f"--out {out}: cannot write to {where} (read-only or permission "
                         "denied); give a folder you can write to")


def check_run_dir(kind: str, args, out: Path) -> dict | None:
    """The saved run.json on --resume (after checking it is ours); refuses to clobber."""
    run_json = out / "run.json"
    if args.resume:
        if not run_json.is_file():
            raise UsageError(f"--resume: {out} holds no run (no run.json); start it without "
                             "--resume")
        saved = json.loads(run_json.read_text())
        if saved.get("model") != kind:
            raise UsageError(f"--resume: {out} was made by train/{saved.get('model')}.py, not "
                             f"train/{kind}.py; use that script or another --out")
        explicit = explicit_settings(kind, args)
        diff = {k: (saved["settings"].get(k), v) for k, v in explicit.items()
                if saved["settings"].get(k) != v}
        if args.preset and args.preset != saved.get("preset"):
            diff["preset"] = (saved.get("preset"), args.preset)
        src = "synthetic" if args.synthetic else args.data
        if (args.synthetic or args.data) and src != saved.get("data"):
            diff["data"] = (saved.get("data"), src)
        if diff:
            shown = "; ".join(f"{k}: run has {a!r}, you gave {b!r}" for k, (a, b) in diff.items())
            raise UsageError(f"--resume: {out} was trained with other settings ({shown}). "
                             "Only --epochs and --epochs-decay may change on --resume (to "
                             "train the run longer); drop the other flags, or start a new "
                             "run with another --out")
        return saved
    if out.exists() and any(out.iterdir()):
        if not run_json.is_file():  # --overwrite deletes the folder: only ever a run's
            raise UsageError(f"{out} is not empty and holds no training run (no run.json); "
                             "choose another --out")
        if not args.overwrite:
            raise UsageError(f"{out} already holds a training run. Continue it, or train it "
                             f"longer, with: python train/{kind}.py --out {out} --resume "
                             "[--epochs TOTAL]; or give another --out for a new run "
                             "(--overwrite deletes the trained run and starts over)")
    if not args.synthetic and not args.data:
        raise UsageError("give --data DIR or --synthetic")
    return None


def run(kind: str, args, argv: list[str]) -> int:
    t_start = time.time()
    if args.max_minutes is not None and args.max_minutes < 0:
        raise UsageError(f"--max-minutes must be >= 0, got {args.max_minutes}")
    out = Path(args.out)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    is_main = rank == 0

    if args.save_minutes < 0:
        raise UsageError(f"--save-minutes must be >= 0 (0: off), got {args.save_minutes}")
    check_out_dir(out)
    saved = check_run_dir(kind, args, out)
    ckpt_last, ckpt_best = out / "last.safetensors", out / "best.safetensors"
    ck = None
    if saved is not None:
        s, data_arg, preset = dict(saved["settings"]), saved["data"], saved.get("preset")
        init_gen, init_from, command = None, saved.get("init_from"), saved["command"]
        s["n_epochs"], s["n_epochs_decay"] = epoch_split(
            args.epochs, args.epochs_decay, (s["n_epochs"], s["n_epochs_decay"]),
            share=preset_split(kind, preset))
        if ckpt_last.is_file():
            ck = load_state(ckpt_last)
            done, total = ck["run"]["epoch"], s["n_epochs"] + s["n_epochs_decay"]
            if total < done:
                raise UsageError(f"--resume: {out} has trained {done} epochs already, more "
                                 f"than the {total} asked for; give --epochs {done} or more")
    else:
        init_from = args.init_from
        init_gen = load_init_generator(init_from) if init_from else None
        init_cfg = asdict(init_gen.config) if init_gen is not None else None
        s = resolve_settings(kind, args, init_cfg)
        if init_gen is not None and s["ngf"] != init_gen.config.ngf:
            init_gen = widen(init_gen, s["ngf"], seed=s["seed"])
        data_arg = None if args.synthetic else args.data
        preset = args.preset
        command = f"python train/{kind}.py " + shlex.join(argv)
    cfg = split_settings(kind, s)
    train_ds, val_ds, val_paired, desc = make_data(kind, data_arg, s)
    reports = [r for r in (getattr(train_ds, "report", None),
                           getattr(getattr(train_ds, "paired", None), "report", None)) if r]

    device = args.device
    if world > 1:
        if device in ("auto", "cuda") and torch.cuda.is_available():
            device = f"cuda:{local_rank}"
            torch.cuda.set_device(local_rank)
        elif device == "auto":
            device = "cpu"
        if args.sync_bn and not device.startswith("cuda"):
            raise UsageError("--sync-bn needs CUDA (torch's SyncBatchNorm runs on GPUs only); "
                             "drop it for CPU runs")
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    model_cls = MODELS[kind][0]
    try:
        model = model_cls(cfg, device)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    retained = (model.device.type == "cpu" and args.retain_freed_memory
                and retain_freed_memory())
    if init_gen is not None:
        target = (model.netG if kind == "pix2pix" else
                  model.netG_A if init_gen.config.direction == "AtoB" else model.netG_B)
        target.load_state_dict(init_gen.state_dict())

    reader = None
    if kind == "pix2pix" and val_ds is not None and val_paired \
            and model.netG.config.target_domain == "photo":
        from loomis.pose import PoseEstimator   # made photos are read back as faces
        reader = PoseEstimator()

    # "best" is the selection score of the best validated epoch (higher is better, see
    # selection_score); "seconds" the training time summed over every session of the run
    state = {"epoch": 0, "step_in_epoch": 0, "global_step": 0, "best": -math.inf,
             "best_epoch": -1, "seconds": 0.0}
    counts = {"n_epochs": cfg.n_epochs, "n_epochs_decay": cfg.n_epochs_decay}
    trained = {k: (ck["model"]["config"] if ck is not None else saved["settings"])[k]
               for k in counts} if saved is not None else counts
    lr_change = None
    if ck is not None:
        # more (or fewer) epochs: the only settings a resumed run may change (check_run_dir)
        ck["model"]["config"] |= counts
        model.load_state_dict(ck["model"])  # random state: rank 0's, on every rank
        state = {"seconds": 0.0} | ck["run"]
        if trained != counts:
            lr_change = (model.lr, follow_schedule(model))
        if world > 1:
            if len(ck.get("rank_rng") or []) == world:
                set_rng_state(ck["rank_rng"][rank])
            elif is_main:
                print(f"warning: {ckpt_last} holds no random state for {world} ranks; every "
                      "rank continues from rank 0's", file=sys.stderr)
    elif world > 1:
        seed_rank(cfg.seed, rank)
    if world > 1:
        model.distribute(sync_batchnorm=args.sync_bn)

    if is_main:
        record, removed = None, []
        if saved is None:
            record = {"model": kind, "preset": preset, "settings": s, "data": data_arg or "synthetic",
                      "data_description": desc, "init_from": init_from, "command": command}
        else:
            removed = (remove_stale_temporaries(out, RUN_FILES)
                       + remove_stale_temporaries(out / "samples", SAMPLE_FILES))
            if s != saved["settings"] or trained != counts:
                record = saved | {"settings": s}
            if trained != counts:
                change = {"epoch": state["epoch"], "step": state["global_step"],
                          "from": trained, "to": counts,
                          "command": f"python train/{kind}.py " + shlex.join(argv)}
                if lr_change:
                    change |= {"lr_before": lr_change[0], "lr_after": lr_change[1]}
                past = [c for c in saved.get("schedule_changes", [])   # a repeat of a
                        if (c["epoch"], c["step"], c["to"]) != (state["epoch"],  # killed try
                                                                state["global_step"], counts)]
                record["schedule_changes"] = past + [change]
        try:
            if saved is None:
                if out.exists() and args.overwrite:
                    shutil.rmtree(out)
                out.mkdir(parents=True, exist_ok=True)
            if record is not None:
                atomic_write(out / "run.json",
                             lambda tmp: Path(tmp).write_text(json.dumps(record, indent=2)))
            (out / "samples").mkdir(exist_ok=True)
        except OSError as exc:
            raise UsageError(f"--out {out}: cannot write there ({exc.strerror or exc}); give "
                             "a folder you can write to") from None
        print(f"{kind}: {desc}; {world} process(es) on {model.device}"
              f"{' (freed memory kept)' if retained else ''}; "
              f"{'resuming at epoch %d step %d' % (state['epoch'] + 1, state['step_in_epoch']) if saved else 'new run'} → {out}")
        if removed:
            print(f"removed {len(removed)} temporary file(s) an interrupted save left "
                  f"({sum(b for _, b in removed) / 1e6:.1f} MB): "
                  + ", ".join(p.name for p, _ in removed))
        if trained != counts:
            lr_note = (f"; lr {lr_change[0]:.3g} → {lr_change[1]:.3g}, as the new schedule has "
                       f"it at epoch {state['epoch'] + 1}" if lr_change else "")
            print(f"lr schedule changed at epoch {state['epoch'] + 1} (step "
                  f"{state['global_step']}): {describe_epochs(trained)} → "
                  f"{describe_epochs(counts)}{lr_note}")
        for r in reports:
            if r.skipped:
                print(f"data: skipped {r.skipped} file(s): {r.summary()}")
    if world > 1:
        dist.barrier()

    # files written step by step, trimmed to the checkpoint (a killed run wrote past it)
    loss_rows = [r for r in read_csv(out / "losses.csv") if r["step"] <= state["global_step"]]
    epoch_rows = [r for r in read_csv(out / "metrics.csv") if r["epoch"] <= state["epoch"]]

    t_session = time.time()
    seconds_at_start = state["seconds"]
    last_save = t_session   # rank 0's clock decides when --save-minutes is due

    def save(path: Path) -> None:
        """Every rank calls this at the same step: each rank's random state is kept."""
        nonlocal last_save
        last_save = time.time()
        state["seconds"] = seconds_at_start + time.time() - t_session
        extra = {}
        if world > 1:
            extra["rank_rng"] = [None] * world
            dist.all_gather_object(extra["rank_rng"], rng_state())
        if is_main:
            # the log first: a run killed between the two writes then has rows past its
            # checkpoint, which resuming trims, rather than a checkpoint past its log,
            # whose last row would be lost for good
            write_csv(out / "losses.csv", loss_rows)
            save_state(path, {"model": model.state_dict(), "run": dict(state), **extra})

    stop = Stop()
    old_handlers = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    total_epochs = cfg.n_epochs + cfg.n_epochs_decay
    bs = s["batch_size"]
    steps_per_epoch = math.ceil(len(epoch_order(len(train_ds), cfg.seed, 0, world, rank)) / bs)
    max_steps = args.max_steps
    save_seconds = args.save_minutes * 60
    deadline = t_session + args.max_minutes * 60 if args.max_minutes is not None else math.inf
    done = False
    last_metrics = metric_columns(epoch_rows[-1]) if epoch_rows else {}
    if max_steps is not None and state["global_step"] >= max_steps:
        done = True
    try:
        while not done and state["epoch"] < total_epochs:
            epoch = state["epoch"]
            if hasattr(train_ds, "set_epoch"):
                train_ds.set_epoch(epoch)
            order = epoch_order(len(train_ds), cfg.seed, epoch, world, rank)[state["step_in_epoch"] * bs:]
            loader = torch.utils.data.DataLoader(train_ds, batch_size=bs, sampler=order,
                                                 num_workers=args.workers,
                                                 # own generator: a new iterator must not draw
                                                 # from the global RNG (dropout's), or a run
                                                 # resumed mid-epoch diverges from the original
                                                 generator=torch.Generator())
            bar = tqdm(total=steps_per_epoch, initial=state["step_in_epoch"], disable=not is_main,
                       desc=f"epoch {epoch + 1}/{total_epochs}", dynamic_ncols=True, leave=False)
            for a, b in loader:
                losses = model.step(a, b)
                state["global_step"] += 1
                state["step_in_epoch"] += 1
                loss_rows.append({"epoch": epoch + 1, "step": state["global_step"], **losses})
                bar.set_postfix({k: f"{v:.3f}" for k, v in losses.items()}, refresh=False)
                bar.update()
                # a signal or the time budget stops every rank at the same step, and rank
                # 0's clock alone says when a timed checkpoint is due: what is saved is
                # the state after this step, whenever the save happens
                now = time.time()
                halt, late = stop.flag, now >= deadline
                due = is_main and save_seconds > 0 and now - last_save >= save_seconds
                if world > 1:
                    flags = torch.tensor([float(halt), float(late), float(due)])
                    dist.all_reduce(flags)
                    halt, late, due = (bool(f) for f in flags.tolist())
                if args.save_every and state["global_step"] % args.save_every == 0:
                    due = True
                if halt or due:
                    save(ckpt_last)
                if halt:
                    if is_main:
                        bar.close()
                        print(f"\n{stop.signame or 'stop'}: saved {ckpt_last} at step "
                              f"{state['global_step']}; continue with: python train/{kind}.py "
                              f"--out {out} --resume")
                    return 0
                if (max_steps is not None and state["global_step"] >= max_steps) or late:
                    done = True
                    break
            bar.close()
            if state["step_in_epoch"] < steps_per_epoch:  # stopped inside the epoch
                save(ckpt_last)
                break
            # ---- end of epoch: validate, schedule, write, checkpoint
            if world > 1:
                sync_buffers(model)
            val_loss, mets, grid = (validate(kind, model, val_ds, val_paired, reader=reader)
                                    if val_ds is not None
                                    else (math.nan, {}, None))
            if cfg.lr_policy == "plateau" and val_ds is None:
                raise UsageError("--lr-policy plateau needs a validation split (val/ or test/)")
            lr = model.end_epoch(val_loss if cfg.lr_policy == "plateau" else None)
            state["epoch"] += 1
            state["step_in_epoch"] = 0
            minutes = (seconds_at_start + time.time() - t_session) / 60
            row = {"epoch": state["epoch"], "step": state["global_step"], "lr": lr,
                   "minutes": round(minutes, 2), "val_loss": val_loss, **mets}
            epoch_rows.append(row)
            last_metrics = metric_columns(row)
            score = selection_score(val_loss, mets)
            improved = score > state["best"]
            if world > 1:  # rank 0 decides: save() is collective, every rank must call it
                flag = torch.tensor([float(improved)])
                dist.broadcast(flag, 0)
                improved = bool(flag.item())
            if improved:
                state["best"], state["best_epoch"] = score, state["epoch"]
            if is_main:
                if grid is not None:
                    atomic_write(out / "samples" / f"epoch_{state['epoch']:03d}.png",
                                 lambda tmp: grid.save(tmp, format="PNG"))
                write_csv(out / "metrics.csv", epoch_rows)
                atomic_write(out / "metrics.json",
                             lambda tmp: Path(tmp).write_text(json.dumps(epoch_rows, indent=2)))
                plot_losses(out / "loss_curve.png", loss_rows)
                write_index(out, kind, epoch_rows, desc)
                tqdm.write(f"epoch {state['epoch']}/{total_epochs}: lr {lr:.3g}, val_loss "
                           f"{val_loss:.4f}" + "".join(f", {k} {v:.4f}" for k, v in mets.items()))
            if improved:
                save(ckpt_best)
            save(ckpt_last)
    finally:
        for sig, h in old_handlers.items():
            signal.signal(sig, h)

    # ---- finished: Hub folders, DDP agreement, push
    weights_from = f"the last step ({state['global_step']})"
    # the epoch whose end these weights are (None: stopped inside an epoch); lets
    # benchmarks/training_curve.py place a continuation's start on its parent's curve
    weights_epoch = state["epoch"] if state["step_in_epoch"] == 0 else None
    if args.load_best_at_end and state["best_epoch"] > 0 and state["best_epoch"] != state["epoch"]:
        if world > 1:
            dist.barrier()  # rank 0 wrote best.safetensors
        if ckpt_best.is_file():
            model.load_state_dict(load_state(ckpt_best)["model"])
            weights_from = f"the best validated epoch ({state['best_epoch']})"
            weights_epoch = state["best_epoch"]
            best_row = next((r for r in epoch_rows if r["epoch"] == state["best_epoch"]), None)
            if best_row is not None:
                last_metrics = metric_columns(best_row)
    gens = ({"generator": model.netG} if kind == "pix2pix"
            else {"generator_A": model.netG_A, "generator_B": model.netG_B})
    if world > 1:
        sync_buffers(model)
        digest = weights_digest(torch.nn.ModuleList(list(gens.values())))
        digests = [None] * world
        dist.all_gather_object(digests, digest)
        if is_main:
            atomic_write(out / "ddp_check.json",
                         lambda tmp: Path(tmp).write_text(json.dumps({"rank_digests": digests})))
            if len(set(digests)) != 1:
                print("warning: ranks ended with different weights", file=sys.stderr)
    rc = 0
    if is_main:
        plot_losses(out / "loss_curve.png", loss_rows)
        if not (out / "index.html").exists():
            write_index(out, kind, epoch_rows, desc)
        record = {"command": command, "data": desc, "model": kind,
                  "steps": state["global_step"], "epochs_done": state["epoch"],
                  "batch_size": bs, "processes": world, "device": str(model.device),
                  "train_time_this_session": f"{time.time() - t_start:.0f} s",
                  "train_minutes_total": round(state["seconds"] / 60, 1),
                  "weights_from": weights_from, "weights_epoch": weights_epoch,
                  "validation_set": f"{len(val_ds) if val_ds else 0} images",
                  "init_from": init_from, "settings": s}
        folders = [export_generator(g, out / name, args.save_dtype, record, out, last_metrics)
                   for name, g in gens.items()]
        print(f"done: {state['global_step']} steps; generator folder(s): "
              + ", ".join(str(f) for f in folders))
        if args.push_to_hub:
            from loomis.train.hub import push_folder, repo_for

            for f in folders:
                repo = repo_for(args.push_to_hub, f.name)
                try:
                    url = push_folder(f, repo)
                    print(f"pushed {f} → {url}")
                except Exception as exc:  # network, auth, quota: the run stays intact
                    print(f"push of {f} to {repo} failed ({type(exc).__name__}: {exc}). The run "
                          f"is intact in {out}. Retry with:\n  python train/push.py {f} {repo}\n"
                          f"or: huggingface-cli upload {repo} {f} .", file=sys.stderr)
                    rc = 1
    return rc
