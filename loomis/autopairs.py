"""Portraits → pix2pix training pairs: aligned photo crop | its Loomis construction.

The original experiment was starved of pairs: someone had to draw every construction by
hand. The geometric engine draws them, so any folder of portraits becomes a dataset.
For each photo, the face's pose is estimated, a square around the whole head (ball,
ears and chin, from the projected construction) is cut out so the head is centred, and
the construction is drawn *through the crop's camera*: a crop is a shift of the principal
point and a resize is a change of focal length, so the lines still sit exactly on the
face, perspective included.

Layout (the pix2pix "aligned" convention, and the same as ``make_dataset.py synthetic``):
``OUT/paired/{train,val,test}/NAME.png``, each image ``2S × S`` with the photo (A) on
the left and the drawing (B) on the right. The split is
decided by a hash of the file name, so adding photos later never moves old ones between
splits. ``OUT/report.json`` lists every skipped file with the reason.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from loomis.camera import Camera
from loomis.draw import DrawStyle
from loomis.engine import GRAPHITE, draw_faces
from loomis.head import LoomisProportions, construction_lines
from loomis.imageio import ImageError, ImageLike, load_image
from loomis.pose import FacePose, PoseConfig, PoseEstimator

__all__ = ["PairConfig", "Pair", "Skip", "PairReport", "make_pair", "make_pairs",
           "crop_camera", "SKIP_REASONS"]

SKIP_REASONS = ("unreadable", "no face", "too small", "cut off")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".ppm",
                  ".pgm"}


@dataclass(frozen=True)
class PairConfig:
    """How pairs are cut and drawn."""

    size: int = 256                 # S: each half is S × S pixels
    margin: float = 0.15            # free border around the head, as a fraction of it
    min_crop: int = 0               # smaller head crops are "too small" (0: S / 2)
    max_outside: float = 0.2        # crops more than this fraction off the photo: "cut off"
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    features: bool = False          # also sketch the face's own features on B
    style: DrawStyle = GRAPHITE
    proportions: LoomisProportions = field(default_factory=LoomisProportions)

    def __post_init__(self) -> None:
        if not 32 <= self.size <= 4096:
            raise ValueError(f"pair size must be in [32, 4096] pixels, got {self.size}")
        if not 0 <= self.margin <= 2:
            raise ValueError(f"margin must be in [0, 2], got {self.margin}")
        if not (0 <= self.val_fraction and 0 <= self.test_fraction
                and self.val_fraction + self.test_fraction < 1):
            raise ValueError("val_fraction and test_fraction must be >= 0 and sum below 1")

    @property
    def smallest_crop(self) -> int:
        return self.min_crop or self.size // 2


@dataclass(frozen=True)
class Pair:
    """One pair: the side-by-side image and what it shows."""

    image: Image.Image              # 2S × S, A | B
    face: FacePose                  # the pose, in the original photo's camera
    crop: tuple[int, int, int]      # x0, y0, side of the square cut from the photo
    camera: Camera                  # the crop's camera, S × S


@dataclass(frozen=True)
class Skip:
    file: str
    reason: str                     # one of SKIP_REASONS
    detail: str


@dataclass
class PairReport:
    written: dict[str, int] = field(default_factory=lambda: {"train": 0, "val": 0, "test": 0})
    skipped: list[Skip] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"written": self.written, "total_written": sum(self.written.values()),
                "skipped_by_reason": dict(Counter(s.reason for s in self.skipped)),
                "skipped": [dataclasses.asdict(s) for s in self.skipped]}

    def summary(self) -> str:
        lines = [f"wrote {sum(self.written.values())} pairs "
                 f"(train {self.written['train']}, val {self.written['val']}, "
                 f"test {self.written['test']}); skipped {len(self.skipped)}"]
        for reason, n in Counter(s.reason for s in self.skipped).most_common():
            lines.append(f"  {reason}: {n}")
        for s in self.skipped[:10]:
            lines.append(f"    {s.file}: {s.detail}")
        if len(self.skipped) > 10:
            lines.append(f"    ... {len(self.skipped) - 10} more in report.json")
        return "\n".join(lines)


class SkipError(ValueError):
    """This photo cannot give a pair; ``reason`` is one of SKIP_REASONS."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def crop_camera(camera: Camera, x0: float, y0: float, side: float, size: int) -> Camera:
    """The camera of a square crop ``(x0, y0, side)`` of ``camera``'s image resized to
    ``size``: the principal point moves with the crop and everything scales by
    ``size / side``. Drawing through it keeps 3D geometry registered with the crop."""
    k = size / side
    cx, cy = camera.principal_point
    return Camera(size, size, camera.focal * k, cx=(cx - x0) * k, cy=(cy - y0) * k)


