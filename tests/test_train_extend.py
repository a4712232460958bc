"""Training runs a user can extend and trust with a folder: --epochs as the total, a
finished run trained longer with --resume, timed checkpoints, stale temporaries cleaned,
bad output folders refused with an ``error:`` line, files with the mode ``open`` gives.

The fast tests stop before any training; the runs (tiny, as in test_train.py) are slow.
"""
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from loomis.train.checkpoint import load_state
from loomis.train.loop import UsageError, build_parser, main as loop_main, resolve_settings

ROOT = Path(__file__).resolve().parents[1]
P2P = ["--arch", "unet_32", "--image-size", "32", "--ngf", "8", "--ndf", "8", "--val-n", "2",
       "--seed", "3"]


def _split(*argv: str, kind: str = "pix2pix") -> tuple[int, int]:
    args = build_parser(kind).parse_args(["--out", "x", "--synthetic", *argv])
    s = resolve_settings(kind, args, None)
    return s["n_epochs"], s["n_epochs_decay"]


def test_epochs_is_the_total_decay_included():
    assert _split() == (100, 100)                              # the papers' 200
    assert _split("--epochs", "3") == (2, 1)                   # 3 in all, the last half decay
    assert _split("--epochs", "1") == (1, 0)
    assert _split("--preset", "cpu-128", "--epochs", "6") == (3, 3)
    assert _split("--preset", "cpu-256") == (3, 3)             # a preset keeps its meaning
    assert _split("--epochs", "3", "--epochs-decay", "3") == (0, 3)
    assert _split("--epochs-decay", "50") == (150, 50)         # alone: the total stays
    assert _split("--epochs", "4", "--epochs-decay", "0", kind="cyclegan") == (4, 0)
    # the old reading (1 at the initial lr + 2 decaying) is refused, with its new spelling
    with pytest.raises(UsageError, match="--epochs 3 --epochs-decay 2"):
        _split("--epochs", "1", "--epochs-decay", "2")
    with pytest.raises(UsageError, match="--epochs must be >= 0"):
        _split("--epochs", "-1")
    help_text = " ".join(build_parser("pix2pix").format_help().split())
    assert "epochs in total, decay included (default: paper 200, cpu-128 4, cpu-256 6)" in help_text
    assert "DELETE the trained run" in help_text


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o002])
def test_atomic_write_gives_the_mode_a_plain_open_gives(tmp_path, umask):
    code = ("import sys; from pathlib import Path; from loomis.files import atomic_write; "
            "d = Path(sys.argv[1]); atomic_write(d / 'atomic.txt', "
            "lambda tmp: Path(tmp).write_text('x')); (d / 'plain.txt').write_text('x')")
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True, umask=umask,
                   cwd=ROOT)
    assert _mode(tmp_path / "atomic.txt") == _mode(tmp_path / "plain.txt") == 0o666 & ~umask


