"""Portraits → training sets: aligned photo crop | its Loomis construction.

The original experiment was starved of pairs: someone had to draw every construction by
hand. The geometric engine draws them, so any folder of portraits becomes a dataset.
For each photo, the face's pose is estimated, the square the generators work in is cut
out around the whole head (:func:`loomis.pipeline.head_square`, the framing the app
crops faces to at run time), and the construction is drawn *through the crop's camera*:
a crop is a shift of the principal point and a resize is a change of focal length, so
the lines still sit exactly on the face, perspective included.

Layout (the pix2pix "aligned" convention, and the same as ``make_dataset.py synthetic``):
``OUT/paired/{train,val,test}/NAME.png``, each image ``2S × S`` with the photo (A) on
the left and the drawing (B) on the right; ``OUT/unpaired/{trainA,trainB,testA,testB}``
the same halves for CycleGAN; ``OUT/pairs.jsonl`` one line per pair (source, split, pose,
variation); ``OUT/report.json`` every skipped file with the reason.

The split is decided by a hash of the file name (:func:`split_of`), so adding photos
later never moves old ones between splits, and ``test`` is the held-out set no training
run reads (:func:`held_out` lists it for the benchmarks). Training photos can be varied
(``PairConfig.variations``: mirror, a small turn, zoom and shift of the square, colour;
the drawing's line weight, hidden-line style, a sketchy hand and the features), each
variation drawn from a generator seeded by the file name, so the same command gives the
same bytes. Rendered heads (:mod:`loomis.train.synthetic`) can be mixed in
(``PairConfig.rendered``, a ratio to the real training pairs): they give the poses
portraits lack, and go through the same estimate-crop-draw path as the photos.
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
from loomis.engine import GRAPHITE, draw_faces, line_width
from loomis.head import LoomisProportions
from loomis.imageio import ImageError, ImageLike, load_image
from loomis.pipeline import HEAD_MARGIN, crop_camera, cut_square, head_square
from loomis.pose import FacePose, PoseConfig, PoseEstimator

__all__ = ["PairConfig", "Variation", "Pair", "Skip", "PairReport", "make_pair", "make_pairs",
           "crop_camera", "split_of", "held_out", "SKIP_REASONS", "HELD_OUT_FRACTION"]

SKIP_REASONS = ("unreadable", "no face", "too small", "cut off")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".ppm",
                  ".pgm"}
#: The share of a folder's photos held out (split "test") by default.
HELD_OUT_FRACTION = 0.1
#: The random stream of the rendered heads mixed into a set (apart from the synthetic
#: sets' streams 0-2 and the benchmarks' held-out seed).
RENDERED_STREAM = 7
HIDDEN_STYLES = ("dashed", "faint", "omit")


@dataclass(frozen=True)
class PairConfig:
    """How pairs are cut and drawn.

    ``variations``: extra varied copies of each training photo. ``features``: the share of
    pairs whose drawing also sketches the face's own features (decided per pair).
    ``rendered``: rendered heads added to the training split, as a ratio to the real
    training pairs (0.5: one rendered head for every two real pairs)."""

    size: int = 256                 # S: each half is S × S pixels
    margin: float = HEAD_MARGIN     # free border around the head, as a fraction of it
    min_crop: int = 0               # smaller head crops are "too small" (0: S / 2)
    max_outside: float = 0.2        # crops more than this fraction off the photo: "cut off"
    val_fraction: float = 0.05
    test_fraction: float = HELD_OUT_FRACTION
    features: float = 0.0
    variations: int = 0
    rendered: float = 0.0
    vary_drawing: bool = True       # variations also vary the drawing's hand (off: photo only)
    seed: int = 0
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
        if not 0.0 <= float(self.features) <= 1.0:
            raise ValueError(f"features is a share of the pairs, in [0, 1], got {self.features}")
        if not 0 <= self.variations <= 50:
            raise ValueError(f"variations must be in [0, 50] copies, got {self.variations}")
        if not 0.0 <= self.rendered <= 20.0:
            raise ValueError(f"rendered is a ratio to the real pairs in [0, 20], got {self.rendered}")

    @property
    def smallest_crop(self) -> int:
        return self.min_crop or self.size // 2


@dataclass(frozen=True)
class Variation:
    """How one pair departs from the plain crop and drawing (all off by default)."""

    mirror: bool = False
    turn: float = 0.0                # degrees, the whole photo turned about its centre
    zoom: float = 1.0                # the square's side divided by this
    shift: tuple[float, float] = (0.0, 0.0)  # the square moved, fractions of its side
    brightness: float = 1.0
    contrast: float = 1.0
    saturation: float = 1.0
    hue: float = 0.0                 # degrees
    gray: bool = False
    width: float = 1.0               # line weight, times the automatic one
    hidden: str = "dashed"
    sketchy: bool = False
    features: bool = False
    seed: int = 0                    # of the sketchy hand's wobble

    @classmethod
    def sample(cls, rng: np.random.Generator, features: float = 0.0,
               drawing: bool = True) -> "Variation":
        """A small random variation: what a different photo of the same sitter, or (with
        ``drawing``) a different hand drawing the same construction, might look like."""
        v = cls(mirror=bool(rng.random() < 0.5), turn=float(rng.uniform(-12, 12)),
                zoom=float(np.exp(rng.uniform(-0.1, 0.1))),
                shift=(float(rng.uniform(-0.05, 0.05)), float(rng.uniform(-0.05, 0.05))),
                brightness=float(rng.uniform(0.75, 1.25)),
                contrast=float(rng.uniform(0.75, 1.25)),
                saturation=float(rng.uniform(0.6, 1.4)), hue=float(rng.uniform(-10, 10)),
                gray=bool(rng.random() < 0.1), width=float(np.exp(rng.uniform(-0.5, 0.8))),
                hidden=str(rng.choice(HIDDEN_STYLES, p=[0.5, 0.25, 0.25])),
                sketchy=bool(rng.random() < 0.3), features=bool(rng.random() < features),
                seed=int(rng.integers(2 ** 31)))
        return v if drawing else dataclasses.replace(v, width=1.0, hidden="dashed",
                                                     sketchy=False)

    def recolour(self, rgb: np.ndarray) -> np.ndarray:
        """The photo with this variation's light and colour."""
        if (self.brightness, self.contrast, self.saturation, self.hue, self.gray) == \
                (1.0, 1.0, 1.0, 0.0, False):
            return rgb
        x = rgb.astype(np.float32) * self.brightness
        x = (x - x.mean()) * self.contrast + x.mean()
        x = np.clip(x, 0, 255).astype(np.uint8)
        hsv = cv2.cvtColor(x, cv2.COLOR_RGB2HSV_FULL).astype(np.float32)
        hsv[..., 0] = (hsv[..., 0] + self.hue * 256 / 360) % 256
        hsv[..., 1] = np.clip(hsv[..., 1] * (0.0 if self.gray else self.saturation), 0, 255)
        return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB_FULL)

    def reframe(self, rgb: np.ndarray) -> np.ndarray:
        """The photo mirrored and turned (the pose is then read from the result)."""
        if self.mirror:
            rgb = np.ascontiguousarray(rgb[:, ::-1])
        if self.turn:
            h, w = rgb.shape[:2]
            m = cv2.getRotationMatrix2D((w / 2, h / 2), self.turn, 1.0)
            rgb = cv2.warpAffine(rgb, m, (w, h), flags=cv2.INTER_CUBIC,
                                 borderMode=cv2.BORDER_REFLECT_101)
        return rgb


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
    rendered: int = 0                # of the training pairs, rendered heads

    def to_json(self) -> dict:
        return {"written": self.written, "total_written": sum(self.written.values()),
                "rendered": self.rendered,
                "skipped_by_reason": dict(Counter(s.reason for s in self.skipped)),
                "skipped": [dataclasses.asdict(s) for s in self.skipped]}

    def summary(self) -> str:
        lines = [f"wrote {sum(self.written.values())} pairs "
                 f"(train {self.written['train']}, val {self.written['val']}, "
                 f"test {self.written['test']}; {self.rendered} of them rendered heads); "
                 f"skipped {len(self.skipped)}"]
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


