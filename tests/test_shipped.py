"""The generators shipped in checkpoints/: complete Hub folders, loaded strictly through the
same code as Hub weights, and each clearly better than its untrained twin (a regression
guard: photo → drawing on a small fixed batch of benchmarks/quality.py's held-out rendered
set, drawing → photo on the real portraits the installed packages provide).

``LOOMIS_CHECKPOINTS=DIR`` runs the same checks on candidate folders before they ship.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

from benchmarks import quality
from loomis.train.inference import Translator
from loomis.train.model_card import read_training_record
from loomis.train.nets import Generator
from loomis.pose import PoseEstimator
from loomis.train.pose_net import PoseNet
from loomis.registry import POSE_NET

ROOT = Path(__file__).resolve().parents[1]
CHECKPOINTS = Path(os.environ.get("LOOMIS_CHECKPOINTS") or ROOT / "checkpoints")
EXPECTED = ("pix2pix-photo2drawing", "pix2pix-drawing2photo",
            "cyclegan-photo2drawing", "cyclegan-drawing2photo")
POSE_NET_FOLDER = CHECKPOINTS / POSE_NET
BUDGET_BYTES = 40_000_000
BATCH = 6                # held-out scenes the guard scores on
F1_MARGIN = 0.05         # photo → drawing: trained F1 at least this much above untrained
# Drawing → photo is judged on real portraits by whether the made photo reads as a face (a
# face detector's score) and by L1 in the head's square, not by SSIM: a U-Net's twin paints
# a near-flat grey page, which scores a higher SSIM than a real photo of the same drawing
# (test below).


FOLDERS = quality.shipped_folders(CHECKPOINTS)
each_folder = pytest.mark.parametrize("folder", FOLDERS, ids=[p.name for p in FOLDERS])


def test_shipped_folders_are_registry_defaults_within_the_size_budget():
    names = sorted(p.name for p in FOLDERS)
    assert names, f"{CHECKPOINTS} ships no generator at all"
    unknown = [n for n in names if n not in EXPECTED]
    assert not unknown, f"{unknown} are not default generator folders the app looks for"
    total = sum(f.stat().st_size for f in CHECKPOINTS.rglob("*") if f.is_file())
    assert total < BUDGET_BYTES, f"{CHECKPOINTS} holds {total / 1e6:.1f} MB; the budget is 40 MB"


def test_all_four_default_generators_ship():
    names = sorted(p.name for p in FOLDERS)
    missing = [n for n in EXPECTED if n not in names]
    assert not missing, (f"{CHECKPOINTS} lacks the default generator folders {missing} "
                         f"(found {names}); the app needs them to work out of the box")


@each_folder
def test_folder_is_a_complete_hub_model_with_its_card(folder):
    for name in ("config.json", "model.safetensors", "README.md"):
        assert (folder / name).is_file(), f"{folder} lacks {name}"
    assert not list(folder.glob("*.bin")) + list(folder.glob("*.pt")), "pickle weights shipped"
    record = read_training_record(folder)
    assert record is not None, f"{folder} has no training.json with the training command"
    card = (folder / "README.md").read_text()
    assert record["command"].strip() in card, "the card does not show the training command"
    # measured numbers, not the placeholder: the card's table has this model's own row
    assert f"seed {quality.HELD_OUT_SEED}" in card and f"| **{folder.name}** |" in card, (
        "the card has no measured metrics; run python -m benchmarks.quality --update-cards")


@each_folder
def test_weights_load_strictly_from_the_folder_and_from_the_hub_cache(folder, tmp_path,
                                                                      monkeypatch):
    import huggingface_hub.constants as hc

    local = Generator.from_pretrained(str(folder))
    with safe_open(str(folder / "model.safetensors"), framework="pt") as f:
        assert set(f.keys()) == set(local.state_dict()), "file and model keys differ"
    assert json.loads((folder / "config.json").read_text()) == local.config.__dict__

    # the same folder published on the Hub: the real download code, reading its cache offline
    cache = tmp_path / "hub"
    commit = "5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed"
    repo = cache / f"models--loomis--{folder.name}"
    shutil.copytree(folder, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)  # no trailing newline
    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", True)
    hub = Generator.from_pretrained(f"loomis/{folder.name}", cache_dir=str(cache))
    size = local.config.image_size
    x = torch.rand(1, local.config.in_channels, size, size,
                   generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        assert torch.equal(local(x), hub(x))


@pytest.fixture(scope="module")
def batch():
    return quality.held_out_set(BATCH, 256)


@each_folder
def test_beats_its_untrained_twin(folder, batch, astronaut, grace_hopper):
    """Photo → drawing on held-out rendered scenes (line F1); drawing → photo on real
    portraits, as a user meets it: from the geometric engine's construction of each, the
    made photo reads as a face where the twin's does not, and is nearer the real one in
    the head's square (L1, over both photos)."""
    from loomis.train.metrics import l1
    from loomis.pipeline import photo_to_drawing, sketch_to_photo

    trained = Translator(Generator.from_pretrained(str(folder)), runtime="torch")
    twin = Translator(quality.untrained_like(trained.generator), runtime="torch")
    cfg = trained.config
    if cfg.target_domain == "drawing":
        scores = {}
        for name, tr in (("trained", trained), ("untrained", twin)):
            method = quality.Method(name, cfg.source_domain, cfg.target_domain, "test", tr)
            scores[name] = quality.evaluate(method, batch)["result"]
        f1, base = scores["trained"]["f1"], scores["untrained"]["f1"]
        assert f1 >= base + F1_MARGIN, f"{folder.name}: line F1 {f1:.3f} vs untrained {base:.3f}"
        return
    from loomis.pipeline import ink_square

    estimator = PoseEstimator()
    dist = {"trained": 0.0, "untrained": 0.0}
    for photo in (astronaut, grace_hopper):
        sketch = photo_to_drawing(photo, features=True, estimator=estimator).image
        made = {name: sketch_to_photo(sketch, tr) for name, tr in (("trained", trained),
                                                                   ("untrained", twin))}
        x0, y0, side = ink_square(sketch)          # the head the generator was shown
        box = (max(0, round(x0)), max(0, round(y0)), min(photo.width, round(x0 + side)),
               min(photo.height, round(y0 + side)))
        for k, v in made.items():
            dist[k] += l1(v.crop(box), photo.crop(box)) / 2
        face = {k: estimator.face_score(np.asarray(v)) for k, v in made.items()}
        assert face["trained"] > face["untrained"] + 0.3, (folder.name, face)
    # pix2pix is trained to give back the photo (L1 to it); CycleGAN, unpaired, only a
    # photo of some face, so it need only be nearer than its twin
    margin = 0.01 if folder.name.startswith("pix2pix") else 0.0
    assert dist["trained"] < dist["untrained"] - margin, (folder.name, dist)


