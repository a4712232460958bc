"""Training data from folders: pix2pix pairs (A|B side by side) and CycleGAN unpaired sets.

Layouts accepted (the ones ``train/make_dataset.py`` writes and the papers' datasets use):

* paired: ``DIR/{train,val,test}/*.png`` (or ``DIR/paired/{train,…}``, or a flat folder of
  images), each file A and B side by side, A on the left; or ``DIR/A/`` + ``DIR/B/`` with
  files of the same name.
* unpaired: ``DIR/{trainA,trainB,testA,testB}/`` (or ``DIR/unpaired/…``).

Transforms are the papers': resize to ``load_size`` (286 for 256 crops), random crop to
``image_size``, random horizontal flip, pixels to [-1, 1]; A and B of a pair get the same
crop and flip. Evaluation resizes straight to ``image_size`` with no randomness.

Every random choice (crop, flip, the B drawn for an unpaired A) comes from a generator
seeded by ``(seed, epoch, index)``, never from global state, so an item is the same
whichever process loads it and whenever: a resumed run sees exactly the data the
uninterrupted one would have. Call :meth:`set_epoch` before each epoch.

Files that are not images or cannot be decoded are skipped and counted (:class:`ScanReport`);
a folder with nothing usable raises :class:`DatasetError` saying what was found.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from loomis.imageio import ImageError, load_image

__all__ = ["DatasetError", "ScanReport", "PairedFolder", "UnpairedFolder", "Unpaired",
           "find_paired_root", "find_unpaired_root", "default_load_size", "IMAGE_EXTS"]

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".gif")


class DatasetError(ValueError):
    """A data folder that cannot be trained on; the message says what was found."""


@dataclass
class ScanReport:
    """What a folder scan kept and skipped, with reasons (shown to the user at start)."""

    folder: str
    used: int = 0
    not_images: list[str] = field(default_factory=list)
    corrupt: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)

    @property
    def skipped(self) -> int:
        return len(self.not_images) + len(self.corrupt) + len(self.mismatched)

    def summary(self) -> str:
        parts = [f"{self.used} used"]
        if self.not_images:
            parts.append(f"{len(self.not_images)} not images")
        if self.corrupt:
            parts.append(f"{len(self.corrupt)} unreadable")
        if self.mismatched:
            parts.append(f"{len(self.mismatched)} with A and B of different sizes")
        detail = ""
        bad = self.corrupt + self.mismatched
        if bad:
            detail = " (e.g. " + "; ".join(bad[:3]) + ")"
        return f"{self.folder}: " + ", ".join(parts) + detail


def default_load_size(image_size: int) -> int:
    """The papers' 286-for-256 resize margin, scaled to other crop sizes (143 for 128)."""
    return int(round(image_size * 286 / 256))


