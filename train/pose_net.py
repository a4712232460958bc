"""Train the photo → head pose network (:class:`loomis.train.pose_net.PoseNet`) on synthetic renders.

    python train/make_dataset.py synthetic --out data/synth --n 3000
    python train/pose_net.py --data data/synth --out runs/posenet --epochs 60
    python train/pose_net.py --data data/synth --out runs/posenet --epochs 60 --resume
    torchrun --nproc_per_node 2 train/pose_net.py --data data/synth --out runs/posenet

Every synthetic pair comes with its exact pose in the dataset's ``metadata.jsonl``; this
script reads the photos of the ``train`` split of each ``--data`` folder and regresses
yaw, pitch and roll (smooth L1 on angles scaled to about [-1, 1]). Augmentation: a mirrored
photo with yaw and roll negated, and brightness and colour jitter. AdamW with a cosine
learning rate over all epochs.

Resuming is exact: the state (weights, optimizer, epoch) is saved at every epoch's end, and
each epoch's order and augmentation come from generators seeded by (seed, epoch), so a run
stopped and resumed gives the same weights as one that never stopped. Under torchrun each
process takes every world-th batch of the same order and gradients are averaged
(DistributedDataParallel, gloo on CPU). At the end ``OUT/pose_net`` is a complete Hub model
folder (config.json, model.safetensors, README.md model card with the command and the
validation error, training.json); ``--push-to-hub ORG/NAME`` uploads it.
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import os
import re
import shlex
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from loomis.train.loop import UsageError, check_out_dir, leave_process_group, weights_digest

from loomis.train.checkpoint import load_state, remove_stale_temporaries, save_state
from loomis.train.pose_net import MIRROR_SIGNS, PoseNet, PoseNetConfig
from loomis.registry import HUB_ORG, POSE_NET

STATE_FILE = "state.safetensors"
HEADER = "yaw_mae,pitch_mae,roll_mae"


class DataError(ValueError):
    """A --data folder that holds no posed photos."""


def load_split(folders: list[str], split: str, net: PoseNet) -> tuple[torch.Tensor, torch.Tensor]:
    """(photos as float16 network inputs, poses in degrees) of one split of the folders.

    Each photo goes through :meth:`PoseNet.image_tensor`, the path inference uses.
    """
    from PIL import Image
    xs, ys = [], []
    for folder in folders:
        meta = Path(folder) / "metadata.jsonl"
        if not meta.is_file():
            raise DataError(f"{folder} has no metadata.jsonl; make one with "
                            "`python train/make_dataset.py synthetic --out DIR --n N`")
        for line in meta.read_text().splitlines():
            row = json.loads(line)
            if f"/{split}/" not in row["file"]:
                continue
            pair = Image.open(Path(folder) / row["file"]).convert("RGB")
            side = pair.size[1]
            photo = pair.crop((0, 0, side, side))      # the pair is photo | drawing
            xs.append(net.image_tensor(photo)[0].half())
            pose = row["pose"]
            ys.append((pose["yaw"], pose["pitch"], pose["roll"]))
    if not xs:
        raise DataError(f"no {split!r} photos in {', '.join(folders)}")
    return torch.stack(xs), torch.tensor(ys, dtype=torch.float32)


@torch.no_grad()
def evaluate(net: PoseNet, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """Mean absolute error per angle (degrees), reading each photo and its mirror image as
    :meth:`PoseNet.predict` does."""
    was = net.training
    net.eval()
    signs = torch.tensor(MIRROR_SIGNS)
    pred = torch.cat([(net(b.float()) + net(b.float().flip(3)) * signs) / 2
                      for b in x.split(64)])
    net.train(was)
    mae = (pred - y).abs().mean(0)
    return {k: float(v) for k, v in zip(HEADER.split(","), mae)}


def augment(x: torch.Tensor, y: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Mirror half the batch (yaw and roll change sign), jitter brightness and colour."""
    n = len(x)
    x, y = x.float(), y.clone()
    flip = torch.rand(n, generator=g) < 0.5
    x[flip] = x[flip].flip(3)
    y[flip] *= torch.tensor(MIRROR_SIGNS)
    gain = 1 + 0.2 * (torch.rand(n, 1, 1, 1, generator=g) - 0.5)
    shift = 0.2 * (torch.rand(n, 3, 1, 1, generator=g) - 0.5)
    return (x * gain + shift).clamp(-1, 1), y