def test_the_fit_draws_real_faces_nearer_the_engine_than_the_pix2pix_drawing(astronaut,
                                                                              grace_hopper):
    """What "Fit the 3D construction" is for, on real photos as the app runs it
    (loomis.pipeline): the shipped pix2pix generator's lines, fitted from the face's
    landmark pose, give one clean construction per face, on the geometric engine's
    (benchmarks/quality.py measures the held-out portraits)."""
    from loomis.train.metrics import line_scores
    from loomis.pipeline import GEOMETRIC, photo_to_drawing

    folder = CHECKPOINTS / "pix2pix-photo2drawing"
    if not folder.is_dir():
        pytest.skip("no shipped pix2pix photo → drawing generator")
    tr = Translator.from_pretrained(folder, runtime="torch")
    estimator = PoseEstimator()
    for photo in (astronaut, grace_hopper):
        engine = photo_to_drawing(photo, GEOMETRIC, hidden="omit", estimator=estimator)
        fitted, raw = (photo_to_drawing(photo, folder.name, translator=tr, hidden="omit",
                                        fit=fit, estimator=estimator) for fit in (True, False))
        assert len(fitted.heads) == len(engine.heads) == 1
        f1 = {k: line_scores(d.image, engine.image)["f1"] for k, d in (("fit", fitted),
                                                                       ("raw", raw))}
        # a head 300 px across: 1° of pose moves its outer lines by ~2.6 px, past the 2-px
        # tolerance, so F1 on one big head is strict; the 95 held-out portraits read
        # 0.95 (docs/quality.md). Here 0.73 and 0.64 fitted against 0.63 and 0.51 raw.
        assert f1["fit"] >= 0.6 and f1["fit"] >= f1["raw"] + 0.05, f1
        for axis in ("yaw", "pitch", "roll"):
            assert abs(getattr(fitted.heads[0], axis) - getattr(engine.heads[0], axis)) < 3, axis


def test_the_shipped_pose_net_reads_held_out_poses_within_a_few_degrees():
    """The pose net is the construction fit's starting point in the app: a complete Hub
    folder, its card showing how it was trained, and on held-out scenes a few degrees off
    (docs/quality.json's pose-net row measures all 120)."""
    assert POSE_NET_FOLDER.is_dir(), f"{CHECKPOINTS} ships no {POSE_NET} folder"
    for name in ("config.json", "model.safetensors", "README.md", "training.json"):
        assert (POSE_NET_FOLDER / name).is_file(), f"{POSE_NET_FOLDER} lacks {name}"
    record = json.loads((POSE_NET_FOLDER / "training.json").read_text())
    assert record["command"] in (POSE_NET_FOLDER / "README.md").read_text()
    net = PoseNet.from_pretrained(POSE_NET_FOLDER)
    samples = quality.held_out_set(12, 256)
    errors = np.array([np.subtract(net.predict(s.photo), (s.params.pose.yaw, s.params.pose.pitch,
                                                          s.params.pose.roll))
                       for s in samples])
    mae = np.abs(errors).mean(0)
    assert (mae < (6.0, 6.0, 4.0)).all(), f"pose net MAE yaw/pitch/roll {mae.round(2)}"


