"""train/pix2pix.py, train/cyclegan.py, train/evaluate.py through their real command lines.

Tiny everything: unet_32 / resnet_6blocks at ngf 8, 32-px crops, a handful of images
written here. Subprocesses are real runs (signals, torchrun, the offline Hub cache).
"""
import json
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

pytestmark = pytest.mark.slow      # python -m pytest -m slow (.ci/run runs both)

ROOT = Path(__file__).resolve().parents[1]

from loomis.train.hub import check_folder
from loomis.train.loop import main as loop_main

from loomis.train.checkpoint import load_state  # noqa: E402
from loomis.train.nets import Generator  # noqa: E402

TINY = ["--image-size", "32", "--ngf", "8", "--ndf", "8", "--val-n", "2", "--seed", "3"]
P2P = ["--arch", "unet_32", *TINY]
CYC = ["--arch", "resnet_6blocks", *TINY]


def _drawing_pair(rng, size=36):
    photo = rng.integers(60, 200, (size, size, 3), dtype=np.uint8)
    drawing = np.full((size, size, 3), 255, np.uint8)
    r = int(rng.integers(4, size - 4))
    drawing[r, 2:-2] = 0
    drawing[2:-2, r] = 0
    return photo, drawing


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """DIR/paired/{train,val} (A|B side by side) and DIR/unpaired/{trainA,trainB,testA,testB}."""
    root = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    for split, n in (("train", 4), ("val", 2)):
        d = root / "paired" / split
        d.mkdir(parents=True)
        for i in range(n):
            a, b = _drawing_pair(rng)
            Image.fromarray(np.concatenate([a, b], axis=1)).save(d / f"{i:03d}.png")
    for split, n in (("train", 3), ("test", 2)):
        for side in "AB":
            d = root / "unpaired" / f"{split}{side}"
            d.mkdir(parents=True)
            for i in range(n):
                Image.fromarray(_drawing_pair(rng)[side == "B"]).save(d / f"{i}.png")
    return root


def _env(**extra) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1",
           "LOOMIS_CACHE": str(Path(extra.pop("cache", "/tmp")) / "loomis-cache")}
    env.update(extra)
    return env


def _run(script: str, *args, env=None, check_rc: int | None = 0) -> subprocess.CompletedProcess:
    res = subprocess.run([sys.executable, str(ROOT / "train" / f"{script}.py"), *map(str, args)],
                         capture_output=True, text=True, env=env or _env(), timeout=240)
    if check_rc is not None:
        assert res.returncode == check_rc, res.stdout[-2000:] + res.stderr[-3000:]
    return res


def _losses(run: Path) -> list[str]:
    return (run / "losses.csv").read_text().splitlines()


def test_pix2pix_run_writes_everything_and_a_failed_push_keeps_the_run(data, tmp_path):
    run = tmp_path / "p2p"
    res = _run("pix2pix", "--data", data, "--out", run, *P2P, "--epochs", "2",
               "--epochs-decay", "1", "--push-to-hub", "loomis-test/tiny",
               env=_env(HF_HUB_OFFLINE="1", HF_TOKEN="hf_fake", cache=tmp_path), check_rc=1)
    for f in ("run.json", "last.safetensors", "best.safetensors", "losses.csv", "loss_curve.png",
              "metrics.csv", "metrics.json", "index.html", "samples/epoch_001.png",
              "samples/epoch_002.png"):
        assert (run / f).is_file(), f
    assert len(_losses(run)) == 1 + 8  # header + 2 epochs of 4 steps at batch 1
    rows = json.loads((run / "metrics.json").read_text())
    assert [r["epoch"] for r in rows] == [1, 2]
    assert {"val_loss", "precision", "recall", "f1", "l1"} <= set(rows[-1])  # target: drawing
    assert "samples/epoch_002.png" in (run / "index.html").read_text()
    grid = Image.open(run / "samples" / "epoch_002.png")
    assert grid.size == (3 * 32, 2 * 32)  # input | output | target, one row per val image
    ck = load_state(run / "last.safetensors")
    assert ck["run"]["epoch"] == 2 and ck["run"]["global_step"] == 8
    # the Hub folder: complete, loads back strictly, card with this run's numbers
    gen = check_folder(run / "generator")
    assert gen.config.arch == "unet_32" and gen.config.ngf == 8
    card = (run / "generator" / "README.md").read_text()
    assert "## This training run" in card and "f1" in card and "python train/pix2pix.py" in card
    # the push failed (offline) but said how to retry, and the run is intact
    assert "python train/push.py" in res.stderr and "loomis-test/tiny" in res.stderr
    assert (run / "generator" / "model.safetensors").is_file()
    # evaluate.py on that model: a table and JSON of line metrics
    out_json = tmp_path / "eval.json"
    ev = subprocess.run([sys.executable, str(ROOT / "train" / "evaluate.py"), "--model",
                         str(run / "generator"), "--data", str(data), "--split", "val",
                         "--json", str(out_json)], capture_output=True, text=True,
                        env=_env(cache=tmp_path), timeout=120)
    assert ev.returncode == 0, ev.stderr
    result = json.loads(out_json.read_text())
    assert result["n"] == 2 and set(result["metrics"]) == {"precision", "recall", "f1"}
    assert "| f1 |" in ev.stdout


