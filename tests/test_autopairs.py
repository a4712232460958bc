"""Portraits folder → pix2pix pairs, with a report of what was skipped and why."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from loomis.autopairs import PairConfig, SkipError, crop_camera, make_pair, make_pairs
from loomis.camera import Camera, HeadPose
from loomis.face_reference import load_reference
from loomis.pose import PoseEstimator

pytest.importorskip("skimage.data")  # the astronaut photo (conftest) comes from it


def test_crop_camera_keeps_points_registered():
    cam = Camera(640, 480, 500.0)
    pts = HeadPose(20, 10, 5, 1.0, (1.0, -0.5, -14.0)).to_camera(np.random.default_rng(0)
                                                                 .normal(size=(50, 3)))
    x0, y0, side, size = 200.0, 100.0, 240.0, 96
    crop = crop_camera(cam, x0, y0, side, size)
    expected = (cam.project(pts) - [x0, y0]) * size / side
    np.testing.assert_allclose(crop.project(pts), expected, atol=1e-9)


def test_pair_is_photo_crop_beside_its_drawing(estimator, astronaut):
    pair = make_pair(astronaut, estimator, PairConfig(size=128))
    assert pair.image.size == (256, 128) and pair.image.mode == "RGB"
    ab = np.asarray(pair.image)
    a, b = ab[:, :128], ab[:, 128:]
    assert a.std() > 20                                   # a photo
    ink = b.min(-1) < 200
    assert 0.01 < ink.mean() < 0.3 and (b[~ink] > 230).mean() > 0.97   # lines on paper
    # the face is centred in the crop and the drawing registered on it
    lm = pair.camera.project(pair.face.head.to_camera(
        load_reference().head_points(1.4)))
    assert 0.25 * 128 < lm[:, 0].mean() < 0.75 * 128
    assert 0.25 * 128 < lm[:, 1].mean() < 0.75 * 128
    ys, xs = np.nonzero(ink)
    assert abs(xs.mean() - 64) < 16 and abs(ys.mean() - 64) < 20
    # and the crop's landmarks land where the face is in A: skin, not background
    nose = lm[1].astype(int)
    assert np.abs(a[nose[1], nose[0]].astype(int) - a[2, 2]).sum() > 30


def test_rotated_and_off_centre_portraits_are_centred(estimator, astronaut):
    canvas = Image.new("RGB", (1000, 800), (60, 70, 80))
    canvas.paste(astronaut.rotate(25, expand=True), (400, 150))
    pair = make_pair(canvas, estimator, PairConfig(size=128))
    ink = np.asarray(pair.image)[:, 128:].min(-1) < 200
    ys, xs = np.nonzero(ink)
    assert abs(xs.mean() - 64) < 16 and abs(ys.mean() - 64) < 20


def test_bad_photos_are_skipped_with_reasons(estimator, astronaut, tmp_path):
    with pytest.raises(SkipError) as exc:
        make_pair(np.full((300, 300, 3), 128, np.uint8), estimator)
    assert exc.value.reason == "no face"
    with pytest.raises(SkipError) as exc:
        make_pair(b"not an image", estimator)
    assert exc.value.reason == "unreadable"
    with pytest.raises(SkipError) as exc:
        make_pair(astronaut.resize((200, 200)), estimator, PairConfig(size=512))
    assert exc.value.reason == "too small" and "at least 256 px" in str(exc.value)
    edge = Image.new("RGB", (700, 600), (60, 70, 80))
    edge.paste(astronaut, (-150, 50))                  # face at the left border
    with pytest.raises(SkipError) as exc:
        make_pair(edge, estimator, PairConfig(max_outside=0.05))
    assert exc.value.reason == "cut off"


def test_folder_to_pix2pix_layout_with_report(estimator, astronaut, tmp_path, capsys):
    src = tmp_path / "photos"
    (src / "more").mkdir(parents=True)
    astronaut.save(src / "a.jpg")
    astronaut.convert("L").save(src / "more" / "gray.png")
    astronaut.convert("P").save(src / "palette.png")
    astronaut.resize((100, 100)).save(src / "tiny.png")
    Image.new("RGB", (200, 200), (128, 128, 128)).save(src / "wall.png")
    (src / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    (src / "notes.txt").write_text("not a picture; ignored by suffix")
    out = tmp_path / "pairs"
    report = make_pairs(src, out, PairConfig(size=64, val_fraction=0.0, test_fraction=0.0),
                        estimator=estimator)
    written = sorted(p.name for p in (out / "paired" / "train").iterdir())
    assert written == ["a.png", "more__gray.png", "palette.png"]
    for name in written:
        assert Image.open(out / "paired" / "train" / name).size == (128, 64)
    data = json.loads((out / "report.json").read_text())
    assert data["total_written"] == 3
    reasons = {s["file"]: s["reason"] for s in data["skipped"]}
    assert reasons == {"broken.jpg": "unreadable", "wall.png": "no face",
                       "tiny.png": "too small"}
    assert report.written["train"] == 3
    assert "skipped 3" in capsys.readouterr().out


def test_split_is_stable_and_respects_fractions():
    from loomis.autopairs import split_of

    cfg = PairConfig(val_fraction=0.2, test_fraction=0.1)
    names = [f"img_{i}.jpg" for i in range(2000)]
    splits = [split_of(n, cfg) for n in names]
    assert splits == [split_of(n, cfg) for n in names]
    assert abs(splits.count("val") / 2000 - 0.2) < 0.03
    assert abs(splits.count("test") / 2000 - 0.1) < 0.03


def test_config_and_folder_errors(tmp_path):
    with pytest.raises(ValueError, match="pair size"):
        PairConfig(size=8)
    with pytest.raises(ValueError, match="not a folder"):
        make_pairs(tmp_path / "missing", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no image files"):
        make_pairs(tmp_path / "empty", tmp_path / "out")
