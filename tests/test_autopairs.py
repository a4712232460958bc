"""Portraits folder → pix2pix pairs, with a report of what was skipped and why."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from loomis.train.autopairs import PairConfig, SkipError, crop_camera, make_pair, make_pairs
from loomis.camera import Camera, HeadPose
from loomis.face_reference import load_reference

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
    from loomis.train.autopairs import split_of

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


# -- variations, rendered heads, the CycleGAN halves, the held-out set -------------------
from loomis.train.autopairs import (HELD_OUT_FRACTION, Variation, held_out,  # noqa: E402
                                    photo_files, split_of)


def named_for(split: str, config: PairConfig, n: int, start: int = 0) -> list[str]:
    """The first ``n`` names ``portrait_K.jpg`` that ``config`` puts in ``split``."""
    names = (f"portrait_{k}.jpg" for k in range(start, start + 10_000))
    return [name for name in names if split_of(name, config) == split][:n]


SET = PairConfig(size=64, val_fraction=0.2, test_fraction=0.2, variations=2, rendered=0.5,
                 features=0.5, seed=0)


@pytest.fixture(scope="module")
def portraits(tmp_path_factory, astronaut, grace_hopper):
    """Two training portraits, one for val and one for test (by their names' hashes)."""
    folder = tmp_path_factory.mktemp("portraits")
    names = named_for("train", SET, 2) + named_for("val", SET, 1) + named_for("test", SET, 1)
    for i, name in enumerate(names):
        (astronaut if i % 2 == 0 else grace_hopper).save(folder / name)
    return folder


@pytest.fixture(scope="module")
def dataset(portraits, tmp_path_factory, estimator):
    out = tmp_path_factory.mktemp("set")
    report = make_pairs(portraits, out, SET, estimator=estimator, verbose=False)
    return out, report


def pngs(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*.png"))}


def records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "pairs.jsonl").read_text().splitlines()]


def test_defaults_hold_out_a_tenth_and_validate_on_a_twentieth():
    assert (PairConfig().val_fraction, PairConfig().test_fraction) == (0.05, HELD_OUT_FRACTION)
    assert HELD_OUT_FRACTION == 0.1
    assert (PairConfig().variations, PairConfig().rendered, PairConfig().features) == (0, 0.0, 0.0)
    for bad in (dict(features=1.5), dict(features=-0.1), dict(variations=51), dict(variations=-1),
                dict(rendered=21.0), dict(rendered=-1.0)):
        with pytest.raises(ValueError):
            PairConfig(**bad)


def test_training_photos_get_varied_copies_and_the_others_do_not(dataset):
    out, report = dataset
    train = sorted(p.name for p in (out / "paired" / "train").iterdir())
    real = [n for n in train if not n.startswith("rendered_")]
    stems = sorted({n.split("~")[0].removesuffix(".png") for n in real})
    assert len(stems) == 2
    assert real == sorted(f"{s}{v}.png" for s in stems for v in ("", "~v1", "~v2"))
    for split in ("val", "test"):                       # one photo each, not varied
        (only,) = (out / "paired" / split).iterdir()
        assert "~" not in only.name
    assert report.written == {"train": 6 + report.rendered, "val": 1, "test": 1}
    # a varied copy is another picture of the same head: not the plain pair's bytes, but
    # still a photo beside a drawing registered on it
    for stem in stems:
        plain = np.asarray(Image.open(out / "paired" / "train" / f"{stem}.png"))
        for v in ("~v1", "~v2"):
            varied = np.asarray(Image.open(out / "paired" / "train" / f"{stem}{v}.png"))
            assert varied.shape == plain.shape == (64, 128, 3)
            assert np.abs(varied.astype(int) - plain).mean() > 3
            ink = varied[:, 64:].min(-1) < 200
            ys, xs = np.nonzero(ink)
            assert 0.01 < ink.mean() < 0.4 and abs(xs.mean() - 32) < 12 and abs(ys.mean() - 32) < 14


def test_the_same_command_gives_the_same_bytes_and_another_seed_other_ones(
        dataset, portraits, tmp_path, estimator):
    out, _ = dataset
    again = tmp_path / "again"
    make_pairs(portraits, again, SET, estimator=estimator, verbose=False)
    assert pngs(again) == pngs(out) and len(pngs(out)) > 10
    assert (again / "pairs.jsonl").read_bytes() == (out / "pairs.jsonl").read_bytes()
    other = tmp_path / "other"
    reseeded = dataclasses.replace(SET, seed=1, rendered=0.0)
    make_pairs(portraits, other, reseeded, estimator=estimator, verbose=False)
    first, second = pngs(out), pngs(other)
    varied = [k for k in second if k.startswith("paired/") and "~" in k]
    assert len(varied) == 4 and all(first[k] != second[k] for k in varied)  # other variations
    # a plain pair changes only if the seed's share of features drew it otherwise
    before = {r["file"]: r["variation"] for r in records(out)}
    for r in records(other):
        if "~" not in r["file"]:
            same = r["variation"] == before[r["file"]]
            assert (first[r["file"]] == second[r["file"]]) == same


