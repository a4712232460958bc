"""Folder datasets: layouts, the papers' transforms, seeded randomness, skipped files."""
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from loomis.train.data import (DatasetError, PairedFolder, Unpaired, UnpairedFolder,
                               default_load_size)


def _pair_image(path: Path, size: int = 40, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
    b = 255 - a
    Image.fromarray(np.concatenate([a, b], axis=1)).save(path)


def _paired(tmp_path: Path, n: int = 3) -> Path:
    train = tmp_path / "paired" / "train"
    train.mkdir(parents=True)
    for i in range(n):
        _pair_image(train / f"{i:03d}.png", seed=i)
    return tmp_path


def test_paired_split_a_left_b_right_same_crop_and_flip(tmp_path):
    root = _paired(tmp_path)
    ds = PairedFolder(root, image_size=32, seed=1)
    assert len(ds) == 3 and ds.transform.load_size == default_load_size(32)
    for i in range(3):
        a, b = ds[i]
        assert a.shape == b.shape == (3, 32, 32)
        assert a.min() >= -1 and a.max() <= 1
        # B is the negative of A: a shared crop and flip keep that true after transforms
        assert torch.allclose(a, -b, atol=0.05)


def test_items_are_a_pure_function_of_seed_epoch_index(tmp_path):
    root = _paired(tmp_path)
    ds1, ds2 = PairedFolder(root, image_size=32, seed=7), PairedFolder(root, image_size=32, seed=7)
    ds1.set_epoch(3), ds2.set_epoch(3)
    assert torch.equal(ds1[2][0], ds2[2][0])  # another object, same (seed, epoch, index)
    draws = set()
    for epoch in range(6):
        ds1.set_epoch(epoch)
        draws.add(ds1[0][0].sum().item())
    assert len(draws) > 1  # crops and flips change between epochs


def test_eval_mode_is_deterministic_resize(tmp_path):
    ds = PairedFolder(_paired(tmp_path), image_size=32, augment=False)
    ds.set_epoch(0)
    x = ds[1][0]
    ds.set_epoch(5)
    assert torch.equal(x, ds[1][0])


def test_non_images_and_corrupt_files_are_skipped_and_counted(tmp_path):
    root = _paired(tmp_path)
    train = root / "paired" / "train"
    (train / "notes.txt").write_text("hello")
    (train / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    ds = PairedFolder(root, image_size=32)
    assert len(ds) == 3
    assert ds.report.not_images == ["notes.txt"] and len(ds.report.corrupt) == 1
    assert "1 not images" in ds.report.summary() and "1 unreadable" in ds.report.summary()


def test_empty_and_missing_folders_raise_clear_errors(tmp_path):
    (tmp_path / "train").mkdir()
    with pytest.raises(DatasetError, match="no usable image pairs"):
        PairedFolder(tmp_path)
    with pytest.raises(DatasetError, match="does not exist"):
        PairedFolder(tmp_path / "nope")
    with pytest.raises(DatasetError, match="trainA"):
        UnpairedFolder(tmp_path)


def test_two_folder_layout_skips_a_b_of_different_sizes(tmp_path):
    for side in "AB":
        (tmp_path / side).mkdir()
    Image.new("RGB", (40, 40), "red").save(tmp_path / "A" / "x.png")
    Image.new("RGB", (40, 40), "blue").save(tmp_path / "B" / "x.png")
    Image.new("RGB", (40, 40), "red").save(tmp_path / "A" / "y.png")
    Image.new("RGB", (48, 40), "blue").save(tmp_path / "B" / "y.png")
    ds = PairedFolder(tmp_path, image_size=32)
    assert len(ds) == 1 and ds.report.mismatched == ["y: A is 40x40, B is 48x40"]


def test_unpaired_draws_b_from_seed_epoch_index(tmp_path):
    for side, n in (("A", 2), ("B", 5)):
        d = tmp_path / f"train{side}"
        d.mkdir()
        for i in range(n):
            Image.new("RGB", (36, 36), (i * 40, 0, 0) if side == "A" else (0, i * 40, 0)).save(d / f"{i}.png")
    ds = UnpairedFolder(tmp_path, image_size=32, seed=3)
    assert len(ds) == 5  # the larger folder sets the epoch length
    first = [ds[i][1][1].mean().item() for i in range(5)]
    assert first == [ds[i][1][1].mean().item() for i in range(5)]
    un = Unpaired(PairedFolder(_paired(tmp_path / "p"), image_size=32), seed=0)
    a, b = un[0]
    assert a.shape == b.shape == (3, 32, 32)