def _head_square(face: FacePose, prop: LoomisProportions, margin: float):
    """Square (x0, y0, side) around the whole projected construction of one face."""
    pts = np.concatenate([s.points for s in construction_lines(face.head, face.camera, prop,
                                                               samples=32)])
    lo, hi = pts.min(0), pts.max(0)
    side = float((hi - lo).max()) * (1.0 + 2.0 * margin)
    cx, cy = (lo + hi) / 2.0
    return cx - side / 2.0, cy - side / 2.0, side


def make_pair(image: ImageLike, estimator: PoseEstimator,
              config: PairConfig = PairConfig()) -> Pair:
    """One photo → one pair, for its largest face. Raises :class:`SkipError` (a
    ValueError) with a reason when the photo cannot give a good pair."""
    try:
        photo = load_image(image)
    except ImageError as exc:
        raise SkipError("unreadable", str(exc)) from None
    result = estimator.analyse(photo)
    if not result.faces:
        reason = "too small" if result.too_small else "no face"
        raise SkipError(reason, _no_face_detail(result))
    face = result.faces[0]
    prop = config.proportions
    x0, y0, side = _head_square(face, prop, config.margin)
    if side < config.smallest_crop:
        raise SkipError("too small", f"the head is {side:.0f} px across; at least "
                        f"{config.smallest_crop} px are needed for {config.size} px pairs")
    w, h = photo.size
    inside = (max(0.0, min(w, x0 + side) - max(0.0, x0)) *
              max(0.0, min(h, y0 + side) - max(0.0, y0))) / side ** 2
    if 1.0 - inside > config.max_outside:
        raise SkipError("cut off", f"{100 * (1 - inside):.0f}% of the head's square lies "
                        f"outside the photo")
    s = config.size
    # crop + resize in one affine warp (sub-pixel exact; borders replicate the edge)
    k = s / side
    m = np.array([[k, 0.0, -x0 * k], [0.0, k, -y0 * k]])
    interp = cv2.INTER_AREA if k < 1 else cv2.INTER_CUBIC
    a = cv2.warpAffine(np.asarray(photo), m, (s, s), flags=interp,
                       borderMode=cv2.BORDER_REPLICATE)
    cam = crop_camera(face.camera, x0, y0, side, s)
    faces = [_recamera(f, cam, x0, y0, k) for f in result.faces]
    faces = [f for f in faces if -0.5 * s < f.center[0] < 1.5 * s and
             -0.5 * s < f.center[1] < 1.5 * s]
    b = draw_faces(np.full((s, s, 3), 255, np.uint8), faces, style=config.style,
                   features=config.features, proportions=prop)
    return Pair(Image.fromarray(np.concatenate([a, b], axis=1)), face,
                (round(x0), round(y0), round(side)), cam)


def _recamera(face: FacePose, cam: Camera, x0: float, y0: float, k: float) -> FacePose:
    """The same face seen through the crop's camera (landmarks moved with the crop)."""
    return dataclasses.replace(
        face, camera=cam, landmarks=(face.landmarks - np.array([x0, y0])) * k,
        box=tuple((np.asarray(face.box) - np.array([x0, y0, x0, y0])) * k),
        u_pixels=face.u_pixels * k)