def test_cyclegan_run_and_float16_export(data, tmp_path):
    run = tmp_path / "cyc"
    _run("cyclegan", "--data", data / "unpaired", "--out", run, *CYC, "--epochs", "1",
         "--epochs-decay", "0", "--pool-size", "2", "--save-dtype", "float16")
    assert len(_losses(run)) == 1 + 3
    assert "idt_A" in _losses(run)[0]
    for name in ("generator_A", "generator_B"):
        gen = check_folder(run / name)
        assert gen.config.arch == "resnet_6blocks"
    from safetensors import safe_open
    with safe_open(str(run / "generator_A" / "model.safetensors"), "pt") as f:
        assert f.get_tensor(next(iter(f.keys()))).dtype == torch.float16
    assert json.loads((run / "metrics.json").read_text())[0]["val_loss"] > 0


def _wait_rows(proc, run: Path, n: int) -> None:
    t0 = time.time()
    while time.time() - t0 < 120:
        if (run / "losses.csv").is_file() and len(_losses(run)) >= n + 1:
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    raise AssertionError("run did not get going")


def test_kill_and_sigterm_then_resume_equal_an_uninterrupted_run(data, tmp_path):
    args = ["--data", data, *P2P, "--epochs", "4", "--epochs-decay", "2", "--max-steps", "14"]
    res = _run("pix2pix", *args, "--out", tmp_path / "ref")
    reference = _losses(tmp_path / "ref")
    assert len(reference) == 15
    if platform.libc_ver()[0] == "glibc":
        assert "(freed memory kept)" in res.stdout
    # the allocator setting is not maths: the same losses with glibc's own thresholds
    _run("pix2pix", *args, "--out", tmp_path / "plain", "--no-retain-freed-memory")
    assert _losses(tmp_path / "plain") == reference

    # SIGKILL mid-epoch: resume from the last checkpoint (saved every step)
    run = tmp_path / "killed"
    cmd = [sys.executable, str(ROOT / "train" / "pix2pix.py"), *map(str, args), "--out", str(run),
           "--save-every", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env())
    _wait_rows(proc, run, 3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    at_kill = load_state(run / "last.safetensors")["run"]["global_step"]
    # each step's log row is written just before its checkpoint: a kill between the two
    # leaves the checkpoint one step behind the rows seen, and resuming trims the extra row
    assert 2 <= at_kill < 14
    _run("pix2pix", "--out", run, "--resume", "--max-steps", "14")
    assert _losses(run) == reference  # bit for bit, mid-epoch included

    # no --save-every: the timed checkpoints (--save-minutes, 5 by default; here after
    # every step) keep a kill inside an epoch from losing it, and change nothing
    run = tmp_path / "timed"
    proc = subprocess.Popen(cmd[:-4] + ["--out", str(run), "--save-minutes", "1e-9"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env())
    _wait_rows(proc, run, 2)   # only a save inside the first epoch writes 2 rows
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert 1 <= load_state(run / "last.safetensors")["run"]["global_step"] < 14
    _run("pix2pix", "--out", run, "--resume", "--max-steps", "14")
    assert _losses(run) == reference

    # SIGTERM: saves first, exits cleanly, resumes exactly
    run = tmp_path / "termed"
    proc = subprocess.Popen(cmd[:-4] + ["--out", str(run)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=_env(), text=True)
    t0 = time.time()  # the first epoch's grid is written at step 4 of 14
    while not (run / "samples" / "epoch_001.png").exists() and time.time() - t0 < 120:
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-2000:]
    step = load_state(run / "last.safetensors")["run"]["global_step"]
    if step < 14:
        assert "SIGTERM: saved" in out + err
        assert len(_losses(run)) == step + 1  # the CSV was written with the checkpoint
    _run("pix2pix", "--out", run, "--resume", "--max-steps", "14")
    assert _losses(run) == reference


def test_torchrun_two_processes_end_with_identical_weights(data, tmp_path):
    run = tmp_path / "ddp"
    res = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
         "--master_port", "29517", str(ROOT / "train" / "pix2pix.py"), "--data", str(data),
         "--out", str(run), *P2P, "--epochs", "1", "--epochs-decay", "0",
         "--batch-size", "2"], capture_output=True, text=True, env=_env(cache=tmp_path),
        timeout=240)
    assert res.returncode == 0, res.stderr[-3000:]
    digests = json.loads((run / "ddp_check.json").read_text())["rank_digests"]
    assert len(digests) == 2 and digests[0] == digests[1]
    assert len(_losses(run)) == 1 + 1  # 4 items / 2 ranks / batch 2 = 1 step
    check_folder(run / "generator")


