"""The Loomis head construction as one rigid 3D object, projected to 2D strokes.

Andrew Loomis builds a head from a ball sliced flat on both sides, a face plane hung in
front of it and a few horizontal lines that divide the face into thirds. Here every line
of that construction is a 3D curve in the *head frame* of :mod:`loomis.camera` (origin at
the ball centre, unit ``u`` = brow line to nose line, ``+y`` up, ``+z`` out of the face),
so one :class:`~loomis.camera.HeadPose` moves all of them together and a
:class:`~loomis.camera.Camera` projects them. Each projected curve is a :class:`Stroke`
with a per-point visibility flag (front-facing or on the far side), which
:mod:`loomis.draw` turns into pencil lines.

The numbers live in :class:`LoomisProportions` (see ../shared/loomis-geometry.md):

* ball radius ``R`` ≈ 1.4 u, centre on the brow line, its front touching the brow point;
* side planes at ``x = ±d`` with ``d = sqrt(R² − 1)``, so each side circle has radius 1 u
  and its top and bottom lie exactly on the hairline (y = +1) and nose line (y = −1);
* brow line y = 0 (the ball's equator), chin y = −2.

The same proportions shape the procedural head of :mod:`loomis.train.render`, which is why the
drawing lies on the rendered face.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Collection
from dataclasses import dataclass

import numpy as np

from loomis.camera import Camera, HeadPose, cross

__all__ = ["LoomisProportions", "Stroke", "StrokeKinds", "ConstructionModel", "construction_lines",
           "construction_points", "face_depth", "check_pose_in_front"]

#: Every stroke kind :func:`construction_lines` can produce, in drawing order.
StrokeKinds = ("ball", "side_plane", "ear_line", "brow", "hairline", "center", "nose",
               "eye_line", "eye", "mouth", "chin", "jaw", "ear")


@dataclass(frozen=True)
class LoomisProportions:
    """Named proportions of the construction, in Loomis units ``u``.

    The three horizontal lines that define ``u`` are fixed by definition (brow y = 0,
    nose y = −1, chin y = −2, hairline y = +1); the rest are the tutorial values of
    loomis-geometry.md and may vary within human range (the renderer samples them).
    """

    radius: float = 1.4              # ball radius R
    nose_depth: float = 1.30         # z of the face plane at the nose line (base of the nose)
    chin_depth: float = 1.16         # z of the face plane at the chin
    eye_drop: float = 0.30           # eye line below the brow line
    eye_spacing: float = 0.50        # eye centres at x = ±eye_spacing (quarter points of a 2u face)
    eye_half_width: float = 0.21     # half the width of one eye opening
    eye_half_height: float = 0.075   # half the height of one eye opening
    mouth_drop: float = 1.0 / 3.0    # mouth line below the nose line
    lower_lip_drop: float = 0.5      # lower lip below the nose line
    mouth_half_width: float = 0.38   # half the mouth width
    chin_half_width: float = 0.30    # half the chin width (≈ 0.6u)
    jaw_angle_frac: float = 0.88     # jaw angle x as a fraction of d
    jaw_angle_depth: float = 0.18    # jaw angle z: just in front of the ear line (z = 0)
    ear_gap: float = 0.05            # ear starts this far behind the ear line
    ear_width: float = 0.45          # ear width (along -z)
    ear_top: float = 0.0             # ear spans brow line ...
    ear_bottom: float = -1.0         # ... to nose line
    nose_length: float = 0.36        # how far the nose tip stands out of the face plane
    nose_half_width: float = 0.24    # half the width of the nose wings

    brow_y: float = 0.0
    hairline_y: float = 1.0
    nose_y: float = -1.0
    chin_y: float = -2.0

    def __post_init__(self) -> None:
        if not 1.05 < self.radius < 2.0:
            raise ValueError(f"ball radius must be in (1.05, 2.0) Loomis units, got {self.radius}")
        if not 0.5 < self.chin_depth <= self.nose_depth + 0.3:
            raise ValueError("chin_depth must be positive and not far in front of the nose")

    @property
    def side_offset(self) -> float:
        """``d``: the side planes sit at ``x = ±d`` and cut circles of radius exactly 1 u."""
        return math.sqrt(self.radius ** 2 - 1.0)

    @property
    def jaw_angle(self) -> tuple[float, float, float]:
        """The right-of-image (+x) jaw angle; at lower-lip height, just before the ear line."""
        return (self.jaw_angle_frac * self.side_offset, self.nose_y - self.lower_lip_drop,
                self.jaw_angle_depth)


def face_depth(y: np.ndarray, prop: LoomisProportions) -> np.ndarray:
    """``z`` of the face plane's centre line at height ``y`` (brow → nose → chin).

    A parabola through (0, R), (nose_y, nose_depth), (chin_y, chin_depth): the profile
    line a Loomis drawing carries straight down the face. Above the brow it follows the ball.
    """
    y = np.asarray(y, dtype=np.float64)
    a, b = _profile(prop)
    r = prop.radius
    below = a * y * y + b * y + r
    above = np.sqrt(np.clip(r * r - y * y, 0.0, None))
    return np.where(y <= 0, below, above)


def _profile(prop: LoomisProportions) -> tuple[float, float]:
    """``(a, b)`` of the profile parabola ``z = a y² + b y + R`` through the nose and chin."""
    r, n, c = prop.radius, prop.nose_depth, prop.chin_depth
    ny, cy = prop.nose_y, prop.chin_y
    a = ((c - r) / cy - (n - r) / ny) / (cy - ny)
    return a, (n - r) / ny - a * ny


def _face_slope(y: np.ndarray, prop: LoomisProportions) -> np.ndarray:
    """dz/dy of :func:`face_depth` below the brow (for the centre line's normal)."""
    a, b = _profile(prop)
    return 2 * a * np.asarray(y) + b


def construction_points(proportions: LoomisProportions = LoomisProportions()) -> dict[str, np.ndarray]:
    """Named 3D landmarks of the construction in the head frame (units of ``u``).

    ``left``/``right`` are the *subject's*: the subject's left is ``+x`` (the image's
    right at zero pose), as in MediaPipe's face mesh naming. The pose engine fits these
    to detected landmarks; the renderer puts its features at the same places.
    """
    p = proportions
    R, d = p.radius, p.side_offset
    ey = p.brow_y - p.eye_drop
    ez = math.sqrt(R * R - p.eye_spacing ** 2 - ey * ey)
    my = p.nose_y - p.mouth_drop
    mz = float(face_depth(my, p))
    ll_y = p.nose_y - 0.5 * (p.mouth_drop + p.lower_lip_drop)
    jx, jy, jz = p.jaw_angle
    ear_z = -(p.ear_gap + 0.5 * p.ear_width)
    ear_y = 0.5 * (p.ear_top + p.ear_bottom)
    pts = {
        "ball_center": (0.0, 0.0, 0.0),
        "crown": (0.0, R, 0.0),
        "back": (0.0, 0.0, -R),
        "brow": (0.0, p.brow_y, R),
        "hairline": (0.0, p.hairline_y, d),
        "nose": (0.0, p.nose_y, p.nose_depth),
        "nose_tip": (0.0, p.nose_y + 0.15, p.nose_depth + p.nose_length),
        "mouth": (0.0, my, mz),
        "lower_lip": (0.0, ll_y, float(face_depth(ll_y, p))),    # the lower lip's middle
        "chin": (0.0, p.chin_y, p.chin_depth),
        "eye_left": (p.eye_spacing, ey, ez),
        "eye_right": (-p.eye_spacing, ey, ez),
        "mouth_left": (p.mouth_half_width, my, mz - 0.12),
        "mouth_right": (-p.mouth_half_width, my, mz - 0.12),
        "ear_left": (d, ear_y, ear_z),
        "ear_right": (-d, ear_y, ear_z),
        "side_left": (d, 0.0, 0.0),
        "side_right": (-d, 0.0, 0.0),
        "jaw_left": (jx, jy, jz),
        "jaw_right": (-jx, jy, jz),
    }
    return {k: np.array(v, dtype=np.float64) for k, v in pts.items()}


@dataclass
class Stroke:
    """One projected construction line.

    ``points`` are ``(N, 2)`` pixel coordinates (x right, y down); ``visible[i]`` says
    whether point ``i`` lies on a surface facing the camera (False: the far side, which a
    draughtsman draws dashed, faint or not at all). ``closed`` strokes join their last
    point to their first.
    """

    kind: str
    points: np.ndarray
    visible: np.ndarray
    closed: bool = False


# --------------------------------------------------------------------------- 3D curves
# Each builder returns a list of (kind, points (N,3), normals (N,3), closed) in the head
# frame. Normals decide visibility: a point is visible when its surface faces the camera.

def _arc(n: int, a0: float, a1: float) -> np.ndarray:
    return np.linspace(a0, a1, n)


def _side_planes(p: LoomisProportions, n: int) -> list:
    d = p.side_offset
    t = _arc(n, 0.0, 2 * math.pi)[:-1]
    out = []
    for s in (1.0, -1.0):
        circle = np.stack([np.full_like(t, s * d), np.sin(t), np.cos(t)], -1)
        normal = np.tile([s, 0.0, 0.0], (len(t), 1))
        out.append(("side_plane", circle, normal, True))
        y = np.linspace(-1.0, 1.0, n // 3)
        line = np.stack([np.full_like(y, s * d), y, np.zeros_like(y)], -1)
        out.append(("ear_line", line, np.tile([s, 0.0, 0.0], (len(y), 1)), False))
    return out


def _brow(p: LoomisProportions, n: int) -> list:
    """The equator of the sliced ball: front arc, side diameter, back arc, side diameter."""
    R, d = p.radius, p.side_offset
    a = math.asin(d / R)                       # the equator meets the side plane here
    parts, norms = [], []
    front = _arc(n, -a, a)
    pts = np.stack([R * np.sin(front), np.zeros_like(front), R * np.cos(front)], -1)
    parts.append(pts), norms.append(pts / R)
    z = np.linspace(1.0, -1.0, n // 3)[1:-1]
    parts.append(np.stack([np.full_like(z, d), np.zeros_like(z), z], -1))
    norms.append(np.tile([1.0, 0.0, 0.0], (len(z), 1)))
    back = _arc(n, math.pi - a, math.pi + a)
    pts = np.stack([R * np.sin(back), np.zeros_like(back), R * np.cos(back)], -1)
    parts.append(pts), norms.append(pts / R)
    z = np.linspace(-1.0, 1.0, n // 3)[1:-1]
    parts.append(np.stack([np.full_like(z, -d), np.zeros_like(z), z], -1))
    norms.append(np.tile([-1.0, 0.0, 0.0], (len(z), 1)))
    return [("brow", np.concatenate(parts), np.concatenate(norms), True)]


def _ball_circle_at(p: LoomisProportions, y: float, n: int, x_max: float):
    """The horizontal circle of the ball at height ``y``, clipped to ``|x| <= x_max``."""
    R = p.radius
    rho = math.sqrt(max(R * R - y * y, 0.0))
    a = math.asin(min(x_max / rho, 1.0)) if rho > 0 else 0.0
    t = _arc(n, -a, a)
    pts = np.stack([rho * np.sin(t), np.full_like(t, y), rho * np.cos(t)], -1)
    return pts, pts / R


def _center(p: LoomisProportions, n: int) -> list:
    """The vertical great circle x = 0 from the brow over the crown and round the back to
    the ball's bottom, then the face's centre line from the brow down to the chin."""
    R = p.radius
    t = _arc(2 * n, 0.0, 1.5 * math.pi)
    ball = np.stack([np.zeros_like(t), R * np.sin(t), R * np.cos(t)], -1)
    y = np.linspace(p.brow_y, p.chin_y, n)
    face = np.stack([np.zeros_like(y), y, face_depth(y, p)], -1)
    fn = np.stack([np.zeros_like(y), -_face_slope(y, p), np.ones_like(y)], -1)
    fn /= np.linalg.norm(fn, axis=-1, keepdims=True)
    return [("center", ball, ball / R, False), ("center", face, fn, False)]


def _face_arc(p: LoomisProportions, y: float, half_width: float, z_front: float,
              x_max: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    """An arc of the ellipse ``(x/half_width)² + (z/z_front)² = 1`` at height ``y``."""
    a = math.asin(min(x_max / half_width, 1.0))
    t = _arc(n, -a, a)
    pts = np.stack([half_width * np.sin(t), np.full_like(t, y), z_front * np.cos(t)], -1)
    nrm = np.stack([np.sin(t) / half_width, np.zeros_like(t), np.cos(t) / z_front], -1)
    return pts, nrm / np.linalg.norm(nrm, axis=-1, keepdims=True)


def _face_lines(p: LoomisProportions, n: int) -> list:
    d = p.side_offset
    out = []
    hp, hn = _ball_circle_at(p, p.hairline_y, n, d)
    out.append(("hairline", hp, hn, False))
    ep, en = _ball_circle_at(p, p.brow_y - p.eye_drop, n, d)
    out.append(("eye_line", ep, en, False))
    np_, nn = _face_arc(p, p.nose_y, d, p.nose_depth, d, n)
    out.append(("nose", np_, nn, False))
    my = p.nose_y - p.mouth_drop
    mp, mn = _face_arc(p, my, d, float(face_depth(my, p)), p.mouth_half_width, n // 3)
    out.append(("mouth", mp, mn, False))
    cp, cn = _face_arc(p, p.chin_y, 2.0 * p.chin_half_width + 0.3, p.chin_depth,
                       p.chin_half_width, n // 4)
    out.append(("chin", cp, cn, False))
    # Eyes: almond outlines on the ball around each eye centre.
    R = p.radius
    t = _arc(n // 2, 0.0, 2 * math.pi)[:-1]
    for s in (1.0, -1.0):
        x = s * (p.eye_spacing + p.eye_half_width * np.cos(t))   # mirror-exact samples
        lid = np.where(np.sin(t) > 0, 1.0, 0.8)      # the upper lid arches higher
        y = p.brow_y - p.eye_drop + p.eye_half_height * np.sin(t) * lid
        z = np.sqrt(np.clip(R * R - x * x - y * y, 0.0, None))
        pts = np.stack([x, y, z], -1)
        out.append(("eye", pts, pts / R, True))
    return out


def _jaw(p: LoomisProportions, n: int) -> list:
    """Chin corner → jaw angle → up the ramus to the bottom of the side circle."""
    d = p.side_offset
    jx, jy, jz = p.jaw_angle
    cw = p.chin_half_width
    out = []
    for s in (1.0, -1.0):
        chin = np.array([s * cw, p.chin_y, _face_arc(p, p.chin_y, 2 * cw + 0.3, p.chin_depth,
                                                     cw, 3)[0][-1, 2]])
        angle = np.array([s * jx, jy, jz])
        top = np.array([s * d, p.nose_y, 0.0])
        # Two straight runs with a rounded corner: a quadratic Bezier between 75% of the
        # jaw line and 25% of the ramus, as a draughtsman softens the angle.
        a0 = chin + 0.75 * (angle - chin)
        a1 = angle + 0.25 * (top - angle)
        k = max(n // 4, 4)
        t = np.linspace(0, 1, k)[:, None]
        run1 = chin + t * (a0 - chin)
        bez = (1 - t) ** 2 * a0 + 2 * (1 - t) * t * angle + t ** 2 * a1
        run2 = a1 + t * (top - a1)
        pts = np.concatenate([run1, bez[1:], run2[1:]])
        # Normal: out, down and forward from the nose-height axis point.
        nrm = pts - np.array([0.0, p.nose_y + 0.3, -0.2])
        nrm /= np.linalg.norm(nrm, axis=-1, keepdims=True)
        out.append(("jaw", pts, nrm, False))
    return out


def _ears(p: LoomisProportions, n: int) -> list:
    """A 'C' on the side plane just behind the ear line, brow line to nose line."""
    d = p.side_offset
    h = p.ear_top - p.ear_bottom
    t = _arc(n // 2, 0.0, math.pi)
    # Front edge at z = -gap; the outline swings back by ear_width, fuller at the top.
    swing = np.sin(t) * (1.0 + 0.25 * np.cos(t))
    z = -p.ear_gap - p.ear_width * swing / swing.max()
    y = p.ear_bottom + 0.5 * h * (1.0 + np.cos(t))
    out = []
    for s in (1.0, -1.0):
        pts = np.stack([np.full_like(t, s * (d + 0.02)), y, z], -1)
        out.append(("ear", pts, np.tile([s, 0.0, 0.0], (len(t), 1)), False))
    return out


def _curves_3d(p: LoomisProportions, n: int) -> list:
    return _side_planes(p, n) + _brow(p, n) + _center(p, n) + _face_lines(p, n) + _jaw(p, n) + _ears(p, n)


# --------------------------------------------------------------------------- projection

def check_pose_in_front(pose: HeadPose, camera: Camera, prop: LoomisProportions) -> None:
    """Raise ValueError when part of the head would be at or behind the camera."""
    if not pose.scale > 0:
        raise ValueError(f"pose scale (size of one Loomis unit) must be positive, got {pose.scale}")
    extent = pose.scale * (abs(prop.chin_y) + prop.radius)
    if not camera.orthographic and -pose.position[2] <= extent * 1.05:
        raise ValueError(
            f"the head (ball centre at z={pose.position[2]:.3g}, about {extent:.3g} across) "
            "must lie entirely in front of the camera (z < 0): move it further away")


def _ball_outline(pose: HeadPose, camera: Camera, p: LoomisProportions, n: int) -> np.ndarray:
    """Camera-frame points of the sphere's silhouette.

    Under perspective the outline is the circle where the cone of rays from the camera
    centre touches the sphere: centre ``C (1 − r²/D²)``, radius ``r sqrt(1 − r²/D²)``, in
    the plane perpendicular to ``C``. Under weak perspective it is the circle of radius
    ``r`` perpendicular to the optical axis.
    """
    c = np.asarray(pose.position, dtype=np.float64)
    r = pose.scale * p.radius
    if camera.orthographic:
        centre, rho, axis = c, r, np.array([0.0, 0.0, 1.0])
    else:
        dist = float(np.linalg.norm(c))
        k = 1.0 - (r / dist) ** 2
        centre, rho, axis = c * k, r * math.sqrt(k), -c / dist
    # An orthonormal basis (e1, e2) of the plane perpendicular to ``axis``.
    helper = np.array([0.0, 1.0, 0.0]) if abs(axis[1]) < 0.9 else np.array([1.0, 0.0, 0.0])
    e1 = cross(helper, axis)
    e1 /= math.sqrt(float(e1 @ e1))
    e2 = cross(axis, e1)
    t = _arc(n, 0.0, 2 * math.pi)[:-1]
    return centre + rho * (np.cos(t)[:, None] * e1 + np.sin(t)[:, None] * e2)


class ConstructionModel:
    """The construction of one set of proportions, ready to project at any pose.

    Why a class: the 3D curves do not depend on the pose, so they are built once and
    kept as one array of points and one of normals; projecting then costs one transform
    and one projection, which a pose search (:mod:`loomis.construction_fit`) pays
    thousands of times per drawing. :func:`construction_lines` uses a cached instance.
    ``samples`` is the number of points on a full circle (other curves scale from it).
    """

    def __init__(self, proportions: LoomisProportions = LoomisProportions(),
                 samples: int = 96) -> None:
        if samples < 8:
            raise ValueError(f"samples must be at least 8, got {samples}")
        self.proportions, self.samples = proportions, samples
        built = _curves_3d(proportions, samples)
        self._curves, start = [], 0
        first, second = [], []   # point index pairs of every segment of every curve
        for kind, pts, _, closed in built:
            stop = start + len(pts)
            self._curves.append((kind, start, stop, closed))
            idx = np.arange(start, stop)
            first.append(idx[:-1] if not closed else idx)
            second.append(idx[1:] if not closed else np.roll(idx, -1))
            start = stop
        self._points = np.concatenate([c[1] for c in built])
        self._normals = np.concatenate([c[2] for c in built])
        self._seg = (np.concatenate(first), np.concatenate(second))

    def _project(self, pose: HeadPose, camera: Camera) -> tuple[np.ndarray, np.ndarray]:
        rot = pose.rotation
        cam = pose.scale * self._points @ rot.T + np.asarray(pose.position, dtype=np.float64)
        facing = np.einsum("ij,ij->i", self._normals @ rot.T, camera.view_dirs(cam)) > 0
        return camera.project(cam), facing

    def strokes(self, pose: HeadPose, camera: Camera,
                kinds: Collection[str] | None = None) -> list[Stroke]:
        """The projected strokes in :data:`StrokeKinds` order (see :func:`construction_lines`)."""
        check_pose_in_front(pose, camera, self.proportions)
        wanted = set(StrokeKinds) if kinds is None else set(kinds)
        strokes: list[Stroke] = []
        if "ball" in wanted:
            outline = _ball_outline(pose, camera, self.proportions, self.samples + 1)
            strokes.append(Stroke("ball", camera.project(outline),
                                  np.ones(len(outline), bool), True))
        px, facing = self._project(pose, camera)
        for kind, a, b, closed in self._curves:
            if kind in wanted:
                strokes.append(Stroke(kind, px[a:b], facing[a:b], closed))
        order = {k: i for i, k in enumerate(StrokeKinds)}
        strokes.sort(key=lambda s: order[s.kind])
        return strokes

    def visible_segments(self, pose: HeadPose, camera: Camera) -> np.ndarray:
        """Every visible line as ``(M, 2, 2)`` pixel segments (both ends facing the
        camera), the ball's outline included: what a drawing with hidden lines omitted
        inks. Raises ValueError like :func:`construction_lines`."""
        check_pose_in_front(pose, camera, self.proportions)
        outline = camera.project(_ball_outline(pose, camera, self.proportions,
                                               self.samples + 1))
        px, facing = self._project(pose, camera)
        i, j = self._seg
        keep = facing[i] & facing[j]
        ring = np.stack([outline, np.roll(outline, -1, axis=0)], 1)
        return np.concatenate([ring, np.stack([px[i[keep]], px[j[keep]]], 1)])


@functools.lru_cache(maxsize=16)
def _model(proportions: LoomisProportions, samples: int) -> ConstructionModel:
    return ConstructionModel(proportions, samples)


def construction_lines(pose: HeadPose, camera: Camera,
                       proportions: LoomisProportions = LoomisProportions(),
                       kinds: Collection[str] | None = None,
                       samples: int = 96) -> list[Stroke]:
    """Project the whole construction for one pose and camera.

    ``kinds`` keeps only those stroke kinds (see :data:`StrokeKinds`); ``samples`` is
    the number of points on a full circle (other curves scale from it). Raises
    ValueError if the head is not entirely in front of a perspective camera.
    """
    if kinds is not None:
        unknown = set(kinds) - set(StrokeKinds)
        if unknown:
            raise ValueError(f"unknown stroke kinds {sorted(unknown)}; choose from {StrokeKinds}")
    if samples < 8:
        raise ValueError(f"samples must be at least 8, got {samples}")
    return _model(proportions, samples).strokes(pose, camera, kinds)
