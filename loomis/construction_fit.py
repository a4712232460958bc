"""Fit the 3D Loomis construction to a line drawing: the pose and place whose projected
construction best explains the drawing's lines.

Why: a generator trained on a few thousand pairs draws the construction roughly, with
broken and doubled lines and a ball that is not quite round, but *where* it puts them
says a lot about the head's pose. The construction itself is a rigid 3D object with six
degrees of freedom (yaw, pitch, roll and position; the focal length is assumed as in
:mod:`loomis.pose`). Searching those six numbers for the projection that lies on the
drawn lines turns a rough drawing into an exact construction in one consistent pose, and
gives the pose as numbers. This is the "angle of the head" the original pix2pix
experiment got wrong, now solved by geometry on top of the network.

The fit minimises a symmetric truncated chamfer distance on the drawing's ink mask
(:func:`loomis.imageio.binarize`): the mean distance from each projected visible line
pixel to the nearest drawn one (lines drawn that are not in the drawing), plus the mean
distance from each drawn pixel to the nearest projected line (drawn lines it fails to
explain), both capped at ``FitConfig.tolerance`` so a few stray marks cannot pull the fit.
Search: a coarse grid over yaw, pitch and roll (position from the ink's extent), then
Nelder-Mead over all six parameters from the best few grid points; or, given a
``pose_hint`` (the pipeline passes the face's landmark pose), Nelder-Mead from the hint
alone. The grid is where the fit goes wrong: where a generator's lines are poor (profiles,
heads tilted up), a wrong pose can explain them about as well as the right one.

Why it can be trusted: fitted to the target drawings themselves it redraws them almost
exactly, so the search and the default proportions are not what limits it; and a
generator's grey lines (``ink_threshold`` above the metric's 0.5) and the mirror pass's
extra lines are evidence of where the head is, not clutter. The *fit* rows of
docs/quality.md measure it on real photos.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np
from PIL import Image

from loomis.camera import Camera, HeadPose
from loomis.draw import DrawStyle, draw_strokes
from loomis.head import ConstructionModel, LoomisProportions, Stroke, construction_lines
from loomis.imageio import ImageLike, load_image
from loomis.imageio import binarize

__all__ = ["FitConfig", "ConstructionFit", "EmptyDrawingError", "fit_construction",
           "nelder_mead"]

#: Head height in Loomis units the ink's extent is taken for (ball top to chin, 1.4 + 2)
_HEAD_HEIGHT_U = 3.4


class EmptyDrawingError(ValueError):
    """The drawing has too few lines to fit a construction to."""


@dataclass(frozen=True)
class FitConfig:
    """Options of :func:`fit_construction`.

    ``tolerance`` (pixels at ``work_size``) caps each distance in the cost: lines further
    apart than this count as simply missing. ``yaws``/``pitches``/``rolls`` are the grid
    the search starts from, at half the work size; the best ``starts`` grid points at
    least ``start_separation`` degrees apart are refined there, and the ``finalists``
    best of those again at the work size, each refinement with at most ``max_evals``
    cost evaluations.
    """

    fov_deg: float = 30.0
    work_size: int = 256
    tolerance: float = 8.0
    yaws: tuple[float, ...] = tuple(range(-90, 91, 10))
    pitches: tuple[float, ...] = tuple(range(-40, 41, 10))
    rolls: tuple[float, ...] = (-15.0, 0.0, 15.0)
    starts: int = 6
    finalists: int = 2                # refined again at the work size
    start_separation: float = 15.0    # degrees (any angle) between two starts
    max_evals: int = 300
    samples: int = 48                 # points on a full circle while searching
    ink_threshold: float = 0.65       # grey level below which a pixel is a line (see doc)
    hint_sigma: float = 5.0           # degrees; see fit_construction's pose_hint
    proportions: LoomisProportions = field(default_factory=LoomisProportions)

    def __post_init__(self) -> None:
        if not 1.0 < self.fov_deg < 150.0:
            raise ValueError(f"fov_deg must be in (1, 150), got {self.fov_deg}")
        if not 64 <= self.work_size <= 1024:
            raise ValueError(f"work_size must be in [64, 1024] pixels, got {self.work_size}")
        if not self.tolerance > 0:
            raise ValueError(f"tolerance must be positive, got {self.tolerance}")
        if not self.hint_sigma > 0:
            raise ValueError(f"hint_sigma must be positive degrees, got {self.hint_sigma}")
        if not 0.0 < self.ink_threshold < 1.0:
            raise ValueError(f"ink_threshold must lie in (0, 1), got {self.ink_threshold}")
        if min(self.starts, self.finalists, self.max_evals) < 1:
            raise ValueError("starts, finalists and max_evals must be at least 1")
        if not (self.yaws and self.pitches and self.rolls):
            raise ValueError("the start grid needs at least one yaw, pitch and roll")


@dataclass(frozen=True)
class ConstructionFit:
    """A fitted construction: its pose seen through ``camera`` (the drawing's own size),
    and ``cost``, the symmetric truncated chamfer distance (the sum of the two mean
    distances) in pixels at the work size: 0 when every line is explained exactly, under 1
    for a clean drawing of the construction, about 2.5-3.5 for a good fit to a generator's
    drawing and above 4 for most failed ones (the 60 validation scenes, no pose hint).
    With a ``pose_hint`` it includes the hint's term."""

    pose: HeadPose
    camera: Camera
    proportions: LoomisProportions
    cost: float

    def strokes(self) -> list[Stroke]:
        return construction_lines(self.pose, self.camera, self.proportions)

    def draw(self, style: DrawStyle = DrawStyle(hidden="omit"),
             canvas: Image.Image | None = None) -> Image.Image:
        """The construction on white paper at the drawing's size, or over ``canvas``."""
        target = canvas if canvas is not None else (self.camera.width, self.camera.height)
        return draw_strokes(self.strokes(), target, style)


def nelder_mead(f, x0: np.ndarray, steps: np.ndarray, max_evals: int,
                xtol: float = 1e-2, ftol: float = 1e-4) -> tuple[np.ndarray, float, int]:
    """Minimise ``f`` from ``x0`` (standard coefficients: reflect 1, expand 2, contract
    0.5, shrink 0.5); ``steps`` set the first simplex's edges, one per parameter.

    Returns ``(x, f(x), evaluations)``. Derivative-free because the cost is piecewise
    constant in sub-pixel moves (a rasterised chamfer distance)."""
    n = len(x0)
    simplex = np.vstack([x0, x0 + np.diag(steps)]).astype(np.float64)
    values = np.array([f(x) for x in simplex])
    evals = n + 1
    while evals < max_evals:
        order = np.argsort(values)
        simplex, values = simplex[order], values[order]
        if (np.abs(simplex[1:] - simplex[0]).max() < xtol
                and values[-1] - values[0] < ftol):
            break
        centroid = simplex[:-1].mean(0)
        reflected = centroid + (centroid - simplex[-1])
        fr = f(reflected)
        evals += 1
        if fr < values[0]:
            expanded = centroid + 2.0 * (centroid - simplex[-1])
            fe = f(expanded)
            evals += 1
            simplex[-1], values[-1] = (expanded, fe) if fe < fr else (reflected, fr)
        elif fr < values[-2]:
            simplex[-1], values[-1] = reflected, fr
        else:
            outside = fr < values[-1]
            contracted = centroid + 0.5 * ((reflected if outside else simplex[-1]) - centroid)
            fc = f(contracted)
            evals += 1
            if fc < min(fr, values[-1]):
                simplex[-1], values[-1] = contracted, fc
            else:  # shrink towards the best point
                simplex[1:] = simplex[0] + 0.5 * (simplex[1:] - simplex[0])
                values[1:] = [f(x) for x in simplex[1:]]
                evals += n
    best = int(np.argmin(values))
    return simplex[best], float(values[best]), evals


class _Cost:
    """The chamfer cost of a parameter vector (yaw, pitch, roll, x, y, z) on one mask."""

    def __init__(self, ink: np.ndarray, camera: Camera, config: FitConfig,
                 tolerance: float) -> None:
        self.camera, self.tolerance = camera, tolerance
        self.hint: np.ndarray | None = None     # (yaw, pitch, roll) of a pose_hint
        self.hint_sigma = config.hint_sigma
        self.model = ConstructionModel(config.proportions, config.samples)
        self.shape = ink.shape
        self.to_ink = np.minimum(
            cv2.distanceTransform((~ink).astype(np.uint8), cv2.DIST_L2, 3), tolerance)
        # Lines further than the tolerance from every drawn pixel cost the same wherever
        # they are, so the distance to the projected lines is only needed in the ink's
        # bounding box grown by the tolerance.
        ys, xs = np.nonzero(ink)
        m = int(math.ceil(tolerance)) + 1
        self.y0, self.x0 = max(int(ys.min()) - m, 0), max(int(xs.min()) - m, 0)
        self.y1 = min(int(ys.max()) + m + 1, ink.shape[0])
        self.x1 = min(int(xs.max()) + m + 1, ink.shape[1])
        self.ink_in_box = ink[self.y0:self.y1, self.x0:self.x1]
        (a, b), (c, d) = _extent(ink)
        self.ink_extent = (max(b - a, 4.0), max(d - c, 4.0))
        self.ink_centre = ((a + b) / 2, (c + d) / 2)
        self.canvas = np.zeros(self.shape, np.uint8)

    def lines(self, theta: np.ndarray) -> np.ndarray | None:
        """The projected construction's visible lines as a uint8 mask (1 = line), or None
        when the head would not lie in front of the camera."""
        yaw, pitch, roll, x, y, z = (float(v) for v in theta)
        try:
            segments = self.model.visible_segments(HeadPose(yaw, pitch, roll, 1.0, (x, y, z)),
                                                   self.camera)
        except ValueError:
            return None
        self.canvas.fill(0)
        fixed = np.clip(np.round(segments * 4), -(1 << 20), 1 << 20).astype(np.int32)
        cv2.polylines(self.canvas, list(fixed), False, 1, 1, cv2.LINE_8, shift=2)  # 1/4 px
        return self.canvas

    def align(self, theta: np.ndarray, rounds: int = 2) -> np.ndarray:
        """``theta`` with its position moved so the projected lines span the ink's extent
        (2nd to 98th percentile, robust to stray marks): distance from the heights, then
        the offset from the centres. Gives every grid point a fair start."""
        theta = np.array(theta, dtype=np.float64)
        focal = self.camera.focal
        for _ in range(rounds):
            drawn = self.lines(theta)
            if drawn is None or not drawn.any():
                return theta
            (y0, y1), (x0, x1) = _extent(drawn.astype(bool))
            theta[5] *= (y1 - y0) / self.ink_extent[0]   # further away when drawn too tall
            theta[3] += (self.ink_centre[1] - (x0 + x1) / 2) * abs(theta[5]) / focal
            theta[4] -= (self.ink_centre[0] - (y0 + y1) / 2) * abs(theta[5]) / focal
        return theta

    def __call__(self, theta: np.ndarray) -> float:
        yaw, pitch, roll = theta[:3]
        if abs(yaw) > 100 or abs(pitch) > 60 or abs(roll) > 45:
            return 1e3  # outside what a head does; keeps the simplex from wandering
        drawn = self.lines(theta)
        if drawn is None:
            return 1e3
        on = drawn.astype(bool)
        if on.sum() < 10:
            return 1e3
        box = 1 - drawn[self.y0:self.y1, self.x0:self.x1]
        to_drawn = cv2.distanceTransform(box, cv2.DIST_L2, 3)
        explained = float(np.minimum(to_drawn[self.ink_in_box], self.tolerance).mean())
        cost = explained + float(self.to_ink[on].mean())
        if self.hint is not None:   # the pose the photo shows, trusted to about hint_sigma
            cost += float(np.mean(((theta[:3] - self.hint) / self.hint_sigma) ** 2))
        return cost


def _rescaled(camera: Camera, size: tuple[int, int]) -> Camera:
    """``camera`` for the same picture resized to ``size`` (width, height)."""
    k = size[0] / camera.width
    cx, cy = camera.principal_point
    return Camera(size[0], size[1], camera.focal * k, cx=cx * k, cy=cy * k)


def _shrink(ink: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A line mask at ``size`` (width, height): a pixel is ink when any of the pixels it
    covers is. Why not resize the drawing: a 1-pixel line averaged with its paper over
    a 3x3 block turns light grey and would vanish at the ink threshold."""
    if size == (ink.shape[1], ink.shape[0]):
        return ink
    area = cv2.resize(ink.astype(np.float32), size, interpolation=cv2.INTER_AREA)
    return area > 1e-3


def _extent(mask: np.ndarray) -> tuple[tuple[float, float], tuple[float, float]]:
    """(row range, column range) of a mask's pixels, 2nd to 98th percentile."""
    ys, xs = np.nonzero(mask)
    return (tuple(np.percentile(ys, [2, 98])), tuple(np.percentile(xs, [2, 98])))


def _start_position(ink: np.ndarray, camera: Camera) -> tuple[float, float, float]:
    """Ball centre (camera frame) from the ink's extent: the drawing's height is about
    the head's (ball top to chin), and the ball centre sits 1.4 of its 3.4 units down."""
    ys, xs = np.nonzero(ink)
    focal, (px, py) = camera.focal, camera.principal_point
    height = max(float(ys.max() - ys.min() + 1), 8.0)
    dist = focal * _HEAD_HEIGHT_U / height
    cx = float(xs.min() + xs.max()) / 2
    cy = float(ys.min()) + 1.4 / _HEAD_HEIGHT_U * height
    return (cx - px) / focal * dist, -(cy - py) / focal * dist, -dist


def _grid_starts(coarse: _Cost, config: FitConfig,
                 position: tuple[float, float, float]) -> list[np.ndarray]:
    """The best points of the yaw x pitch x roll grid, each in a basin of its own."""
    grid = []
    for a in config.yaws:
        for b in config.pitches:
            for c in config.rolls:
                theta = coarse.align(np.array([a, b, c, *position], float))
                grid.append((coarse(theta), theta))
    grid.sort(key=lambda t: t[0])
    starts: list[np.ndarray] = []
    for _, theta in grid:
        if all(np.abs(theta[:3] - other[:3]).max() > config.start_separation
               for other in starts):
            starts.append(theta)
        if len(starts) == config.starts:
            break
    return starts


def fit_construction(drawing: ImageLike, config: FitConfig = FitConfig(),
                     pose_hint: tuple[float, float, float] | None = None, *,
                     camera: Camera | None = None, start: HeadPose | None = None
                     ) -> ConstructionFit:
    """Fit the Loomis construction to a drawing of one head (dark lines on light paper).

    Returns the pose through a camera of the drawing's own size (``fit.draw()`` redraws
    it there): ``camera`` when given (e.g. a photo crop's camera, so a pose measured in the
    photo carries over exactly), else one of ``config.fov_deg``. ``start`` (a pose in
    that camera's frame) is where the search starts instead of the ink's extent and the
    grid. Raises :class:`EmptyDrawingError` when there are too few lines.

    ``pose_hint`` (yaw, pitch, roll in degrees, e.g. :meth:`loomis.train.pose_net.PoseNet.predict`
    of the photo the drawing was made from) replaces the grid: the search starts from the
    hint alone, and a deviation from it costs ``(deviation / hint_sigma)**2`` averaged over
    the three angles (1 px of chamfer distance for ``hint_sigma`` degrees off on every
    axis), so the lines move the pose only where they clearly disagree with the photo.
    Measured on the 60 validation scenes with the shipped pix2pix drawings (line F1 of the
    fitted construction; the pose net's hint is 2.2 / 1.6 / 0.7 degrees off):

    * grid search, no hint: 0.719 (profiles 0.528);
    * started from the hint, no cost for leaving it: 0.760 (from the true pose: 0.762).
      The lines then pull the pose *away* from the hint (3.3 / 2.8 / 2.3 degrees off): a
      generator's rough lines are weaker evidence of the angles than the photo is;
    * with the hint's cost at ``hint_sigma`` 10 / 5 degrees: 0.791 / **0.806** (fitted pose
      1.9 / 1.8 / 0.8 degrees off); the pose held at the hint: 0.812. 5 keeps most of that
      while letting clear lines correct a hint that is off, as it may be on real photos
      (the pose net has seen only synthetic heads);
    * the hint as one more start beside the grid's (mediapipe's pose as the hint): 0.731,
      against 0.733 from the hint alone: the cost picks a wrong basin again.

    A hinted fit needs no grid, so it is several times faster (``benchmarks/run.py``).
    """
    if pose_hint is not None:
        pose_hint = tuple(float(v) for v in pose_hint)
        if len(pose_hint) != 3 or not all(math.isfinite(v) for v in pose_hint):
            raise ValueError(f"pose_hint must be (yaw, pitch, roll) in degrees, got {pose_hint}")
    img = load_image(drawing).convert("L")
    w0, h0 = img.size
    k = config.work_size / max(w0, h0)
    size = (max(1, round(w0 * k)), max(1, round(h0 * k)))
    ink = _shrink(binarize(img, config.ink_threshold), size)
    if ink.sum() < 20:
        raise EmptyDrawingError(
            f"the drawing has {int(ink.sum())} line pixels at {size[0]}x{size[1]}; "
            "a construction needs lines to fit to (dark on light paper)")
    # Coarse to fine: the grid and the first refinements at half size (a quarter of the
    # pixels, half the tolerance), the last refinement at the work size.
    half = ((size[0] + 1) // 2, (size[1] + 1) // 2)
    if camera is not None and (camera.width, camera.height) != (w0, h0):
        raise ValueError(f"camera is {camera.width}x{camera.height}, the drawing {w0}x{h0}")
    full = camera or Camera.from_fov(w0, h0, config.fov_deg)
    fine = _Cost(ink, _rescaled(full, size), config, config.tolerance)
    coarse = _Cost(_shrink(ink, half), _rescaled(full, half), config, config.tolerance / 2)
    x, y, z = _start_position(ink, fine.camera)
    if pose_hint is not None:  # one start: the hint's basin (see the docstring)
        fine.hint = coarse.hint = np.array(pose_hint)
    if start is not None:
        starts = [np.array([start.yaw, start.pitch, start.roll, *start.position], float)]
    elif pose_hint is not None:
        starts = [coarse.align(np.array([*pose_hint, x, y, z], float))]
    else:
        starts = _grid_starts(coarse, config, (x, y, z))
    steps = np.array([8.0, 8.0, 8.0, 0.15, 0.15, 0.06 * abs(z)])
    refined = sorted((nelder_mead(coarse, theta, steps, config.max_evals)[:2]
                      for theta in starts), key=lambda t: t[1])
    # the two best at the work size: the half-size cost can rank close basins wrongly
    theta, value, _ = min((nelder_mead(fine, t, steps / 4, config.max_evals)
                           for t, _ in refined[:config.finalists]), key=lambda r: r[1])
    yaw, pitch, roll, x, y, z = (float(v) for v in theta)
    # the work-size cameras are ``full`` rescaled: the pose carries over unchanged
    return ConstructionFit(HeadPose(yaw, pitch, roll, 1.0, (x, y, z)), full,
                           config.proportions, value)