def test_torchrun_resume_restores_every_ranks_random_state(data, tmp_path):
    """Each rank draws its own dropout masks; a resumed DDP run must give each rank back its
    own generator state, or rank 1's masks (and so the averaged gradients) change."""
    def torchrun(run: Path, *args: str) -> None:
        res = subprocess.run(
            [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
             "--master_port", "29518", str(ROOT / "train" / "pix2pix.py"), "--out", str(run),
             *args], capture_output=True, text=True, env=_env(cache=tmp_path), timeout=240)
        assert res.returncode == 0, res.stderr[-3000:]

    # unet_64 has a dropout level (unet_32 has none); WGAN-GP draws interpolation weights
    flags = ["--data", str(data), *TINY, "--arch", "unet_64", "--image-size", "64",
             "--gan-mode", "wgangp", "--epochs", "3", "--epochs-decay", "0", "--batch-size", "2"]
    # a checkpoint after every step on rank 0's clock: every rank saves at the same step
    # (a rank left out would hang in the save's gather), and the saves change nothing
    torchrun(tmp_path / "straight", *flags, "--save-minutes", "1e-9")
    torchrun(tmp_path / "resumed", *flags, "--max-steps", "1")
    torchrun(tmp_path / "resumed", "--resume")
    assert len(_losses(tmp_path / "straight")) == 1 + 3
    assert _losses(tmp_path / "resumed") == _losses(tmp_path / "straight")


def _hub_cache(tmp_path: Path, repo: str, gen: Generator) -> Path:
    cache = tmp_path / "hub"
    commit = "0123456789abcdef0123456789abcdef01234567"
    model_dir = cache / f"models--{repo.replace('/', '--')}"
    snap = model_dir / "snapshots" / commit
    gen.save_pretrained(snap)
    (model_dir / "refs").mkdir(parents=True)
    (model_dir / "refs" / "main").write_text(commit)  # no trailing newline
    return cache