def make_pair(image: ImageLike, estimator: PoseEstimator, config: PairConfig = PairConfig(),
              variation: Variation = Variation()) -> Pair:
    """One photo → one pair, for its largest face. Raises :class:`SkipError` (a
    ValueError) with a reason when the photo cannot give a good pair."""
    try:
        photo = load_image(image)
    except ImageError as exc:
        raise SkipError("unreadable", str(exc)) from None
    rgb = variation.reframe(np.asarray(photo))
    result = estimator.analyse_array(rgb)
    if not result.faces:
        reason = "too small" if result.too_small else "no face"
        raise SkipError(reason, _no_face_detail(result))
    face = result.faces[0]
    prop = config.proportions
    x0, y0, side = head_square(face.head, face.camera, prop, config.margin)
    if side < config.smallest_crop:
        raise SkipError("too small", f"the head is {side:.0f} px across; at least "
                        f"{config.smallest_crop} px are needed for {config.size} px pairs")
    cx = x0 + side * (0.5 + variation.shift[0])
    cy = y0 + side * (0.5 + variation.shift[1])
    side /= variation.zoom
    x0, y0 = cx - side / 2, cy - side / 2
    h, w = rgb.shape[:2]
    inside = (max(0.0, min(w, x0 + side) - max(0.0, x0)) *
              max(0.0, min(h, y0 + side) - max(0.0, y0))) / side ** 2
    if 1.0 - inside > config.max_outside:
        raise SkipError("cut off", f"{100 * (1 - inside):.0f}% of the head's square lies "
                        f"outside the photo")
    s = config.size
    a = variation.recolour(cut_square(rgb, (x0, y0, side), s))
    k = s / side
    cam = crop_camera(face.camera, x0, y0, side, s)
    faces = [_recamera(f, cam, x0, y0, k) for f in result.faces]
    faces = [f for f in faces if -0.5 * s < f.center[0] < 1.5 * s and
             -0.5 * s < f.center[1] < 1.5 * s]
    style = dataclasses.replace(config.style, hidden=variation.hidden,
                                width=line_width(faces[:1]) * variation.width,
                                sketchy=variation.sketchy, seed=variation.seed)
    b = draw_faces(np.full((s, s, 3), 255, np.uint8), faces, style=style,
                   features=variation.features, proportions=prop)
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