# --------------------------------------------------------------------------- the benchmark

def test_pose_buckets_follow_the_issue_definition():
    assert quality.pose_buckets(0, 0) == ["frontal"]
    assert quality.pose_buckets(-19.9, 15) == ["frontal"]
    assert quality.pose_buckets(20, 15.1) == ["three-quarter", "tilted up"]
    assert quality.pose_buckets(-60, -16) == ["three-quarter", "tilted down"]
    assert quality.pose_buckets(75, -30) == ["profile", "tilted down"]


def test_held_out_set_is_reproducible_and_not_the_training_data():
    a, b = quality.held_out_set(2, 64), quality.held_out_set(2, 64)
    assert [s.photo.tobytes() for s in a] == [s.photo.tobytes() for s in b]
    from loomis.train.synthetic import render_photo, scene

    training = render_photo(scene(1, 0), 64)  # make_dataset.py synthetic --seed 1
    assert a[0].photo.tobytes() != training.tobytes()
    assert quality.HELD_OUT_SEED != 1


def test_canny_baseline_draws_black_edges_on_white(batch):
    canny = quality.canny_drawing(batch[0].photo)
    values = set(np.unique(np.asarray(canny.convert("L"))).tolist())
    assert values == {0, 255} and canny.size == batch[0].photo.size


def test_update_cards_writes_measured_numbers_and_refuses_held_out_training(tmp_path, batch):
    torch.manual_seed(0)
    folder = tmp_path / "ckpt" / "pix2pix-photo2drawing"
    Generator(arch="unet_32", ngf=8, image_size=64).save_pretrained(folder)
    record = {"command": "python train/pix2pix.py --synthetic --seed 1", "data": "synthetic"}
    (folder / "training.json").write_text(json.dumps(record))
    PoseNet(32, (4, 8)).save_pretrained(tmp_path / "ckpt" / POSE_NET)  # not a generator
    report = quality.run(2, 256, tmp_path / "ckpt", runtime="torch", log=lambda m: None)
    assert set(report["results"]) >= {"pix2pix-photo2drawing", "geometric engine",
                                      "untrained (pix2pix-photo2drawing config)",
                                      "pix2pix-photo2drawing, construction fit",
                                      "pix2pix-photo2drawing, construction fit, grid search"}
    assert not any(POSE_NET in name for name in report["results"])
    assert report["pose_net"]["mae"]["all"]["n"] == 2
    assert "| all |" in quality.pose_net_table(report["pose_net"])
    # the fitted construction knows its pose, so its row reports the pose error too
    fitted = report["results"]["pix2pix-photo2drawing, construction fit"]
    assert fitted["group"] == "ablation" and "pose_mae" in fitted and fitted["faces_found"] <= 2
    from loomis.train.model_card import TrainingRecordError, write_model_card

    card = write_model_card(folder, report).read_text()
    assert record["command"] in card and "| **pix2pix-photo2drawing** |" in card
    assert f"{report['results']['pix2pix-photo2drawing']['f1']:.3f}" in card
    (folder / "training.json").write_text(json.dumps(
        {"command": f"python train/pix2pix.py --synthetic --seed {quality.HELD_OUT_SEED}"}))
    with pytest.raises(TrainingRecordError, match="held-out"):
        write_model_card(folder, report)


def test_faces_read_back_tell_a_right_photo_from_a_flat_page_that_ssim_prefers(batch):
    """Why the photo table has a read-back column: on these scenes a flat grey page scores a
    higher SSIM than a real photo of the same drawing, but only the photo reads as a face
    turned the way the drawing is."""
    from loomis.pose import PoseEstimator

    estimator = PoseEstimator()
    flat, other, mean = quality.photo_references(k=2)
    scores = {m.name: quality.evaluate(m, batch, readback=estimator)["result"]
              for m in (flat, other, mean)}
    page, photo, average = scores[flat.name], scores[other.name], scores[mean.name]
    assert page["ssim"] > photo["ssim"], "SSIM no longer prefers a flat page here"
    assert page["faces_found"] == 0 and "all" not in page["pose_mae"]
    assert photo["faces_found"] >= len(batch) - 1
    assert photo["pose_mae"]["all"]["yaw"] < 10 and photo["ms_per_image"] is None
    assert average["faces_found"] >= len(batch) - 1 and average["ssim"] > photo["ssim"]


def test_another_appearance_is_the_same_drawing_in_a_new_look(batch):
    ref = quality.AppearanceReference(1)
    s = batch[0]
    first, again = ref(s), ref(s)
    assert first.tobytes() == again.tobytes()                       # seeded per sample
    assert np.abs(np.asarray(first, float) - np.asarray(s.photo, float)).mean() > 10
    with pytest.raises(ValueError, match="at least 1"):
        quality.AppearanceReference(0)