def test_init_from_offline_hub_cache_and_unknown_id(data, tmp_path):
    torch.manual_seed(0)
    init = Generator("unet_32", ngf=8, norm="batch", dropout=True, image_size=32)
    cache = _hub_cache(tmp_path, "loomis-art/tiny-init", init)
    env = _env(HF_HUB_CACHE=str(cache), HF_HUB_OFFLINE="1", cache=tmp_path)
    run = tmp_path / "ft"
    # no architecture flags: the Hub model's config.json decides; 0 steps exports it as is
    _run("pix2pix", "--data", data, "--out", run, "--init-from", "loomis-art/tiny-init",
         "--max-steps", "0", "--val-n", "2", env=env)
    got = Generator.from_pretrained(str(run / "generator"))
    assert got.config.arch == "unet_32" and got.config.ngf == 8
    for k, v in init.state_dict().items():
        assert torch.equal(got.state_dict()[k], v), k
    assert json.loads((run / "run.json").read_text())["init_from"] == "loomis-art/tiny-init"
    res = _run("pix2pix", "--data", data, "--out", tmp_path / "x", "--init-from",
               "loomis-art/does-not-exist", env=env, check_rc=2)
    assert "cannot load a generator" in res.stderr and "HF_HUB_OFFLINE" in res.stderr
    res = _run("pix2pix", "--data", data, "--out", tmp_path / "y", "--init-from",
               "loomis-art/tiny-init", "--ngf", "4", env=env, check_rc=2)
    assert "conflicts with --init-from" in res.stderr
    # a larger --ngf grows the U-Net, which still computes what the published one did
    _run("pix2pix", "--data", data, "--out", tmp_path / "wide", "--init-from",
         "loomis-art/tiny-init", "--ngf", "12", "--max-steps", "0", "--val-n", "2", env=env)
    wide = Generator.from_pretrained(str(tmp_path / "wide" / "generator"))
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert wide.config.ngf == 12 and torch.allclose(wide(x), init.eval()(x), atol=1e-5)
    res = _run("pix2pix", "--data", data, "--out", tmp_path / "z", "--init-from",
               "loomis-art/tiny-init", "--direction", "BtoA", env=env, check_rc=2)
    assert "direction" in res.stderr  # a photo → drawing model is not silently turned around

    # CycleGAN: a drawing → photo generator initialises G_B (drawing → photo), not G_A
    back = Generator("resnet_6blocks", ngf=8, norm="instance", dropout=False, image_size=32,
                     direction="BtoA")
    cache2 = _hub_cache(tmp_path / "c2", "loomis-art/tiny-d2p", back)
    cyc = tmp_path / "cyc_ft"
    _run("cyclegan", "--data", data / "unpaired", "--out", cyc, "--init-from",
         "loomis-art/tiny-d2p", "--max-steps", "0", "--val-n", "2",
         env=_env(HF_HUB_CACHE=str(cache2), HF_HUB_OFFLINE="1", cache=tmp_path))
    got_b = Generator.from_pretrained(str(cyc / "generator_B")).state_dict()
    got_a = Generator.from_pretrained(str(cyc / "generator_A")).state_dict()
    first = next(iter(back.state_dict()))
    assert all(torch.equal(got_b[k], v) for k, v in back.state_dict().items())
    assert not torch.equal(got_a[first], back.state_dict()[first])


def test_bad_input_gives_clear_messages_and_exit_code_2(data, tmp_path, capsys):
    empty = tmp_path / "empty"
    (empty / "train").mkdir(parents=True)
    assert loop_main("pix2pix", ["--data", str(empty), "--out", str(tmp_path / "r0"), *P2P]) == 2
    assert "no usable image pairs" in capsys.readouterr().err

    # non-images and corrupt images are skipped and counted; A/B of different sizes too
    mixed = tmp_path / "mixed" / "train"
    for side in "AB":
        (mixed / side).mkdir(parents=True)
    rng = np.random.default_rng(1)
    for i in range(2):
        a, b = _drawing_pair(rng)
        Image.fromarray(a).save(mixed / "A" / f"{i}.png")
        Image.fromarray(b).save(mixed / "B" / f"{i}.png")
    Image.new("RGB", (40, 36)).save(mixed / "A" / "odd.png")
    Image.new("RGB", (36, 36)).save(mixed / "B" / "odd.png")
    (mixed / "A" / "readme.txt").write_text("not an image")
    (mixed / "B" / "cut.png").write_bytes((mixed / "B" / "0.png").read_bytes()[:60])
    run = tmp_path / "r1"
    assert loop_main("pix2pix", ["--data", str(mixed.parent), "--out", str(run), *P2P,
                                 "--max-steps", "1"]) == 0
    out = capsys.readouterr().out
    assert "2 used" in out and "1 not images" in out and "unreadable" in out
    assert "A and B of different sizes" in out

    # an existing run is never overwritten by accident
    assert loop_main("pix2pix", ["--data", str(data), "--out", str(run), *P2P]) == 2
    assert "--resume" in capsys.readouterr().err
    # a run made by the other script, or with other settings, is refused on --resume
    assert loop_main("cyclegan", ["--out", str(run), "--resume"]) == 2
    assert "made by train/pix2pix.py" in capsys.readouterr().err
    assert loop_main("pix2pix", ["--out", str(run), "--resume", "--ngf", "16"]) == 2
    assert "other settings" in capsys.readouterr().err
    assert loop_main("pix2pix", ["--out", str(tmp_path / "none"), "--resume"]) == 2
    assert "holds no run" in capsys.readouterr().err