def split_of(name: str, config: PairConfig = PairConfig()) -> str:
    """train / val / test from a stable hash of the file name (``test`` first, so the
    held-out set depends on ``test_fraction`` alone)."""
    h = int.from_bytes(hashlib.sha1(name.encode("utf-8")).digest()[:8], "big") / 2.0 ** 64
    if h < config.test_fraction:
        return "test"
    if h < config.test_fraction + config.val_fraction:
        return "val"
    return "train"


def photo_files(photos: str | Path) -> list[Path]:
    """The pictures under a folder (recursively, by suffix), sorted."""
    photos = Path(photos)
    if not photos.is_dir():
        raise ValueError(f"{photos} is not a folder of photos")
    files = sorted(p for p in photos.rglob("*") if p.is_file()
                   and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) in {photos}")
    return files


def held_out(photos: str | Path, fraction: float = HELD_OUT_FRACTION) -> list[Path]:
    """The photos of a folder that a dataset made from it with ``test_fraction=fraction``
    holds out: what the real-photo benchmarks judge on."""
    root = Path(photos)
    cfg = PairConfig(test_fraction=fraction, val_fraction=0.0)
    return [p for p in photo_files(root)
            if split_of(p.relative_to(root).as_posix(), cfg) == "test"]


def _rng(config: PairConfig, *key) -> np.random.Generator:
    digest = hashlib.sha1(json.dumps([config.seed, *key]).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "big"))


