"""How accurate is the head pose? Mean absolute error per axis against known poses.

Sections (each prints MAE and mean signed error = bias, per axis, for each fit method):

* ``--labels FILE.csv --photos DIR``: real photos with labels. CSV columns
  ``filename,yaw,pitch,roll`` in degrees **in this project's convention**
  (loomis/camera.py): yaw > 0 the face turns towards the image's right (you see more of
  the subject's left cheek), pitch > 0 the face tilts up, roll > 0 the head turns
  counter-clockwise in the image. Datasets differ in signs and units; convert with
  ``--negate yaw,roll`` and ``--radians`` (check on two or three obvious images first:
  a face turned to the image's right must have yaw > 0). Rows may also carry a rotation
  matrix instead of angles (BIWI-style, camera frame with y down): convert it with
  ``loomis.camera.angles_from_matrix(diag(1,-1,-1) @ R @ diag(1,-1,-1))`` first. Our
  angles are relative to the line of sight, as most datasets' are. ``--photos`` defaults
  to the CSV's folder. Photos where no face is found, or that cannot be read, count as
  missed and are listed with the reason (``not_found``); ``--predictions FILE.csv``
  writes every photo's labels, estimate, absolute errors and status, to see which
  photos are off.
* ``--rerender N`` (default 60): the astronaut photo's face, texture-mapped onto the
  measured reference mesh and rendered at N random known poses (|yaw| ≤ 60, |pitch| ≤ 30,
  |roll| ≤ 30) through a perspective camera at random places in the frame. This measures
  the landmark detector and the fit at large angles and off-centre; it cannot detect an
  error in the reference's own depth (the renders are made with it).
* ``--headed N``: the same re-rendered face painted over a procedural head at the same
  pose (hair, ears, neck and a head outline around the face, as in a photo). The bare
  face mask of ``--rerender`` squeezes yaw more than this does (slope 0.78 vs 0.83).
* ``--render N``: the project's procedural heads (loomis.train.render.render_head) at random
  identities and poses: an independent geometry, so a depth-scale or zero-pitch bias
  shows up here (as does any difference between the procedural face and a real one).
  ``--synthetic N`` uses loomis.train.synthetic's training scenes (|yaw| <= 60) instead.
  Their labels are the Loomis construction's pose, whose chin is set 5-9° behind the
  brow-chin vertical that defines the reference's zero pitch; ``brow_chin`` repeats
  the summary with labels in the reference's convention (the bias that is the fit's).
* ``--scan N``: a real person's face, Gradio's coloured 3D scan (loomis.sample_data),
  rendered at N random known poses like ``--rerender``: the one set whose geometry and
  skin are both independent of the reference and of the procedural heads, so it is the
  nearest to a real photo here. Labels are in the reference's convention, its zero
  pitch found on the scan's profile (see ``_face_scan``; an estimate, good to about a
  degree). ``--scan-headed N`` paints it over a procedural head.
* ``--lens N``: the astronaut's face re-rendered centred at N known poses through 5°,
  20°, 50° and 70° lenses from distances that keep it the same size, with the estimator
  told the true field of view: how each fit copes with perspective alone.

Every summary has MAE, bias (mean signed error) and slope (of predicted on true angle;
below 1 = squeezed towards 0) per axis, and ``by_yaw``: the same per range of labelled
|yaw| (0-30, 30-60, beyond 60) and for |yaw| ≤ 60°, the range of the issue's goal.
``--pitch-gain``, ``--depth-scale``, ``--depth-weight``, ``--fov``, ``--contour``,
``--upright-pass`` and ``--mirror-average`` set the PoseConfig fields of the same
names, to measure them.
* ``--plot FILE.png``: estimated against true angle, per set and method
  (docs/pose_accuracy.png).
* ``--mirror DIR``: real photos without labels (the first ``--mirror-n``), each read
  and mirrored: how far yaw and roll are from negating and pitch from keeping.
* ``--stream FRAMES``: the webcam path at the app's 10 frames a second, as read and
  through a One-Euro PoseTracker: jitter on a still face with pixel noise, lag on a
  turning head, and the time of a frame (:func:`stream_check`).
* always: checks that need no labels on the two real portraits at hand (scikit-image's
  astronaut, matplotlib's Grace Hopper): mirroring negates yaw and roll, rotating by θ
  adds θ to roll and leaves yaw and pitch; deviations in degrees.

Results of every method (``--methods``, default matrix, matrix_joint and joint) side by
side; docs/pose.md holds the last full run.

    python -m benchmarks.pose_accuracy [--labels L.csv [--photos DIR] [--predictions P.csv]]
                                       [--methods matrix,joint] [--rerender 60] [--headed 60]
                                       [--render 40] [--synthetic 40] [--scan 100]
                                       [--scan-headed 100] [--lens 30] [--mirror DIR]
                                       [--stream 60] [--plot P.png]
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import functools
import json
import math
from pathlib import Path

import cv2
import numpy as np
from PIL import Image


from loomis import sample_data
from loomis.camera import Camera, HeadPose, angles_from_matrix, rotation_matrix
from loomis.face_reference import load_reference, triangles, vertex_normals
from loomis.imageio import ImageError
from loomis.pose import BALL_RADIUS_U, METHODS, PoseConfig, PoseEstimator
from loomis.smoothing import OneEuro, PoseTracker

AXES = ("yaw", "pitch", "roll")


def _wrap(d: np.ndarray) -> np.ndarray:
    return (d + 180.0) % 360.0 - 180.0


def _summary(pred: list, truth: list, missed: int) -> dict:
    if not pred:
        return {"n": 0, "missed": missed}
    err = _wrap(np.asarray(pred) - np.asarray(truth))
    out = {"n": len(pred), "missed": missed}
    for i, a in enumerate(AXES):
        out[f"mae_{a}"] = round(float(np.abs(err[:, i]).mean()), 2)
    for i, a in enumerate(AXES):
        out[f"bias_{a}"] = round(float(err[:, i].mean()), 2)
    out["mae_mean"] = round(float(np.abs(err).mean()), 2)
    # slope of predicted on true angle: < 1 means the estimates are compressed towards 0
    t, p = np.asarray(truth), np.asarray(pred)
    for i, a in enumerate(AXES):
        if len(t) > 2 and np.ptp(t[:, i]) > 1:
            out[f"slope_{a}"] = round(float(np.polyfit(t[:, i], p[:, i], 1)[0]), 3)
    return out


def _evaluate(samples, config: PoseConfig, records: list | None = None) -> dict:
    """samples: iterable of (image, (yaw, pitch, roll)) or (image, labels, labels_bc),
    where ``labels_bc`` is the same pose with zero pitch defined the reference's way
    (brow-chin line vertical); its summary is added as ``brow_chin``.

    An image that cannot be read counts as missed, like one without a face. ``records``,
    when given, receives one dict per sample: its labels, the estimate and its status."""
    pred, truth, truth_bc, missed = [], [], [], []
    with PoseEstimator(config) as est:
        for img, *gts in samples:
            record = {"image": img if isinstance(img, str) else None, "label": gts[0],
                      "reference_label": gts[-1]}     # brow-chin zero pitch where given
            try:
                result = est.analyse(img)
                record["status"] = ("ok" if result.faces else
                                    "face too small" if result.too_small else "no face")
            except ImageError as exc:  # unreadable, truncated, too large: the user's file
                result, record["status"] = None, f"unreadable: {exc}"
            if records is not None:
                records.append(record)
            if result is None or not result.faces:
                missed.append(gts[0])
                continue
            f = result.faces[0]
            record["estimate"] = (f.yaw, f.pitch, f.roll)
            pred.append((f.yaw, f.pitch, f.roll))
            truth.append(gts[0])
            if len(gts) > 1:
                truth_bc.append(gts[1])
    out = _summary(pred, truth, len(missed))
    if truth_bc:
        out["brow_chin"] = _summary(pred, truth_bc, len(missed))
    out["by_yaw"] = _by_yaw(pred, truth, missed)
    return out


#: Ranges of the labelled |yaw| the summaries are split by; the goal is for up to ±60°.
YAW_RANGES = ((0.0, 30.0), (30.0, 60.0), (60.0, 180.0))


def _by_yaw(pred: list, truth: list, missed: list) -> dict:
    """The summary per range of labelled |yaw|, and for |yaw| ≤ 60° (the goal's range);
    ``missed`` holds the labels of the samples where no face was found."""
    def within(label, lo: float, hi: float) -> bool:
        return (lo < abs(label[0]) or lo == 0) and abs(label[0]) <= hi

    out = {}
    for lo, hi in YAW_RANGES + ((0.0, 60.0),):
        keep = [i for i, t in enumerate(truth) if within(t, lo, hi)]
        lost = sum(within(t, lo, hi) for t in missed)
        if keep or lost:
            out[f"|yaw| {lo:g}-{hi:g}"] = _summary([pred[i] for i in keep],
                                                  [truth[i] for i in keep], lost)
    return out


def _labels(pose: HeadPose, profile_tilt: float = 0.0) -> tuple[float, float, float]:
    """The pose relative to the line of sight (what the estimator reports), with zero
    pitch moved by ``profile_tilt`` degrees (a head whose chin is set back by that
    angle from its brow reads that much "down" in the brow-chin convention)."""
    rot = rotation_matrix(*pose.line_of_sight_angles())
    return angles_from_matrix(rot @ rotation_matrix(0.0, -profile_tilt, 0.0))


def _profile_tilt(prop) -> float:
    """Angle of a Loomis head's brow-point-to-chin line from vertical, in degrees."""
    return math.degrees(math.atan2(prop.radius - prop.chin_depth, -prop.chin_y))


# --------------------------------------------------------------------------- labels

def labelled(csv_path: Path, photos: Path, negate: set[str], radians: bool) -> list:
    """``[(path, (yaw, pitch, roll)), …]`` from a labels CSV, in this project's convention.

    Raises SystemExit with what to fix when the file lacks a column or holds a label that is
    not a number; a listed photo that is not in ``photos`` stays in the list and is
    reported as unreadable, so it counts as missed."""
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise SystemExit(f"cannot read the labels {csv_path}: {exc}") from None
    need = ("filename",) + AXES
    absent = [c for c in need if c not in (reader.fieldnames or [])]
    if absent:
        raise SystemExit(f"{csv_path} needs the columns {','.join(need)} (a header row); "
                         f"missing: {', '.join(absent)}")
    if not rows:
        raise SystemExit(f"{csv_path} lists no photos (only its header)")
    out = []
    for line, row in enumerate(rows, start=2):
        try:
            gt = [float(row[a]) for a in AXES]
        except (TypeError, ValueError):
            raise SystemExit(f"{csv_path}, line {line}: yaw, pitch and roll must be numbers, "
                             f"got {[row[a] for a in AXES]}") from None
        if radians:
            gt = [math.degrees(v) for v in gt]
        out.append((str(photos / row["filename"]),
                    tuple(-v if a in negate else v for a, v in zip(AXES, gt))))
    return out


def write_predictions(path: Path, records: list, method: str, append: bool) -> None:
    """One CSV row per labelled photo: labels, estimate, absolute errors and status."""
    fields = (["method", "image", "status"] + [f"label_{a}" for a in AXES]
              + [f"estimate_{a}" for a in AXES] + [f"error_{a}" for a in AXES])
    with open(path, "a" if append else "w", newline="") as fh:
        out = csv.writer(fh)
        if not append:
            out.writerow(fields)
        for r in records:
            est = r.get("estimate")
            err = None if est is None else np.abs(_wrap(np.subtract(est, r["label"])))
            out.writerow([method, r["image"], r["status"]] + _cells(r["label"])
                         + _cells(est) + _cells(err))


def _cells(angles) -> list[str]:
    """Three angles as CSV cells, or three empty cells where there are none."""
    return [""] * len(AXES) if angles is None else [f"{v:.2f}" for v in angles]


# --------------------------------------------------------------------------- figure

def plot_estimates(path: Path, plotted: dict) -> None:
    """Estimated against true yaw, pitch and roll: one row per set, one colour per
    method, the diagonal where a perfect estimate lies. A squeezed axis shows as a cloud
    flatter than the diagonal; a bias as one beside it. Photos without a face are left
    out. Labels are in the reference's convention (brow-chin zero pitch)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n, by_method in plotted.items() if any(by_method.values())]
    if not names:
        return
    fig, axes = plt.subplots(len(names), 3, figsize=(10.5, 3.2 * len(names)),
                             squeeze=False)
    for row, name in zip(axes, names):
        for method, recs in plotted[name].items():
            found = [r for r in recs if r.get("estimate") is not None]
            if not found:
                continue
            truth = np.array([r["reference_label"] for r in found])
            est = np.array([r["estimate"] for r in found])
            err = np.abs(_wrap(est - truth)).mean(0)
            for i, ax in enumerate(row):
                ax.scatter(truth[:, i], est[:, i], s=9, alpha=0.6,
                           label=f"{method} (MAE {err[i]:.1f}°)")
        for i, ax in enumerate(row):
            lo, hi = ax.get_xlim()
            ax.plot([lo, hi], [lo, hi], color="0.4", lw=0.8, zorder=0)
            ax.set_title(f"{name}: {AXES[i]}", fontsize=10)
            ax.set_xlabel("true (°)")
            ax.set_ylabel("estimated (°)")
            ax.legend(fontsize=7, loc="upper left")
            ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


# --------------------------------------------------------------------------- symmetry

def real_photos() -> dict[str, Image.Image]:
    """The unlabelled real portraits available offline: scikit-image's astronaut and
    matplotlib's Grace Hopper (both public domain, both installed with the project)."""
    import skimage.data

    photos = {"astronaut": Image.fromarray(skimage.data.astronaut())}
    if (hopper := sample_data.grace_hopper()) is not None:
        with Image.open(hopper) as im:
            photos["grace_hopper"] = im.convert("RGB")
    return photos


def symmetry(config: PoseConfig) -> dict:
    """Checks that need no labels, per real photo: mirroring must negate yaw and roll and
    keep pitch; rotating the photo by θ must add θ to roll and keep yaw and pitch (the
    photo turns about the assumed principal point, so the line of sight stays put; the
    expanded canvas lengthens the assumed focal length, which moves the angles little).
    The upside-down check counts, of the turns by 100°, 120°, ..., 260°, those whose roll
    is read within 5° (a missed face counts as misread)."""
    out = {}
    with PoseEstimator(config) as est:
        for name, img in real_photos().items():
            b = est.estimate(img)[0]
            m = est.estimate(img.transpose(Image.Transpose.FLIP_LEFT_RIGHT))[0]
            checks = {"estimate": [round(b.yaw, 2), round(b.pitch, 2), round(b.roll, 2)],
                      "mirror_yaw_sum": round(m.yaw + b.yaw, 2),
                      "mirror_roll_sum": round(m.roll + b.roll, 2),
                      "mirror_pitch_diff": round(m.pitch - b.pitch, 2)}
            dev = []
            for theta in (-40, -30, -20, -10, 10, 20, 30, 40):
                r = est.estimate(img.rotate(theta, expand=True,
                                            resample=Image.Resampling.BICUBIC))
                if r:
                    dev.append(np.abs(_wrap(np.array([r[0].yaw - b.yaw, r[0].pitch - b.pitch,
                                                      r[0].roll - b.roll - theta]))))
            dev = np.array(dev)
            checks["rotation_roll_error_mean_abs"] = round(float(dev[:, 2].mean()), 2)
            checks["rotation_roll_error_max_abs"] = round(float(dev[:, 2].max()), 2)
            checks["rotation_yaw_change_mean_abs"] = round(float(dev[:, 0].mean()), 2)
            checks["rotation_pitch_change_mean_abs"] = round(float(dev[:, 1].mean()), 2)
            # upside down: MediaPipe alone misreads most faces turned past ±110°
            errs = []
            for theta in range(100, 261, 20):
                r = est.estimate(img.rotate(theta, expand=True,
                                            resample=Image.Resampling.BICUBIC))
                errs.append(abs(_wrap(r[0].roll - b.roll - theta)) if r else 180.0)
            checks["upside_down_turns"] = len(errs)
            checks["upside_down_read_within_5"] = int(sum(e <= 5.0 for e in errs))
            out[name] = checks
    return out


def mirror_check(folder: Path, n: int, config: PoseConfig) -> dict:
    """Real photos without labels: each of the first ``n`` photos of ``folder`` (sorted)
    and its mirror image. A right reading negates yaw and roll and keeps pitch; the mean
    absolute deviations say how far each method is from that on real faces."""
    from loomis.train.autopairs import photo_files

    dev, found = [], 0
    with PoseEstimator(config) as est:
        for path in photo_files(folder)[:n]:
            try:
                img = Image.open(path).convert("RGB")
                a, b = est.estimate(img), est.estimate(img.transpose(Image.Transpose.FLIP_LEFT_RIGHT))
            except (OSError, ImageError):
                continue
            if a and b:
                found += 1
                dev.append((a[0].yaw + b[0].yaw, a[0].pitch - b[0].pitch, a[0].roll + b[0].roll))
    d = np.abs(np.array(dev)).reshape(-1, 3)
    return {"photos": min(n, len(photo_files(folder))), "read_both_ways": found,
            "yaw_sum": round(float(d[:, 0].mean()), 2), "pitch_diff": round(float(d[:, 1].mean()), 2),
            "roll_sum": round(float(d[:, 2].mean()), 2)}


# --------------------------------------------------------------------------- re-render

def _random_view(rng: np.random.Generator, size: int, fov: float,
                 dist: tuple[float, float], off: float) -> tuple[HeadPose, Camera]:
    """A known pose (yaw ±60°, pitch ±30°, roll ±30°) at a random distance, shifted off
    centre by up to ``off`` of that distance, seen by a ``fov``-degree camera. The draw
    order (angles, distance, shift) fixes each seed's set."""
    yaw, pitch, roll = rng.uniform(-60, 60), rng.uniform(-30, 30), rng.uniform(-30, 30)
    d = rng.uniform(*dist)
    shift = rng.uniform(-off, off, 2) * d
    return HeadPose(yaw, pitch, roll, 1.0, (shift[0], shift[1], -d)), Camera.from_fov(size, size, fov)


@functools.lru_cache(maxsize=1)
def _astronaut_mesh():
    """The astronaut photo, its landmarks (texture coordinates), the reference mesh in
    the head frame and its triangles: what the re-rendered sets draw (measured once per
    run; every set and method reads the same arrays).

    The texture coordinates are the landmarks read on the photo."""
    import skimage.data

    src = skimage.data.astronaut()
    with PoseEstimator() as est:
        tex = est.estimate(src)[0].landmarks
    return src, tex, load_reference().head_points(BALL_RADIUS_U), triangles()


def rerender_set(n: int, seed: int = 0, size: int = 512):
    """The astronaut's face re-rendered at known poses (see module docstring)."""
    src, tex, ref, tris = _astronaut_mesh()
    rng = np.random.default_rng(seed)
    # a plain, slightly noisy backdrop (a blurred photo would still hold a face)
    bg = np.clip(rng.normal(150, 6, (size, size, 3)), 0, 255).astype(np.uint8)
    for _ in range(n):
        pose, cam = _random_view(rng, size, fov=50.0, dist=(9.0, 14.0), off=0.12)
        yield _render(src, tex, ref, tris, pose, cam, bg.copy()), _labels(pose)


def headed_set(n: int, seed: int = 0, size: int = 512):
    """The re-rendered astronaut face painted over a procedural head (loomis.train.render) at
    the same pose: her real texture and the reference's geometry, now with hair, ears,
    neck and a head outline around it, as in a photo. Labels are in the reference's
    convention (the face geometry *is* the reference)."""
    from loomis.train.render import HeadIdentity, Lighting, render_head

    src, tex, ref, tris = _astronaut_mesh()
    rng = np.random.default_rng(seed)
    for _ in range(n):
        ident = HeadIdentity.sample(rng)
        pose, cam = _random_view(rng, size, fov=50.0, dist=(9.0, 14.0), off=0.12)
        head = np.array(render_head(ident, pose, cam, Lighting.sample(rng)))
        yield _render(src, tex, ref, tris, pose, cam, head), _labels(pose)


#: Fields of view of ``--lens``: a long portrait lens to a wide phone camera.
LENS_FOVS = (5.0, 20.0, 50.0, 70.0)


def lens_set(n: int, fov: float, seed: int = 0, size: int = 512):
    """The astronaut's face re-rendered centred at n known poses (|yaw| ≤ 40°, |pitch| ≤
    25°, |roll| ≤ 15°) through a ``fov``-degree lens, from the distance that keeps the
    face the same size in the frame: the same poses through every lens, so what changes
    is the perspective alone."""
    src, tex, ref, tris = _astronaut_mesh()
    rng = np.random.default_rng(seed)
    cam = Camera.from_fov(size, size, fov)
    dist = 11.5 * math.tan(math.radians(25.0)) / math.tan(math.radians(fov / 2))
    bg = np.full((size, size, 3), 150, np.uint8)
    for _ in range(n):
        yaw, pitch, roll = rng.uniform(-40, 40), rng.uniform(-25, 25), rng.uniform(-15, 15)
        pose = HeadPose(yaw, pitch, roll, 1.0, (0.0, 0.0, -dist))
        yield _render(src, tex, ref, tris, pose, cam, bg.copy()), _labels(pose)


@functools.lru_cache(maxsize=1)
def _face_scan():
    """Gradio's scanned face (loomis.sample_data.face_scan) in the reference's frame:
    vertices in units of u about the ball centre, zero pitch with the brow-chin line
    vertical, as the reference's is; plus triangles, vertex normals and colours (0-255).
    None when Gradio leaves the file out.

    The landmarks are found on the scan's midline profile, the way
    loomis.face_reference finds them on MediaPipe's mesh: the subnasale (the deepest
    point between the nose tip and the lip), the menton (the lowest point), the chin
    point (the frontmost point of the chin's lower half-unit), u from subnasale to menton
    at the reference's own chin height, the brow point one u above the subnasale on the
    profile, and the ball centre ``BALL_RADIUS_U`` behind it. The brow point's height is
    an estimate (the scan has no eyebrow landmarks): a brow 0.1 u off tilts the brow-chin
    line by about 1°, which shifts the labels' zero pitch, not their range."""
    path = sample_data.face_scan()
    if path is None:
        return None
    verts, cols, faces = [], [], []
    for line in path.read_text().splitlines():
        p = line.split()
        if p and p[0] == "v":
            verts.append([float(x) for x in p[1:4]])
            cols.append([float(x) for x in p[4:7]] if len(p) >= 7 else [0.8, 0.7, 0.6])
        elif p and p[0] == "f":
            faces.append([int(x.split("/")[0]) - 1 for x in p[1:4]])
    pts = np.array(verts) * np.array([-1.0, 1.0, -1.0])   # turned to face +z
    faces = np.array(faces)
    mid = pts[np.abs(pts[:, 0]) < 3.0]                      # the profile, 3 mm either side
    mid = mid[np.argsort(mid[:, 1])]
    tip = mid[np.argmax(mid[:, 2])]
    lip = mid[(mid[:, 1] < tip[1] - 5.0) & (mid[:, 1] > tip[1] - 25.0)]
    subnasale = lip[np.argmin(lip[:, 2])]
    menton_y = mid[0, 1]
    u = (subnasale[1] - menton_y) / (-load_reference().chin_y - 1.0)
    brow_y = subnasale[1] + u
    brow = np.array([0.0, brow_y, np.interp(brow_y, mid[:, 1], mid[:, 2])])
    low = mid[mid[:, 1] < menton_y + 0.5 * u]
    chin = low[np.argmax(low[:, 2])]
    tilt = math.degrees(math.atan2(brow[2] - chin[2], brow[1] - chin[1]))
    level = rotation_matrix(0.0, tilt, 0.0)                # brow-chin line vertical
    head = (pts - brow) @ level.T / u + np.array([0.0, 0.0, BALL_RADIUS_U])
    return head, faces, vertex_normals(head, faces), np.array(cols) * 255.0


def scan_set(n: int, seed: int = 0, size: int = 512, headed: bool = False):
    """Gradio's scanned face at n random known poses (the views of ``--rerender``), lit
    by a random key light, over a plain backdrop or, with ``headed``, over a procedural
    head at the same pose. None when the scan is not installed."""
    scan = _face_scan()
    if scan is None:
        return None

    def gen():
        rng = np.random.default_rng(seed)
        for _ in range(n):
            pose, cam = _random_view(rng, size, fov=50.0, dist=(9.0, 14.0), off=0.12)
            yield _scan_image(scan, pose, cam, rng, headed), _labels(pose)

    return gen()


def _scan_image(scan, pose: HeadPose, cam: Camera, rng: np.random.Generator,
                headed: bool, light: np.ndarray | None = None) -> np.ndarray:
    """The scanned face at ``pose`` through ``cam``, lit by ``light`` (random when None),
    over a plain backdrop or, with ``headed``, over a procedural head at the same pose."""
    from loomis.train.render import HeadIdentity, Lighting, _rasterize, render_head

    head, faces, normals, colours = scan
    size = cam.width
    light = np.array([*rng.uniform(-0.6, 0.6, 2), 1.0]) if light is None else light
    if headed:
        out = np.array(render_head(HeadIdentity.sample(rng), pose, cam, Lighting.sample(rng)))
    else:
        out = np.clip(rng.normal(150, 6, (size, size, 3)), 0, 255).astype(np.uint8)
    # drawn at twice the size and shrunk: anti-aliased edges, as in a photo
    pts = pose.to_camera(head)
    shade = 0.35 + 0.65 * np.clip(pose.normals_to_camera(normals) @ light
                                  / np.linalg.norm(light), 0.0, 1.0)
    big = cv2.resize(out, (2 * size, 2 * size), interpolation=cv2.INTER_LINEAR)
    pix, tri, bary, _ = _rasterize(2.0 * cam.project(pts), -pts[:, 2], faces, 2 * size, 2 * size)
    vert = (colours * shade[:, None])[faces[tri]]          # (k, 3 corners, rgb)
    big.reshape(-1, 3)[pix] = np.clip(np.einsum("kc,kcj->kj", bary, vert), 0, 255)
    return cv2.resize(big, (size, size), interpolation=cv2.INTER_AREA)


# --------------------------------------------------------------------------- video

#: The app's webcam rate (gr.Image.stream with stream_every=0.1 s).
STREAM_FPS = 10.0


def stream_check(config: PoseConfig, smoothing: OneEuro = OneEuro(), frames: int = 60,
                 noise: float = 4.0, speed: float = 45.0, seed: int = 0) -> dict:
    """The video path (VIDEO mode, ``config.stream_method``), as read and smoothed by a
    :class:`~loomis.smoothing.PoseTracker` with ``smoothing``, at STREAM_FPS.

    * ``jitter``: a still face, fresh Gaussian pixel noise (``noise`` grey levels) on every
      frame: the standard deviation of each angle over the frames after the first 10 (the
      astronaut photo, and the scanned face over a procedural head, frontal).
    * ``lag``: the scanned face over a procedural head turning its yaw from -40° to 40°
      and back at ``speed`` °/s: how many frames the smoothed yaw trails the raw one (the
      shift, to 0.1 frame, that best aligns them), and each one's MAE against the truth.
    * ``frame_ms``: the median time of one smoothed 640×480 frame's pose (the whole
      webcam frame, drawing included, is timed by ``benchmarks/engine_speed.py``)."""
    import time

    import skimage.data

    rng = np.random.default_rng(seed)
    scan = _face_scan()
    stills = {"astronaut": skimage.data.astronaut()}
    cam = Camera.from_fov(512, 512, 50.0)
    if scan is not None:
        stills["scan_headed"] = _scan_image(scan, HeadPose(5.0, 3.0, 2.0, 1.0, (0.0, 0.0, -11.0)),
                                            cam, np.random.default_rng(1), True,
                                            light=np.array([0.3, 0.3, 1.0]))

    def series(images) -> dict[str, np.ndarray]:
        """Yaw, pitch and roll per frame, as read and as smoothed by a PoseTracker."""
        out: dict[str, list] = {"raw": [], "smoothed": []}
        tracker = PoseTracker(smoothing)
        with PoseEstimator(config, static_image_mode=False) as est:
            for i, img in enumerate(images):
                stamp = i * 1000.0 / STREAM_FPS
                faces = est.analyse_array(img, timestamp_ms=stamp).faces
                for name, got in (("raw", faces), ("smoothed", tracker.update(faces, stamp / 1000.0))):
                    out[name].append((got[0].yaw, got[0].pitch, got[0].roll) if got
                                     else (np.nan,) * 3)
        return {k: np.array(v) for k, v in out.items()}

    res: dict = {"fps": STREAM_FPS, "noise_grey_levels": noise, "jitter": {}}
    for name, still in stills.items():
        noisy = [np.clip(still + rng.normal(0, noise, still.shape), 0, 255).astype(np.uint8)
                 for _ in range(frames)]
        got = series(noisy)
        res["jitter"][name] = {
            k: {a: round(float(np.nanstd(v[10:, i])), 3) for i, a in enumerate(AXES)}
            for k, v in got.items()}
    if scan is not None:
        step = speed / STREAM_FPS
        yaws = np.concatenate([np.arange(-40.0, 40.0, step), np.arange(40.0, -40.0, -step)])
        frames_turning = [_scan_image(scan, HeadPose(y, 3.0, 2.0, 1.0, (0.0, 0.0, -11.0)), cam,
                                      np.random.default_rng(1), True,
                                      light=np.array([0.3, 0.3, 1.0])) for y in yaws]
        got = series(frames_turning)
        raw, smooth = got["raw"][:, 0], got["smoothed"][:, 0]
        idx = np.arange(len(raw), dtype=float)

        def misfit(shift: float) -> float:
            keep = idx >= shift + 3
            return float(np.nanmean((smooth[keep] - np.interp(idx[keep] - shift, idx, raw)) ** 2))

        shifts = np.arange(0.0, 8.01, 0.1)
        truth = np.array([_labels(HeadPose(y, 3.0, 2.0, 1.0, (0.0, 0.0, -11.0)))[0] for y in yaws])
        res["lag"] = {"speed_deg_per_s": speed,
                      "frames": round(float(shifts[np.argmin([misfit(x) for x in shifts])]), 1),
                      "raw_yaw_mae": round(float(np.nanmean(np.abs(raw - truth))), 2),
                      "smoothed_yaw_mae": round(float(np.nanmean(np.abs(smooth - truth))), 2)}
    frame = cv2.resize(skimage.data.astronaut(), (640, 480))
    tracker = PoseTracker(smoothing)
    with PoseEstimator(config, static_image_mode=False) as est:
        times = []
        for i in range(30):
            t = time.perf_counter()
            tracker.update(est.analyse_array(frame, timestamp_ms=i * 100.0).faces, i / 10.0)
            times.append(1000.0 * (time.perf_counter() - t))
    res["frame_ms"] = round(float(np.median(times[5:])), 2)
    return res


def _render(src, tex, ref, tris, pose: HeadPose, cam: Camera, out: np.ndarray) -> np.ndarray:
    pts3 = pose.to_camera(ref)
    uv = cam.project(pts3)
    depth = -pts3[tris].mean(1)[:, 2]
    for t in tris[np.argsort(-depth)]:                   # far to near (painter)
        d2 = uv[t].astype(np.float32)
        area = (d2[1, 0] - d2[0, 0]) * (d2[2, 1] - d2[0, 1]) - \
               (d2[2, 0] - d2[0, 0]) * (d2[1, 1] - d2[0, 1])
        if abs(area) < 0.5:
            continue
        x0, y0 = np.floor(d2.min(0)).astype(int)
        x1, y1 = np.ceil(d2.max(0)).astype(int) + 1
        x0, y0 = max(x0, 0), max(y0, 0)
        x1, y1 = min(x1, out.shape[1]), min(y1, out.shape[0])
        if x1 <= x0 or y1 <= y0:
            continue
        m = cv2.getAffineTransform(tex[t].astype(np.float32),
                                   (d2 - np.float32([x0, y0])).astype(np.float32))
        patch = cv2.warpAffine(src, m, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REFLECT)
        mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        cv2.fillConvexPoly(mask, np.round((d2 - [x0, y0]) * 16).astype(np.int32), 1,
                           lineType=cv2.LINE_8, shift=4)
        roi = out[y0:y1, x0:x1]
        roi[mask > 0] = patch[mask > 0]
    return out


# --------------------------------------------------------------------------- synthetic

def render_set(n: int, seed: int = 0, size: int = 384):
    """Procedural heads of loomis.train.render at random known poses and identities."""
    from loomis.train.render import HeadIdentity, Lighting, render_head

    rng = np.random.default_rng(seed)
    for _ in range(n):
        ident = HeadIdentity.sample(rng)
        pose, cam = _random_view(rng, size, fov=40.0, dist=(14.0, 18.0), off=0.08)
        yield (render_head(ident, pose, cam, Lighting.sample(rng)), _labels(pose),
               _labels(pose, _profile_tilt(ident.proportions)))


def synthetic_set(n: int, seed: int = 0, size: int = 384):
    """The training scenes of loomis.train.synthetic (the same head model, framing, lighting
    and backgrounds as ``make_dataset.py synthetic``), limited to |yaw| <= 60."""
    try:
        from loomis.train import synthetic
    except ImportError:
        return None

    def gen():
        i = 0
        made = 0
        while made < n:
            params = synthetic.scene(seed, i, stream=7)
            i += 1
            if abs(params.pose.yaw) > 60:
                continue
            made += 1
            yield (np.asarray(synthetic.render_photo(params, size)), _labels(params.pose),
                   _labels(params.pose, _profile_tilt(params.identity.proportions)))

    return gen()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--labels", type=Path,
                    help="CSV with the columns filename,yaw,pitch,roll (degrees, this "
                         "project's convention; see --negate and --radians)")
    ap.add_argument("--photos", type=Path,
                    help="folder the CSV's filenames are in (default: the CSV's folder)")
    ap.add_argument("--predictions", type=Path, default=None,
                    help="write one row per labelled photo: labels, estimate, errors, status")
    ap.add_argument("--negate", default="", help="comma list of axes whose sign to flip")
    ap.add_argument("--radians", action="store_true", help="labels are in radians")
    ap.add_argument("--rerender", type=int, default=60,
                    help="astronaut face re-rendered at this many known poses (0: skip)")
    ap.add_argument("--headed", type=int, default=0,
                    help="astronaut face painted over procedural heads")
    ap.add_argument("--render", type=int, default=0, help="procedural heads (loomis.train.render)")
    ap.add_argument("--synthetic", type=int, default=0, help="loomis.train.synthetic samples")
    ap.add_argument("--scan", type=int, default=0,
                    help="Gradio's scanned face (an independent real face) at this many "
                         "known poses")
    ap.add_argument("--scan-headed", type=int, default=0,
                    help="the scanned face painted over procedural heads")
    ap.add_argument("--lens", type=int, default=0,
                    help="astronaut face re-rendered centred at this many poses through "
                         f"each of {', '.join(f'{f:g}' for f in LENS_FOVS)}° lenses, the "
                         "estimator told the true field of view")
    ap.add_argument("--mirror", type=Path, default=None, metavar="DIR",
                    help="real photos without labels: each read and mirrored (--mirror-n)")
    ap.add_argument("--mirror-n", type=int, default=100)
    ap.add_argument("--stream", type=int, default=0, metavar="FRAMES",
                    help="the webcam path: jitter on a still face and lag on a turning one "
                         "over this many still frames (raw and One-Euro smoothed)")
    ap.add_argument("--methods", default="matrix,matrix_joint,joint",
                    help="PoseConfig.method values to compare, among "
                         f"{', '.join(METHODS)} (the app uses {PoseConfig().method})")
    ap.add_argument("--depth-weight", type=float, default=PoseConfig().depth_weight,
                    help="PoseConfig.depth_weight (the joint fit's weight of MediaPipe's depth)")
    ap.add_argument("--pitch-gain", type=float, default=1.0, help="PoseConfig.pitch_gain")
    ap.add_argument("--depth-scale", type=float, default=1.0, help="PoseConfig.depth_scale")
    ap.add_argument("--fov", type=float, default=PoseConfig().fov_deg, help="PoseConfig.fov_deg")
    ap.add_argument("--contour", action="store_true",
                    help="fit the face outline landmarks too (PoseConfig.contour_landmarks)")
    ap.add_argument("--mirror-average", action=argparse.BooleanOptionalAction,
                    default=PoseConfig().mirror_average,
                    help="average each photo's landmarks with its mirror image's "
                         "(PoseConfig.mirror_average)")
    ap.add_argument("--upright-pass", action=argparse.BooleanOptionalAction,
                    default=PoseConfig().upright_pass,
                    help="read each face again on a crop turned upright "
                         "(PoseConfig.upright_pass)")
    ap.add_argument("--skip-hidden", action=argparse.BooleanOptionalAction,
                    default=PoseConfig().skip_hidden,
                    help="leave landmarks turned away from the camera out of the joint "
                         "fit's pitch step (PoseConfig.skip_hidden)")
    ap.add_argument("--save", type=Path, default=None, help="write the results as JSON")
    ap.add_argument("--plot", type=Path, default=None,
                    help="write a PNG of estimated against true angle, per set and method")
    args = ap.parse_args()
    methods = [m for m in args.methods.split(",") if m]
    if args.labels:  # read and check the labels before anything slow runs
        negate = {a.strip() for a in args.negate.split(",") if a.strip()}
        if negate - set(AXES):
            raise SystemExit(f"--negate takes axes among {', '.join(AXES)}, "
                             f"got {args.negate!r}")
        labels = labelled(args.labels, args.photos or args.labels.parent, negate, args.radians)
    results: dict = {}
    plotted: dict = {}        # set name → method → records, for --plot

    for method in methods:
        def records(name: str, method: str = method) -> list | None:
            """Where ``_evaluate`` keeps each sample's estimate, when --plot asks for it."""
            return plotted.setdefault(name, {}).setdefault(method, []) if args.plot else None

        cfg = PoseConfig(method=method, pitch_gain=args.pitch_gain, fov_deg=args.fov,
                         depth_weight=args.depth_weight,
                         depth_scale=args.depth_scale, contour_landmarks=args.contour,
                         upright_pass=args.upright_pass,
                         mirror_average=args.mirror_average, skip_hidden=args.skip_hidden)
        res: dict = {"symmetry": symmetry(cfg)}
        if args.rerender:
            res["rerender"] = _evaluate(rerender_set(args.rerender), cfg, records("rerender"))
        if args.headed:
            res["headed"] = _evaluate(headed_set(args.headed), cfg, records("headed"))
        if args.render:
            res["render"] = _evaluate(render_set(args.render), cfg, records("render"))
        if args.synthetic:
            samples = synthetic_set(args.synthetic)
            res["synthetic"] = (_evaluate(samples, cfg, records("synthetic"))
                                if samples is not None else "loomis.train.synthetic not available")
        for name, n in (("scan", args.scan), ("scan_headed", args.scan_headed)):
            samples = scan_set(n, headed=name == "scan_headed") if n else None
            if n:
                res[name] = (_evaluate(samples, cfg, records(name)) if samples is not None
                             else "Gradio's face scan not installed")
        if args.mirror:
            res["mirror"] = mirror_check(args.mirror, args.mirror_n, cfg)
        if args.stream:
            res["stream"] = stream_check(cfg, frames=args.stream)
        if args.lens:
            res["lens"] = {f"{fov:g}°": _evaluate(lens_set(args.lens, fov),
                                                 dataclasses.replace(cfg, fov_deg=fov),
                                                 records("lens"))
                           for fov in LENS_FOVS}
        if args.labels:
            photos: list = records("labelled") if args.plot else []
            res["labelled"] = _evaluate(labels, cfg, photos)
            res["labelled"]["not_found"] = {r["image"]: r["status"] for r in photos
                                            if r["status"] != "ok"}
            if args.predictions:
                write_predictions(args.predictions, photos, method,
                                  append=method != methods[0])
        results[method] = res
    text = json.dumps(results, indent=1)
    print(text)
    if args.save:
        args.save.write_text(text)
    if args.plot:
        plot_estimates(args.plot, plotted)


if __name__ == "__main__":
    main()
