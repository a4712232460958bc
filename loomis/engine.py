"""The geometric engine: photo in, Loomis construction drawn in each face's own pose out.

A GAN cannot make the geometric change from a photo to its construction; this module
does it explicitly. :mod:`loomis.pose` finds every face and its 3D pose through an
assumed pinhole camera, :func:`loomis.head.construction_lines` projects the construction
through *that same camera* (so off-centre faces get the perspective they were measured
with), and :func:`loomis.draw.draw_strokes` inks it over a background:

* ``"faded"``  the photo washed towards white, so the lines read clearly;
* ``"pencil"`` the photo as a pencil drawing (colour dodge of a blurred inverse);
* ``"paper"``  blank paper: the construction alone (the pix2pix target);
* ``"photo"``  the photo unchanged.

``features=True`` also sketches the face's own eyes, brows, nose, mouth and jaw contour
from the landmarks, the step after the construction in a Loomis drawing.

Photos take :func:`loomis.pipeline.photo_to_drawing`, which calls these pieces;
:func:`live_frame` is for a webcam stream (numpy in, numpy out, never raises for a frame
without a face: it comes back unchanged).
"""
from __future__ import annotations

import dataclasses
import functools
import time
from typing import Literal, Sequence

import cv2
import numpy as np
from PIL import Image

from loomis.draw import DrawStyle, draw_strokes
from loomis.face_reference import landmark_paths, load_reference
from loomis.head import LoomisProportions, Stroke, construction_lines
from loomis.pose import FacePose, NoFaceError, PoseEstimator
from loomis.smoothing import PoseTracker

__all__ = ["live_frame", "draw_faces", "construction_strokes", "ink",
           "feature_strokes", "feature_style", "line_width",
           "make_background", "pencil_sketch", "NoFaceError", "Background", "INK", "GRAPHITE"]

Background = Literal["faded", "pencil", "paper", "photo"]
BACKGROUNDS = ("faded", "pencil", "paper", "photo")

#: Construction lines over a photo: a warm red that stands out on skin and on grey.
INK = DrawStyle(color=(205, 35, 30))
#: Construction lines on blank paper: graphite.
GRAPHITE = DrawStyle(color=(40, 40, 48))


def _default_style(bg: str) -> DrawStyle:
    return GRAPHITE if bg == "paper" else INK


#: Webcam frames larger than this (pixels, longer side) are scaled down first.
MAX_FRAME_SIDE = 1280


def live_frame(frame: np.ndarray | None, estimator: PoseEstimator, *,
               tracker: PoseTracker | None = None, timestamp_ms: float | None = None,
               background: Background = "photo", style: DrawStyle | None = None,
               features: bool = False, proportions: LoomisProportions = LoomisProportions()
               ) -> np.ndarray | None:
    """One webcam frame (``H×W×3`` uint8 RGB) with the construction drawn on it.

    ``estimator`` is a ``PoseEstimator(static_image_mode=False)``: the landmarker tracks
    the face between frames. ``tracker``, one per stream, steadies the construction
    (One-Euro filters; None draws the raw reading); ``timestamp_ms`` is the frame's time
    (default: now). A frame with no face, or one that is not an RGB uint8 array, is
    returned unchanged: a stream must not stop because someone looked away. A frame
    larger than :data:`MAX_FRAME_SIDE` comes back scaled down to it.
    """
    if frame is None:
        return None
    arr = np.asarray(frame)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] not in (3, 4) or arr.size == 0:
        return frame
    rgb = np.ascontiguousarray(arr[..., :3])
    if max(rgb.shape[:2]) > MAX_FRAME_SIDE:       # a huge frame: drawn at a webcam's size
        k = MAX_FRAME_SIDE / max(rgb.shape[:2])
        rgb = cv2.resize(rgb, (max(1, round(rgb.shape[1] * k)), max(1, round(rgb.shape[0] * k))),
                         interpolation=cv2.INTER_AREA)
        frame = rgb
    stamp = time.monotonic() * 1000.0 if timestamp_ms is None else float(timestamp_ms)
    faces = estimator.analyse_array(rgb, stamp).faces
    if tracker is not None:
        faces = tracker.update(faces, stamp / 1000.0)
    if not faces:
        return frame
    base = make_background(rgb, background, 0.6)
    return draw_faces(base, faces, style=style or _default_style(background),
                      features=features, proportions=proportions, samples=48)