def _jobs(files: list[Path], root: Path, config: PairConfig):
    """(source label, picture, split, name, copy, variation) for every real pair to make;
    copy 0 is the plain pair, 1… the varied ones."""
    for path in files:
        rel = path.relative_to(root).as_posix()
        split = split_of(rel, config)
        name = Path(rel).with_suffix("").as_posix().replace("/", "__")
        plain = Variation(features=bool(_rng(config, rel, "features").random() < config.features))
        yield rel, path, split, name, 0, plain
        if split == "train":
            for j in range(1, config.variations + 1):
                yield rel, path, split, f"{name}~v{j}", j, \
                    Variation.sample(_rng(config, rel, j), config.features,
                                     config.vary_drawing)


def make_pairs(photos: str | Path, out: str | Path, config: PairConfig = PairConfig(), *,
               estimator: PoseEstimator | None = None, verbose: bool = True) -> PairReport:
    """Every picture under ``photos`` (recursively) → ``out/paired/{train,val,test}/`` and
    ``out/unpaired/``, plus ``out/pairs.jsonl`` and ``out/report.json``. Files that are not
    pictures by name are ignored; pictures that cannot be used are reported with the
    reason. Rendered heads (``config.rendered``) join the training split."""
    photos, out = Path(photos), Path(out)
    files = photo_files(photos)
    own = estimator is None
    est = estimator or PoseEstimator(PoseConfig(ball_radius=config.proportions.radius))
    report = PairReport()
    records: list[dict] = []

    def write(pair: Pair, split: str, name: str, source: str, variation: Variation) -> None:
        s = config.size
        dest = out / "paired" / split / f"{name}.png"
        dest.parent.mkdir(parents=True, exist_ok=True)
        pair.image.save(dest)
        if split != "val":
            side = "train" if split == "train" else "test"
            for half, box in (("A", (0, 0, s, s)), ("B", (s, 0, 2 * s, s))):
                folder = out / "unpaired" / f"{side}{half}"
                folder.mkdir(parents=True, exist_ok=True)
                pair.image.crop(box).save(folder / f"{name}.png")
        report.written[split] += 1
        records.append({"file": f"paired/{split}/{name}.png", "source": source, "split": split,
                        "yaw": round(pair.face.yaw, 3), "pitch": round(pair.face.pitch, 3),
                        "roll": round(pair.face.roll, 3), "crop": list(pair.crop),
                        "variation": dataclasses.asdict(variation)})

    settings = _settings(config, photos)
    _check_out(out, settings)
    try:
        jobs = list(_jobs(files, photos, config))
        skipped: set[str] = set()
        for i, (rel, path, split, name, copy, variation) in enumerate(jobs):
            if rel in skipped:          # no varied copies of a photo that gives no pair
                continue
            try:
                pair = make_pair(path, est, config, variation)
            except SkipError as exc:
                if copy == 0:
                    report.skipped.append(Skip(rel, exc.reason, str(exc)))
                    skipped.add(rel)
                continue
            write(pair, split, name, rel, variation)
            if verbose and (i + 1) % 200 == 0:
                print(f"{i + 1}/{len(jobs)} real pairs")
        _add_rendered(config, est, write, report, verbose)
    finally:
        if own:
            est.close()
    out.mkdir(parents=True, exist_ok=True)
    (out / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    data = report.to_json()
    data["config"] = {**settings, "photo_files": len(files)}
    (out / "report.json").write_text(json.dumps(data, indent=1))
    if verbose:
        print(report.summary())
    return report


def _settings(config: PairConfig, photos: Path) -> dict:
    """What decides a set's files (recorded in report.json, checked when adding to it)."""
    return {"size": config.size, "margin": config.margin, "val_fraction": config.val_fraction,
            "test_fraction": config.test_fraction, "features": config.features,
            "variations": config.variations, "rendered": config.rendered,
            "vary_drawing": config.vary_drawing, "seed": config.seed,
            "photos": str(photos.resolve())}


def _check_out(out: Path, settings: dict) -> None:
    """Refuse to write into a folder holding a set made with other settings: its pairs
    would stay beside the new ones, where training reads them. The same settings again
    (photos added to the folder, say) rewrite the same files and add the new ones."""
    report = out / "report.json"
    if not report.is_file():
        if (out / "paired").is_dir() and any((out / "paired").rglob("*.png")):
            raise ValueError(f"{out} already holds pairs but no report.json: use a new --out "
                             "folder")
        return
    try:
        old = json.loads(report.read_text()).get("config", {})
    except (OSError, ValueError):
        old = {}
    old = {k: v for k, v in old.items() if k != "photo_files"}
    if old != settings:
        changed = sorted(k for k in settings.keys() | old.keys() if old.get(k) != settings.get(k))
        raise ValueError(f"{out} holds a set made with other settings ({', '.join(changed)} "
                         "differ): use a new --out folder, or the same settings to add to it")


def _add_rendered(config: PairConfig, est: PoseEstimator, write, report: PairReport,
                  verbose: bool) -> None:
    """``config.rendered`` × the real training pairs of rendered heads, into train."""
    from loomis.train.synthetic import render_photo, scene

    want = int(round(config.rendered * report.written["train"]))
    made = index = 0
    while made < want and index < 3 * want + 10:   # a few renders show no readable face
        params = scene(config.seed, index, RENDERED_STREAM)
        index += 1
        rng = _rng(config, "rendered", index)
        variation = dataclasses.replace(Variation.sample(rng, config.features, config.vary_drawing), turn=0.0,
                                        mirror=False)
        try:
            pair = make_pair(render_photo(params, max(256, config.size * 5 // 4)), est, config,
                             variation)
        except SkipError:
            continue
        write(pair, "train", f"rendered_{index - 1:06d}", f"rendered:{index - 1}", variation)
        report.rendered += 1
        made += 1
        if verbose and made % 200 == 0:
            print(f"{made}/{want} rendered pairs")


def main(argv: list[str] | None = None) -> PairReport:
    """``python -m loomis.train.autopairs --photos DIR --out DIR --size S`` (also reachable as
    ``python train/make_dataset.py pairs ...``)."""
    import argparse

    ap = argparse.ArgumentParser(description="portraits → pix2pix pairs (photo | Loomis)")
    add_arguments(ap)
    return run(ap.parse_args(argv))


def add_arguments(ap) -> None:
    """The options of the ``pairs`` command, for any argparse (sub)parser."""
    import argparse

    ap.add_argument("--photos", type=Path, required=True, help="folder of portraits")
    ap.add_argument("--out", type=Path, required=True, help="dataset folder to write")
    ap.add_argument("--size", type=int, default=256, help="side of each half, pixels")
    ap.add_argument("--margin", type=float, default=HEAD_MARGIN,
                    help="free border around the head (the generators' framing: keep it)")
    ap.add_argument("--val", type=float, default=0.05, help="fraction for val/")
    ap.add_argument("--test", type=float, default=HELD_OUT_FRACTION,
                    help="fraction held out (test/), chosen by a hash of the file name")
    ap.add_argument("--features", type=float, default=0.0, nargs="?", const=1.0,
                    help="share of drawings that also sketch eyes, nose, mouth and jaw "
                    "(bare --features: all)")
    ap.add_argument("--variations", type=int, default=0,
                    help="varied copies of each training photo (mirror, turn, zoom, shift, "
                    "colour; line weight, hidden lines, a sketchy hand)")
    ap.add_argument("--rendered", type=float, default=0.0,
                    help="rendered heads added to train, as a ratio to the real training pairs")
    ap.add_argument("--vary-drawing", action=argparse.BooleanOptionalAction, default=True,
                    help="variations also vary the drawing's line weight, hidden lines and "
                    "hand (off for a photo → drawing set: one consistent target)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the variations and renders")


def run(args) -> PairReport:
    config = PairConfig(size=args.size, margin=args.margin, val_fraction=args.val,
                        test_fraction=args.test, features=args.features,
                        variations=args.variations, rendered=args.rendered,
                        vary_drawing=args.vary_drawing, seed=args.seed)
    return make_pairs(args.photos, args.out, config)


if __name__ == "__main__":
    main()
