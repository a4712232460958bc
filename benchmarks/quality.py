"""How good are the generators on real photos, and on held-out rendered heads? With baselines.

    python -m benchmarks.quality [--quick] [--json FILE]
        [--real DIR | --no-real] [--real-n N] [--real-all] [--generator NAME=FOLDER ...]
        [--mean-photo-data DIR] [--real-figure PATH] [--no-synthetic]
        [--n 120] [--size 256] [--figure docs/quality_samples.png] [--cache DIR]
        [--checkpoints checkpoints] [--update-cards]

**Real photos** (first; markdown tables on stdout, everything in ``--json`` under
``"real"``). Rendered heads say how a generator does on what it was trained on; users
bring photographs. So every generator is also run, exactly as the app runs it (through
:func:`loomis.pipeline.photo_to_drawing` and :func:`loomis.pipeline.sketch_to_photo`,
nothing rebuilt here), on the held-out photos of a folder of portraits
(:func:`loomis.train.autopairs.held_out`: about a tenth, by a hash of the file name, that no
training set made from the folder contains). ``--real`` defaults to
``../shared/data/portraits-pd`` beside the repository (the section is skipped with a note
when it is absent); ``--real-all`` judges every photo of a folder no training run read,
``--real-n`` at most N of them (``--quick``: 6). Photos without a face are left out and
listed. Every photo → drawing and drawing → photo generator under ``--checkpoints`` is
measured (named by its folder), and each ``--generator NAME=FOLDER`` beside them (group
"compared"), so a freshly trained model meets the shipped one, or a shipped model its
predecessor, in one run::

    python -m benchmarks.quality --no-synthetic --generator new=runs/pix2pix-real/final \
        --json docs/quality_real.json --real-figure docs/quality_real_samples.png

* **photo → drawing**: no hand-drawn construction exists for a real photo, so the
  reference is the geometric engine's (``photo_to_drawing(photo, "geometric",
  background="paper", hidden="omit")``, the construction of the landmark pose); a
  generator must at least agree with it to be worth its cost. Each generator runs with
  the construction fitted to its lines (``fit``, the app's default) and raw
  (``fit=False``: its lines laid on the page), both on paper with far-side lines left
  out; plus a **Canny** edge map of the photo. Reported: line precision / recall / F1 at
  2 px (mean and median), and **placement**: the share of photos where the method drew as
  many heads as the engine, and for the largest head the offset of its box centre (in
  engine box widths) and its width ratio to the engine's box, median. Raw drawings carry
  the landmark pose's heads, so for them (and Canny) the **ink** columns give the same
  two numbers for the extent of the lines actually drawn.
* **drawing → photo**: the input is the engine's construction of each photo on paper,
  bare and with the face's features (``features=True``), reported separately; the output
  is ``sketch_to_photo(drawing, translator)``. Per made photo: does it read as a face
  (MediaPipe's face detector scores it at least :data:`FACE_SCORE_MIN`), is the face the
  pose estimator reads turned as the drawing is (yaw within :data:`YAW_TOLERANCE`° of the
  engine's yaw for that photo; also the median error), and L1 / SSIM against the real
  photo (which the drawing cannot fully decide: colours, light, background). Baselines
  through the same ``sketch_to_photo``: the **mean training photo** (the pixel mean of the
  training photos' head crops: the photo halves of ``--mean-photo-data DIR/paired/train``,
  or the folder's non-held-out portraits cut to the generators' framing, at most
  :data:`MEAN_PHOTOS`), which shows what the metrics give for knowing only where the head
  is; and the real photo itself (the ceiling of the face and yaw columns).

**Rendered heads** (second; ``--no-synthetic`` skips them). The test set is rendered by
:mod:`loomis.train.synthetic` from seed :data:`HELD_OUT_SEED`, a seed no training command uses
(the shipped data is ``make_dataset.py synthetic --seed 1``); item ``i`` is
``scene(HELD_OUT_SEED, i)``, so the same ``--n`` always gives the same images, on any
machine. Every pair is a photo-like render and its Loomis construction through the same
camera, and the render's pose is known exactly. Per method:

* **photo → drawing**: line precision / recall / F1 at 2 px (:mod:`loomis.train.metrics`) of
  every generator under ``checkpoints/`` whose config says photo → drawing, of the
  geometric engine (through the pipeline on paper, ``hidden="omit"``: the targets draw
  hidden lines faint or not at all, never dashed), and of two baselines: a **Canny** edge
  map of the photo drawn black on white (what the original experiment's CycleGAN
  produced; thresholds :data:`CANNY`, the best F1 of a small grid on 24 *training* scenes,
  seed 1), and each generator's **untrained** twin (same config, the training scripts'
  initialisation, seed 0). Generators run on the whole render with ``Translator``'s
  mirror pass (the lines of the photo and of its mirror image); the ``, single pass``
  rows (group "ablation") show the same weights without it; the ``, construction fit``
  rows are the app's path (:func:`loomis.pipeline.photo_to_drawing` with ``fit``: the
  face found, cropped, translated, the 3D construction fitted to the lines near the
  landmark pose) and the ``, construction fit, grid search`` rows the fit of the whole
  render's lines from a grid of poses, without the face's pose to start from.
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
* ``ms/img``: wall time per image through :class:`loomis.train.inference.Translator` (ONNX
  Runtime where installed), measured during the run; noisy on a shared machine.
* the shipped **pose net**'s error per bucket (measured on its own; the pipeline no longer
  starts fits from it).

``--update-cards`` writes each shipped folder's README.md (model card) with the rendered-
head numbers, the training record from its ``training.json`` (see :mod:`loomis.train.model_card`)
and the command that reproduces them. ``--quick`` (8 rendered heads, 6 real photos, no
figure unless asked) checks that every section runs. With no shipped generators the
engine and Canny rows still run.
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

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

from loomis.train.metrics import image_metrics, mean_metrics  # noqa: E402
from loomis.train.model_card import pose_cells  # noqa: E402
from loomis.train.nets import Generator, init_weights  # noqa: E402
from loomis.train.synthetic import SceneParams, render_pair, scene  # noqa: E402

if TYPE_CHECKING:
    from loomis.pipeline import Drawing
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
    yaw, pitch, roll = params.pose.line_of_sight_angles()
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
        from loomis.train.synthetic import render_photo

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
    """The pose net shipped under ``root``, or None (measured on its own; the pipeline no
    longer starts fits from it)."""
    from loomis.train.pose_net import PoseNet
    from loomis.registry import POSE_NET

    return PoseNet.from_pretrained(root / POSE_NET) if (root / POSE_NET).is_dir() else None


def generator_methods(root: Path, runtime: str = "auto", estimator=None) -> list[Method]:
    """Each shipped generator and, after it, its untrained twin. Drawing makers also get
    the app's path: :func:`loomis.pipeline.photo_to_drawing` with the construction fitted
    to their lines, the faces found by ``estimator`` (a :class:`loomis.pose.PoseEstimator`)."""
    from loomis.train.inference import Translator

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
                              PipelineMethod(folder.name, tr, estimator), None, info))
            # what starting from the face's landmark pose adds: the whole render's lines
            # fitted from a grid of poses, no face found first
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


class PipelineMethod:
    """:func:`loomis.pipeline.photo_to_drawing` on paper, far-side lines left out (the
    targets draw them faint or not at all, never dashed), remembering the pose of the
    largest construction it drew. For a generator this is the app's path: each face found,
    cropped to the generator's framing and translated, the 3D construction fitted to the
    lines (pose held near the landmark pose) and drawn. No face: a blank page (what a user
    gets), pose None."""

    def __init__(self, engine: str, translator=None, estimator=None) -> None:
        from loomis.pose import PoseEstimator

        self.engine, self.translator = engine, translator
        self.estimator = estimator if estimator is not None else PoseEstimator()
        self.last_pose: tuple[float, float, float] | None = None
        self.last_seconds = 0.0

    def __call__(self, photo: Image.Image) -> Image.Image:
        from loomis.pipeline import NoFaceError, photo_to_drawing

        self.last_pose = None
        t = time.perf_counter()
        try:
            drawing = photo_to_drawing(photo, self.engine, translator=self.translator,
                                       background="paper", hidden="omit", fit=True,
                                       estimator=self.estimator)
        except NoFaceError:
            out = Image.new("RGB", photo.size, (255, 255, 255))
        else:
            out, head = drawing.image, drawing.heads[0]
            self.last_pose = (head.yaw, head.pitch, head.roll)
        self.last_seconds = time.perf_counter() - t
        return out


class EngineMethod(PipelineMethod):
    """The geometric engine through the pipeline (see :class:`PipelineMethod`)."""

    def __init__(self, estimator=None) -> None:
        from loomis.pipeline import GEOMETRIC

        super().__init__(GEOMETRIC, estimator=estimator)


class FittedMethod:
    """The fit without the pipeline's face crop or the landmark pose: a drawing maker run
    on the whole picture, then :func:`loomis.construction_fit.fit_construction` from a
    grid (the ``, grid search`` rows), remembering the pose it found."""

    def __init__(self, translator) -> None:
        self.translator = translator
        self.last_pose: tuple[float, float, float] | None = None
        self.last_seconds = 0.0

    def __call__(self, photo: Image.Image) -> Image.Image:
        from loomis.construction_fit import EmptyDrawingError, fit_construction

        t = time.perf_counter()
        drawing = self.translator(photo)
        try:
            fit = fit_construction(drawing)
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
    engine = isinstance(method.run, (PipelineMethod, FittedMethod))  # they know their pose
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
        _tile_label(draw, f"yaw {s.yaw:.0f} pitch {s.pitch:.0f}", head + r * tile + tile - 13)
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)
    return path


def _tile_label(draw: ImageDraw.ImageDraw, label: str, y0: int) -> None:
    """A small red caption on white at the left of a figure row."""
    draw.rectangle((2, y0, 2 + int(draw.textlength(label)) + 4, y0 + 12), fill="white")
    draw.text((4, y0 + 1), label, fill=(200, 30, 30))


# --------------------------------------------------------------------------- real photos

#: The project's folder of public-domain portraits (outside the repository, never committed).
REAL_DEFAULT = ROOT.parent / "shared" / "data" / "portraits-pd"
REAL_QUICK_N = 6
#: Training portraits averaged for the "mean training photo" baseline (``--quick``: fewer).
MEAN_PHOTOS, MEAN_PHOTOS_QUICK = 200, 12
#: A made photo "has a face" when MediaPipe's short-range detector scores it this high.
FACE_SCORE_MIN = 0.8
#: A made photo is "turned right" when the yaw read back is this close to the engine's.
YAW_TOLERANCE = 10.0
#: The sketches a drawing → photo generator is given: the engine's construction on paper,
#: bare and with the face's own features.
INPUT_KINDS = {"construction": False, "construction + features": True}
#: Sample rows in the real-photo figure.
REAL_FIGURE_ROWS = 5


@dataclass
class RealPhoto:
    """One real photo, the engine's construction of it (the photo → drawing reference:
    paper, far-side lines left out) and the engine's sketches fed to drawing → photo
    generators (paper, the app's line style, keyed by :data:`INPUT_KINDS`)."""

    name: str
    photo: Image.Image
    reference: "Drawing"
    sketches: dict[str, "Drawing"]

    @property
    def yaw(self) -> float:
        return self.reference.heads[0].yaw


@dataclass
class RealGenerator:
    """A generator measured on real photos: a shipped folder or a ``--generator`` extra."""

    name: str
    group: str        # "shipped" or "compared" (--generator)
    folder: Path
    translator: object

    @property
    def target(self) -> str:
        return self.translator.config.target_domain


def parse_generators(specs: list[str]) -> dict[str, Path]:
    """``NAME=FOLDER`` flags → {name: folder}; each folder must hold a generator."""
    out: dict[str, Path] = {}
    for spec in specs:
        name, sep, folder = spec.partition("=")
        name, folder = name.strip(), folder.strip()
        if not sep or not name or not folder:
            raise ValueError(f"--generator takes NAME=FOLDER, got {spec!r}")
        if name in out:
            raise ValueError(f"--generator {name} is given twice")
        path = Path(folder)
        if not (path / "config.json").is_file():
            raise ValueError(f"--generator {name}: {path} has no config.json")
        out[name] = path
    return out


def real_generators(checkpoints: Path, extras: dict[str, Path],
                    runtime: str = "auto") -> list[RealGenerator]:
    """The shipped generators under ``checkpoints`` (named by folder), then the extras."""
    from loomis.train.inference import Translator

    out = [RealGenerator(f.name, "shipped", f, Translator.from_pretrained(f, runtime=runtime))
           for f in shipped_folders(checkpoints)]
    taken = {g.name for g in out}
    for name, folder in extras.items():
        if name in taken:
            raise ValueError(f"--generator {name}: a shipped generator has that name; pick another")
        out.append(RealGenerator(name, "compared", folder,
                                 Translator.from_pretrained(folder, runtime=runtime)))
    return out


def real_photo_files(folder: Path, n: int | None, every: bool = False) -> list[Path]:
    """The held-out photos of ``folder`` (every photo with ``every``), at most ``n`` of
    them spread evenly over the sorted list."""
    from loomis.train.autopairs import held_out, photo_files

    files = photo_files(folder) if every else held_out(folder)
    if n is not None and n < len(files):
        files = [files[int(i * len(files) / n)] for i in range(n)]
    return files


def load_real_photos(files: list[Path], estimator, log=print
                     ) -> tuple[list[RealPhoto], list[dict]]:
    """Each photo with the engine's drawings of it; photos without a face (or unreadable)
    are left out and listed with the reason."""
    from loomis.imageio import ImageError, load_image
    from loomis.pipeline import GEOMETRIC, NoFaceError, photo_to_drawing

    photos, skipped = [], []
    for path in files:
        try:
            photo = load_image(path)
            ref = photo_to_drawing(photo, GEOMETRIC, background="paper", hidden="omit",
                                   estimator=estimator)
        except NoFaceError as exc:
            skipped.append({"photo": path.name, "reason": "no face", "detail": str(exc)})
            continue
        except ImageError as exc:
            skipped.append({"photo": path.name, "reason": "unreadable", "detail": str(exc)})
            continue
        sketches = {kind: photo_to_drawing(photo, GEOMETRIC, background="paper",
                                           features=features, estimator=estimator)
                    for kind, features in INPUT_KINDS.items()}
        photos.append(RealPhoto(path.name, photo, ref, sketches))
    if skipped:
        log(f"  {len(skipped)} photo(s) left out: "
            + ", ".join(f"{s['photo']} ({s['reason']})" for s in skipped))
    return photos, skipped


def _centre(box) -> np.ndarray:
    return np.array([(box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0])


def box_placement(box, ref_box) -> tuple[float, float]:
    """(centre offset as a fraction of the reference box's width, width ratio)."""
    width = ref_box[2] - ref_box[0]
    offset = float(np.linalg.norm(_centre(box) - _centre(ref_box)) / width)
    return offset, float((box[2] - box[0]) / width)


def ink_placement(drawing: Image.Image, reference: Image.Image) -> tuple[float, float] | None:
    """The same two numbers for the extent of the drawn lines
    (:func:`loomis.pipeline.ink_square`, specks left out) against the reference's: where
    a method has no construction of its own, this is where it put its lines. None when
    nothing is drawn."""
    from loomis.pipeline import NoDrawingError, ink_square

    try:
        x0, y0, side = ink_square(drawing)
        rx, ry, rside = ink_square(reference)
    except NoDrawingError:
        return None
    return box_placement((x0, y0, x0 + side, y0 + side), (rx, ry, rx + rside, ry + rside))


def _stats(values: list) -> dict:
    v = [float(x) for x in values if x is not None]
    if not v:
        return {"mean": None, "median": None, "n": 0}
    return {"mean": round(float(np.mean(v)), 4), "median": round(float(np.median(v)), 4),
            "n": len(v)}


def evaluate_real_drawings(name: str, group: str, make: Callable, photos: list[RealPhoto],
                           keep: set[int], construction: bool) -> dict:
    """A photo → drawing method on every real photo against the engine's construction:
    line P/R/F1 at 2 px, heads drawn against the engine's, and the placement of the
    largest head (``construction``: the method's own :class:`~loomis.pipeline.Head` boxes;
    every method: the extent of its lines). ``make`` returns a
    :class:`~loomis.pipeline.Drawing` or a plain image."""
    from loomis.train.metrics import line_scores
    from loomis.pipeline import Drawing, NoFaceError

    rows, times, outputs = [], [], {}
    for i, rp in enumerate(photos):
        t = time.perf_counter()
        try:
            out = make(rp.photo)
        except NoFaceError:
            out = Drawing(Image.new("RGB", rp.photo.size, (255, 255, 255)), [], name)
        times.append(time.perf_counter() - t)
        image, heads = (out.image, out.heads) if isinstance(out, Drawing) else (out, None)
        if image.size != rp.photo.size:
            image = image.resize(rp.photo.size, Image.BICUBIC)
        row = {"photo": rp.name,
               **{k: round(v, 4) for k, v in line_scores(image, rp.reference.image, 2.0).items()},
               "heads": None if heads is None else len(heads),
               "engine_heads": len(rp.reference.heads), "offset": None, "size": None}
        if construction and heads:
            row["offset"], row["size"] = (round(v, 4) for v in
                                          box_placement(heads[0].box, rp.reference.heads[0].box))
        ink = ink_placement(image, rp.reference.image)
        row["ink_offset"], row["ink_size"] = (None, None) if ink is None else (
            round(ink[0], 4), round(ink[1], 4))
        rows.append(row)
        if i in keep:
            outputs[i] = image
    counted = [r for r in rows if r["heads"] is not None]
    res = {"group": group, "n": len(rows), "construction": construction,
           **{k: _stats([r[k] for r in rows]) for k in ("precision", "recall", "f1")},
           "heads_as_engine": (None if not counted else
                               round(sum(r["heads"] == r["engine_heads"] for r in counted)
                                     / len(counted), 4)),
           "heads_mean": _stats([r["heads"] for r in counted])["mean"],
           "engine_heads_mean": _stats([r["engine_heads"] for r in rows])["mean"],
           **{k: _stats([r[k] for r in rows]) for k in ("offset", "size", "ink_offset",
                                                          "ink_size")},
           "ms_per_image": round(1000 * float(np.median(times)), 1) if times else None,
           "per_photo": rows}
    return {"result": res, "outputs": outputs}


class MeanPhoto:
    """The "mean training photo" baseline, a translator in duck type: whatever it is shown,
    it answers the pixel mean of the training photos' head crops (at the input's size).
    Through :func:`loomis.pipeline.sketch_to_photo` it lands where the drawn head is, so
    it is the floor a generator's reading of the drawing must clear."""

    def __init__(self, mean: np.ndarray, image_size: int, source: str) -> None:
        from types import SimpleNamespace

        self.mean = Image.fromarray(np.clip(mean + 0.5, 0, 255).astype(np.uint8))
        self.config = SimpleNamespace(image_size=int(image_size), source_domain=DRAWING,
                                      target_domain=PHOTO)
        self.source = source

    def __call__(self, image: Image.Image) -> Image.Image:
        return self.mean.resize(image.size, Image.BICUBIC)


def mean_from_pairs(folder: Path, limit: int = 2000) -> tuple[np.ndarray, int]:
    """The pixel mean of the photo halves (A, left) of ``folder/paired/train/*.png``, at
    most ``limit`` of them spread over the sorted list."""
    files = sorted((folder / "paired" / "train").glob("*.png"))
    if not files:
        raise ValueError(f"{folder}/paired/train holds no .png pairs")
    if len(files) > limit:
        files = [files[int(i * len(files) / limit)] for i in range(limit)]
    total, side = None, None
    for f in files:
        pair = Image.open(f).convert("RGB")
        s = pair.height
        a = pair.crop((0, 0, s, s))
        side = side or s
        if s != side:
            a = a.resize((side, side), Image.BICUBIC)
        arr = np.asarray(a, np.float64)
        total = arr if total is None else total + arr
    return total / len(files), len(files)


def mean_from_portraits(folder: Path, exclude: set[str], limit: int, estimator,
                        size: int = 256) -> tuple[np.ndarray, int, bool]:
    """The pixel mean of the training portraits' head crops: photos of ``folder`` that are
    not held out (nor in ``exclude``), at most ``limit`` spread over the sorted list, each
    cut to the generators' framing (:func:`loomis.pipeline.head_square` around the
    engine's largest face, :func:`loomis.pipeline.cut_square`). Where those show no face
    (a folder judged whole, ``--real-all``), the judged photos are used too, and the third
    value says so."""
    from loomis.train.autopairs import held_out, photo_files
    from loomis.imageio import ImageError, load_image
    from loomis.pipeline import cut_square, head_square

    files = photo_files(folder)
    held = set(held_out(folder))
    training = [p for p in files if p not in held]
    pools = [([p for p in training if p.name not in exclude], False), (training, True),
             (files, True)]
    for pool, leaky in pools:
        if len(pool) > limit:
            pool = [pool[int(i * len(pool) / limit)] for i in range(limit)]
        total, count = np.zeros((size, size, 3)), 0
        for path in pool:
            try:
                photo = load_image(path)
            except ImageError:
                continue
            faces = estimator.analyse(photo).faces
            if faces:
                total += cut_square(np.asarray(photo), head_square(faces[0].head,
                                                                   faces[0].camera), size)
                count += 1
        if count:
            return total / count, count, leaky
    raise ValueError(f"no face found in the photos of {folder}")


def evaluate_real_photos(name: str, group: str, translator, photos: list[RealPhoto],
                         kind: str | None, estimator, keep: set[int]) -> dict:
    """A drawing → photo translator on the engine's ``kind`` sketch of every real photo,
    through :func:`loomis.pipeline.sketch_to_photo` (``kind`` None: the real photo itself,
    the reference). Per made photo: a face found (detector score ≥ :data:`FACE_SCORE_MIN`),
    the yaw read back against the engine's yaw for that photo, L1 and SSIM against the
    real photo."""
    from loomis.train.metrics import l1, ssim
    from loomis.pipeline import NoDrawingError, sketch_to_photo

    rows, times, outputs = [], [], {}
    for i, rp in enumerate(photos):
        t = time.perf_counter()
        if kind is None:
            out = rp.photo
        else:
            try:
                out = sketch_to_photo(rp.sketches[kind].image, translator)
            except NoDrawingError:
                out = Image.new("RGB", rp.photo.size, (128, 128, 128))
        times.append(time.perf_counter() - t)
        rgb = np.asarray(out.convert("RGB"))
        score = float(estimator.face_score(rgb))
        faces = estimator.estimate(out)
        dyaw = round(abs(_wrap(faces[0].yaw - rp.yaw)), 2) if faces else None
        rows.append({"photo": rp.name, "face_score": round(score, 4),
                     "face_found": score >= FACE_SCORE_MIN, "dyaw": dyaw,
                     "l1": round(l1(out, rp.photo), 4), "ssim": round(ssim(out, rp.photo), 4)})
        if i in keep:
            outputs[i] = out
    n = len(rows)
    dy = [r["dyaw"] for r in rows if r["dyaw"] is not None]
    res = {"group": group, "n": n,
           "face_found": round(sum(r["face_found"] for r in rows) / n, 4) if n else None,
           "yaw_read": round(len(dy) / n, 4) if n else None,
           "yaw_within": (round(sum(d <= YAW_TOLERANCE for d in dy) / n, 4) if n else None),
           "dyaw_median": round(float(np.median(dy)), 2) if dy else None,
           "l1": _stats([r["l1"] for r in rows]), "ssim": _stats([r["ssim"] for r in rows]),
           "ms_per_image": None if kind is None else round(1000 * float(np.median(times)), 1),
           "per_photo": rows}
    return {"result": res, "outputs": outputs}


def _figure_rows(n: int, k: int = REAL_FIGURE_ROWS) -> list[int]:
    """``k`` photo indices spread over ``n``."""
    k = min(k, n)
    return [int(i * n / k) for i in range(k)]


def run_real(folder: Path, checkpoints: Path, extras: dict[str, Path] | None = None,
             n: int | None = None, every: bool = False, runtime: str = "auto",
             mean_data: Path | None = None, mean_limit: int = MEAN_PHOTOS,
             figure: Path | None = None, log=print) -> dict:
    """The real-photo section: every method through :mod:`loomis.pipeline` on the held-out
    photos of ``folder`` (all of them with ``every``), at most ``n``. Returns
    ``{"settings", "skipped", "photo_to_drawing": {method: …},
    "drawing_to_photo": {input kind: {method: …}}}``."""
    from loomis.pipeline import photo_to_drawing
    from loomis.pose import PoseEstimator

    t0 = time.perf_counter()
    folder = Path(folder)
    files = real_photo_files(folder, n, every)
    estimator = PoseEstimator()
    photos, skipped = load_real_photos(files, estimator, log)
    log(f"real photos: {len(photos)} of {len(files)} {'' if every else 'held-out '}photos of "
        f"{folder} ({time.perf_counter() - t0:.1f} s)")
    generators = real_generators(checkpoints, extras or {}, runtime)
    keep = set(_figure_rows(len(photos))) if figure else set()
    p2d: dict[str, dict] = {}
    shown: dict[str, dict[int, Image.Image]] = {}

    def measure(name, group, make, construction):
        t = time.perf_counter()
        ev = evaluate_real_drawings(name, group, make, photos, keep, construction)
        p2d[name], shown[name] = ev["result"], ev["outputs"]
        log(f"  {name}: {time.perf_counter() - t:.1f} s")

    measure(f"Canny {CANNY[0]}/{CANNY[1]} (baseline)", "baseline", canny_drawing, False)
    for g in generators:
        if g.target != DRAWING:
            continue
        for fit in (True, False):
            measure(f"{g.name}, {'fit' if fit else 'raw'}", g.group,
                    lambda photo, g=g, fit=fit: photo_to_drawing(
                        photo, g.name, translator=g.translator, background="paper",
                        hidden="omit", fit=fit, estimator=estimator), fit)
    d2p: dict[str, dict[str, dict]] = {kind: {} for kind in INPUT_KINDS}
    made: dict[str, dict[int, Image.Image]] = {}
    makers = [(g.name, g.group, g.translator) for g in generators if g.target == PHOTO]
    mean, reference = None, None
    if makers:
        t = time.perf_counter()
        size = makers[0][2].config.image_size
        if mean_data is not None:
            arr, count = mean_from_pairs(Path(mean_data))
            source = f"{count} photo halves of {mean_data}/paired/train"
        else:
            arr, count, leaky = mean_from_portraits(folder, {rp.name for rp in photos},
                                                    mean_limit, estimator)
            source = (f"{count} head crops of {'the judged' if leaky else 'training'} "
                      f"portraits of {folder}")
        mean = MeanPhoto(arr, size, source)
        makers.append(("mean training photo (baseline)", "baseline", mean))
        log(f"  mean training photo: {source} ({time.perf_counter() - t:.1f} s)")
    for kind in INPUT_KINDS:
        if not makers:
            break
        for name, group, tr in makers + [("the photo itself (reference)", "reference", None)]:
            if tr is None and reference is not None:   # the same for every input kind
                d2p[kind][name] = reference
                continue
            t = time.perf_counter()
            ev = evaluate_real_photos(name, group, tr, photos, kind if tr is not None else None,
                                      estimator, keep if kind == "construction" else set())
            d2p[kind][name] = ev["result"]
            if tr is None:
                reference = ev["result"]
            if kind == "construction":
                made[name] = ev["outputs"]
            log(f"  {name} ({kind}): {time.perf_counter() - t:.1f} s")
    if figure and photos:
        real_figure(photos, sorted(keep), shown, made, figure)
        log(f"real figure: {figure}")
    settings = {"folder": str(folder), "photos": "all" if every else "held-out",
                "n": len(photos), "of": len(files), "tolerance_px": 2.0,
                "face_score_min": FACE_SCORE_MIN, "yaw_tolerance_deg": YAW_TOLERANCE,
                "reference": "photo_to_drawing(photo, 'geometric', background='paper', "
                             "hidden='omit')",
                "input_kinds": {k: f"photo_to_drawing(photo, 'geometric', background='paper', "
                                   f"features={v})" for k, v in INPUT_KINDS.items()},
                "generators": {g.name: {"folder": str(g.folder), "group": g.group,
                                        "target": g.target} for g in generators},
                "mean_photo": mean.source if mean else None,
                "checkpoints": str(checkpoints), "runtime": runtime,
                "seconds": round(time.perf_counter() - t0, 1)}
    estimator.close()
    return {"settings": settings, "skipped": skipped, "photo_to_drawing": p2d,
            "drawing_to_photo": {k: v for k, v in d2p.items() if v}}


def _fit_tile(img: Image.Image, w: int, h: int) -> Image.Image:
    """``img`` scaled to fit a ``w``×``h`` tile, centred on white."""
    tile = Image.new("RGB", (w, h), "white")
    k = min(w / img.width, h / img.height)
    small = img.convert("RGB").resize((max(1, round(img.width * k)), max(1, round(img.height * k))),
                                      Image.LANCZOS)
    tile.paste(small, ((w - small.width) // 2, (h - small.height) // 2))
    return tile


def real_figure(photos: list[RealPhoto], indices: list[int],
                drawings: dict[str, dict[int, Image.Image]],
                made: dict[str, dict[int, Image.Image]], path: Path, tile: int = 128) -> Path:
    """A grid, one row per chosen real photo: the photo, the engine's construction, each
    photo → drawing method with fit; then the engine's sketch (the drawing → photo input)
    and each drawing → photo generator's photo made from it."""
    fitted = [k for k in drawings if k.endswith(", fit")]
    makers = [k for k, v in made.items() if v and not k.endswith("(reference)")]
    cols = (["photo", "engine construction"] + fitted
            + ["engine sketch (drawing -> photo input)"] + makers)
    h = round(tile * max(p.photo.height / p.photo.width for p in photos))
    labels = [textwrap.wrap(label, width=tile // 6) for label in cols]
    head = 4 + 11 * max(len(lines) for lines in labels)
    canvas = Image.new("RGB", (tile * len(cols), head + h * len(indices)), "white")
    draw = ImageDraw.Draw(canvas)
    for c, lines in enumerate(labels):
        draw.multiline_text((c * tile + 3, 2), "\n".join(lines), fill=(0, 0, 0), spacing=1)
    for r, i in enumerate(indices):
        rp = photos[i]
        row = ([rp.photo, rp.reference.image] + [drawings[k][i] for k in fitted]
               + [rp.sketches["construction"].image] + [made[k][i] for k in makers])
        for c, img in enumerate(row):
            canvas.paste(_fit_tile(img, tile, h), (c * tile, head + r * h))
        _tile_label(draw, f"{rp.name} yaw {rp.yaw:.0f}", head + r * h + h - 13)
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)
    return path


def _ms(s: dict | None, key: str = "median", digits: int = 3) -> str:
    return "–" if s is None else _f(s.get(key), digits)


def real_tables(real: dict) -> str:
    """The real-photo report: photo → drawing against the engine, then drawing → photo
    per input kind."""
    st = real["settings"]
    lines = [f"## Real photos: {st['n']} {st['photos']} photos of {st['folder']}"
             + (f" ({st['of'] - st['n']} without a face left out)" if st["of"] > st["n"] else ""),
             "", "### Photo → drawing against the geometric engine's construction (line P/R/F1 "
             "at 2 px, mean / median; placement of the largest head: centre offset in engine "
             "head widths and width ratio, medians; ink: the same for the extent of the lines)",
             "",
             "| method | kind | precision | recall | F1 | heads = engine's | centre offset | "
             "size ratio | ink offset | ink size | ms/img |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in real["photo_to_drawing"].items():
        prf = [f"{_ms(r[k], 'mean')} / {_ms(r[k])}" for k in ("precision", "recall", "f1")]
        prf[2] = f"**{prf[2]}**"
        heads = "–" if r["heads_as_engine"] is None else f"{100 * r['heads_as_engine']:.0f}%"
        lines.append(f"| {name} | {r['group']} | " + " | ".join(prf) + f" | {heads} | "
                     f"{_ms(r['offset'])} | {_ms(r['size'])} | {_ms(r['ink_offset'])} | "
                     f"{_ms(r['ink_size'])} | {_f(r['ms_per_image'], 0)} |")
    lines += ["", "Raw rows lay the generator's lines over the page: the heads they report are "
              "the landmark pose's, so only the ink columns say where they drew."]
    for kind, rows in real.get("drawing_to_photo", {}).items():
        lines += ["", f"### Drawing → photo from the engine's {kind} (faces found: detector "
                  f"score ≥ {st['face_score_min']}; yaw read back within "
                  f"{st['yaw_tolerance_deg']:.0f}° of the engine's; L1/SSIM against the real "
                  "photo, mean)", "",
                  f"| method | kind | faces found | yaw within {st['yaw_tolerance_deg']:.0f}° | "
                  "median abs. yaw error (°) | "
                  "L1 ↓ | SSIM ↑ | ms/img |", "|---|---|---|---|---|---|---|---|"]
        for name, r in rows.items():
            lines.append(f"| {name} | {r['group']} | {100 * r['face_found']:.0f}% | "
                         f"**{100 * r['yaw_within']:.0f}%** | {_f(r['dyaw_median'], 1)} | "
                         f"{_ms(r['l1'], 'mean', 4)} | {_ms(r['ssim'], 'mean')} | "
                         f"{_f(r['ms_per_image'], 0)} |")
    if st.get("mean_photo"):
        lines += ["", f"Mean training photo: {st['mean_photo']}."]
    return "\n".join(lines)


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
    methods += generator_methods(checkpoints, runtime, engine.estimator)
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
                "command": f"python -m benchmarks.quality --n {n} --size {size}"}
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
    ap.add_argument("--n", type=int, default=None,
                    help=f"synthetic test images (default {DEFAULT_N})")
    ap.add_argument("--size", type=int, default=256, help="synthetic image side in pixels")
    ap.add_argument("--quick", action="store_true",
                    help=f"{QUICK_N} synthetic images and {REAL_QUICK_N} real photos: a smoke run")
    ap.add_argument("--checkpoints", type=Path, default=ROOT / "checkpoints",
                    help="folder of shipped generator folders")
    ap.add_argument("--runtime", default="auto", choices=("auto", "torch", "onnxruntime"))
    ap.add_argument("--cache", type=Path, help="keep the rendered test set in this folder")
    ap.add_argument("--json", type=Path, help="write the results here")
    ap.add_argument("--figure", type=Path, nargs="?", const=ROOT / "docs" / "quality_samples.png",
                    help="write a synthetic sample grid (default path docs/quality_samples.png)")
    ap.add_argument("--update-cards", action="store_true",
                    help="write each shipped folder's README.md with the synthetic results")
    real = ap.add_argument_group("real photos")
    real.add_argument("--real", type=Path, default=None, metavar="DIR",
                      help="folder of real portraits, judged on its held-out photos "
                           f"(default {REAL_DEFAULT} where it exists)")
    real.add_argument("--no-real", action="store_true", help="skip the real-photo section")
    real.add_argument("--real-n", type=int, default=None, metavar="N",
                      help=f"at most N photos (default all held-out; --quick {REAL_QUICK_N})")
    real.add_argument("--real-all", action="store_true",
                      help="judge every photo of the folder, not only the held-out ones "
                           "(a folder no training run read)")
    real.add_argument("--generator", action="append", default=[], metavar="NAME=FOLDER",
                      help="also measure this generator folder (repeatable): a new model "
                           "beside the shipped ones")
    real.add_argument("--mean-photo-data", type=Path, metavar="DIR",
                      help="dataset whose DIR/paired/train photo halves make the mean-photo "
                           "baseline (default: head crops of the folder's training portraits)")
    real.add_argument("--real-figure", type=Path, metavar="PATH",
                      help="write a sample grid of real photos here")
    ap.add_argument("--markdown", type=Path, help="also write the tables here (docs/quality.md)")
    ap.add_argument("--no-synthetic", action="store_true",
                    help="skip the synthetic section (only the real photos)")
    args = ap.parse_args(argv)
    if args.no_synthetic and args.update_cards:
        ap.error("--update-cards writes the synthetic results: drop --no-synthetic")
    if args.real_n is not None and args.real_n < 1:
        ap.error("--real-n must be at least 1")
    try:
        extras = parse_generators(args.generator)
    except ValueError as exc:
        ap.error(str(exc))
    log = lambda msg: print(msg, file=sys.stderr)  # noqa: E731
    report: dict = {}
    tables: list[str] = []      # what is printed, also written to --markdown
    folder = None if args.no_real else args.real
    if folder is None and not args.no_real:
        if REAL_DEFAULT.is_dir():
            folder = REAL_DEFAULT
        else:
            print(f"Real photos: skipped ({REAL_DEFAULT} does not exist; pass --real DIR).\n")
    elif folder is not None and not folder.is_dir():
        ap.error(f"--real {folder} is not a folder")
    if folder is not None:
        real_n = args.real_n or (REAL_QUICK_N if args.quick else None)
        report["real"] = run_real(folder, args.checkpoints, extras, real_n, args.real_all,
                                  args.runtime, args.mean_photo_data,
                                  MEAN_PHOTOS_QUICK if args.quick else MEAN_PHOTOS,
                                  args.real_figure, log=log)
        cmd = ["python -m benchmarks.quality --no-synthetic"]
        if args.real is not None:
            cmd.append(f"--real {args.real}")
        if args.real_all:
            cmd.append("--real-all")
        if real_n is not None:
            cmd.append(f"--real-n {real_n}")
        cmd += [f"--generator {s}" for s in args.generator]
        if args.mean_photo_data:
            cmd.append(f"--mean-photo-data {args.mean_photo_data}")
        report["real"]["settings"]["command"] = " ".join(cmd)
        tables.append(real_tables(report["real"]) + "\n")
        print(tables[-1])
    if not args.no_synthetic:
        n = args.n or (QUICK_N if args.quick else DEFAULT_N)
        report.update(run(n, args.size, args.checkpoints, args.runtime, args.cache, args.figure,
                          log=log))
        tables.append("## Rendered heads (held-out synthetic set)\n\n"
                      + markdown_tables(report["results"])
                      + ("\n\n" + pose_net_table(report["pose_net"]) if report["pose_net"] else ""))
        print(tables[-1])
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1))
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        command = "python -m benchmarks.quality " + " ".join(argv if argv is not None else sys.argv[1:])
        args.markdown.write_text(
            "# Quality, measured\n\nWritten by `benchmarks/quality.py` (the module docstring says "
            f"what each column means). Command:\n\n```bash\n{command}\n```\n\n"
            + "\n".join(tables) + "\n")
    if args.update_cards:
        from loomis.train.model_card import read_training_record, write_model_card

        for folder in shipped_folders(args.checkpoints):
            if read_training_record(folder) is None:
                print(f"warning: {folder} has no training.json; its card cannot say how it "
                      "was trained (see loomis/train/model_card.py)", file=sys.stderr)
            path = write_model_card(folder, report)
            print(f"model card: {path}", file=sys.stderr)
    return report


if __name__ == "__main__":
    main()