def _listdir(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def _probe(path: Path) -> tuple[int, int] | str:
    """Image size, or the reason it is unusable. Decodes the pixels fully: a truncated file
    is caught here, at scan time, not halfway through an epoch."""
    try:
        with Image.open(path) as im:
            im.load()
            return im.size
    except Exception as exc:  # PIL raises many types for damaged files
        return f"{path.name}: {type(exc).__name__}: {exc}"


def _scan_images(folder: Path, report: ScanReport) -> list[tuple[Path, tuple[int, int]]]:
    found = []
    for p in _listdir(folder):
        if p.suffix.lower() not in IMAGE_EXTS:
            report.not_images.append(p.name)
            continue
        size = _probe(p)
        if isinstance(size, str):
            report.corrupt.append(size)
        else:
            found.append((p, size))
    return found


def find_paired_root(data: str | os.PathLike, split: str) -> Path:
    """The folder holding ``split`` of a paired dataset, following the accepted layouts."""
    root = Path(data)
    if not root.exists():
        raise DatasetError(f"data folder {root} does not exist")
    if not root.is_dir():
        raise DatasetError(f"--data {root} is a file; give the dataset folder")
    for cand in (root / split, root / "paired" / split):
        if cand.is_dir():
            return cand
    if (root / "A").is_dir() and (root / "B").is_dir():
        return root
    has_splits = any((root / s).is_dir() or (root / "paired" / s).is_dir()
                     for s in ("train", "val", "test"))
    if has_splits:
        raise DatasetError(f"{root} has no '{split}' split (looked for {root / split} and "
                           f"{root / 'paired' / split})")
    if split == "train":
        return root  # a flat folder of A|B images
    raise DatasetError(f"{root} has no '{split}' split")


def find_unpaired_root(data: str | os.PathLike) -> Path:
    root = Path(data)
    if not root.is_dir():
        raise DatasetError(f"data folder {root} does not exist or is not a folder")
    for cand in (root, root / "unpaired"):
        if (cand / "trainA").is_dir() and (cand / "trainB").is_dir():
            return cand
    raise DatasetError(f"{root} is not a CycleGAN folder: expected {root}/trainA and "
                       f"{root}/trainB (or {root}/unpaired/trainA …)")


class _Transform:
    """Resize → random crop → random flip, drawn from one seeded generator per item."""

    def __init__(self, load_size: int, image_size: int, augment: bool) -> None:
        if load_size < image_size:
            raise DatasetError(f"load_size {load_size} is smaller than the crop {image_size}")
        self.load_size, self.image_size, self.augment = load_size, image_size, augment

    def params(self, rng: np.random.Generator) -> tuple[int, int, bool]:
        if not self.augment:
            return 0, 0, False
        m = self.load_size - self.image_size
        return int(rng.integers(0, m + 1)), int(rng.integers(0, m + 1)), bool(rng.random() < 0.5)

    def __call__(self, img: Image.Image, params: tuple[int, int, bool]) -> torch.Tensor:
        if self.augment:
            img = img.resize((self.load_size, self.load_size), Image.BICUBIC)
            x, y, flip = params
            img = img.crop((x, y, x + self.image_size, y + self.image_size))
            if flip:
                img = img.transpose(Image.FLIP_LEFT_RIGHT)
        else:
            img = img.resize((self.image_size, self.image_size), Image.BICUBIC)
        arr = np.asarray(img, dtype=np.float32)
        return torch.from_numpy(arr).permute(2, 0, 1) / 127.5 - 1.0


class _Seeded(torch.utils.data.Dataset):
    seed: int = 0
    epoch: int = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _rng(self, index: int, stream: int = 0) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch, index, stream])


class PairedFolder(_Seeded):
    """pix2pix pairs: ``(A, B)`` tensors ``(3, S, S)`` in [-1, 1] with a shared crop and flip."""

    def __init__(self, data: str | os.PathLike, split: str = "train", image_size: int = 256,
                 load_size: int | None = None, augment: bool = True, seed: int = 0,
                 max_items: int | None = None) -> None:
        folder = find_paired_root(data, split)
        self.folder = folder
        self.report = ScanReport(str(folder))
        self.items: list[tuple[Path, Path | None]] = []
        if (folder / "A").is_dir() and (folder / "B").is_dir():
            self._scan_two_folders(folder)
        else:
            for p, (w, h) in _scan_images(folder, self.report):
                if w < 2:
                    self.report.corrupt.append(f"{p.name}: {w}x{h} is too narrow to hold A|B")
                    continue
                self.items.append((p, None))
        if max_items is not None:
            self.items = self.items[:max_items]
        self.report.used = len(self.items)
        if not self.items:
            raise DatasetError(f"no usable image pairs in {folder} ({self.report.summary()}). "
                               "A pix2pix folder holds images with A and B side by side "
                               "(A left), or A/ and B/ subfolders with matching names")
        self.transform = _Transform(load_size or default_load_size(image_size), image_size, augment)
        self.seed = seed
        self.description = f"{len(self.items)} pairs from {folder}"

    def _scan_two_folders(self, folder: Path) -> None:
        a_report, b_report = ScanReport(str(folder / "A")), ScanReport(str(folder / "B"))
        a_files = {p.stem: (p, s) for p, s in _scan_images(folder / "A", a_report)}
        b_files = {p.stem: (p, s) for p, s in _scan_images(folder / "B", b_report)}
        for r in (a_report, b_report):
            self.report.not_images += r.not_images
            self.report.corrupt += r.corrupt
        for stem in sorted(a_files.keys() & b_files.keys()):
            (pa, sa), (pb, sb) = a_files[stem], b_files[stem]
            if sa != sb:
                self.report.mismatched.append(f"{stem}: A is {sa[0]}x{sa[1]}, B is {sb[0]}x{sb[1]}")
                continue
            self.items.append((pa, pb))
        unmatched = sorted(a_files.keys() ^ b_files.keys())
        self.report.mismatched += [f"{s}: no partner in the other folder" for s in unmatched]

    def __len__(self) -> int:
        return len(self.items)

    def load_pair(self, index: int) -> tuple[Image.Image, Image.Image]:
        """The pair as full-size RGB images (A, B), before any transform."""
        pa, pb = self.items[index]
        try:
            a = load_image(pa)
            if pb is not None:
                return a, load_image(pb)
        except ImageError as exc:  # changed on disk since the scan
            raise DatasetError(f"cannot read training pair {pa}: {exc}") from None
        w, h = a.size
        half = w // 2
        return a.crop((0, 0, half, h)), a.crop((half, 0, 2 * half, h))

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        a, b = self.load_pair(index)
        params = self.transform.params(self._rng(index))
        return self.transform(a, params), self.transform(b, params)