def test_rendered_heads_join_the_training_split_only(dataset):
    out, report = dataset
    # half a rendered head per real training pair (six of them)
    assert report.rendered == 3
    rendered = sorted(p.name for p in (out / "paired").rglob("rendered_*.png"))
    assert len(rendered) == 3
    assert all((out / "paired" / "train" / name).is_file() for name in rendered)
    for name in rendered:
        pair = np.asarray(Image.open(out / "paired" / "train" / name))
        assert pair.shape == (64, 128, 3) and pair[:, :64].std() > 10       # a photo ...
        assert 0.01 < (pair[:, 64:].min(-1) < 200).mean() < 0.4             # ... and lines
    assert set(rendered) <= {p.name for p in (out / "unpaired" / "trainA").iterdir()}
    data = json.loads((out / "report.json").read_text())
    assert data["rendered"] == 3 and data["config"]["rendered"] == 0.5


def test_cyclegan_halves_for_train_and_test_but_not_val(dataset):
    out, _ = dataset
    assert sorted(p.name for p in (out / "unpaired").iterdir()) == ["testA", "testB", "trainA",
                                                                   "trainB"]
    for split in ("train", "test"):
        names = sorted(p.name for p in (out / "paired" / split).iterdir())
        for half, cols in (("A", slice(0, 64)), ("B", slice(64, 128))):
            folder = out / "unpaired" / f"{split}{half}"
            assert sorted(p.name for p in folder.iterdir()) == names
            for name in names:
                pair = np.asarray(Image.open(out / "paired" / split / name))
                assert np.array_equal(np.asarray(Image.open(folder / name)), pair[:, cols])


def test_pairs_jsonl_has_one_line_per_pair_written(dataset, portraits):
    out, report = dataset
    lines = records(out)
    written = sorted(k for k in pngs(out) if k.startswith("paired/"))
    assert len(lines) == sum(report.written.values()) == len(written)
    assert sorted(r["file"] for r in lines) == written
    sources = {p.relative_to(portraits).as_posix() for p in photo_files(portraits)}
    for r in lines:
        assert r["split"] == r["file"].split("/")[1]
        assert r["source"] in sources or (r["source"].startswith("rendered:")
                                          and r["split"] == "train")
        assert set(r["variation"]) >= {"mirror", "turn", "zoom", "features", "width", "hidden"}
        assert len(r["crop"]) == 3 and all(isinstance(r[a], float) for a in ("yaw", "pitch", "roll"))
        if "~" not in r["file"] and not r["source"].startswith("rendered:"):
            plain = Variation(features=r["variation"]["features"])
            assert r["variation"] == json.loads(json.dumps(dataclasses.asdict(plain)))
    # features is a share of the pairs: some drawings have them, some not
    assert {r["variation"]["features"] for r in lines} == {True, False}


def test_a_mirrored_copy_mirrors_the_head(estimator):
    from loomis.train.synthetic import render_photo, scene

    turned = render_photo(scene(0, 9), 256)          # a head turned about 30 degrees
    cfg = PairConfig(size=64)
    plain = make_pair(turned, estimator, cfg)
    mirrored = make_pair(turned, estimator, cfg, Variation(mirror=True))
    assert abs(plain.face.yaw) > 20
    assert np.sign(mirrored.face.yaw) == -np.sign(plain.face.yaw)
    assert abs(mirrored.face.yaw + plain.face.yaw) < 6 and abs(mirrored.face.roll + plain.face.roll) < 6
    a, m = (np.asarray(p.image)[:, :64].astype(float) for p in (plain, mirrored))
    assert np.abs(m - a[:, ::-1]).mean() < 0.5 * np.abs(m - a).mean()   # the photo mirrored
    b, n = (np.asarray(p.image)[:, 64:].min(-1) < 200 for p in (plain, mirrored))
    assert (b[:, ::-1] & n).sum() > 0.5 * b.sum()                       # and its drawing


def test_a_variation_changes_light_colour_and_hand():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    assert Variation().recolour(rgb) is rgb and Variation().reframe(rgb) is rgb
    grey = Variation(gray=True).recolour(rgb).astype(int)
    assert np.abs(grey[..., 0] - grey[..., 1]).max() <= 2 and np.abs(grey[..., 1] - grey[..., 2]).max() <= 2
    assert Variation(brightness=1.2).recolour(rgb).mean() > rgb.mean() + 5
    assert np.array_equal(Variation(mirror=True).reframe(rgb), rgb[:, ::-1])
    assert Variation.sample(np.random.default_rng(5)) == Variation.sample(np.random.default_rng(5))
    samples = [Variation.sample(np.random.default_rng(i), features=0.5) for i in range(200)]
    assert 0.35 < np.mean([v.mirror for v in samples]) < 0.65
    assert 0.35 < np.mean([v.features for v in samples]) < 0.65
    assert all(-12 <= v.turn <= 12 and 0.9 <= v.zoom <= 1.11 for v in samples)
    assert {v.hidden for v in samples} == {"dashed", "faint", "omit"}
    photo_only = [Variation.sample(np.random.default_rng(i), drawing=False) for i in range(50)]
    assert all((v.width, v.hidden, v.sketchy) == (1.0, "dashed", False) for v in photo_only)
    assert len({v.turn for v in photo_only}) == 50          # the photo still varies