def dataset_command(folder: str) -> str:
    """The make_dataset.py command that renders ``folder`` again (from its dataset.json)."""
    info = json.loads((Path(folder) / "dataset.json").read_text())
    if info.get("kind") != "synthetic":
        return f"# {folder}: {info.get('kind', 'unknown')} data"
    return (f"python train/make_dataset.py synthetic --out {folder} --n {info['n']} "
            f"--size {info['size']} --seed {info['seed']} --val-frac {info['val_frac']} "
            f"--test-frac {info['test_frac']}")


def model_card(net: PoseNet, record: dict) -> str:
    m = record["validation"]
    n_params = sum(p.numel() for p in net.parameters())
    return "\n".join([
        "---", "library_name: loomis", "license: mit",
        "tags: [head-pose-estimation, loomis]", "---", "",
        "# Loomis pose net: head yaw, pitch and roll from a photo", "",
        "A small CNN (" + f"{n_params / 1e6:.2f} M parameters, input "
        f"{net.config.image_size}², channels {list(net.config.channels)}) trained on the "
        "Loomis project's synthetic head renders, each with its exact pose. It gives "
        "`loomis.construction_fit.fit_construction` its starting pose (`pose_hint`), so the "
        "fit of the 3D construction to a pix2pix drawing starts in the right basin.", "",
        "```python", "from loomis.train.pose_net import PoseNet",
        f'net = PoseNet.from_pretrained("{HUB_ORG}/{POSE_NET}")  # or the bundled folder',
        "yaw, pitch, roll = net.predict(photo)  # degrees, the photo and its mirror averaged",
        "```", "",
        "## Evaluation", "",
        f"Mean absolute error on {record['validation_n']} validation renders "
        "(the split training never sees), photo and mirror averaged:", "",
        "| yaw | pitch | roll |", "|---|---|---|",
        f"| {m['yaw_mae']:.2f}° | {m['pitch_mae']:.2f}° | {m['roll_mae']:.2f}° |", "",
        "Trained on synthetic renders only: on real photos it is a starting point for the "
        "construction fit, not a measured pose (the geometric engine's landmark pose is "
        "that, see `loomis.pose`).", "",
        "## Training", "",
        f"{record['train_n']} photos, {record['epochs']} epochs, "
        f"{record['minutes']:.1f} minutes on {record['hardware']}:", "",
        "```", *record["data_commands"], *record["commands"], "```", ""])