def test_best_epoch_export_and_time_budget(data, tmp_path):
    """--load-best-at-end ships the epoch with the best line F1 (not the lowest L1, which a
    blank page wins for drawings); --max-minutes stops cleanly, writes the Hub folder, and
    the run resumes."""
    run = tmp_path / "best"
    _run("pix2pix", "--data", data, "--out", run, *P2P, "--epochs", "3", "--epochs-decay", "0",
         "--l1-ink-weight", "4", "--load-best-at-end")
    rows = json.loads((run / "metrics.json").read_text())
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    minutes = [r["minutes"] for r in rows]
    assert minutes == sorted(minutes) and minutes[-1] > 0
    # the app's mirror pass picks; the single pass stays as f1 for the curves
    assert all(0 <= r["f1"] <= 1 and 0 <= r["f1_mirror"] <= 1 for r in rows)
    best = max(rows, key=lambda r: r["f1_mirror"])  # the first of equal scores wins
    record = json.loads((run / "generator" / "training.json").read_text())
    assert record["settings"]["l1_ink_weight"] == 4
    ck = load_state(run / ("best.safetensors" if best["epoch"] != 3 else "last.safetensors"))
    if best["epoch"] != 3:
        assert f"best validated epoch ({best['epoch']})" in record["weights_from"]
    else:
        assert record["weights_from"].startswith("the last step")
    shipped = Generator.from_pretrained(str(run / "generator")).state_dict()
    for k, v in ck["model"]["networks"]["G"].items():
        assert torch.equal(shipped[k], v), k
    card = (run / "generator" / "README.md").read_text()
    assert f"{best['f1']:.4f}" in card  # the card reports the shipped weights' validation
    # the metric-against-time curve of that run: a row per epoch, and the figure
    curve = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "training_curve.py"),
                            str(run), "--out", str(tmp_path / "curve.png"), "--goal", "f1=0.75"],
                           capture_output=True, text=True, env=_env(), timeout=120)
    assert curve.returncode == 0, curve.stderr
    assert curve.stdout.count("| best | ") == 3 and f"| {best['f1']:.3f} |" in curve.stdout
    assert Image.open(tmp_path / "curve.png").size[0] > 300
    # a run fine-tuned from that one continues its curve, minutes counting on
    ft = tmp_path / "ft"
    _run("pix2pix", "--data", data, "--out", ft, "--init-from", run / "generator", "--ndf", "8",
         "--val-n", "2", "--epochs", "1", "--epochs-decay", "0")
    curve = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "training_curve.py"),
                            str(ft)], capture_output=True, text=True, env=_env(), timeout=120)
    table = [line.split(" | ") for line in curve.stdout.splitlines() if line.startswith("| ft |")]
    assert [r[1] for r in table] == ["best:1", "best:2", "best:3", "ft:1"], curve.stdout
    # minutes count on from the epoch whose weights the fine-tune started from
    assert record["weights_epoch"] == best["epoch"]
    assert float(table[-1][2]) >= float(table[best["epoch"] - 1][2])

    budget = tmp_path / "budget"
    res = _run("pix2pix", "--data", data, "--out", budget, *P2P, "--epochs", "5",
               "--max-minutes", "0")
    assert len(_losses(budget)) == 1 + 1  # the deadline has passed after the first step
    assert (budget / "generator" / "model.safetensors").is_file()
    assert "No epoch finished" in (budget / "generator" / "README.md").read_text()
    assert "done: 1 steps" in res.stdout
    _run("pix2pix", "--out", budget, "--resume", "--max-minutes", "0")
    assert load_state(budget / "last.safetensors")["run"]["global_step"] == 2
    res = _run("pix2pix", "--data", data, "--out", tmp_path / "neg", *P2P, "--max-minutes", "-1",
               check_rc=2)
    assert "--max-minutes must be >= 0" in res.stderr and not (tmp_path / "neg").exists()


