"""Synthetic pairs in memory and on disk: ranges, determinism, layout, resuming, bad input."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from loomis.camera import HeadPose
from loomis.imageio import load_image
from loomis.train.render import Background, HeadIdentity, Lighting
from train import make_dataset
from loomis.train.synthetic import (POSE_RANGE, PoseRangeError, SceneParams, SyntheticPairs,
                                    render_pair, scene)

ROOT = Path(__file__).resolve().parents[1]


def test_sampled_scenes_stay_in_the_supported_pose_range():
    for i in range(300):
        pose = scene(5, i).pose
        for name, value in (("yaw", pose.yaw), ("pitch", pose.pitch), ("roll", pose.roll)):
            lo, hi = POSE_RANGE[name]
            assert lo <= value <= hi
    yaws = [scene(5, i).pose.yaw for i in range(300)]
    assert min(yaws) < -60 and max(yaws) > 60                     # profiles are covered


@pytest.mark.parametrize("angles,word", [((120, 0, 0), "yaw"), ((0, -50, 0), "pitch"),
                                         ((0, 0, 31), "roll"), ((float("nan"), 0, 0), "yaw")])
def test_poses_outside_the_range_are_refused(angles, word):
    with pytest.raises(PoseRangeError, match=word):
        SceneParams(HeadPose(*angles), HeadIdentity(), Lighting(), Background())


def test_a_pair_is_a_photo_and_its_drawing_on_white_paper():
    photo, drawing = render_pair(scene(0, 3), 96)
    assert photo.size == drawing.size == (96, 96)
    d = np.asarray(drawing.convert("L"))
    assert (d == 255).mean() > 0.7 and (d < 150).mean() > 0.01    # paper with pencil lines
    assert np.asarray(photo).std() > 10


def test_same_seed_same_bytes_different_seed_different_heads():
    a = SyntheticPairs(4, size=64, seed=11)
    b = SyntheticPairs(4, size=64, seed=11)
    c = SyntheticPairs(4, size=64, seed=12)
    for i in (0, 3):                                               # any order, any instance
        assert torch.equal(a[i][0], b[i][0]) and torch.equal(a[i][1], b[i][1])
    assert not torch.equal(a[0][0], c[0][0])
    assert a.params(0).identity != c.params(0).identity
    assert a.params(0).identity != a.params(1).identity


def test_a_new_appearance_keeps_the_drawing_and_changes_the_photo():
    params = scene(0, 3)
    other = params.with_new_appearance(np.random.default_rng(1))
    photo, drawing = render_pair(params, 96)
    photo2, drawing2 = render_pair(other, 96)
    assert drawing.tobytes() == drawing2.tobytes()              # the same construction
    diff = np.abs(np.asarray(photo, float) - np.asarray(photo2, float)).mean()
    assert diff > 10, f"the photos differ by only {diff:.1f} grey levels on average"
    assert other.pose == params.pose and other.identity.proportions == params.identity.proportions


def test_dataset_items_are_tensors_in_minus_one_to_one():
    ds = SyntheticPairs(2, size=48, seed=0)
    a, b = ds[1]
    assert a.shape == b.shape == (3, 48, 48) and a.dtype == torch.float32
    assert a.min() >= -1 and a.max() <= 1 and b.max() == 1.0      # white paper is +1
    swapped = SyntheticPairs(2, size=48, seed=0, direction="BtoA")[1]
    assert torch.equal(swapped[0], b) and torch.equal(swapped[1], a)
    assert len(ds) == 2
    with pytest.raises(IndexError):
        ds[2]


@pytest.mark.parametrize("size", [31, 2049, 64.5])
def test_bad_sizes_are_refused(size):
    with pytest.raises(ValueError, match="size"):
        SyntheticPairs(2, size=size)


# ---------------------------------------------------------------------------- the CLI

def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_cli_writes_the_documented_layout_and_the_images_load(tmp_path, capsys):
    out = tmp_path / "ds"
    assert make_dataset.main(["synthetic", "--out", str(out), "--n", "6", "--size", "48",
                              "--seed", "3", "--val-frac", "0.2", "--test-frac", "0.2"]) == 0
    counts = {d: len(list((out / d).glob("*.png"))) for d in
              ["paired/train", "paired/val", "paired/test", "unpaired/trainA", "unpaired/trainB",
               "unpaired/testA", "unpaired/testB"]}
    assert counts == {"paired/train": 4, "paired/val": 1, "paired/test": 1, "unpaired/trainA": 4,
                      "unpaired/trainB": 4, "unpaired/testA": 1, "unpaired/testB": 1}
    pair = load_image(out / "paired/train/000000.png")
    assert pair.size == (96, 48)                                   # photo | drawing
    left, right = np.asarray(pair)[:, :48], np.asarray(pair)[:, 48:]
    assert (right == 255).mean() > 0.6 and (left == 255).mean() < 0.2
    for p in (out / "unpaired").rglob("*.png"):
        assert load_image(p).size == (48, 48)
    lines = [json.loads(s) for s in (out / "metadata.jsonl").read_text().splitlines()]
    assert len(lines) == sum(counts.values())
    assert {r["file"] for r in lines} == {str(p.relative_to(out)) for p in out.rglob("*.png")}
    rec = next(r for r in lines if r["file"] == "paired/val/000004.png")
    assert rec["split"] == "val" and set(rec["pose"]) >= {"yaw", "pitch", "roll"}
    assert "skin" in rec["identity"] and "azimuth" in rec["lighting"]
    # Unpaired photos and drawings come from different heads.
    a = next(r for r in lines if r["file"] == "unpaired/trainA/000000.png")
    b = next(r for r in lines if r["file"] == "unpaired/trainB/000000.png")
    assert a["identity"] != b["identity"] and a["identity"] != rec["identity"]
    assert "4 train, 1 val, 1 test" in capsys.readouterr().out


def test_cli_is_deterministic_and_resumes_an_interrupted_run(tmp_path):
    args = ["synthetic", "--n", "4", "--size", "40", "--seed", "9", "--test-frac", "0.25",
            "--val-frac", "0"]
    first, second = tmp_path / "a", tmp_path / "b"
    make_dataset.main(args + ["--out", str(first)])
    make_dataset.main(args + ["--out", str(second), "--workers", "2"])
    reference = _files(first)
    assert reference == _files(second)                             # same seed, same bytes
    # An interrupted run: one image missing, a half-written temporary file left behind.
    (first / "paired/train/000001.png").unlink()
    (first / "unpaired/trainB/.000002.png.tmp-123").write_bytes(b"\x89PNG half")
    stamp = (first / "paired/train/000000.png").stat().st_mtime_ns
    make_dataset.main(args + ["--out", str(first)])
    assert _files(first) == reference                              # finished, temp gone
    assert (first / "paired/train/000000.png").stat().st_mtime_ns == stamp   # not redone


def test_cli_bad_input_gives_clear_messages_and_keeps_files(tmp_path, capsys):
    base = ["synthetic", "--n", "2", "--size", "40"]
    for extra, words in [(["--size", "16"], "between 32 and 2048"),
                         (["--size", "5000"], "between 32 and 2048"),
                         (["--n", "0"], "at least 1"),
                         (["--val-frac", "0.6", "--test-frac", "0.5"], "no training pairs")]:
        with pytest.raises(SystemExit) as exc:
            make_dataset.main(base + ["--out", str(tmp_path / "x")] + extra)
        assert exc.value.code == 2 and words in capsys.readouterr().err
    afile = tmp_path / "a_file"
    afile.write_text("keep me")
    with pytest.raises(SystemExit):
        make_dataset.main(base + ["--out", str(afile)])
    assert "is a file" in capsys.readouterr().err and afile.read_text() == "keep me"
    out = tmp_path / "ds"
    make_dataset.main(base + ["--out", str(out), "--val-frac", "0", "--test-frac", "0"])
    before = _files(out)
    with pytest.raises(SystemExit):                                # other settings, same folder
        make_dataset.main(["synthetic", "--n", "3", "--size", "40", "--out", str(out)])
    assert "other settings" in capsys.readouterr().err and _files(out) == before


def test_cli_disk_full_stops_with_a_message_and_keeps_finished_files(tmp_path):
    """A real full disk: a 160 KB tmpfs (needs root; skipped where mounting is not allowed)."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=160k", "tmpfs",
                                            str(mnt)], capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        proc = subprocess.run([sys.executable, str(ROOT / "train/make_dataset.py"), "synthetic",
                               "--out", str(mnt / "ds"), "--n", "40", "--size", "96"],
                              capture_output=True, text=True, cwd=ROOT)
        assert proc.returncode == 1
        assert "no space left" in proc.stderr and "run the same command again" in proc.stderr
        written = list((mnt / "ds").rglob("*.png"))
        assert written and not list((mnt / "ds").rglob(".*tmp*"))
        for p in written:                                          # every kept file is whole
            Image.open(p).load()
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)
