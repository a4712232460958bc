"""Validation metric against training time, for one or more training runs.

    python -m benchmarks.training_curve RUN_DIR [RUN_DIR ...] [--out docs/training_curve.png]
                                        [--goal f1=0.75 --goal ssim=0.80]

Reads each run's ``metrics.csv`` (written by ``train/pix2pix.py`` / ``train/cyclegan.py``
after every epoch, with the run's cumulative training minutes) and plots its headline
metric, line F1 for drawings and SSIM for photos, against those minutes: one panel per
run, the epoch whose weights ``--load-best-at-end`` ships circled, the goal as a dashed
line. A run started with ``--init-from`` another run's generator folder continues that
run's curve: its minutes count on from the epoch whose weights it started from (the
parent's ``--load-best-at-end`` epoch, or its end), and a dotted line marks the hand-over.
It answers the question a budgeted CPU run leaves open: is the metric still rising when the
time ran out, and how fast?

Also prints a markdown table (run, epoch, minutes, metric) for notes and model cards.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

HEADLINE = ("f1", "ssim")  # the first one a run's metrics.csv has


def read_chain(run: Path) -> tuple[str, list[dict], list[float]]:
    """Like :func:`read_run`, preceded by the runs it was initialised from (``run.json``'s
    ``init_from`` naming a generator folder inside another run folder); also the minutes
    at which each continuation started."""
    metric, rows = read_run(run)
    record = run / "run.json"
    init = json.loads(record.read_text()).get("init_from") if record.is_file() else None
    parent = Path(init).parent if init else None
    if parent is None or not (parent / "metrics.csv").is_file() or parent.resolve() == run.resolve():
        return metric, rows, []
    p_metric, p_rows, p_starts = read_chain(parent)
    if p_metric != metric or not p_rows:
        return metric, rows, []
    # the continuation starts where its weights were taken: the end of the parent's exported
    # epoch (``weights_epoch`` in its generator folder), else the parent's last epoch
    own = [r for r in p_rows if r["segment"] == p_rows[-1]["segment"]]
    start = next((r for r in own if r["n"] == _weights_epoch(parent)), own[-1])
    p_rows = [r if isinstance(r["epoch"], str) else r | {"epoch": f"{parent.name}:{r['epoch']}"}
              for r in p_rows]
    shifted = [r | {"minutes": r["minutes"] + start["minutes"], "epoch": f"{run.name}:{r['epoch']}",
                    "segment": p_rows[-1]["segment"] + 1, "from": start} for r in rows]
    return metric, p_rows + shifted, p_starts + [start["minutes"]]


def _weights_epoch(run: Path) -> int | None:
    """The epoch whose weights ``run``'s exported generator holds, if it recorded one."""
    for record in sorted(run.glob("generator*/training.json")):
        try:
            return json.loads(record.read_text()).get("weights_epoch")
        except (OSError, ValueError):
            return None
    return None


def read_run(run: Path) -> tuple[str, list[dict]]:
    """(headline metric name, rows with epoch / minutes / metric as numbers)."""
    path = run / "metrics.csv"
    if not path.is_file():
        raise SystemExit(f"{run}: no metrics.csv (not a training run folder, or no epoch "
                         "finished yet)")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or "minutes" not in rows[0]:
        raise SystemExit(f"{path}: no 'minutes' column (written by the training scripts "
                         "from this version on)")
    metric = next((m for m in HEADLINE if m in rows[0]), None)
    if metric is None:
        raise SystemExit(f"{path}: no {' or '.join(HEADLINE)} column (a run without a "
                         "paired validation split has no metric to plot)")
    return metric, [{"epoch": int(r["epoch"]), "n": int(r["epoch"]), "segment": 0,
                     "minutes": float(r["minutes"]), metric: float(r[metric])} for r in rows]


def markdown(runs: dict[str, tuple[str, list[dict], list[float]]]) -> str:
    lines = ["| run | epoch | minutes | metric | value |", "|---|---|---|---|---|"]
    for name, (metric, rows, _) in runs.items():
        lines += [f"| {name} | {r['epoch']} | {r['minutes']:.1f} | {metric} | {r[metric]:.3f} |"
                  for r in rows]
    return "\n".join(lines)


def plot(runs: dict[str, tuple[str, list[dict], list[float]]], out: Path,
         goals: dict[str, float]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(runs), figsize=(4.6 * len(runs), 3.4), squeeze=False)
    for ax, (name, (metric, rows, starts)) in zip(axes[0], runs.items()):
        for seg in sorted({r["segment"] for r in rows}):  # a continuation branches off
            part = [r for r in rows if r["segment"] == seg]
            part = ([part[0]["from"]] if "from" in part[0] else []) + part
            ax.plot([r["minutes"] for r in part], [r[metric] for r in part], "o-", color="#335")
        best = max(rows, key=lambda r: r[metric])
        ax.plot([best["minutes"]], [best[metric]], "o", ms=12, mfc="none", color="#c33",
                label=f"best: epoch {best['epoch']}, {best[metric]:.3f}")
        for i, start in enumerate(starts):
            ax.axvline(start, ls=":", color="#777", label="continued (--init-from)" if i == 0 else None)
        if metric in goals:
            ax.axhline(goals[metric], ls="--", color="#888", label=f"goal {goals[metric]:.2f}")
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("training minutes")
        ax.set_ylabel(f"validation {metric}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs", nargs="+", type=Path, help="training run folders (RUN_DIR)")
    ap.add_argument("--out", type=Path, help="write the figure here (PNG)")
    ap.add_argument("--goal", action="append", default=[], metavar="METRIC=VALUE",
                    help="draw a goal line, e.g. f1=0.75")
    args = ap.parse_args(argv)
    goals = {}
    for g in args.goal:
        key, sep, value = g.partition("=")
        try:
            goals[key] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            ap.error(f"--goal takes METRIC=VALUE, e.g. f1=0.75; got {g!r}")
    runs = {run.resolve().name: read_chain(run) for run in args.runs}
    print(markdown(runs))
    if args.out:
        plot(runs, args.out, goals)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
