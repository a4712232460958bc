"""The pose net (loomis/train/pose_net.py), its training script, and the fit started from it."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import ImageOps

from loomis.train.checkpoint import load_state
from loomis.construction_fit import FitConfig, fit_construction
from loomis.train.nets import CheckpointError
from loomis.train.pose_net import MIRROR_SIGNS, PoseNet, PoseNetConfig
from loomis.train.synthetic import render_drawing, render_photo, scene

pytestmark = pytest.mark.slow      # python -m pytest -m slow (.ci/run runs both)

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--image-size", "32", "--channels", "4", "8", "--batch-size", "4", "--seed", "5"]


def _tiny_net(seed: int = 0) -> PoseNet:
    torch.manual_seed(seed)
    net = PoseNet(32, (4, 8))
    with torch.no_grad():   # BatchNorm statistics that are not the identity
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return net.eval()


def test_config_errors_say_what_is_wrong():
    with pytest.raises(ValueError, match="multiple of 64"):
        PoseNetConfig(image_size=100)
    with pytest.raises(ValueError, match="three positive"):
        PoseNetConfig(scale=(90.0, 40.0))
    with pytest.raises(ValueError, match=r"\(N, 3, 32, 32\)"):
        _tiny_net()(torch.zeros(1, 3, 64, 64))


def test_mirrored_photo_reads_as_the_mirrored_pose():
    """predict averages a photo with its mirror image, so a mirrored photo gives exactly
    (-yaw, pitch, -roll): left and right turns are treated alike by construction."""
    net = _tiny_net()
    photo = render_photo(scene(3, 0), 64)
    a = np.array(net.predict(photo))
    b = np.array(net.predict(ImageOps.mirror(photo)))
    np.testing.assert_allclose(b, a * np.array(MIRROR_SIGNS), atol=1e-4)
    assert net.predict(photo, mirror=False) != net.predict(ImageOps.mirror(photo), mirror=False)


def test_saved_folder_loads_strictly_and_refuses_another_architecture(tmp_path):
    net = _tiny_net()
    net.save_pretrained(tmp_path / "pn")
    back = PoseNet.from_pretrained(str(tmp_path / "pn"))
    assert back.config == net.config and not back.training
    photo = render_photo(scene(3, 1), 48)
    assert back.predict(photo) == pytest.approx(net.predict(photo), abs=1e-5)
    other = PoseNet(32, (4, 16))
    other.save_pretrained(tmp_path / "other")
    (tmp_path / "other" / "config.json").write_text((tmp_path / "pn" / "config.json").read_text())
    with pytest.raises(CheckpointError, match="shape mismatches"):
        PoseNet.from_pretrained(str(tmp_path / "other"))


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    """A real synthetic dataset (photos with their poses in metadata.jsonl), tiny."""
    out = tmp_path_factory.mktemp("synth") / "d"
    subprocess.run([sys.executable, str(ROOT / "train" / "make_dataset.py"), "synthetic",
                    "--out", str(out), "--n", "12", "--size", "64", "--val-frac", "0.25",
                    "--seed", "9"], check=True, capture_output=True, timeout=300)
    return out


def _train(*args) -> subprocess.CompletedProcess:
    res = subprocess.run([sys.executable, str(ROOT / "train" / "pose_net.py"), *map(str, args)],
                         capture_output=True, text=True, timeout=300,
                         env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    return res


def test_training_resumes_exactly_and_exports_a_hub_folder(synth, tmp_path):
    _train("--data", synth, "--out", tmp_path / "straight", "--epochs", "3", *TINY)
    # stopped after every epoch (--max-minutes 0), resumed twice
    res = _train("--data", synth, "--out", tmp_path / "resumed", "--epochs", "3",
                 "--max-minutes", "0", *TINY)
    assert "stopped after epoch 1" in res.stdout
    for _ in range(2):
        _train("--data", synth, "--out", tmp_path / "resumed", "--epochs", "3",
               "--max-minutes", "0", "--resume", *TINY)
    a = load_state(tmp_path / "straight" / "state.safetensors")
    b = load_state(tmp_path / "resumed" / "state.safetensors")
    assert a["epoch"] == b["epoch"] == 3
    for k, v in a["model"].items():
        assert torch.equal(v, b["model"][k]), k
    assert [r["yaw_mae"] for r in a["log"]] == [r["yaw_mae"] for r in b["log"]]
    folder = tmp_path / "resumed" / "pose_net"
    card = (folder / "README.md").read_text()
    assert "## Evaluation" in card and "--resume" in card and "--max-minutes 0" in card
    assert len(b["commands"]) == 3
    net = PoseNet.from_pretrained(str(folder))
    assert net.config.channels == (4, 8) and len(net.predict(render_photo(scene(3, 2), 64))) == 3


def test_torchrun_two_processes_end_with_identical_weights(synth, tmp_path):
    """Two processes stop together (--max-minutes 0, rank 0's clock), resume, and end with
    the same weights."""
    run = tmp_path / "ddp"

    def torchrun(*extra: str) -> subprocess.CompletedProcess:
        res = subprocess.run(
            [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
             "--master_port", "29533", str(ROOT / "train" / "pose_net.py"), "--data",
             str(synth), "--out", str(run), "--epochs", "2", *TINY, *extra],
            capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
        assert res.returncode == 0, res.stderr[-3000:]
        return res

    assert "stopped after epoch 1" in torchrun("--max-minutes", "0").stdout
    assert "resumed after epoch 1" in torchrun("--resume").stdout
    record = json.loads((run / "pose_net" / "training.json").read_text())
    digests = record["rank_digests"]
    assert len(digests) == 2 and digests[0] == digests[1]
    assert "2 process(es)" in record["hardware"]
    PoseNet.from_pretrained(str(run / "pose_net"))


def test_training_refuses_a_folder_without_poses(tmp_path):
    res = subprocess.run([sys.executable, str(ROOT / "train" / "pose_net.py"), "--data",
                          str(tmp_path), "--out", str(tmp_path / "run"), *TINY],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "metadata.jsonl" in res.stderr


def test_a_pose_hint_is_a_start_the_drawings_lines_can_correct():
    """The fit starts at the hint and stays in its basin; clear lines pull it towards the
    pose they show: most of the way from a hint 6 degrees off with the default trust in the
    hint, all the way from 10 degrees off when the hint costs nothing to leave."""
    p = scene(1, 2947)
    drawing = render_drawing(p)
    truth = np.array([p.pose.yaw, p.pose.pitch, p.pose.roll])

    def error(off: float, config: FitConfig = FitConfig()) -> np.ndarray:
        fit = fit_construction(drawing, config, pose_hint=tuple(truth + off))
        return np.abs(np.array([fit.pose.yaw, fit.pose.pitch, fit.pose.roll]) - truth)

    assert error(6.0).mean() < 4.0
    assert error(10.0, FitConfig(hint_sigma=1e6)).max() < 1.5


def test_fit_refuses_a_malformed_hint():
    drawing = render_drawing(scene(1, 2941))
    with pytest.raises(ValueError, match="hint_sigma"):
        FitConfig(hint_sigma=0.0)
    with pytest.raises(ValueError, match="pose_hint"):
        fit_construction(drawing, pose_hint=(0.0, float("nan"), 0.0))
    with pytest.raises(ValueError, match="pose_hint"):
        fit_construction(drawing, pose_hint=(0.0, 1.0))
