"""Make training datasets on disk.

    python train/make_dataset.py pairs --photos PORTRAITS --out DIR [--size S]
                                       [--variations K] [--rendered R] [--features F]
                                       [--no-vary-drawing] [--seed N]
    python train/make_dataset.py synthetic --out DIR --n N --size S --seed K
                                           [--val-frac F] [--test-frac F] [--workers W]

``pairs`` turns any folder of portraits into paired and unpaired sets through the
geometric engine, at the framing the app runs the generators at, with a held-out split
fixed by file name (:mod:`loomis.train.autopairs` says what each option does and writes).

``synthetic`` renders procedural heads and their Loomis constructions (loomis.train.synthetic):

* ``DIR/paired/{train,val,test}/NNNNNN.png``: pix2pix pairs, photo | drawing side by side
  (A left, B right);
* ``DIR/unpaired/{trainA,trainB,testA,testB}/NNNNNN.png``: CycleGAN data, photos (A) and
  drawings (B) of *different* heads (separate random streams), so nothing is paired;
* ``DIR/metadata.jsonl``: one line per image file with its split, pose, identity,
  lighting, camera and drawing style;
* ``DIR/dataset.json``: the settings, so that a rerun can tell a continuation from a clash.

The same settings always give the same bytes. Each file is written to a temporary name and
renamed into place, so an interrupted run leaves only whole files; running the same
command again skips them and finishes the rest. Subcommands are one function each
(``add_<name>`` builds its parser, ``run_<name>`` runs it) so more can be added.
"""
from __future__ import annotations

import argparse
import errno
import io
import json
import multiprocessing
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from loomis.train.synthetic import (MAX_SIZE, MIN_SIZE, render_drawing, render_pair, render_photo,
                                    scene)

FORMAT_VERSION = 1
_STREAM_A, _STREAM_B = 1, 2        # unpaired photos and drawings: streams apart from pairs


class DatasetSettingsError(ValueError):
    """The command line asks for something that cannot be made (the message says why)."""


# ------------------------------------------------------------------------------- files

def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file and a rename: never a half file."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise OSError(exc.errno, exc.strerror, str(path)) from exc
    except BaseException:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def _side_by_side(a: Image.Image, b: Image.Image) -> Image.Image:
    out = Image.new("RGB", (a.width + b.width, a.height))
    out.paste(a, (0, 0))
    out.paste(b, (a.width, 0))
    return out


def _remove_stale_temps(root: Path) -> None:
    """Temporary files of an interrupted run (never complete images) are removed."""
    for p in root.rglob(".*.tmp-*"):
        try:
            p.unlink()
        except OSError:
            pass


# --------------------------------------------------------------------------- synthetic

@dataclass(frozen=True)
class Task:
    """One file to make: which scene, what to render, where."""

    path: str
    kind: str          # "pair", "photo" or "drawing"
    stream: int
    index: int
    split: str


def plan_synthetic(n: int, val_frac: float, test_frac: float) -> tuple[dict[str, int], list[Task]]:
    """Split sizes and every file of the dataset, in a fixed order."""
    n_val = int(round(n * val_frac))
    n_test = int(round(n * test_frac))
    n_train = n - n_val - n_test
    if n_train < 1:
        raise DatasetSettingsError(
            f"--n {n} with --val-frac {val_frac} and --test-frac {test_frac} leaves no training pairs")
    counts = {"train": n_train, "val": n_val, "test": n_test}
    tasks: list[Task] = []
    start = 0
    for split in ("train", "val", "test"):
        for i in range(start, start + counts[split]):
            tasks.append(Task(f"paired/{split}/{i:06d}.png", "pair", 0, i, split))
        start += counts[split]
    # CycleGAN: as many photos and drawings as pairs in train and test, from other heads.
    for split, count in (("train", n_train), ("test", n_test)):
        offset = 0 if split == "train" else n_train
        for j in range(count):
            idx = offset + j
            tasks.append(Task(f"unpaired/{split}A/{idx:06d}.png", "photo", _STREAM_A, idx, split))
            tasks.append(Task(f"unpaired/{split}B/{idx:06d}.png", "drawing", _STREAM_B, idx, split))
    return counts, tasks


def _render_task(args: tuple[Task, int, int, str]) -> str:
    """Worker: render one task and write it (skipped if it already exists)."""
    task, seed, size, root = args
    path = Path(root) / task.path
    if path.exists():
        return "skipped"
    params = scene(seed, task.index, task.stream)
    if task.kind == "pair":
        img = _side_by_side(*render_pair(params, size))
    elif task.kind == "photo":
        img = render_photo(params, size)
    else:
        img = render_drawing(params, size)
    write_atomic(path, png_bytes(img))
    return "written"


def metadata_lines(tasks: list[Task], seed: int, size: int) -> list[str]:
    lines = []
    for t in tasks:
        params = scene(seed, t.index, t.stream)
        rec = {"file": t.path, "split": t.split, "kind": t.kind, "index": t.index,
               "stream": t.stream, "size": size, **params.to_dict()}
        lines.append(json.dumps(rec, sort_keys=True))
    return lines


def _check_out_dir(out: Path, settings: dict) -> None:
    if out.exists() and not out.is_dir():
        raise DatasetSettingsError(f"--out {out} is a file, not a folder: choose a folder path")
    info = out / "dataset.json"
    if info.is_file():
        try:
            old = json.loads(info.read_text())
        except (OSError, ValueError):
            old = None
        if old != settings:
            raise DatasetSettingsError(
                f"{out} already holds a dataset made with other settings ({info}: {old}); "
                "use a new --out folder, or the same settings to continue that one")