def export(net: PoseNet, folder: Path, record: dict) -> Path:
    """A complete Hub model folder (float16 weights), checked by loading it back strictly."""
    folder.mkdir(parents=True, exist_ok=True)
    copy.deepcopy(net).half().save_pretrained(folder)   # half the bytes; loads as float32
    (folder / "training.json").write_text(json.dumps(record, indent=2))
    back = PoseNet.from_pretrained(str(folder))
    (folder / "README.md").write_text(model_card(back, record))
    return folder


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", nargs="+", required=True, help="synthetic dataset folder(s)")
    p.add_argument("--val-data", help="folder whose val split validates (default: first --data)")
    p.add_argument("--out", required=True, help="run folder (state, log, pose_net/)")
    p.add_argument("--image-size", type=int, default=PoseNetConfig.image_size)
    p.add_argument("--channels", type=int, nargs="+", default=list(PoseNetConfig.channels))
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-minutes", type=float, default=None,
                   help="stop (state saved) after this long; --resume goes on")
    p.add_argument("--resume", action="store_true", help="continue from OUT/state.safetensors")
    p.add_argument("--push-to-hub", metavar="ORG/NAME", help="upload OUT/pose_net at the end")
    args = p.parse_args(argv)
    if args.epochs < 1 or args.batch_size < 1 or not args.lr > 0:
        p.error("--epochs, --batch-size and --lr must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if world > 1:
        torch.distributed.init_process_group("gloo")
    rc = train(args, argv, world, rank)
    if world > 1 and rc == 0:
        leave_process_group()
    return rc


def train(args: argparse.Namespace, argv: list[str] | None, world: int, rank: int) -> int:
    """Train (or resume) and export; the exit status. Returns before the process group is
    left, so that the DistributedDataParallel wrapper made here is gone by then."""
    out = Path(args.out)
    try:
        check_out_dir(out)
        out.mkdir(parents=True, exist_ok=True)
    except (UsageError, OSError) as exc:
        msg = str(exc) if isinstance(exc, UsageError) else f"--out {out}: cannot make it ({exc})"
        print(f"error: {msg}", file=sys.stderr)
        return 2
    if rank == 0:   # what a kill during a save left (as large as the state)
        for path, size in remove_stale_temporaries(out, re.escape(STATE_FILE)):
            print(f"removed {path.name} ({size / 1e6:.1f} MB), left by an interrupted save")
    torch.manual_seed(args.seed)
    try:
        net = PoseNet(args.image_size, tuple(args.channels))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        xt, yt = load_split(args.data, "train", net)
        xv, yv = load_split([args.val_data or args.data[0]], "val", net)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    model = torch.nn.parallel.DistributedDataParallel(net) if world > 1 else net
    opt = torch.optim.AdamW(net.parameters(), args.lr, weight_decay=args.weight_decay)
    command = "python train/pose_net.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    start, log, minutes_before, commands = 0, [], 0.0, [command]
    if args.resume and (out / STATE_FILE).is_file():
        state = load_state(out / STATE_FILE)
        net.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        start, log, minutes_before = state["epoch"], state["log"], state["minutes"]
        commands = state["commands"] + commands
        if rank == 0:
            print(f"resumed after epoch {start}")
    steps_per_epoch = len(xt) // (args.batch_size * world)
    total = steps_per_epoch * args.epochs
    t0 = time.time()
    for epoch in range(start, args.epochs):
        g = torch.Generator().manual_seed(args.seed * 100_003 + epoch)
        order = torch.randperm(len(xt), generator=g)
        for k in range(steps_per_epoch):
            lo = (k * world + rank) * args.batch_size
            idx = order[lo:lo + args.batch_size]
            x, y = augment(xt[idx], yt[idx], g)
            step = epoch * steps_per_epoch + k
            for group in opt.param_groups:
                group["lr"] = args.lr * 0.5 * (1 + math.cos(math.pi * step / total))
            loss = F.smooth_l1_loss(model(x) / net.scale, y / net.scale, beta=0.02)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if world > 1:   # BatchNorm statistics differ per process: average them
            for buf in net.buffers():
                if buf.dtype.is_floating_point:
                    torch.distributed.all_reduce(buf)
                    buf /= world
        metrics = evaluate(net, xv, yv)
        log.append({"epoch": epoch + 1, "loss": loss.item(), **metrics})
        if rank == 0:
            save_state(out / STATE_FILE, {"model": net.state_dict(), "optimizer": opt.state_dict(),
                                          "epoch": epoch + 1, "log": log, "commands": commands,
                                          "minutes": minutes_before + (time.time() - t0) / 60})
            print(f"epoch {epoch + 1}/{args.epochs} loss {loss.item():.4f} val MAE "
                  + " / ".join(f"{metrics[k]:.2f}" for k in HEADER.split(",")), flush=True)
        out_of_time = torch.tensor(float(args.max_minutes is not None
                                         and time.time() - t0 >= args.max_minutes * 60))
        if world > 1:   # rank 0's clock decides for all, so no process waits alone
            torch.distributed.broadcast(out_of_time, 0)
        if out_of_time.item() and epoch + 1 < args.epochs:
            if rank == 0:
                print(f"stopped after epoch {epoch + 1} (--max-minutes); --resume goes on")
            return 0
    digests = [weights_digest(net)]
    if world > 1:   # every process must end with the same weights; the record shows it
        digests = [None] * world
        torch.distributed.all_gather_object(digests, weights_digest(net))
    if rank == 0:
        import platform
        data_commands = [dataset_command(f) for f in args.data
                         if (Path(f) / "dataset.json").is_file()]
        record = {"command": commands[0], "commands": commands, "data_commands": data_commands,
                  "epochs": args.epochs, "train_n": len(xt), "validation_n": len(xv),
                  "validation": log[-1], "log": log, "rank_digests": digests,
                  "minutes": minutes_before + (time.time() - t0) / 60,
                  "hardware": f"{platform.processor() or platform.machine()}, "
                              f"{torch.get_num_threads()} thread(s), {world} process(es)"}
        folder = export(net, out / "pose_net", record)
        print(f"wrote {folder}")
        if args.push_to_hub:
            from huggingface_hub import HfApi
            api = HfApi(token=os.environ.get("HF_TOKEN"))
            api.create_repo(args.push_to_hub, exist_ok=True)
            api.upload_folder(folder_path=str(folder), repo_id=args.push_to_hub,
                              commit_message="Upload Loomis pose net")
            print(f"pushed to {args.push_to_hub}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
