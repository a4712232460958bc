"""Draw projected construction strokes as pencil lines, clean or sketchy.

Why this is its own module: the same strokes are drawn in three places that want
different looks from one code path: the training targets (clean or hand-made lines on
white paper), the app's overlay on a photo, and the live webcam path, which has a few
milliseconds for the whole drawing. Lines go through OpenCV's anti-aliased polylines with
sub-pixel coordinates into a single ink-coverage layer, which is then composited onto the
paper or the photo in one pass, so a 640x480 drawing costs about a millisecond or two.

The sketchy style imitates a hand: each stroke wobbles by a smooth random offset, its
pressure (darkness) varies and fades at the ends, open strokes overshoot their end
points, closed ones start anywhere and overlap where they meet, and some strokes are
traced twice. It is seeded, so a given seed always draws the same picture.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

from loomis.head import Stroke

__all__ = ["DrawStyle", "draw_strokes", "line_unit", "line_thickness", "drawn_width", "dash_pattern", "visibility_runs"]

_HIDDEN_MODES = ("dashed", "faint", "omit")
_LEVELS = 8          # pressure is quantised to this many grey levels (one cv2 call each)
_SHIFT = 4           # cv2 sub-pixel bits: coordinates are multiplied by 16


@dataclass(frozen=True)
class DrawStyle:
    """How strokes look.

    ``width`` is the line width in pixels; 0 picks one from the canvas size (about 1 px
    per 220 px of the shorter side). ``hidden`` is how far-side lines are drawn.
    ``jitter`` scales the sketchy wobble and overshoot (1 = a steady hand at arm's length).
    """

    color: tuple[int, int, int] = (40, 40, 48)
    width: float = 0.0
    hidden: str = "dashed"
    hidden_opacity: float = 0.45
    opacity: float = 1.0
    sketchy: bool = False
    seed: int = 0
    jitter: float = 1.0
    paper: tuple[int, int, int] = (255, 255, 255)

    def __post_init__(self) -> None:
        if self.hidden not in _HIDDEN_MODES:
            raise ValueError(f"hidden must be one of {_HIDDEN_MODES}, got {self.hidden!r}")
        if self.width < 0:
            raise ValueError(f"line width must be >= 0 pixels (0 = automatic), got {self.width}")
        if not 0.0 <= self.opacity <= 1.0 or not 0.0 <= self.hidden_opacity <= 1.0:
            raise ValueError("opacity and hidden_opacity must lie in [0, 1]")
        for name, c in (("color", self.color), ("paper", self.paper)):
            if len(c) != 3 or not all(0 <= int(v) <= 255 for v in c):
                raise ValueError(f"{name} must be an (r, g, b) triple of 0..255, got {c!r}")
        if self.jitter < 0:
            raise ValueError(f"jitter must be >= 0, got {self.jitter}")


def _resample(pts: np.ndarray, vis: np.ndarray, spacing: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Points evenly spaced by arc length; returns points, visibility and arc length."""
    seg = np.linalg.norm(np.diff(pts, axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    total = s[-1]
    if total < 1e-9:
        return pts[:1], vis[:1], np.zeros(1)
    n = max(int(math.ceil(total / spacing)) + 1, 2)
    t = np.linspace(0.0, total, n)
    out = np.stack([np.interp(t, s, pts[:, 0]), np.interp(t, s, pts[:, 1])], -1)
    v = np.interp(t, s, vis.astype(np.float64)) > 0.5
    return out, v, t


def _smooth_noise(rng: np.random.Generator, s: np.ndarray, wavelength: float) -> np.ndarray:
    """A smooth random function of arc length, roughly in [-1, 1] (three random waves)."""
    out = np.zeros_like(s)
    for k in (1.0, 2.3, 4.1):
        freq = 2 * math.pi * k / max(wavelength, 1e-6) * rng.uniform(0.7, 1.3)
        out += math.cos(rng.uniform(0, 2 * math.pi)) / k * np.sin(freq * s + rng.uniform(0, 2 * math.pi))
    return out / 1.2


def _sketchify(pts: np.ndarray, vis: np.ndarray, closed: bool, rng: np.random.Generator,
               unit: float, jitter: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Wobble, overshoot and pressure for one stroke; returns points, visibility, pressure."""
    if closed:
        # Start anywhere and go round a little more than once, so the ends overlap.
        n0 = len(pts) - 1
        start = int(rng.integers(0, max(n0, 1)))
        loop = np.concatenate([pts[start:-1], pts[:-1], pts[:start + 1]])
        lvis = np.concatenate([vis[start:-1], vis[:-1], vis[:start + 1]])
        seg = np.linalg.norm(np.diff(loop, axis=0), axis=1)
        s = np.concatenate([[0.0], np.cumsum(seg)])
        keep = s <= s[n0] * (1.0 + rng.uniform(0.02, 0.07)) if n0 < len(s) else np.ones(len(s), bool)
        pts, vis = loop[keep], lvis[keep]
    pts, vis, s = _resample(pts, vis, spacing=max(2.0, unit * 1.5))
    if len(pts) < 2:
        return pts, vis, np.ones(len(pts))
    tangent = np.gradient(pts, axis=0)
    tangent /= np.maximum(np.linalg.norm(tangent, axis=1, keepdims=True), 1e-9)
    normal = np.stack([-tangent[:, 1], tangent[:, 0]], -1)
    length = s[-1]
    amp = unit * 1.1 * jitter
    wobble = amp * _smooth_noise(rng, s, wavelength=max(length, 40.0 * unit))
    offset = rng.normal(0.0, 0.6 * amp, size=2)
    pts = pts + normal * wobble[:, None] + offset
    if not closed:
        # Overshoot: run on past each end along the end tangents.
        over = unit * 3.0 * jitter
        head = pts[0] - tangent[0] * rng.uniform(0.2, 1.0) * over
        tail = pts[-1] + tangent[-1] * rng.uniform(0.4, 1.4) * over
        pts = np.concatenate([head[None], pts, tail[None]])
        vis = np.concatenate([vis[:1], vis, vis[-1:]])
        s = np.concatenate([[0.0], s + np.linalg.norm(pts[1] - pts[0]), [0.0]])
        s[-1] = s[-2] + np.linalg.norm(pts[-1] - pts[-2])
        length = s[-1]
    base = rng.uniform(0.7, 1.0)
    pressure = base * (1.0 + 0.22 * _smooth_noise(rng, s, wavelength=max(length * 0.7, 20.0)))
    ramp = max(min(0.15 * length, 12.0 * unit), 1e-6)
    taper = np.clip(np.minimum(s, length - s) / ramp, 0.0, 1.0)
    pressure = pressure * (0.35 + 0.65 * taper)
    return pts, vis, np.clip(pressure, 0.05, 1.0)


def line_unit(style: DrawStyle, size: tuple[int, int]) -> float:
    """The line width ``style`` draws with on a canvas of ``size`` (width, height), in
    pixels: its own, or about 1 px per 220 px of the shorter side."""
    return style.width if style.width > 0 else max(1.0, min(size) / 220.0)


def line_thickness(unit: float) -> int:
    """The whole-pixel thickness a line of width ``unit`` is drawn with."""
    return max(1, int(round(unit)))


@functools.lru_cache(maxsize=32)
def drawn_width(thickness: int) -> float:
    """How wide a line of ``thickness`` comes out on the page, in pixels: OpenCV's
    anti-aliased thick lines are wider than their nominal thickness, so the width is read
    off a drawn line (its ink summed across it) rather than assumed."""
    size = 8 * thickness + 16
    ink = np.zeros((size, size), np.uint8)
    mid, end = size // 2 << _SHIFT, (size - 4) << _SHIFT
    cv2.polylines(ink, [np.array([[mid, 4 << _SHIFT], [mid, end]], np.int32)], False, 255,
                  thickness, cv2.LINE_AA, shift=_SHIFT)
    return float(ink[size // 2].sum()) / 255.0


def dash_pattern(unit: float) -> tuple[float, float]:
    """Dash and gap lengths of hidden lines drawn ``unit`` wide: about 4 and 3 widths."""
    return 4.0 * unit + 2.0, 3.0 * unit + 2.0


def _dash(pts: np.ndarray, unit: float) -> list[np.ndarray]:
    """Cut a polyline into dashes (:func:`dash_pattern`)."""
    if len(pts) < 2:
        return []
    dash, gap = dash_pattern(unit)
    pts, _, s = _resample(pts, np.ones(len(pts), bool), spacing=max(1.0, unit))
    on = (s % (dash + gap)) < dash
    return [pts[a:b] for a, b, flag in visibility_runs(on) if flag and b - a >= 2]


def visibility_runs(flags: np.ndarray) -> list[tuple[int, int, bool]]:
    """Maximal runs of equal flags as (start, stop_inclusive, flag); runs share end points."""
    if len(flags) == 0:
        return []
    change = np.flatnonzero(flags[1:] != flags[:-1]) + 1
    bounds = np.concatenate([[0], change, [len(flags)]])
    out = []
    for a, b in zip(bounds[:-1], bounds[1:]):
        out.append((int(a), int(min(b, len(flags) - 1)), bool(flags[a])))
    return out


def draw_strokes(strokes: Sequence[Stroke], canvas: Image.Image | tuple[int, int],
                 style: DrawStyle = DrawStyle()) -> Image.Image:
    """Draw ``strokes`` onto a copy of ``canvas`` (a photo) or onto fresh paper.

    ``canvas`` is a PIL image (drawn over; it is not modified) or a ``(width, height)``
    size for a blank sheet of ``style.paper``. Returns an RGB ``PIL.Image``.
    """
    if isinstance(canvas, Image.Image):
        base = np.array(canvas.convert("RGB"))
    else:
        try:
            w, h = (int(v) for v in canvas)
        except (TypeError, ValueError):
            raise ValueError(f"canvas must be a PIL image or a (width, height) pair, got {canvas!r}") from None
        if w < 1 or h < 1:
            raise ValueError(f"canvas size must be positive, got {w}x{h}")
        base = cv2.merge([np.full((h, w), int(c), np.uint8) for c in style.paper])
    h, w = base.shape[:2]
    unit = line_unit(style, (w, h))
    thickness = line_thickness(unit)
    rng = np.random.default_rng(style.seed)
    groups: list[list[np.ndarray]] = [[] for _ in range(_LEVELS)]

    def add(poly: np.ndarray, level: float) -> None:
        if len(poly) >= 2:
            k = min(max(int(round(level * (_LEVELS - 1))), 1), _LEVELS - 1)
            groups[k].append(poly)

    def add_varying(poly: np.ndarray, pressure: np.ndarray, factor: float) -> None:
        """Split a polyline wherever its quantised pressure level changes."""
        lv = np.clip(np.round(pressure * factor * (_LEVELS - 1)), 1, _LEVELS - 1).astype(int)
        seg_lv = np.maximum(lv[:-1], lv[1:]) if len(lv) > 1 else lv
        for a, b, _ in _runs_levels(seg_lv):
            add(poly[a:b + 2], seg_lv[a] / (_LEVELS - 1))

    for stroke in strokes:
        pts = np.asarray(stroke.points, np.float64)
        vis = np.asarray(stroke.visible, bool)
        if len(pts) < 2 or not np.isfinite(pts).all():
            continue
        if stroke.closed:
            pts = np.concatenate([pts, pts[:1]])
            vis = np.concatenate([vis, vis[:1]])
        passes = 1
        if style.sketchy:
            passes = 2 if rng.random() < 0.3 else 1
        for p in range(passes):
            if style.sketchy:
                q, v, pressure = _sketchify(pts, vis, stroke.closed, rng, unit, style.jitter)
                if p == 1:
                    pressure = pressure * 0.6
            else:
                q, v, pressure = pts, vis, np.ones(len(pts))
            for a, b, seen in visibility_runs(v):
                piece, pr = q[a:b + 1], pressure[a:b + 1]
                if seen:
                    add_varying(piece, pr, 1.0)
                elif style.hidden == "faint":
                    add_varying(piece, pr, style.hidden_opacity)
                elif style.hidden == "dashed":
                    for dash in _dash(piece, unit):
                        add(dash, max(style.hidden_opacity, 0.5) * float(pr.mean()))

    ink = np.zeros((h, w), np.uint8)
    for k in range(1, _LEVELS):             # faint first, so darker lines win at crossings
        if groups[k]:
            polys = np.concatenate(groups[k])
            np.clip(polys, -1e4, 1e4, out=polys)
            polys = np.round(polys * (1 << _SHIFT)).astype(np.int32)
            splits = np.cumsum([len(g) for g in groups[k]])[:-1]
            polys = np.split(polys, splits)
            cv2.polylines(ink, polys, False, int(round(255 * k / (_LEVELS - 1))), thickness,
                          cv2.LINE_AA, shift=_SHIFT)
    # Composite only the inked pixels (a few percent of the canvas): this is what keeps a
    # 640x480 drawing within a couple of milliseconds.
    flat = base.reshape(-1, 3)
    nz = cv2.findNonZero(ink)
    if nz is None:
        return Image.fromarray(base)
    idx = nz[:, 0, 1].astype(np.int64) * w + nz[:, 0, 0]
    alpha = ink.reshape(-1)[idx].astype(np.float32)[:, None] * (style.opacity / 255.0)
    px = flat[idx].astype(np.float32)
    px += alpha * (np.asarray(style.color, np.float32) - px)
    flat[idx] = (px + 0.5).astype(np.uint8)
    return Image.fromarray(base)


def _runs_levels(levels: np.ndarray) -> list[tuple[int, int, int]]:
    """Runs of equal segment levels as (first_segment, last_segment, level)."""
    if len(levels) == 0:
        return []
    change = np.flatnonzero(levels[1:] != levels[:-1]) + 1
    bounds = np.concatenate([[0], change, [len(levels)]])
    return [(int(a), int(b - 1), int(levels[a])) for a, b in zip(bounds[:-1], bounds[1:])]