def test_package_a_run_generator_for_checkpoints(tmp_path):
    """ship_defaults.py package: half-precision weights that load back strictly, and the
    run's own training record (command included) carried into the shipped folder."""
    torch.manual_seed(0)
    src = tmp_path / "run" / "generator"
    gen = Generator("unet_32", ngf=8, image_size=32)
    gen.save_pretrained(src)
    record = {"command": "python train/pix2pix.py --data d --out run", "data": "4 pairs",
              "model": "pix2pix", "steps": 8}
    (src / "training.json").write_text(json.dumps(record))
    dst = tmp_path / "checkpoints" / "pix2pix-photo2drawing"
    res = subprocess.run([sys.executable, str(ROOT / "train" / "ship_defaults.py"), "package",
                          str(src), str(dst)], capture_output=True, text=True, env=_env())
    assert res.returncode == 0, res.stderr
    assert sorted(p.name for p in dst.iterdir()) == ["config.json", "model.safetensors",
                                                     "training.json"]
    assert json.loads((dst / "training.json").read_text()) == record
    back = Generator.from_pretrained(str(dst))  # strict load, as from the Hub
    for k, v in gen.state_dict().items():
        if v.is_floating_point():
            assert torch.allclose(back.state_dict()[k], v.half().float()), k
    (src / "training.json").unlink()  # without a record the command must be given
    res = subprocess.run([sys.executable, str(ROOT / "train" / "ship_defaults.py"), "package",
                          str(src), str(tmp_path / "other")], capture_output=True, text=True,
                         env=_env())
    assert res.returncode != 0 and "--command" in res.stderr
    assert not (tmp_path / "other").exists()  # refused before writing anything


def test_photo_epochs_are_picked_by_faces_read_back_then_ssim():
    """A photo epoch whose outputs read as faces beats a softer one with a higher SSIM
    (SSIM prefers a soft average, see benchmarks/quality.py); drawings still go by F1."""
    from loomis.train.loop import selection_score

    sharp = selection_score(0.4, {"l1": 0.2, "ssim": 0.55, "faces": 0.25})
    soft = selection_score(0.3, {"l1": 0.15, "ssim": 0.70, "faces": 0.0})
    soft_better_ssim = selection_score(0.3, {"l1": 0.15, "ssim": 0.71, "faces": 0.0})
    assert sharp > soft_better_ssim > soft
    assert selection_score(0.3, {"f1": 0.5}) > selection_score(0.1, {"f1": 0.4})
    # drawings: the mirror pass the app ships decides over the single pass
    assert (selection_score(0.1, {"f1": 0.4, "f1_mirror": 0.6})
            > selection_score(0.1, {"f1": 0.5, "f1_mirror": 0.55}))
    assert selection_score(0.3, {"ssim": 0.6}) == 0.6           # no read-back measured


def test_validation_reads_made_photos_back_as_faces(data, tmp_path):
    from loomis.train.loop import reads_as_face, validate
    from loomis.train.models import Pix2Pix, Pix2PixConfig
    from loomis.pose import PoseEstimator
    from loomis.train.synthetic import SyntheticPairs

    reader = PoseEstimator()
    val = SyntheticPairs(2, size=128, seed=4)                # (photo, drawing) tensors
    photo = val[1][0]
    assert abs(val.params(1).pose.yaw) < 20                  # a near-frontal head,
    assert reads_as_face(reader, photo)                      # read at 256² like the benchmark
    assert not reads_as_face(reader, torch.zeros_like(photo))  # a flat grey page
    torch.manual_seed(0)
    model = Pix2Pix(Pix2PixConfig(arch="unet_32", ngf=8, ndf=8, image_size=128,
                                  direction="BtoA"), device="cpu")
    _, mets, _ = validate("pix2pix", model, val, True, reader=reader)
    assert mets["faces"] == 0.0 and "ssim" in mets            # untrained: no face read back
    _, mets, _ = validate("pix2pix", model, val, True)
    assert "faces" not in mets
    # a drawing → photo run logs the read-back per epoch; a photo → drawing run does not
    run = tmp_path / "d2p"
    _run("pix2pix", "--data", data, "--out", run, *P2P, "--direction", "BtoA",
         "--epochs", "1", "--epochs-decay", "0", "--load-best-at-end")
    rows = json.loads((run / "metrics.json").read_text())
    assert 0.0 <= rows[0]["faces"] <= 1.0 and "faces" in (run / "metrics.csv").read_text()