def test_features_draw_the_faces_own_features(estimator, astronaut):
    plain = make_pair(astronaut, estimator, PairConfig(size=128))
    featured = make_pair(astronaut, estimator, PairConfig(size=128), Variation(features=True))
    a, b = (np.asarray(p.image)[:, 128:].min(-1) < 200 for p in (plain, featured))
    assert np.array_equal(np.asarray(plain.image)[:, :128], np.asarray(featured.image)[:, :128])
    assert b.sum() > 1.15 * a.sum() and (a & ~b).sum() < 0.02 * a.sum()


def test_held_out_is_stable_and_about_a_tenth(tmp_path):
    root = tmp_path / "photos"
    (root / "sub").mkdir(parents=True)
    for i in range(600):
        (root / ("sub" if i % 3 == 0 else "") / f"img_{i}.jpg").write_bytes(b"")
    (root / "notes.txt").write_text("not a photo")
    first = held_out(root)
    assert first == held_out(root) and all(p.suffix == ".jpg" for p in first)
    assert abs(len(first) / 600 - 0.1) < 0.03
    # what make_pairs puts in test/ with its defaults, and nothing else
    assert first == [p for p in photo_files(root)
                     if split_of(p.relative_to(root).as_posix(), PairConfig()) == "test"]
    # more photos later: the held-out ones stay held out, the others stay out of it
    for i in range(600, 900):
        (root / f"img_{i}.jpg").write_bytes(b"")
    later = held_out(root)
    assert [p for p in later if int(p.stem.split("_")[1]) < 600] == first
    assert abs(len(held_out(root, 0.3)) / 900 - 0.3) < 0.04


def test_the_pairs_command_passes_every_option(portraits, tmp_path):
    from train import make_dataset

    out = tmp_path / "cli"
    assert make_dataset.main(["pairs", "--photos", str(portraits), "--out", str(out),
                              "--size", "48", "--variations", "1", "--rendered", "0.5",
                              "--features", "0.25", "--no-vary-drawing", "--seed", "3"]) == 0
    config = json.loads((out / "report.json").read_text())["config"]
    assert {k: config[k] for k in ("size", "variations", "rendered", "features",
                                   "vary_drawing", "seed")} == {
        "size": 48, "variations": 1, "rendered": 0.5, "features": 0.25,
        "vary_drawing": False, "seed": 3}
    assert (config["val_fraction"], config["test_fraction"]) == (0.05, 0.1)
    lines = records(out)
    assert lines and all(Image.open(out / r["file"]).size == (96, 48) for r in lines)
    # --no-vary-drawing: the copies vary the photo, never the drawing's hand
    varied = [r["variation"] for r in lines if "~" in r["file"] or r["source"].startswith("rendered")]
    assert varied and all((v["width"], v["hidden"], v["sketchy"]) == (1.0, "dashed", False)
                          for v in varied)


def test_a_skipped_photo_gives_no_pairs(astronaut, estimator, tmp_path):
    src = tmp_path / "photos"
    src.mkdir()
    edge = Image.new("RGB", (700, 600), (60, 70, 80))
    edge.paste(astronaut, (-150, 50))                  # face at the left border
    edge.save(src / "edge.png")
    astronaut.save(src / "a.png")
    config = PairConfig(size=64, max_outside=0.05, variations=8, val_fraction=0.0,
                        test_fraction=0.0)
    report = make_pairs(src, tmp_path / "out", config, estimator=estimator, verbose=False)
    assert [(s.file, s.reason) for s in report.skipped] == [("edge.png", "cut off")]
    written = sorted(p.name for p in (tmp_path / "out" / "paired" / "train").iterdir())
    assert written == ["a.png"] + [f"a~v{j}.png" for j in range(1, 9)]


def test_a_second_run_into_the_same_folder_leaves_only_its_own_pairs(astronaut, estimator,
                                                                      tmp_path):
    src = tmp_path / "photos"
    src.mkdir()
    astronaut.save(src / "a.png")
    out = tmp_path / "out"
    plain = PairConfig(size=64, val_fraction=0.0, test_fraction=0.0)
    make_pairs(src, out, dataclasses.replace(plain, variations=2), estimator=estimator,
               verbose=False)
    try:
        make_pairs(src, out, plain, estimator=estimator, verbose=False)
    except ValueError:
        return                                          # refusing to mix two sets is fine
    on_disk = sorted(p.relative_to(out).as_posix() for p in (out / "paired").rglob("*.png"))
    assert on_disk == sorted(r["file"] for r in records(out)) == ["paired/train/a.png"]