def draw_faces(base: np.ndarray, faces: list[FacePose], *, style: DrawStyle,
               features: bool = False, feature_style: DrawStyle | None = None,
               proportions: LoomisProportions | Sequence[LoomisProportions] = LoomisProportions(),
               samples: int = 96, construction: bool = True) -> np.ndarray:
    """Ink the construction (unless ``construction`` is off) and optionally the features
    of ``faces`` onto ``base``. ``proportions`` is one for all faces or one per face."""
    if style.width == 0 and faces:   # automatic: follow the face, not the canvas
        style = dataclasses.replace(style, width=line_width(faces))
    strokes = construction_strokes(faces, proportions, samples) if construction else []
    fstrokes = [s for face in faces for s in feature_strokes(face)] if features else []
    return ink(base, strokes, fstrokes, style, feature_style)


def construction_strokes(faces: list[FacePose],
                         proportions: LoomisProportions | Sequence[LoomisProportions]
                         = LoomisProportions(), samples: int = 96) -> list[Stroke]:
    """The construction lines of every face in its picture's pixels, in drawing order per
    face; ``proportions`` is one for all faces or one per face."""
    per_face = ([proportions] * len(faces) if isinstance(proportions, LoomisProportions)
                else list(proportions))
    strokes: list[Stroke] = []
    for face, prop in zip(faces, per_face):
        try:
            strokes += construction_lines(face.head, face.camera, prop, samples=samples)
        except ValueError:      # a head so close its back is behind the camera: skip it
            continue
    return strokes


def feature_style(style: DrawStyle) -> DrawStyle:
    """How the face's own features are drawn beside a construction in ``style``: darker,
    and only where seen."""
    return dataclasses.replace(style, color=tuple(int(c * 0.5) for c in style.color),
                               hidden="omit")


def ink(base: np.ndarray, strokes: Sequence[Stroke], fstrokes: Sequence[Stroke],
        style: DrawStyle, fstyle: DrawStyle | None = None) -> np.ndarray:
    """``base`` with the construction ``strokes``, then the ``fstrokes`` features, drawn."""
    img = draw_strokes(strokes, Image.fromarray(base), style)
    if fstrokes:
        img = draw_strokes(fstrokes, img, fstyle or feature_style(style))
    return np.asarray(img)


def line_width(faces: list[FacePose]) -> float:
    """About a 25th of a Loomis unit of the largest face: bold enough on a thumbnail,
    fine on a close-up."""
    return float(np.clip(max(f.u_pixels for f in faces) / 25.0, 1.0, 6.0))


def feature_strokes(face: FacePose) -> list[Stroke]:
    """The face's own eyes, brows, nose, lips and jaw contour as 2D strokes."""
    out = []
    for name, paths in _feature_paths().items():
        for path in paths:
            pts = face.landmarks[path]
            out.append(Stroke(f"feature_{name}", pts, np.ones(len(pts), bool)))
    return out


@functools.lru_cache(maxsize=1)
def _feature_paths() -> dict[str, list[np.ndarray]]:
    paths = {k: [np.asarray(p) for p in v] for k, v in landmark_paths().items()}
    # the jaw: the lower part of the face oval (below the cheekbones), not the forehead
    ref = load_reference()
    oval = paths.pop("oval")[0][:-1]
    low = ref.points[oval, 1] < -0.7
    start = int(np.flatnonzero(low & ~np.roll(low, 1))[0])
    ring = np.roll(oval, -start)
    paths["jaw"] = [ring[: int(low.sum())]]
    return paths


# --------------------------------------------------------------------------- backgrounds

def make_background(rgb: np.ndarray, kind: str, fade: float = 0.6) -> np.ndarray:
    """The surface the lines go on, as an ``H×W×3`` uint8 array (a new array)."""
    if kind == "photo":
        return rgb.copy()
    if kind == "faded":
        return cv2.addWeighted(rgb, 1.0 - fade, np.full_like(rgb, 255), fade, 0.0)
    if kind == "pencil":
        return pencil_sketch(rgb)
    if kind == "paper":
        return np.full_like(rgb, 255)
    raise ValueError(f"background must be one of {BACKGROUNDS}, got {kind!r}")


def pencil_sketch(rgb: np.ndarray) -> np.ndarray:
    """A pencil drawing of a photo: colour dodge of the grey image with its blurred
    inverse. Flat areas go white, edges and shadows keep graphite-like strokes; the blur
    radius follows the image size so a thumbnail and a poster look alike."""
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    sigma = max(1.0, min(gray.shape) / 90.0)
    blur = cv2.GaussianBlur(255 - gray, (0, 0), sigma)
    sketch = cv2.divide(gray, 255 - blur, scale=256)
    # a light tone of the photo's shading under the strokes, as a pencil hatches shadows
    sketch = cv2.addWeighted(sketch, 0.8, gray, 0.2, 0.0)
    return cv2.cvtColor(sketch, cv2.COLOR_GRAY2RGB)
