"""How good are the shipped generators? Quality on a held-out synthetic set, with baselines.

    python benchmarks/quality.py [--n 120] [--size 256] [--quick] [--json FILE]
                                 [--figure docs/quality_samples.png] [--cache DIR]
                                 [--checkpoints checkpoints] [--update-cards]

The test set is rendered by :mod:`loomis.synthetic` from seed :data:`HELD_OUT_SEED`, a seed
no training command uses (the shipped data is ``make_dataset.py synthetic --seed 1``); item
``i`` is ``scene(HELD_OUT_SEED, i)``, so the same ``--n`` always gives the same images, on
any machine. Every pair is a photo-like render and its Loomis construction through the same
camera, and the render's pose is known exactly.

What is measured, per method (markdown tables on stdout, everything in ``--json``):

* **photo → drawing**: line precision / recall / F1 at 2 px (:mod:`loomis.metrics`) of
  every generator under ``checkpoints/`` whose config says photo → drawing, of the
  geometric engine (``photo_to_loomis(background="paper", hidden="omit")``: the targets
  draw hidden lines faint or not at all, never dashed), and of two baselines:
  a **Canny** edge map of the photo drawn black on white (what the original experiment's
  CycleGAN produced; thresholds :data:`CANNY`, the best F1 of a small grid on 24 *training*
  scenes, seed 1), and each generator's **untrained** twin (same config, the training
  scripts' initialisation, seed 0). Generators run as the app runs them, with
  ``Translator``'s mirror pass (the lines of the photo and of its mirror image); the
  ``, single pass`` rows (group "ablation") show the same weights without it, and the
  ``, construction fit`` rows the 3D construction fitted to the generator's lines
  (:mod:`loomis.construction_fit`) and drawn in the fitted pose, as the app does.
* **pose buckets** (the "angles look wrong" question): F1 per bucket of the true pose,
  relative to the line of sight: frontal |yaw| < 20°, three-quarter 20–60°, profile > 60°;
  tilted up pitch > 15°, tilted down pitch < −15°. Mean ± standard error and the count.
* **engine pose error**: mean absolute yaw / pitch / roll error of the engine's pose
  estimate against the render's pose, overall and per bucket, and how often it found no
  face (then its drawing is a blank page and scores F1 = 0: that is what a user gets).
  The construction-fit rows report the same for the pose they fitted.
* **drawing → photo**: L1, PSNR, SSIM of every drawing → photo generator and its untrained
  twin, the input being the target drawing of the same scene. A drawing fixes the head's
  place and turn, not its colours, light or background, so these scores are read against
  three yardsticks: a **flat grey page**, **another photo of the same drawing** (the scene
  re-rendered with a fresh look, a perfect answer to the drawing) and the **mean of
  APPEARANCE_K such photos** (about the best L1/SSIM any generator can reach from the
  drawing alone). And **faces read back**: the pose estimator run on the made photo, how
  often it finds a face and its pose error against the drawing's pose, which a flat page
  cannot win.
* ``ms/img``: wall time per image through :class:`loomis.inference.Translator` (ONNX
  Runtime where installed), measured during the run; noisy on a shared machine.

``--update-cards`` writes each shipped folder's README.md (model card) with these numbers,
the training record from its ``training.json`` (see :mod:`loomis.model_card`) and the
command that reproduces them. ``--quick`` (8 images, no figure unless asked) checks that
every section runs. With no shipped generators the engine and Canny rows still run.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

from loomis.camera import angles_from_matrix  # noqa: E402
from loomis.metrics import image_metrics, mean_metrics  # noqa: E402
from loomis.model_card import pose_cells  # noqa: E402
from loomis.nets import Generator, init_weights  # noqa: E402
from loomis.synthetic import SceneParams, render_pair, scene  # noqa: E402

if TYPE_CHECKING:
    from loomis.pose import PoseEstimator

#: The held-out seed. Training data must never be made with it (the shipped generators
#: were trained on seed 1); the model cards record it.
HELD_OUT_SEED = 20261124
#: Canny baseline: grey photo, no blur, hysteresis thresholds (low, high), 3x3 Sobel.
CANNY = (25, 75)
DRAWING, PHOTO = "drawing", "photo"
FRONTAL_MAX, PROFILE_MIN = 20.0, 60.0
PITCH_TILT = 15.0
BUCKETS = ("frontal", "three-quarter", "profile", "tilted up", "tilted down")
DEFAULT_N, QUICK_N = 120, 8
#: Photos averaged for the drawing → photo ceiling reference (see AppearanceReference).
APPEARANCE_K = 8


# --------------------------------------------------------------------------- test set

@dataclass
class Sample:
    """One held-out scene: its index, the rendered pair and the true pose (degrees,
    relative to the line of sight, the convention the pose estimator reports)."""

    index: int
    photo: Image.Image
    drawing: Image.Image
    yaw: float
    pitch: float
    roll: float
    params: SceneParams

    @property
    def buckets(self) -> list[str]:
        return pose_buckets(self.yaw, self.pitch)


def pose_buckets(yaw: float, pitch: float) -> list[str]:
    """The buckets a pose falls in: one yaw bucket (frontal |yaw| < 20°, three-quarter
    20–60°, profile > 60°), plus "tilted up"/"tilted down" when |pitch| > 15°."""
    a = abs(yaw)
    out = ["frontal" if a < FRONTAL_MAX else "three-quarter" if a <= PROFILE_MIN else "profile"]
    if pitch > PITCH_TILT:
        out.append("tilted up")
    elif pitch < -PITCH_TILT:
        out.append("tilted down")
    return out


def line_of_sight_angles(params: SceneParams) -> tuple[float, float, float]:
    """The render's head rotation as it looks from the camera (what a pose estimator can
    see): the camera-frame rotation with the turn of the view ray through the ball removed."""
    from loomis.pose import _ray_rotation

    pose = params.pose
    yaw, pitch, roll = angles_from_matrix(
        _ray_rotation(np.asarray(pose.position)).T @ pose.rotation)
    return float(yaw), float(pitch), float(roll)


def held_out_set(n: int, size: int = 256, seed: int = HELD_OUT_SEED,
                 cache: Path | None = None) -> list[Sample]:
    """Items ``0 … n-1`` of ``seed``'s scenes, rendered at ``size``² (read from ``cache``
    when it holds them, written there otherwise)."""
    if n < 1:
        raise ValueError(f"the test set needs at least one image, got n={n}")
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
        meta = cache / "set.json"
        want = {"seed": seed, "size": size}
        if meta.is_file() and json.loads(meta.read_text()) != want:
            raise ValueError(f"{cache} holds a test set of {meta.read_text()}, not {want}; "
                             "use another --cache folder")
        meta.write_text(json.dumps(want))
    samples = []
    for i in range(n):
        params = scene(seed, i)
        photo_path = cache / f"{i:05d}_photo.png" if cache else None
        drawing_path = cache / f"{i:05d}_drawing.png" if cache else None
        if cache and photo_path.is_file() and drawing_path.is_file():
            photo = Image.open(photo_path).convert("RGB")
            drawing = Image.open(drawing_path).convert("RGB")
        else:
            photo, drawing = render_pair(params, size)
            if cache:
                photo.save(photo_path)
                drawing.save(drawing_path)
        samples.append(Sample(i, photo, drawing, *line_of_sight_angles(params), params))
    return samples


# --------------------------------------------------------------------------- methods

@dataclass
class Method:
    """A way of making ``target`` images from ``source`` ones (``photo`` or ``drawing``).

    ``run`` maps a sample's source image to the output; ``group`` is "shipped",
    "ablation" (a shipped generator run another way), "engine", "baseline" or
    "reference". A reference is no method at all but a yardstick that knows the scene:
    its ``run`` is given the whole :class:`Sample`, and it is not timed.
    """

    name: str
    source: str
    target: str
    group: str
    run: Callable
    folder: Path | None = None
    extra: dict = field(default_factory=dict)

    @property
    def is_reference(self) -> bool:
        return self.group == "reference"


def canny_drawing(photo: Image.Image, thresholds: tuple[int, int] = CANNY) -> Image.Image:
    """A Canny edge map of a photo as a drawing: black 1-px edges on white."""
    gray = cv2.cvtColor(np.asarray(photo.convert("RGB")), cv2.COLOR_RGB2GRAY)
    edges = cv2.Canny(gray, *thresholds)
    return Image.fromarray(np.where(edges > 0, 0, 255).astype(np.uint8)).convert("RGB")


def flat_page(drawing: Image.Image) -> Image.Image:
    """Mid-grey everywhere, whatever the drawing: what SSIM and L1 reward on these scenes
    (even backgrounds, one head), so every photo score must be read against it."""
    return Image.new("RGB", drawing.size, (128, 128, 128))


class AppearanceReference:
    """Photos the drawing cannot tell apart from the target: the same scene re-rendered
    with colours, hair, light and background drawn afresh
    (:meth:`SceneParams.with_new_appearance`), pose, proportions and camera kept.

    With ``k=1`` it is *another photo of the same drawing*: a perfect answer to the
    drawing, scored against one random look. With ``k > 1`` it is the pixel mean of ``k``
    such photos, an estimate of the conditional mean that an L1/L2-trained generator
    converges to: roughly the best L1 and SSIM any generator can reach from the drawing
    alone. Each sample's looks come from its own seed, so the rows are reproducible.
    """

    def __init__(self, k: int) -> None:
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        self.k = k

    def __call__(self, sample: Sample) -> Image.Image:
        from loomis.synthetic import render_photo

        size = sample.photo.size[0]
        rng = np.random.default_rng([HELD_OUT_SEED, sample.index, self.k])
        photos = [np.asarray(render_photo(sample.params.with_new_appearance(rng), size),
                             np.float32) for _ in range(self.k)]
        return Image.fromarray(np.clip(np.mean(photos, axis=0) + 0.5, 0, 255).astype(np.uint8))


def photo_references(k: int = APPEARANCE_K) -> list[Method]:
    """The drawing → photo yardsticks: a flat grey page, another photo of the same
    drawing, and the mean of ``k`` such photos (see :class:`AppearanceReference`)."""
    return [Method("flat grey page (baseline)", DRAWING, PHOTO, "baseline", flat_page),
            Method("another photo of the same drawing (reference)", DRAWING, PHOTO,
                   "reference", AppearanceReference(1)),
            Method(f"mean of {k} photos of the same drawing (reference)", DRAWING, PHOTO,
                   "reference", AppearanceReference(k))]


def untrained_like(generator: Generator, seed: int = 0) -> Generator:
    """A generator with ``generator``'s config and the training scripts' initialisation
    (conv weights N(0, 0.02)), never trained: the floor a trained one must clear."""
    torch.manual_seed(seed)
    fresh = Generator(**generator.config.__dict__)
    init_weights(fresh, "normal", 0.02)
    return fresh.eval()


def shipped_folders(root: Path) -> list[Path]:
    """Every generator folder under ``root``, sorted (the pose net's is not one)."""
    from loomis.registry import generator_folders
    return generator_folders(root)


def shipped_pose_net(root: Path):
    """The pose net shipped under ``root``, or None."""
    from loomis.pose_net import PoseNet
    from loomis.registry import POSE_NET

    return PoseNet.from_pretrained(root / POSE_NET) if (root / POSE_NET).is_dir() else None


def generator_methods(root: Path, runtime: str = "auto", estimator=None,
                      pose_net=None) -> list[Method]:
    """Each shipped generator and, after it, its untrained twin. Drawing makers also get
    the construction fit from ``pose_net``'s hints, checked by ``estimator`` (a
    :class:`loomis.pose.PoseEstimator`) as the app does, and from the grid alone."""
    from loomis.inference import Translator

    out = []
    for folder in shipped_folders(root):
        tr = Translator.from_pretrained(folder, runtime=runtime)
        cfg = tr.config
        info = {"arch": cfg.arch, "ngf": cfg.ngf, "image_size": cfg.image_size,
                "parameters": sum(p.numel() for p in tr.generator.parameters()),
                "megabytes": round(sum(f.stat().st_size for f in folder.iterdir()
                                       if f.is_file()) / 1e6, 2)}
        out.append(Method(folder.name, cfg.source_domain, cfg.target_domain, "shipped",
                          tr, folder, info))
        if tr.mirror:   # what the mirror pass adds: the same weights, one pass
            out.append(Method(f"{folder.name}, single pass", cfg.source_domain,
                              cfg.target_domain, "ablation",
                              lambda img, tr=tr: tr(img, mirror=False), None, info))
        if cfg.target_domain == DRAWING:  # its lines as evidence for the 3D construction
            out.append(Method(f"{folder.name}, construction fit", cfg.source_domain,
                              cfg.target_domain, "ablation",
                              FittedMethod(tr, pose_net, estimator), None, info))
            if pose_net is not None:  # what the pose net's starting point adds
                out.append(Method(f"{folder.name}, construction fit, grid search",
                                  cfg.source_domain, cfg.target_domain, "ablation",
                                  FittedMethod(tr), None, info))
        twin = Translator(untrained_like(tr.generator), runtime=runtime)
        out.append(Method(f"untrained ({folder.name} config)", cfg.source_domain,
                          cfg.target_domain, "baseline", twin))
    return out


def first_pose(result) -> tuple[float, float, float] | None:
    """(yaw, pitch, roll) of the largest face of a pose estimate, None when it found none."""
    faces = result.faces
    return (faces[0].yaw, faces[0].pitch, faces[0].roll) if faces else None


class EngineMethod:
    """The geometric engine on paper, remembering the pose it drew each image in."""

    def __init__(self) -> None:
        from loomis.pose import PoseEstimator

        self.estimator = PoseEstimator()
        self.last_pose: tuple[float, float, float] | None = None
        self.last_seconds = 0.0

    def analyse(self, photo):
        """The estimator's analysis, kept: photo_to_loomis calls this once per image, so the
        pose scored is the one the drawing was made in, without estimating it twice."""
        result = self.estimator.analyse(photo)
        self.last_pose = first_pose(result)
        return result

    def __call__(self, photo: Image.Image) -> Image.Image:
        from loomis.engine import NoFaceError, photo_to_loomis

        self.last_pose = None
        t = time.perf_counter()
        try:
            out = photo_to_loomis(photo, background="paper", hidden="omit", estimator=self)
        except NoFaceError:
            out = Image.new("RGB", photo.size, (255, 255, 255))
        self.last_seconds = time.perf_counter() - t
        return out


class FittedMethod:
    """A drawing maker followed by :func:`loomis.construction_fit.fit_construction`: the
    construction drawn in the pose that best explains the generator's lines (as the app
    draws it with "fit the construction"), remembering that pose. With a pose net the fit
    starts from its reading of the photo, as in the app; without, it searches a grid."""

    def __init__(self, translator, pose_net=None, estimator=None) -> None:
        self.translator = translator
        self.pose_net, self.estimator = pose_net, estimator
        self.last_pose: tuple[float, float, float] | None = None
        self.last_seconds = 0.0

    def __call__(self, photo: Image.Image) -> Image.Image:
        from loomis.construction_fit import EmptyDrawingError, fit_construction, fit_from_photo

        t = time.perf_counter()
        drawing = self.translator(photo)
        try:
            fit = (fit_from_photo(drawing, photo, self.pose_net, self.estimator)
                   if self.pose_net is not None else fit_construction(drawing))
        except EmptyDrawingError:
            self.last_pose, out = None, drawing
        else:
            self.last_pose = (fit.pose.yaw, fit.pose.pitch, fit.pose.roll)
            out = fit.draw()
        self.last_seconds = time.perf_counter() - t
        return out


# --------------------------------------------------------------------------- evaluation

def _wrap(d: float) -> float:
    return (d + 180.0) % 360.0 - 180.0


def _mean_se(values: list[float]) -> tuple[float, float | None]:
    a = np.asarray(values, dtype=float)
    se = float(a.std(ddof=1) / math.sqrt(len(a))) if len(a) > 1 else None
    return float(a.mean()), se


def evaluate(method: Method, samples: list[Sample], keep: set[int] = frozenset(),
             readback: "PoseEstimator | None" = None) -> dict:
    """Run ``method`` on every sample: mean metrics, per-bucket F1 (drawings), pose errors,
    time per image; outputs of the samples in ``keep`` are returned for figures.

    Pose errors are the engine's own estimate for the engine, and for drawing → photo
    methods the pose that ``readback`` (a :class:`loomis.pose.PoseEstimator`) finds in the
    made photo: does the photo read as a face, turned the way the drawing is? This is the
    pix2pix paper's "FCN-score" idea (score outputs with an off-the-shelf recogniser) with
    the project's face-landmark model, and unlike SSIM a flat page cannot win it.
    """
    rows, times, outputs = [], [], {}
    pose_err: list[tuple[list[str], np.ndarray, float]] = []  # buckets, |error|, F1
    missed = 0
    engine = isinstance(method.run, (EngineMethod, FittedMethod))  # they know their pose
    reads_back = method.target == PHOTO and readback is not None
    for s in samples:
        src, tgt = (s.photo, s.drawing) if method.source == PHOTO else (s.drawing, s.photo)
        t = time.perf_counter()
        out = method.run(s) if method.is_reference else method.run(src)
        times.append(time.perf_counter() - t)
        if out.size != tgt.size:
            out = out.resize(tgt.size, Image.BICUBIC)
        kind = DRAWING if method.target == DRAWING else PHOTO
        rows.append(image_metrics(out, tgt, kind))
        if s.index in keep:
            outputs[s.index] = out
        if engine:
            times[-1] = method.run.last_seconds
            found = method.run.last_pose
        elif reads_back:
            found = first_pose(readback.analyse(out))
        else:
            continue
        if found is None:
            missed += 1
        else:
            err = np.abs([_wrap(f - t) for f, t in zip(found, (s.yaw, s.pitch, s.roll))])
            pose_err.append((s.buckets, err, rows[-1].get("f1", math.nan)))
    ms = None if method.is_reference else round(1000 * float(np.median(times)), 1)
    res = {"group": method.group, "source": method.source, "target": method.target,
           "n": len(samples), **{k: round(v, 4) for k, v in mean_metrics(rows).items()},
           "ms_per_image": ms, **method.extra}
    if method.target == DRAWING:
        res["buckets"] = {}
        for b in ("all", *BUCKETS):
            f1 = [r["f1"] for r, s in zip(rows, samples) if b == "all" or b in s.buckets]
            if f1:
                m, se = _mean_se(f1)
                res["buckets"][b] = {"f1": round(m, 4), "se": se if se is None else round(se, 4),
                                    "n": len(f1)}
    if engine or reads_back:
        res["faces_found"] = len(samples) - missed
        res["pose_mae"] = {}
        for b in ("all", *BUCKETS):
            hits = [(e, f1) for bs, e, f1 in pose_err if b == "all" or b in bs]
            total = sum(1 for s in samples if b == "all" or b in s.buckets)
            if hits:
                mae = np.mean([e for e, _ in hits], axis=0)
                res["pose_mae"][b] = {"yaw": round(float(mae[0]), 2), "pitch": round(float(mae[1]), 2),
                                      "roll": round(float(mae[2]), 2), "n": len(hits),
                                      "of": total}
                if engine:
                    res["pose_mae"][b]["f1_found"] = round(float(np.mean([f for _, f in hits])), 4)
    return {"result": res, "outputs": outputs}


# --------------------------------------------------------------------------- reporting

def _f(v, digits: int = 3) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def markdown_tables(results: dict[str, dict]) -> str:
    """The report: photo → drawing, F1 per pose bucket, engine pose error, drawing → photo."""
    p2d = {k: v for k, v in results.items() if v["target"] == DRAWING}
    d2p = {k: v for k, v in results.items() if v["target"] == PHOTO}
    lines = ["### Photo → drawing (line P/R/F1 at 2 px)", "",
             "| method | kind | precision | recall | F1 | faces found | pose MAE yaw/pitch/roll (°) | ms/img |",
             "|---|---|---|---|---|---|---|---|"]
    for name, r in p2d.items():
        found, pose = pose_cells(r, empty="")
        lines.append(f"| {name} | {r['group']} | {_f(r['precision'])} | {_f(r['recall'])} | "
                     f"**{_f(r['f1'])}** | {found} | {pose} | {r['ms_per_image']:.0f} |")
    if p2d:
        counts = next(iter(p2d.values()))["buckets"]
        head = " | ".join(f"{b} (n={counts[b]['n'] if b in counts else 0})" for b in ("all", *BUCKETS))
        lines += ["", "### Photo → drawing F1 per pose bucket (mean ± s.e.)", "",
                  f"| method | {head} |", "|---" * (len(BUCKETS) + 2) + "|"]
        for name, r in p2d.items():
            cells = [f"{_f(r['buckets'][b]['f1'])} ± {_f(r['buckets'][b]['se'], 2)}"
                     if b in r["buckets"] else "–" for b in ("all", *BUCKETS)]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    engine = [(k, v) for k, v in p2d.items() if "pose_mae" in v]
    for name, r in engine:
        lines += ["", f"### {name}: pose error per bucket (mean absolute, degrees, over the "
                  "faces it found) and F1 on those faces", "",
                  "| bucket | faces found | yaw | pitch | roll | F1 when found |",
                  "|---|---|---|---|---|---|"]
        for b, e in r["pose_mae"].items():
            lines.append(f"| {b} | {e['n']}/{e['of']} | {e['yaw']:.1f} | {e['pitch']:.1f} | "
                         f"{e['roll']:.1f} | {_f(e['f1_found'])} |")
    if d2p:
        lines += ["", "### Drawing → photo (L1/PSNR/SSIM against the held-out photo; faces "
                  "read back: the face-landmark model finds a face in the made photo, and "
                  "its pose error against the drawing's)", "",
                  "| method | kind | L1 ↓ | PSNR (dB) ↑ | SSIM ↑ | faces read back | "
                  "pose MAE yaw/pitch/roll (°) | ms/img |", "|---|---|---|---|---|---|---|---|"]
        for name, r in d2p.items():
            found, pose = pose_cells(r, empty="")
            lines.append(f"| {name} | {r['group']} | {_f(r['l1'], 4)} | {_f(r['psnr'], 2)} | "
                         f"**{_f(r['ssim'])}** | {found} | {pose} | {_f(r['ms_per_image'], 0)} |")
    return "\n".join(lines)


def pick_examples(samples: list[Sample], k: int = 5) -> list[int]:
    """One sample per bucket (frontal, three-quarter, profile, up, down) where possible."""
    chosen: list[int] = []
    for b in BUCKETS:
        for s in samples:
            if b in s.buckets and s.index not in chosen:
                chosen.append(s.index)
                break
    for s in samples:
        if len(chosen) >= k:
            break
        if s.index not in chosen:
            chosen.append(s.index)
    return chosen[:k]


def sample_figure(samples: list[Sample], indices: list[int], methods: list[Method],
                  outputs: dict[str, dict[int, Image.Image]], path: Path, tile: int = 128) -> Path:
    """A grid: one row per chosen sample; columns photo, target drawing, each photo → drawing
    method, then each drawing → photo method (its input is the target drawing)."""
    p2d = [m for m in methods if m.target == DRAWING]
    d2p = [m for m in methods if m.target == PHOTO]
    cols = ["photo (input)", "drawing (target)"] + [m.name for m in p2d] + [m.name for m in d2p]
    labels = [textwrap.wrap(label, width=tile // 6) for label in cols]  # ~6 px a character
    head = 4 + 11 * max(len(lines) for lines in labels)
    canvas = Image.new("RGB", (tile * len(cols), head + tile * len(indices)), "white")
    draw = ImageDraw.Draw(canvas)
    for c, lines in enumerate(labels):
        draw.multiline_text((c * tile + 3, 2), "\n".join(lines), fill=(0, 0, 0), spacing=1)
    by_index = {s.index: s for s in samples}
    for r, i in enumerate(indices):
        s = by_index[i]
        row = [s.photo, s.drawing] + [outputs[m.name][i] for m in p2d + d2p]
        for c, img in enumerate(row):
            canvas.paste(img.resize((tile, tile), Image.LANCZOS), (c * tile, head + r * tile))
        label = f"yaw {s.yaw:.0f} pitch {s.pitch:.0f}"
        x0, y0 = 2, head + r * tile + tile - 13
        draw.rectangle((x0, y0, x0 + int(draw.textlength(label)) + 4, y0 + 12), fill="white")
        draw.text((x0 + 2, y0 + 1), label, fill=(200, 30, 30))
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)
    return path


def run(n: int, size: int, checkpoints: Path, runtime: str = "auto", cache: Path | None = None,
        figure: Path | None = None, log=print) -> dict:
    """The whole benchmark; returns ``{"settings": …, "results": {method: metrics}}``."""
    t0 = time.perf_counter()
    samples = held_out_set(n, size, cache=cache)
    log(f"held-out set: {n} scenes of seed {HELD_OUT_SEED} at {size}px "
        f"({time.perf_counter() - t0:.1f} s)")
    engine = EngineMethod()
    methods = [Method(f"Canny {CANNY[0]}/{CANNY[1]} (baseline)", PHOTO, DRAWING, "baseline",
                      canny_drawing),
               Method("geometric engine", PHOTO, DRAWING, "engine", engine)]
    pose_net = shipped_pose_net(checkpoints)
    methods += generator_methods(checkpoints, runtime, engine.estimator, pose_net)
    if any(m.target == PHOTO for m in methods):
        methods += photo_references()
    examples = pick_examples(samples) if figure else []
    keep = set(examples)
    results, outputs = {}, {}
    for m in methods:
        t = time.perf_counter()
        ev = evaluate(m, samples, keep, readback=engine.estimator)
        results[m.name], outputs[m.name] = ev["result"], ev["outputs"]
        log(f"  {m.name}: {time.perf_counter() - t:.1f} s")
    if figure:
        sample_figure(samples, examples, methods, outputs, figure)
        log(f"figure: {figure}")
    pose_net_report = pose_net_errors(pose_net, samples) if pose_net is not None else None
    if pose_net_report:
        log(f"  pose net: {pose_net_report['median_ms']:.1f} ms a photo")
    settings = {"seed": HELD_OUT_SEED, "n": n, "size": size, "tolerance_px": 2.0,
                "canny": list(CANNY), "checkpoints": str(checkpoints), "runtime": runtime,
                "command": f"python benchmarks/quality.py --n {n} --size {size}"}
    return {"settings": settings, "results": results, "pose_net": pose_net_report}


def pose_net_errors(net, samples: list[Sample]) -> dict:
    """A pose net's mean absolute error per angle (against each scene's camera-frame pose,
    what the construction fit takes) per pose bucket, and its median time."""
    errors: dict[str, list] = {"all": []}
    times = []
    for s in samples:
        t = time.perf_counter()
        got = net.predict(s.photo)
        times.append(time.perf_counter() - t)
        e = np.abs(np.subtract(got, (s.params.pose.yaw, s.params.pose.pitch, s.params.pose.roll)))
        for bucket in ["all", *pose_buckets(s.yaw, s.pitch)]:
            errors.setdefault(bucket, []).append(e)
    mae = {b: dict(zip(("yaw", "pitch", "roll"), np.mean(v, 0).round(2).tolist()))
           | {"n": len(v)} for b, v in errors.items()}
    return {"mae": mae, "median_ms": float(np.median(times) * 1000)}


def pose_net_table(pose_net: dict) -> str:
    """Markdown: the pose net's error per bucket."""
    rows = ["| pose net, MAE (yaw / pitch / roll) | n |", "|---|---|"]
    for bucket in ["all", *BUCKETS]:
        if bucket in pose_net["mae"]:
            m = pose_net["mae"][bucket]
            rows.append(f"| {bucket} | {m['yaw']:.1f} / {m['pitch']:.1f} / {m['roll']:.1f}° "
                        f"| {m['n']} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=None, help=f"test images (default {DEFAULT_N})")
    ap.add_argument("--size", type=int, default=256, help="image side in pixels")
    ap.add_argument("--quick", action="store_true", help=f"{QUICK_N} images: a smoke run")
    ap.add_argument("--checkpoints", type=Path, default=ROOT / "checkpoints",
                    help="folder of shipped generator folders")
    ap.add_argument("--runtime", default="auto", choices=("auto", "torch", "onnxruntime"))
    ap.add_argument("--cache", type=Path, help="keep the rendered test set in this folder")
    ap.add_argument("--json", type=Path, help="write the results here")
    ap.add_argument("--figure", type=Path, nargs="?", const=ROOT / "docs" / "quality_samples.png",
                    help="write a sample grid (default path docs/quality_samples.png)")
    ap.add_argument("--update-cards", action="store_true",
                    help="write each shipped folder's README.md with these results")
    args = ap.parse_args(argv)
    n = args.n or (QUICK_N if args.quick else DEFAULT_N)
    report = run(n, args.size, args.checkpoints, args.runtime, args.cache, args.figure,
                 log=lambda msg: print(msg, file=sys.stderr))
    print(markdown_tables(report["results"]))
    if report["pose_net"]:
        print("\n" + pose_net_table(report["pose_net"]))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1))
    if args.update_cards:
        from loomis.model_card import read_training_record, write_model_card

        for folder in shipped_folders(args.checkpoints):
            if read_training_record(folder) is None:
                print(f"warning: {folder} has no training.json; its card cannot say how it "
                      "was trained (see loomis/model_card.py)", file=sys.stderr)
            path = write_model_card(folder, report)
            print(f"model card: {path}", file=sys.stderr)
    return report


if __name__ == "__main__":
    main()