def _no_face_detail(result) -> str:
    try:
        result.require()
    except ValueError as exc:
        return str(exc)
    return "no face"


def split_of(name: str, config: PairConfig) -> str:
    """train / val / test from a stable hash of the file name."""
    h = int.from_bytes(hashlib.sha1(name.encode("utf-8")).digest()[:8], "big") / 2.0 ** 64
    if h < config.test_fraction:
        return "test"
    if h < config.test_fraction + config.val_fraction:
        return "val"
    return "train"


def make_pairs(photos: str | Path, out: str | Path, config: PairConfig = PairConfig(), *,
               estimator: PoseEstimator | None = None, verbose: bool = True) -> PairReport:
    """Every picture under ``photos`` (recursively) → ``out/paired/{train,val,test}/``, plus
    ``out/report.json``. Files that are not pictures by name are ignored; pictures that
    cannot be used are reported with the reason."""
    photos, out = Path(photos), Path(out)
    if not photos.is_dir():
        raise ValueError(f"{photos} is not a folder of photos")
    files = sorted(p for p in photos.rglob("*") if p.is_file()
                   and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) in {photos}")
    own = estimator is None
    est = estimator or PoseEstimator(PoseConfig(ball_radius=config.proportions.radius))
    report = PairReport()
    try:
        for i, path in enumerate(files):
            rel = path.relative_to(photos).as_posix()
            try:
                pair = make_pair(path, est, config)
            except SkipError as exc:
                report.skipped.append(Skip(rel, exc.reason, str(exc)))
                continue
            split = split_of(rel, config)
            dest = out / "paired" / split / (Path(rel).with_suffix("").as_posix().replace("/", "__")
                                  + ".png")
            dest.parent.mkdir(parents=True, exist_ok=True)
            pair.image.save(dest)
            report.written[split] += 1
            if verbose and (i + 1) % 100 == 0:
                print(f"{i + 1}/{len(files)} photos")
    finally:
        if own:
            est.close()
    out.mkdir(parents=True, exist_ok=True)
    data = report.to_json()
    data["config"] = {"size": config.size, "margin": config.margin,
                      "val_fraction": config.val_fraction,
                      "test_fraction": config.test_fraction, "features": config.features}
    (out / "report.json").write_text(json.dumps(data, indent=1))
    if verbose:
        print(report.summary())
    return report


def main(argv: list[str] | None = None) -> PairReport:
    """``python -m loomis.autopairs --photos DIR --out DIR --size S`` (also reachable as
    ``python train/make_dataset.py pairs ...``)."""
    import argparse

    ap = argparse.ArgumentParser(description="portraits → pix2pix pairs (photo | Loomis)")
    add_arguments(ap)
    return run(ap.parse_args(argv))


def add_arguments(ap) -> None:
    """The options of the ``pairs`` command, for any argparse (sub)parser."""
    ap.add_argument("--photos", type=Path, required=True, help="folder of portraits")
    ap.add_argument("--out", type=Path, required=True, help="dataset folder to write")
    ap.add_argument("--size", type=int, default=256, help="side of each half, pixels")
    ap.add_argument("--margin", type=float, default=0.15)
    ap.add_argument("--val", type=float, default=0.1, help="fraction for val/")
    ap.add_argument("--test", type=float, default=0.1, help="fraction for test/")
    ap.add_argument("--features", action="store_true",
                    help="also sketch eyes, nose, mouth and jaw on the drawing")


def run(args) -> PairReport:
    config = PairConfig(size=args.size, margin=args.margin, val_fraction=args.val,
                        test_fraction=args.test, features=args.features)
    return make_pairs(args.photos, args.out, config)


if __name__ == "__main__":
    main()