class UnpairedFolder(_Seeded):
    """CycleGAN data: A ``index`` with a B drawn at random (seeded by seed, epoch, index).

    The epoch's length is the larger of the two folders, as in the reference.
    """

    def __init__(self, data: str | os.PathLike, split: str = "train", image_size: int = 256,
                 load_size: int | None = None, augment: bool = True, seed: int = 0,
                 max_items: int | None = None) -> None:
        root = find_unpaired_root(data)
        self.files: dict[str, list[Path]] = {}
        self.reports: dict[str, ScanReport] = {}
        for side in ("A", "B"):
            folder = root / f"{split}{side}"
            if not folder.is_dir():
                raise DatasetError(f"{root} has no {split}{side}/ folder")
            report = ScanReport(str(folder))
            self.files[side] = [p for p, _ in _scan_images(folder, report)]
            if max_items is not None:
                self.files[side] = self.files[side][:max_items]
            report.used = len(self.files[side])
            self.reports[side] = report
            if not self.files[side]:
                raise DatasetError(f"no usable images in {folder} ({report.summary()})")
        self.transform = _Transform(load_size or default_load_size(image_size), image_size, augment)
        self.seed = seed
        self.augment = augment
        self.description = (f"{len(self.files['A'])} A and {len(self.files['B'])} B images "
                            f"(unpaired) from {root}/{split}A|B")

    @property
    def report(self) -> ScanReport:
        a, b = self.reports["A"], self.reports["B"]
        return ScanReport(f"{a.folder} + {b.folder}", a.used + b.used, a.not_images + b.not_images,
                          a.corrupt + b.corrupt, [])

    def __len__(self) -> int:
        return max(len(self.files["A"]), len(self.files["B"]))

    def _load(self, path: Path) -> Image.Image:
        try:
            return load_image(path)
        except ImageError as exc:
            raise DatasetError(f"cannot read training image {path}: {exc}") from None

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        fa, fb = self.files["A"], self.files["B"]
        rng = self._rng(index)
        pa = fa[index % len(fa)]
        # training draws B at random (no fixed pairing); evaluation pairs by position
        pb = fb[int(rng.integers(len(fb)))] if self.augment else fb[index % len(fb)]
        a = self.transform(self._load(pa), self.transform.params(rng))
        b = self.transform(self._load(pb), self.transform.params(rng))
        return a, b


class Unpaired(_Seeded):
    """Unpairs a paired dataset for CycleGAN: A of ``index`` with B of a random other item.

    Lets CycleGAN train on a pix2pix folder or on rendered pairs without using the pairing.
    """

    def __init__(self, paired: torch.utils.data.Dataset, seed: int = 0) -> None:
        self.paired, self.seed = paired, seed
        self.description = f"{getattr(paired, 'description', type(paired).__name__)}, used unpaired"

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        if hasattr(self.paired, "set_epoch"):
            self.paired.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.paired)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        j = int(self._rng(index, stream=1).integers(len(self.paired)))
        return self.paired[index][0], self.paired[j][1]