def add_synthetic(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("synthetic", help="render procedural heads and their Loomis drawings",
                       description="Render N photo/drawing pairs of procedural heads at random "
                                   "poses (plus unpaired CycleGAN data and metadata).")
    p.add_argument("--out", required=True, type=Path, help="output folder (created)")
    p.add_argument("--n", required=True, type=int, help="number of pairs in total")
    p.add_argument("--size", type=int, default=256, help="image side in pixels (default 256)")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed, same bytes)")
    p.add_argument("--val-frac", type=float, default=0.05, help="fraction of pairs for val")
    p.add_argument("--test-frac", type=float, default=0.05, help="fraction of pairs for test")
    p.add_argument("--workers", type=int, default=1, help="parallel processes (default 1)")
    p.set_defaults(func=run_synthetic)


def _validate_synthetic(args: argparse.Namespace) -> None:
    if args.n < 1:
        raise DatasetSettingsError(f"--n must be at least 1, got {args.n}")
    if not MIN_SIZE <= args.size <= MAX_SIZE:
        raise DatasetSettingsError(
            f"--size must be between {MIN_SIZE} and {MAX_SIZE} pixels, got {args.size}")
    for name, v in (("--val-frac", args.val_frac), ("--test-frac", args.test_frac)):
        if not 0.0 <= v < 1.0:
            raise DatasetSettingsError(f"{name} must be in [0, 1), got {v}")
    if args.workers < 1:
        raise DatasetSettingsError(f"--workers must be at least 1, got {args.workers}")


def run_synthetic(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    _validate_synthetic(args)
    out: Path = args.out
    settings = {"format": FORMAT_VERSION, "kind": "synthetic", "n": args.n, "size": args.size,
                "seed": args.seed, "val_frac": args.val_frac, "test_frac": args.test_frac}
    _check_out_dir(out, settings)
    counts, tasks = plan_synthetic(args.n, args.val_frac, args.test_frac)
    for folder in ["paired/train", "paired/val", "paired/test", "unpaired/trainA",
                   "unpaired/trainB", "unpaired/testA", "unpaired/testB"]:
        (out / folder).mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(out)
    write_atomic(out / "dataset.json", (json.dumps(settings, sort_keys=True, indent=1) + "\n").encode())
    todo = [t for t in tasks if not (out / t.path).exists()]
    done = len(tasks) - len(todo)
    jobs = [(t, args.seed, args.size, str(out)) for t in todo]
    bar = tqdm(total=len(tasks), initial=done, unit="img", desc=f"synthetic {args.size}px", dynamic_ncols=True)
    try:
        if args.workers == 1 or len(jobs) < 2:
            for job in jobs:
                _render_task(job)
                bar.update(1)
        else:
            with multiprocessing.get_context("fork").Pool(args.workers, initializer=_worker_init) as pool:
                for _ in pool.imap_unordered(_render_task, jobs, chunksize=4):
                    bar.update(1)
        bar.close()
        lines = metadata_lines(tasks, args.seed, args.size)
        write_atomic(out / "metadata.jsonl", ("\n".join(lines) + "\n").encode())
    finally:
        bar.close()
    print(f"{out}: {counts['train']} train, {counts['val']} val, {counts['test']} test pairs; "
          f"{counts['train']} + {counts['test']} unpaired photos and drawings "
          f"({len(todo)} files written, {done} already there)")
    return 0


def _worker_init() -> None:
    # Each worker is one process on one core: keep numerical libraries single-threaded.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        import torch
        torch.set_num_threads(1)
    except Exception:  # torch is optional for rendering
        pass


# ------------------------------------------------------------------------------- pairs

def add_pairs(sub: argparse._SubParsersAction) -> None:
    from loomis.train.autopairs import add_arguments

    p = sub.add_parser("pairs", help="portrait photos → pix2pix pairs (photo | its Loomis drawing)",
                       description="Every portrait in a folder becomes an aligned photo crop beside "
                                   "its Loomis construction (DIR/paired/{train,val,test}), with "
                                   "DIR/report.json listing skipped files and why.")
    add_arguments(p)
    p.set_defaults(func=run_pairs)


def run_pairs(args: argparse.Namespace) -> int:
    from loomis.train.autopairs import run

    try:
        run(args)
    except ValueError as exc:
        raise DatasetSettingsError(str(exc)) from None
    return 0


# ------------------------------------------------------------------------------- main

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="make_dataset.py", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_synthetic(sub)
    add_pairs(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except DatasetSettingsError as exc:
        parser.exit(2, f"make_dataset.py {args.command}: error: {exc}\n")
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            msg = (f"no space left on the device while writing {exc.filename or 'the dataset'}. "
                   "Every file already finished is kept; free some space and run the same "
                   "command again to continue where it stopped.")
        else:
            msg = (f"cannot write the dataset: {exc}. Files already finished are kept; "
                   "fix the problem and run the same command again to continue.")
        parser.exit(1, f"make_dataset.py {args.command}: error: {msg}\n")
    except KeyboardInterrupt:
        parser.exit(130, "\ninterrupted: finished files are kept; run the same command again to continue\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