def _refused(capsys, out, *extra: str) -> str:
    assert loop_main("pix2pix", ["--synthetic", "--out", str(out), *P2P, *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
    return err


def test_bad_output_folders_give_an_error_line_and_exit_2(tmp_path, capsys):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine")
    assert "is a file, not a folder" in _refused(capsys, a_file)
    assert "is a file, not a folder" in _refused(capsys, a_file, "--resume")
    assert f"{a_file} is a file, so no folder can be made" in _refused(capsys, a_file / "run" / "x")
    link = tmp_path / "gone"
    link.symlink_to(tmp_path / "nowhere")
    assert "link to nothing" in _refused(capsys, link)
    assert loop_main("pix2pix", ["--synthetic", "--out", str(tmp_path / "r"), *P2P,
                                 "--save-minutes", "-1"]) == 2
    assert "--save-minutes must be >= 0" in capsys.readouterr().err
    assert a_file.read_text() == "mine" and not (tmp_path / "r").exists()
    # the pose net's script says so too
    res = subprocess.run([sys.executable, str(ROOT / "train" / "pose_net.py"), "--data",
                          str(tmp_path), "--out", str(a_file)], capture_output=True, text=True,
                         env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=120)
    assert res.returncode == 2 and res.stderr.startswith("error: ") and "is a file" in res.stderr


def test_a_read_only_output_folder_gives_an_error_line(tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        if os.access(locked, os.W_OK):   # root (test_bad_output_folders covers it there)
            pytest.skip("this user writes into read-only folders (root)")
        assert "cannot write to it" in _refused(capsys, locked)
        assert "where it would be made" in _refused(capsys, locked / "run")
    finally:
        locked.chmod(0o755)
    assert not (locked / "run").exists()


# ------------------------------------------------------------------------------ runs


def _run(*args, check_rc: int | None = 0) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    res = subprocess.run([sys.executable, str(ROOT / "train" / "pix2pix.py"), *map(str, args)],
                         capture_output=True, text=True, env=env, timeout=240)
    if check_rc is not None:
        assert res.returncode == check_rc, res.stdout[-2000:] + res.stderr[-3000:]
    return res


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """DIR/paired/train (4 pairs) and val (2): photo | drawing side by side."""
    root = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    for split, n in (("train", 4), ("val", 2)):
        d = root / "paired" / split
        d.mkdir(parents=True)
        for i in range(n):
            photo = rng.integers(60, 200, (36, 36, 3), dtype=np.uint8)
            drawing = np.full((36, 36, 3), 255, np.uint8)
            drawing[int(rng.integers(4, 32)), 2:-2] = 0
            Image.fromarray(np.concatenate([photo, drawing], axis=1)).save(d / f"{i}.png")
    return root


def _kill_during_save(path: Path) -> Path:
    """Start an atomic_write of ``path`` in a process killed halfway: the temporary it
    leaves, as a kill during a checkpoint save does."""
    code = ("import os, signal, sys; from loomis.files import atomic_write\n"
            "def write(tmp):\n"
            "    open(tmp, 'wb').write(b'half a checkpoint' * 1000)\n"
            "    os.kill(os.getpid(), signal.SIGKILL)\n"
            "atomic_write(sys.argv[1], write)\n")
    res = subprocess.run([sys.executable, "-c", code, str(path)], cwd=ROOT)
    assert res.returncode == -9
    (tmp,) = path.parent.glob(f".{path.name}.*.tmp")
    return tmp


@pytest.mark.slow
def test_a_finished_run_trains_longer_as_if_asked_for_more_from_the_start(data, tmp_path):
    straight, run = tmp_path / "straight", tmp_path / "run"
    _run("--data", data, *P2P, "--epochs", "3", "--out", straight)
    _run("--data", data, *P2P, "--epochs", "1", "--out", run)
    assert len((run / "losses.csv").read_text().splitlines()) == 1 + 4   # one epoch, done

    # starting again on it is refused, and the advice keeps the trained run
    err = _run("--data", data, *P2P, "--epochs", "3", "--out", run, check_rc=2).stderr
    assert "--resume" in err and "--overwrite deletes the trained run" in err
    err = _run("--out", run, "--resume", "--epochs", "3", "--ngf", "16", check_rc=2).stderr
    assert "Only --epochs and --epochs-decay may change" in err
    err = _run("--out", run, "--resume", "--epochs", "0", check_rc=2).stderr
    assert "give --epochs 1 or more" in err

    # a kill during a save left a temporary; files that are not one stay
    stale = _kill_during_save(run / "last.safetensors")
    keep = [run / ".last.safetensors.tmp", run / "last.safetensors.bak", run / "notes.tmp",
            run / ".mine.abcdefgh.tmp", run / "samples" / ".epoch_001.png.bak"]
    for k in keep:
        k.write_text("mine")

    # 3 epochs in all: stopped inside the second, then resumed with no flags
    res = _run("--out", run, "--resume", "--epochs", "3", "--max-steps", "6")
    assert not stale.exists() and all(k.read_text() == "mine" for k in keep)
    assert f"removed 1 temporary file(s) an interrupted save left (0.0 MB): {stale.name}" \
        in res.stdout
    assert ("lr schedule changed at epoch 2 (step 4): 1 epoch (1 at the initial lr + 0 "
            "decaying) → 3 epochs (2 at the initial lr + 1 decaying); lr 0 → 0.0002"
            in res.stdout)
    _run("--out", run, "--resume")

    # the same losses, bit for bit, as a run asked for 3 epochs from the start: its first
    # epoch trained at the same lr, and the new schedule goes on from there
    assert (run / "losses.csv").read_text() == (straight / "losses.csv").read_text()
    rows = json.loads((run / "metrics.json").read_text())
    ref = json.loads((straight / "metrics.json").read_text())
    assert [r["lr"] for r in rows] == [0.0] + [r["lr"] for r in ref[1:]]
    record = json.loads((run / "run.json").read_text())
    assert (record["settings"]["n_epochs"], record["settings"]["n_epochs_decay"]) == (2, 1)
    (change,) = record["schedule_changes"]
    assert change["from"] == {"n_epochs": 1, "n_epochs_decay": 0}
    assert change["to"] == {"n_epochs": 2, "n_epochs_decay": 1}
    assert (change["epoch"], change["step"], change["lr_before"], change["lr_after"]) == \
        (1, 4, 0.0, 2e-4)
    assert "--resume --epochs 3" in change["command"]
    assert load_state(run / "last.safetensors")["run"]["epoch"] == 3

    # every file of the run is as readable as one written with open()
    probe = tmp_path / "probe.txt"
    probe.write_text("x")
    for f in ("run.json", "last.safetensors", "losses.csv", "samples/epoch_003.png",
              "generator/model.onnx", "generator/model.safetensors"):
        assert _mode(run / f) == _mode(probe), f
