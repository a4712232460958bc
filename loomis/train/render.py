"""A procedural, shaded 3D head that shares the Loomis construction's coordinate frame.

Why this design. Training pairs need a photo-like head and its Loomis drawing at any
pose, thousands of them, on a 2-core CPU. A signed-distance ray marcher in numpy costs
seconds per image; instead the head is a few triangle meshes built from closed-form
shapes, rasterised by a small vectorised z-buffer rasteriser and shaded per pixel
(deferred shading), so a 256² photo takes tens of milliseconds.

* The **head** is star-shaped around the Loomis ball centre: its surface is a radial
  function ``r(direction)`` sampled on a latitude/longitude grid that is denser over the
  face. ``r`` is a smooth union of ellipsoids (cranium, forehead, brow ridge, cheekbones,
  muzzle, jaw, chin, nose, lips), carved by eye sockets, placed at the points of
  :func:`loomis.head.construction_points` for the same :class:`LoomisProportions`, so
  brow, nose base and chin sit on the construction's brow (y = 0), nose (y = −1) and
  chin (y = −2) lines and the drawing lies on the rendered face.
* **Eyes** are separate spheres (sclera, iris, pupil) showing through the sockets;
  **ears** are two-sided patches on the side planes behind the ear line; the **neck** is
  a tube that bends from the head to the **shoulders**, which stay upright.
* **Hair** thickens the radial surface above a hairline and colours it.
* **Shading**: wrapped Lambert key light with soft shadows (an exponential shadow map
  seen from the key light, blurred), a fill light, sky/ground ambient times a cavity
  term computed on the radial grid, Blinn-Phong specular (wet eyes, satin skin),
  supersampling for anti-aliasing, and a little sensor noise.
"""
from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from loomis.camera import Camera, HeadPose, rotation_matrix
from loomis.head import LoomisProportions, check_pose_in_front, construction_points, face_depth

__all__ = ["HeadIdentity", "Lighting", "Background", "render_head", "HAIR_STYLES", "BACKGROUNDS"]

HAIR_STYLES = ("none", "buzz", "short", "medium", "bob")
BACKGROUNDS = ("flat", "gradient", "blotches", "studio")

# Skin tones in sRGB [0, 1], dark to light; identities interpolate along this curve.
_SKIN = np.array([[0.30, 0.18, 0.12], [0.47, 0.30, 0.20], [0.64, 0.44, 0.32],
                  [0.80, 0.60, 0.48], [0.92, 0.74, 0.64], [0.97, 0.82, 0.74]])
_HAIR = np.array([[0.05, 0.04, 0.035], [0.16, 0.10, 0.06], [0.33, 0.20, 0.11],
                  [0.55, 0.38, 0.20], [0.80, 0.65, 0.40], [0.45, 0.18, 0.08],
                  [0.62, 0.60, 0.58]])
_IRIS = np.array([[0.22, 0.12, 0.05], [0.35, 0.22, 0.10], [0.20, 0.35, 0.50],
                  [0.30, 0.40, 0.25], [0.12, 0.08, 0.05]])


def _lin(c) -> np.ndarray:
    """sRGB [0,1] → linear light (shading happens in linear light)."""
    c = np.asarray(c, dtype=np.float32)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def _tuple(a) -> tuple[float, float, float]:
    return tuple(float(round(v, 4)) for v in a)


@dataclass(frozen=True)
class HeadIdentity:
    """Who is rendered: proportions, colours and style. All colours are sRGB in [0, 1].

    ``mannequin`` renders a uniform painted artist's head (no hair, plain eyes) instead
    of skin. The scalar shape terms are weights around 1 (0.5 = half as strong).
    """

    proportions: LoomisProportions = LoomisProportions()
    skin: tuple[float, float, float] = (0.80, 0.60, 0.48)
    lip: tuple[float, float, float] = (0.68, 0.36, 0.34)
    blush: float = 0.3
    iris: tuple[float, float, float] = (0.35, 0.22, 0.10)
    hair_style: str = "short"
    hair: tuple[float, float, float] = (0.16, 0.10, 0.06)
    brow_weight: float = 1.0
    brow_ridge: float = 1.0
    cheekbones: float = 1.0
    lip_fullness: float = 1.0
    neck_width: float = 0.86
    gaze: tuple[float, float] = (0.0, 0.0)
    clothing: tuple[float, float, float] = (0.25, 0.30, 0.40)
    mannequin: bool = False

    def __post_init__(self) -> None:
        if self.hair_style not in HAIR_STYLES:
            raise ValueError(f"hair_style must be one of {HAIR_STYLES}, got {self.hair_style!r}")
        for name, c in (("skin", self.skin), ("lip", self.lip), ("iris", self.iris),
                        ("hair", self.hair), ("clothing", self.clothing)):
            if len(c) != 3 or not all(0.0 <= v <= 1.0 for v in c):
                raise ValueError(f"{name} must be an sRGB triple in [0, 1], got {c!r}")

    @classmethod
    def sample(cls, rng: np.random.Generator) -> "HeadIdentity":
        """A random identity with proportions inside human (and tutorial) ranges."""
        u = rng.uniform
        radius = u(1.34, 1.46)                       # d/R in about [0.67, 0.73]
        prop = LoomisProportions(
            radius=radius,
            nose_depth=radius - u(0.06, 0.14),
            chin_depth=radius - u(0.18, 0.32),
            eye_drop=u(0.25, 0.34),
            eye_spacing=u(0.46, 0.54),
            eye_half_width=u(0.19, 0.23),
            eye_half_height=u(0.065, 0.085),
            mouth_drop=u(0.30, 0.37),
            mouth_half_width=u(0.33, 0.42),
            chin_half_width=u(0.25, 0.36),
            jaw_angle_frac=u(0.80, 0.94),
            jaw_angle_depth=u(0.10, 0.26),
            nose_length=u(0.28, 0.42),
            nose_half_width=u(0.20, 0.28),
            ear_width=u(0.40, 0.50),
        )
        t = u(0, 1) * (len(_SKIN) - 1)
        i = min(int(t), len(_SKIN) - 2)
        skin = _SKIN[i] + (t - i) * (_SKIN[i + 1] - _SKIN[i]) + rng.normal(0, 0.015, 3)
        skin = np.clip(skin, 0.05, 0.98)
        lip = np.clip(skin * np.array([0.85, 0.62, 0.62]) + rng.normal(0, 0.02, 3), 0, 1)
        mannequin = bool(rng.random() < 0.12)
        if mannequin:
            tone = rng.choice([0, 1, 2])
            skin = [np.array([0.85, 0.83, 0.80]), np.array([0.76, 0.60, 0.42]),
                    np.array([0.55, 0.55, 0.56])][tone] + rng.normal(0, 0.02, 3)
            skin = np.clip(skin, 0, 1)
            lip = skin * 0.92
        hair = _HAIR[rng.integers(len(_HAIR))] * u(0.85, 1.15)
        if skin.mean() < 0.45 and rng.random() < 0.7:          # darker hair is likelier
            hair = _HAIR[rng.integers(2)]
        style = "none" if mannequin else str(rng.choice(HAIR_STYLES, p=[0.1, 0.15, 0.35, 0.25, 0.15]))
        return cls(
            proportions=prop,
            skin=_tuple(skin),
            lip=_tuple(lip),
            blush=float(u(0.0, 0.6)),
            iris=_tuple(np.clip(_IRIS[rng.integers(len(_IRIS))] * u(0.8, 1.2), 0, 1)),
            hair_style=style,
            hair=_tuple(np.clip(hair, 0, 1)),
            brow_weight=float(u(0.6, 1.4)) if not mannequin else 0.0,
            brow_ridge=float(u(0.6, 1.4)),
            cheekbones=float(u(0.6, 1.4)),
            lip_fullness=float(u(0.7, 1.3)),
            neck_width=float(u(0.78, 0.95)),
            gaze=(float(rng.normal(0, 6)), float(rng.normal(0, 4))),
            clothing=_tuple(np.clip(rng.uniform(0.05, 0.85, 3), 0, 1)),
            mannequin=mannequin,
        )


@dataclass(frozen=True)
class Lighting:
    """Light in camera terms: the key light comes from ``azimuth`` degrees to the image's
    right and ``elevation`` degrees above the view axis; ``softness`` widens its shadows."""

    azimuth: float = 35.0
    elevation: float = 30.0
    key: float = 2.6
    key_color: tuple[float, float, float] = (1.0, 0.97, 0.92)
    fill: float = 0.35
    ambient: float = 0.45
    softness: float = 0.5
    specular: float = 1.0
    exposure: float = 1.0

    def __post_init__(self) -> None:
        if not -180 <= self.azimuth <= 180 or not -90 <= self.elevation <= 90:
            raise ValueError("light azimuth must be in [-180, 180] and elevation in [-90, 90] degrees")
        if min(self.key, self.fill, self.ambient, self.softness, self.specular) < 0 or self.exposure <= 0:
            raise ValueError("light intensities and softness must be >= 0, exposure > 0")

    @classmethod
    def sample(cls, rng: np.random.Generator) -> "Lighting":
        u = rng.uniform
        warm = u(-0.08, 0.08)
        return cls(azimuth=float(u(-75, 75)), elevation=float(u(-10, 60)), key=float(u(1.8, 3.2)),
                   key_color=_tuple((1.0, 1.0 - abs(warm) * 0.3 - max(warm, 0), 1.0 - max(warm, 0) * 2 + min(warm, 0))),
                   fill=float(u(0.1, 0.6)), ambient=float(u(0.25, 0.6)),
                   softness=float(u(0.1, 1.0)), specular=float(u(0.4, 1.3)),
                   exposure=float(u(0.85, 1.15)))

    @property
    def direction(self) -> np.ndarray:
        """Unit vector towards the key light, in the camera frame."""
        a, e = math.radians(self.azimuth), math.radians(self.elevation)
        return np.array([math.sin(a) * math.cos(e), math.sin(e), math.cos(a) * math.cos(e)])


# ============================================================================ geometry

def _sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic function without overflow warnings."""
    return 0.5 + 0.5 * np.tanh(0.5 * x)


def _smax(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Smooth maximum (polynomial), blending over a band of width ``k``."""
    h = np.clip(0.5 + 0.5 * (a - b) / k, 0.0, 1.0)
    return b + (a - b) * h + k * h * (1.0 - h)


def _smin(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    return -_smax(-a, -b, k)


def _ellipsoid_far(u: np.ndarray, centre, axes, rot: np.ndarray | None = None) -> np.ndarray:
    """Distance along unit rays ``u`` from the origin to an ellipsoid's far side.

    Where a ray misses, the value falls steeply (but continuously) below the tangent
    distance, so smooth unions stay continuous around every part's outline without
    growing a cone-shaped ridge behind small parts.
    """
    c = np.asarray(centre, np.float32)
    inv = 1.0 / np.asarray(axes, np.float32)
    if rot is not None:
        a = (u @ rot.astype(np.float32)) * inv
        b = (c @ rot.astype(np.float32)) * inv
    else:
        a = u * inv
        b = c * inv
    aa = np.einsum("ij,ij->i", a, a)
    ab = a @ b
    disc = ab * ab - aa * (float(b @ b) - 1.0)
    root = np.sqrt(np.abs(disc))
    return (ab + np.where(disc >= 0, root, -6.0 * root)) / aa


def _radial_bump(u: np.ndarray, tip, length: float, half_width: float, half_height: float) -> np.ndarray:
    """An ellipsoid whose long axis points from ``tip`` towards the origin.

    Parts of a radial (star-shaped) surface must not show a side to the origin, or their
    outline seen from there becomes a crease; a bump aimed at the origin shows only its tip.
    """
    tip = np.asarray(tip, np.float64)
    axis = tip / np.linalg.norm(tip)
    return _ellipsoid_far(u, tip - length * axis, (length, half_width, half_height), _frame(axis))


def _frame(axis) -> np.ndarray:
    """Rotation whose first column is ``axis`` (for ellipsoids along a segment)."""
    a = np.asarray(axis, np.float64)
    a = a / np.linalg.norm(a)
    helper = np.array([0.0, 0.0, 1.0]) if abs(a[2]) < 0.9 else np.array([0.0, 1.0, 0.0])
    b = np.cross(helper, a)
    b /= np.linalg.norm(b)
    return np.stack([a, b, np.cross(a, b)], 1)


def _warp(t: np.ndarray, slope: float) -> np.ndarray:
    """Odd monotone map of [-1, 1] onto itself with slope ``slope`` at 0 (grid density)."""
    return slope * t + (1.0 - slope) * t ** 3


@lru_cache(maxsize=4)
def _sphere_grid(nlon: int, nlat: int):
    """Unit directions on a lat/long grid, denser over the face, plus its triangles."""
    lon = math.pi * _warp(np.linspace(-1, 1, nlon), 0.45)
    # Latitude: a smooth cubic, densest a little below the brow (the face), that maps
    # [-1, 1] onto [-pi/2, pi/2]. (A kink here would show as a band in the shading.)
    t = np.linspace(-1, 1, nlat)
    lat0, slope = -0.35, 0.8
    lat = lat0 + slope * t - lat0 * t * t + (math.pi / 2 - slope) * t ** 3
    la, lo = np.meshgrid(lat, lon, indexing="ij")            # (nlat, nlon)
    u = np.stack([np.cos(la) * np.sin(lo), np.sin(la), np.cos(la) * np.cos(lo)], -1)
    faces = _grid_faces(nlat, nlon)
    return u.reshape(-1, 3).astype(np.float32), faces


def _grid_faces(rows: int, cols: int, wrap: bool = False) -> np.ndarray:
    """Two triangles per grid cell, wound so that normals point out of the surface."""
    i, j = np.meshgrid(np.arange(rows - 1), np.arange(cols if wrap else cols - 1), indexing="ij")
    j1 = (j + 1) % cols
    a = i * cols + j
    b = i * cols + j1
    c = (i + 1) * cols + j
    d = (i + 1) * cols + j1
    f = np.concatenate([np.stack([a, b, d], -1).reshape(-1, 3), np.stack([a, d, c], -1).reshape(-1, 3)])
    return f.astype(np.int32)


def _grid_normals(p: np.ndarray, rows: int, cols: int, wrap: bool = False) -> np.ndarray:
    """Per-vertex normals of a grid surface from central differences."""
    g = p.reshape(rows, cols, 3)
    if wrap:
        du = np.roll(g, -1, 1) - np.roll(g, 1, 1)
    else:
        du = np.gradient(g, axis=1)
    dv = np.gradient(g, axis=0)
    n = np.cross(du, dv)
    n /= np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-9)
    return n.reshape(-1, 3)


@dataclass
class _Mesh:
    """Vertices in a part's own frame, with per-vertex shading attributes."""

    pos: np.ndarray            # (V, 3)
    nrm: np.ndarray            # (V, 3)
    albedo: np.ndarray         # (V, 3) linear
    spec: np.ndarray           # (V, 2) strength, shininess
    ao: np.ndarray             # (V,)
    faces: np.ndarray          # (F, 3)
    two_sided: bool = False
    frame: str = "head"        # "head", "neck" (blends head → body) or "body"
    blend: np.ndarray | None = None   # for the neck: 0 at the body, 1 at the head
    shadow_faces: np.ndarray | None = None   # a coarser triangulation for the shadow map


def _head_radius(u: np.ndarray, ident: HeadIdentity) -> np.ndarray:
    """The head's radial function ``r(u)``: a smooth union of ellipsoids on the Loomis frame.

    Big soft forms first (cranium, forehead, one egg for the whole lower face, chin),
    blended widely so they read as one surface; then the small features with tight blends.
    """
    p = ident.proportions
    R, d = p.radius, p.side_offset
    pts = construction_points(p)
    nd, cd = p.nose_depth, p.chin_depth
    jx, jy, jz = p.jaw_angle
    # Cranium: the Loomis ball, a longer back of the skull and a steeper forehead; its
    # bottom is cut away below the nose line, where the face and the neck take over.
    r = np.full(len(u), R, np.float32)
    r = _smax(r, _ellipsoid_far(u, (0, 0.12, -0.30), (d + 0.04, 1.36, 1.45)), 0.25)
    r = _smax(r, _ellipsoid_far(u, (0, 0.35, 0.25), (0.88, 1.12, R - 0.27)), 0.2)
    below = np.where(u[:, 1] < -1e-3, 1.25 / np.maximum(-u[:, 1], 1e-3), 50.0)
    r = _smin(r, below, 0.3)
    # Lower face: one egg from the cheekbones to the chin, tilted so that its lower end
    # comes forward to (just inside) the chin point, and as wide at lower-lip height as
    # the jaw angles.
    tilt = math.radians(24.0)
    axis = np.array([0.0, -math.cos(tilt), math.sin(tilt)])
    centre = np.array([0.0, -0.62, 0.0])
    depth = nd - 0.02
    rel = pts["chin"][1:] * 0.97 - centre[1:]
    along = rel @ axis[1:]
    across = rel @ np.array([axis[2], -axis[1]])
    ey = along / math.sqrt(max(1.0 - (across / depth) ** 2, 0.1))
    # The egg's width where it passes the jaw angle (local coordinates along/across it).
    rel = np.array([jy, jz]) - centre[1:]
    along = rel @ axis[1:]
    across = rel @ np.array([axis[2], -axis[1]])
    ex = min(jx / math.sqrt(max(1.0 - (along / ey) ** 2 - (across / depth) ** 2, 0.2)), d + 0.12)
    rot = np.stack([np.array([1.0, 0.0, 0.0]), axis, np.cross([1.0, 0.0, 0.0], axis)], 1)
    egg = (centre, (ex, ey, depth), rot)
    r = _smax(r, _ellipsoid_far(u, *egg), 0.4)

    def on_egg(q, lift: float) -> np.ndarray:
        """``q`` pushed out along its ray to ``lift`` beyond the face egg (if inside it)."""
        q = np.asarray(q, np.float64)
        n = np.linalg.norm(q)
        t = float(_ellipsoid_far((q / n)[None].astype(np.float32), *egg)[0])
        return q / n * (max(t, n) + lift)

    # The chin's forward point: an ellipsoid pointing at the ball centre, so that seen from
    # there only its tip stands out (no ledge above it).
    cw = p.chin_half_width
    r = _smax(r, _radial_bump(u, pts["chin"] * 1.01, 0.6, cw + 0.15, 0.26), 0.25)
    # Side planes: flatten the skull near x = ±d (the ears sit there).
    side = (d + 0.10) / np.maximum(np.abs(u[:, 0]), 1e-3)
    r = _smin(r, side, 0.25)
    # Brow ridge and cheekbones.
    br = ident.brow_ridge
    r = _smax(r, _ellipsoid_far(u, (0, -0.03, R - 0.26 - 0.03 * br), (0.78, 0.11 + 0.03 * br, 0.20 + 0.03 * br)), 0.12)
    cb = ident.cheekbones
    for s in (1, -1):
        r = _smax(r, _ellipsoid_far(u, (s * 0.62, -0.45, 0.66), (0.32, 0.18, 0.40 + 0.04 * cb)), 0.25)
    # Lips, above and below the mouth line, wrapped round the teeth.
    my = float(pts["mouth"][1])
    mz = float(face_depth(my, p))
    lf = ident.lip_fullness
    mw = p.mouth_half_width
    r = _smax(r, _radial_bump(u, on_egg((0, my + 0.055, mz), 0.025 + 0.015 * lf), 0.35, mw * 0.95, 0.07 * lf), 0.08)
    r = _smax(r, _radial_bump(u, on_egg(pts["lower_lip"], 0.02 + 0.015 * lf), 0.35, mw * 0.80, 0.08 * lf), 0.08)
    # Nose: bridge from between the eyes down to the tip, the tip, and the two wings.
    tip = pts["nose_tip"]
    root = np.array([0.0, -0.25, R - 0.12])
    mid, axis = 0.5 * (root + tip), tip - root
    r = _smax(r, _ellipsoid_far(u, mid - np.array([0, 0, 0.075]), (0.5 * np.linalg.norm(axis) + 0.02, 0.085, 0.10),
                                _frame(axis)), 0.07)
    r = _smax(r, _ellipsoid_far(u, tip - np.array([0, 0.02, 0.09]), (0.10, 0.09, 0.095)), 0.07)
    for s in (1, -1):
        r = _smax(r, _ellipsoid_far(u, (s * (p.nose_half_width - 0.10), p.nose_y + 0.09, nd - 0.06),
                                    (0.08, 0.07, 0.08)), 0.09)
    return r.astype(np.float32)


def _eye_dent(pts: np.ndarray, ident: HeadIdentity) -> np.ndarray:
    """How deep the eye sockets carve the surface at points ``pts`` (almond openings)."""
    p = ident.proportions
    ey = p.brow_y - p.eye_drop
    out = np.zeros(len(pts), np.float32)
    front = np.clip(pts[:, 2] * 4.0, 0, 1)
    for s in (1, -1):
        dx = (pts[:, 0] - s * p.eye_spacing) / (p.eye_half_width * 1.05)
        dy = (pts[:, 1] - ey) / (p.eye_half_height * 1.35)
        # Socket: broad shallow hollow under the brow ridge ...
        q = dx * dx * 0.45 + ((pts[:, 1] - ey - 0.03) / 0.22) ** 2
        out += 0.07 * np.exp(-q * 1.5) * front
        # ... and the opening, an almond whose corners narrow.
        almond = dx * dx + (dy * (1.0 + 0.35 * dx * dx)) ** 2
        out += 0.16 * _sigmoid(-(almond - 0.85) * 9.0) * front
    return out


def _hair_mask(pts: np.ndarray, ident: HeadIdentity) -> np.ndarray:
    """0..1: where the hair grows, for a given style (points on the bare head)."""
    style = ident.hair_style
    if style == "none":
        return np.zeros(len(pts), np.float32)
    p = ident.proportions
    x, y, z = pts[:, 0], pts[:, 1], pts[:, 2]
    ax = np.abs(x)
    az = np.arctan2(ax, z)                               # 0 at the face, pi at the back
    # The hairline: high over the forehead, dipping at the temples and in front of the
    # ears, lower behind them and at the nape (lower still for longer styles).
    nape = {"buzz": -0.9, "short": -1.0, "medium": -1.3, "bob": -1.7}[style]
    front = p.hairline_y - 0.05 + 0.08 * np.cos(3.0 * x)
    temple = 0.55
    line = np.interp(az, [0.0, 0.75, 1.15, 1.45, 1.75, 2.3, math.pi],
                     [1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    level = np.interp(az, [0.0, 0.75, 1.15, 1.45, 1.75, 2.3, math.pi],
                      [float(p.hairline_y), temple, 0.15, 0.15, -0.25, nape + 0.3, nape])
    level = np.where(line > 0.5, np.minimum(front, level + 0.45) * line + level * (1 - line), level)
    if style == "bob":                                    # hair down over the ears
        level = np.where((az > 1.05) & (az < 2.3), np.minimum(level, -1.2 + 0.3 * np.cos(az)), level)
    edge = 0.05 if style != "buzz" else 0.03
    m = _sigmoid((y - level) / edge)
    return m.astype(np.float32)


def _noise2(shape: tuple[int, int], rng: np.random.Generator, cells: int) -> np.ndarray:
    """Smooth value noise in [-1, 1] of the given grid shape."""
    small = rng.uniform(-1, 1, (max(cells // 2, 2), cells)).astype(np.float32)
    return cv2.resize(small, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)


@lru_cache(maxsize=4)
def _coarse_faces(rows: int, cols: int, step: int = 2) -> np.ndarray:
    """Faces of every ``step``-th grid row and column, indexed into the full grid."""
    r = np.unique(np.r_[np.arange(0, rows, step), rows - 1])
    c = np.unique(np.r_[np.arange(0, cols, step), cols - 1])
    sub = _grid_faces(len(r), len(c))
    rr, cc = np.meshgrid(r, c, indexing="ij")
    return (rr * cols + cc).reshape(-1)[sub].astype(np.int32)


@lru_cache(maxsize=8)
def _build_meshes(ident: HeadIdentity, nlon: int = 176, nlat: int = 120) -> tuple[_Mesh, ...]:
    """All meshes of one identity in their own frames (cached: poses reuse them)."""
    p = ident.proportions
    # A seed from the identity's text, not hash(): str hashes change between processes.
    rng = np.random.default_rng(zlib.crc32(repr(ident).encode()))
    u, faces = _sphere_grid(nlon, nlat)
    r0 = _head_radius(u, ident)
    bare = u * r0[:, None]
    r = r0 - _eye_dent(bare, ident)
    hair = _hair_mask(bare, ident)
    if ident.hair_style != "none":
        thick = {"buzz": 0.02, "short": 0.10, "medium": 0.16, "bob": 0.16}[ident.hair_style]
        tex = _noise2((nlat, nlon), rng, 24).reshape(-1)
        top = np.clip(bare[:, 1] + 0.3, 0, 1.5)           # more volume on top
        r = r + hair * thick * (0.6 + 0.4 * top) * (1.0 + 0.15 * tex)
    pos = u * r[:, None]
    nrm = _grid_normals(pos, nlat, nlon)
    # Poles and the seam: fall back to the radial direction where the grid degenerates.
    bad = ~np.isfinite(nrm).all(1) | (np.einsum("ij,ij->i", nrm, u) < 0.05)
    nrm[bad] = u[bad]
    # Cavities get less ambient light: how far each vertex lies below its blurred surface.
    grid = r.reshape(nlat, nlon)
    cavity = (cv2.GaussianBlur(grid, (0, 0), 2.5) - grid).reshape(-1)
    ao = np.clip(1.0 - 6.0 * np.maximum(cavity, 0), 0.35, 1.0).astype(np.float32)
    albedo, spec = _head_albedo(pos, bare, hair, ident, rng, (nlat, nlon))
    meshes = [_Mesh(pos, nrm, albedo, spec, ao, faces, shadow_faces=_coarse_faces(nlat, nlon))]
    meshes += _eye_meshes(ident)
    meshes += _ear_meshes(ident, albedo_of=lambda pts: _skin_albedo(pts, ident))
    meshes += _neck_and_body(ident)
    return tuple(meshes)


def _skin_albedo(pts: np.ndarray, ident: HeadIdentity) -> np.ndarray:
    base = _lin(ident.skin)
    return np.broadcast_to(base, (len(pts), 3)).astype(np.float32).copy()


def _head_albedo(pos, bare, hair, ident: HeadIdentity, rng, grid_shape):
    """Skin with redder cheeks/nose/lips, eyebrows, lash lines and hair, per vertex."""
    p = ident.proportions
    x, y, z = bare[:, 0], bare[:, 1], bare[:, 2]
    skin = np.broadcast_to(_lin(ident.skin), (len(pos), 3)).astype(np.float32).copy()
    spec = np.zeros((len(pos), 2), np.float32)
    spec[:, 0], spec[:, 1] = 0.12, 18.0
    noise = _noise2(grid_shape, rng, 40).reshape(-1)
    skin *= (1.0 + 0.04 * noise)[:, None]
    front = np.clip(z * 3.0, 0, 1)
    if not ident.mannequin:
        red = np.array([1.0, 0.80, 0.80], np.float32)
        ey = p.brow_y - p.eye_drop
        cheeks = sum(np.exp(-(((x - s * 0.55) / 0.28) ** 2 + ((y + 0.75) / 0.25) ** 2)) for s in (1, -1))
        nose = np.exp(-((x / 0.18) ** 2 + ((y + 0.8) / 0.25) ** 2))
        warm = (ident.blush * cheeks + 0.4 * nose) * front
        skin *= (1.0 + warm[:, None] * (red - 1.0) * 0.6)
        # Lips: between the upper lip's top and the lower lip's bottom, mouth-wide.
        my = p.nose_y - p.mouth_drop
        lx = x / (p.mouth_half_width * 0.95)
        sx = np.clip(1.0 - lx * lx, 0.0, 1.0)
        cupid = 0.025 * np.exp(-(x / 0.05) ** 2)           # the dip in the upper lip's top
        top = my + 0.10 * ident.lip_fullness * sx ** 0.8 - cupid * sx
        bot = my - 0.13 * ident.lip_fullness * sx
        lipm = _sigmoid((top - y) / 0.01) * _sigmoid((y - bot) / 0.012) * (sx > 0) * front
        skin = skin * (1 - lipm[:, None]) + _lin(ident.lip)[None] * lipm[:, None]
        # The line between the lips: wide enough to survive the mesh's vertex spacing.
        line = np.exp(-((y - my) / 0.03) ** 2) * np.clip(sx * 3.0, 0, 1) * front
        skin *= (1.0 - 0.75 * line)[:, None]
        spec[:, 0] += 0.25 * lipm
        # Eyebrows: an arch above each eye, thick at the inner end, tapering outwards.
        hair_lin = _lin(ident.hair) * 0.8
        for s in (1, -1):
            bx = (x - s * (p.eye_spacing + 0.02)) / 0.30
            arch = ey + 0.22 + 0.06 * (1 - bx * bx) - 0.02 * (s * bx > 0.5)
            thick = 0.045 * (1.15 - 0.45 * s * bx)
            b = np.exp(-((y - arch) / thick) ** 4) * np.clip(1.4 - np.abs(bx) ** 3 * 1.4, 0, 1) * front
            b *= np.clip(ident.brow_weight, 0, 2) * 0.85
            b = np.clip(b * (1.0 + 0.25 * noise), 0, 1)
            skin = skin * (1 - b[:, None]) + hair_lin[None] * b[:, None]
            # Lash line / lid crease: darken the rim of the eye opening.
            dx = (x - s * p.eye_spacing) / (p.eye_half_width * 1.05)
            dy = (y - ey) / (p.eye_half_height * 1.35)
            almond = dx * dx + (dy * (1.0 + 0.35 * dx * dx)) ** 2
            rim = np.exp(-((almond - 0.95) / 0.25) ** 2) * front * (0.6 + 0.4 * (y > ey))
            skin *= (1.0 - 0.75 * rim)[:, None]
            crease = np.exp(-((almond - 2.2) / 0.5) ** 2) * (y > ey + 0.02) * front
            skin *= (1.0 - 0.25 * crease)[:, None]
        # Nostrils: dark spots under the nose tip.
        for s in (1, -1):
            nos = np.exp(-(((x - s * 0.09) / 0.06) ** 2 + ((y - p.nose_y - 0.07) / 0.04) ** 2))
            skin *= (1.0 - 0.8 * nos * front)[:, None]
    if ident.hair_style != "none":
        strands = 0.5 + 0.5 * np.sin(np.arctan2(x, z) * 90.0 + 30.0 * y + 3.0 * noise)
        hcol = _lin(ident.hair)[None] * (0.8 + 0.35 * strands[:, None])
        skin = skin * (1 - hair[:, None]) + hcol * hair[:, None]
        spec[:, 0] = spec[:, 0] * (1 - hair) + 0.35 * hair
        spec[:, 1] = spec[:, 1] * (1 - hair) + 30.0 * hair
    if ident.mannequin:
        spec[:, 0], spec[:, 1] = 0.3, 25.0
    return skin.astype(np.float32), spec


def _uv_sphere(centre, radius: float, n_lon: int = 28, n_lat: int = 18):
    """A sphere around its +z pole (so iris/pupil colours are a function of latitude)."""
    lat = np.linspace(-math.pi / 2, math.pi / 2, n_lat)
    lon = np.linspace(-math.pi, math.pi, n_lon)
    la, lo = np.meshgrid(lat, lon, indexing="ij")
    # Pole along +z: polar angle from +z is (pi/2 - lat).
    n = np.stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)], -1).reshape(-1, 3)
    faces = _grid_faces(n_lat, n_lon)
    return np.asarray(centre) + radius * n, n, faces


def _eye_meshes(ident: HeadIdentity) -> list[_Mesh]:
    p = ident.proportions
    pts = construction_points(p)
    out = []
    rad = 0.19
    gaze = rotation_matrix(ident.gaze[0], ident.gaze[1], 0.0)
    for key in ("eye_left", "eye_right"):
        front = pts[key]
        centre = front - np.array([0.0, 0.0, rad + 0.03])
        pos, n, faces = _uv_sphere(centre, rad)
        # Colour by the angle from the gaze direction: sclera, iris with a dark limbus, pupil.
        cosang = n @ (gaze @ np.array([0.0, 0.0, 1.0]))
        ang = np.degrees(np.arccos(np.clip(cosang, -1, 1)))
        iris = _lin(ident.iris)
        sclera = _lin((0.86, 0.84, 0.82)) if not ident.mannequin else _lin(ident.skin)
        col = np.broadcast_to(sclera, (len(pos), 3)).copy()
        if not ident.mannequin:
            t = np.clip((ang - 10.0) / 20.0, 0, 1)[:, None]
            col = np.where((ang < 33)[:, None], iris * (0.7 + 0.6 * t), col)
            col = np.where(((ang >= 29) & (ang < 34))[:, None], iris * 0.35, col)
            col = np.where((ang < 12)[:, None], np.array([0.01, 0.01, 0.012]), col)
        spec = np.tile(np.array([[1.2, 90.0]], np.float32), (len(pos), 1))
        out.append(_Mesh(pos.astype(np.float32), n.astype(np.float32), col.astype(np.float32),
                         spec, np.full(len(pos), 0.8, np.float32), faces))
    return out


def _ear_meshes(ident: HeadIdentity, albedo_of) -> list[_Mesh]:
    """Each ear: a two-sided curved shell on the side plane behind the ear line."""
    p = ident.proportions
    d = p.side_offset
    nr, na = 10, 30
    rho = np.linspace(0.0, 1.0, nr)
    alpha = np.linspace(0.0, 2 * math.pi, na)
    rr, aa = np.meshgrid(rho, alpha, indexing="ij")
    hh = 0.5 * (p.ear_top - p.ear_bottom)
    hw = 0.5 * p.ear_width
    yc = 0.5 * (p.ear_top + p.ear_bottom)
    zc = -p.ear_gap - hw
    # Outline: fuller at the top (helix) than at the lobe.
    width = hw * (1.0 + 0.12 * np.sin(aa))
    y = yc + rr * hh * np.sin(aa)
    zz = zc + rr * width * np.cos(aa)
    back = np.clip(-(zz - (-p.ear_gap)) / p.ear_width, 0, 1)        # 0 at the front edge
    flare = 0.02 + 0.20 * back ** 1.3                                # stands off behind
    rim = 0.05 * np.exp(-((rr - 0.88) / 0.10) ** 2)
    bowl = -0.06 * np.exp(-(((zz - zc - 0.05) / (hw * 0.5)) ** 2 + ((y - yc + 0.12) / (hh * 0.45)) ** 2))
    lift = flare + rim + bowl
    out = []
    for s in (1, -1):
        x = s * (d + 0.06 + lift)
        pos = np.stack([x, y, zz], -1).reshape(-1, 3).astype(np.float32)
        faces = _grid_faces(nr, na, wrap=False)
        if s < 0:
            faces = faces[:, ::-1].copy()
        nrm = _grid_normals(pos, nr, na)
        if s < 0:
            nrm = -nrm
        # Ensure the normals point outwards (away from the head's centre plane).
        flip = np.sign(nrm[:, 0] * s)
        nrm *= np.where(flip == 0, 1, flip)[:, None]
        alb = albedo_of(pos) * np.array([1.0, 0.88, 0.86], np.float32)
        ao = np.clip(0.55 + 0.45 * rr.reshape(-1) + 3.0 * bowl.reshape(-1), 0.35, 1.0).astype(np.float32)
        spec = np.tile(np.array([[0.1, 15.0]], np.float32), (len(pos), 1))
        out.append(_Mesh(pos, nrm.astype(np.float32), alb.astype(np.float32), spec, ao, faces, two_sided=True))
    return out


def _neck_and_body(ident: HeadIdentity) -> list[_Mesh]:
    """The neck (a tube bending from the head into the shoulders) and the shoulders."""
    na, nh = 64, 24
    a = np.linspace(-math.pi, math.pi, na)
    t = np.linspace(0.0, 1.0, nh)              # 0 at the shoulders, 1 inside the head
    tt, aa = np.meshgrid(t, a, indexing="ij")
    w = ident.neck_width
    y = -3.9 + tt * 3.0                       # from inside the shoulders up to y = -0.9
    flare = 1.0 + 0.55 * np.clip(1 - tt * 3.0, 0, 1) ** 2
    xs = w * flare * np.sin(aa)
    zs = -0.28 + 0.80 * flare * np.cos(aa) + 0.12 * tt
    pos = np.stack([xs, y, zs], -1).reshape(-1, 3).astype(np.float32)
    faces = _grid_faces(nh, na)
    nrm = _grid_normals(pos, nh, na)
    radial = np.stack([np.sin(aa), np.zeros_like(aa), np.cos(aa)], -1).reshape(-1, 3)
    nrm *= np.sign(np.einsum("ij,ij->i", nrm, radial))[:, None]
    skin = _lin(ident.skin) * (np.array([0.95, 0.93, 0.93]) if not ident.mannequin else 1.0)
    alb = np.broadcast_to(skin, (len(pos), 3)).astype(np.float32).copy()
    ao = np.clip(0.55 + 0.45 * (1.0 - np.clip((tt.reshape(-1) - 0.55) / 0.3, 0, 1)), 0.5, 1).astype(np.float32)
    spec = np.tile(np.array([[0.08, 12.0]], np.float32), (len(pos), 1))
    blend = np.clip((tt.reshape(-1) - 0.25) / 0.6, 0, 1).astype(np.float32)
    blend = blend * blend * (3 - 2 * blend)
    neck = _Mesh(pos, nrm.astype(np.float32), alb, spec, ao, faces, frame="neck", blend=blend)
    # Shoulders: a flattened superellipsoid in clothing, below the neck.
    nb_lon, nb_lat = 96, 36
    lat = np.linspace(-math.pi / 2, math.pi / 2, nb_lat)
    lon = np.linspace(-math.pi, math.pi, nb_lon)
    la, lo = np.meshgrid(lat, lon, indexing="ij")
    ex = 0.6
    cl, sl = np.cos(la), np.sin(la)
    cx_, sx_ = np.cos(lo), np.sin(lo)
    f = lambda v: np.sign(v) * np.abs(v) ** ex
    bx = 2.8 * f(cl) * f(sx_)
    by = -4.5 + 1.15 * f(sl)
    bz = -0.40 + 1.05 * f(cl) * f(cx_)
    bpos = np.stack([bx, by, bz], -1).reshape(-1, 3).astype(np.float32)
    bfaces = _grid_faces(nb_lat, nb_lon)
    bn = _grid_normals(bpos, nb_lat, nb_lon)
    out_dir = bpos - np.array([0, -4.5, -0.40], np.float32)
    bn *= np.sign(np.einsum("ij,ij->i", bn, out_dir) + 1e-6)[:, None]
    balb = np.broadcast_to(_lin(ident.clothing), (len(bpos), 3)).astype(np.float32).copy()
    bspec = np.tile(np.array([[0.05, 8.0]], np.float32), (len(bpos), 1))
    body = _Mesh(bpos, bn.astype(np.float32), balb, bspec, np.full(len(bpos), 0.9, np.float32),
                 bfaces, frame="body")
    return [neck, body]


# ============================================================================ raster

_BINS = (1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512,
         768, 1024, 1536, 2048, 3072, 4096, 8192, 16384)


def _rasterize(xy: np.ndarray, depth: np.ndarray, faces: np.ndarray, width: int, height: int,
               depth_only: bool = False):
    """Z-buffer rasterisation of triangles, vectorised over all candidate pixels at once.

    A triangle's candidate pixels are its (clipped) bounding box; all boxes are unrolled
    into one flat array of (triangle, pixel) pairs with ``np.repeat``, tested with edge
    functions, and resolved with a ``np.minimum.at`` depth buffer. The work is the total
    box area (a few times the covered area for the small triangles used here), with no
    Python loop. Returns the depth buffer (``depth_only``) or, for each covered pixel, its
    index, triangle, barycentric weights and the depth buffer.
    """
    xy = xy.astype(np.float32)
    a, b, c = xy[faces[:, 0]], xy[faces[:, 1]], xy[faces[:, 2]]
    area = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    lo = np.floor(np.minimum(np.minimum(a, b), c) - 0.5).astype(np.int32) + 1
    hi = np.floor(np.maximum(np.maximum(a, b), c) - 0.5).astype(np.int32)
    np.maximum(lo, 0, out=lo)
    np.minimum(hi, np.array([width - 1, height - 1], np.int32), out=hi)
    span = hi - lo + 1
    ok = np.flatnonzero((np.abs(area) > 1e-9) & (span[:, 0] > 0) & (span[:, 1] > 0))
    zbuf = np.full(width * height, np.inf, np.float32)
    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 3), np.float32), zbuf)
    if len(ok) == 0:
        return zbuf if depth_only else empty
    # Per triangle, the barycentric weights and the depth are planes over the image:
    # w = kx * x + ky * y + k0. One row of coefficients per triangle, gathered once.
    A, B, C = a[ok], b[ok], c[ok]
    inv = np.float32(1.0) / area[ok]
    depth = depth.astype(np.float32)
    fz = depth[faces[ok]]
    w0x, w0y = (B[:, 1] - C[:, 1]) * inv, (C[:, 0] - B[:, 0]) * inv
    w0c = (B[:, 0] * C[:, 1] - B[:, 1] * C[:, 0]) * inv
    w1x, w1y = (C[:, 1] - A[:, 1]) * inv, (A[:, 0] - C[:, 0]) * inv
    w1c = (C[:, 0] * A[:, 1] - C[:, 1] * A[:, 0]) * inv
    dz0, dz1 = fz[:, 0] - fz[:, 2], fz[:, 1] - fz[:, 2]
    coef = np.stack([w0x, w0y, w0c, w1x, w1y, w1c,
                     dz0 * w0x + dz1 * w1x, dz0 * w0y + dz1 * w1y, dz0 * w0c + dz1 * w1c + fz[:, 2],
                     lo[ok, 0].astype(np.float32), lo[ok, 1].astype(np.float32)], 1)
    sw, sh = span[ok, 0], span[ok, 1]
    count = sw * sh
    total = int(count.sum())
    row = np.repeat(np.arange(len(ok), dtype=np.int32), count)
    local = np.arange(total, dtype=np.int32) - np.repeat((np.cumsum(count) - count).astype(np.int32), count)
    w_rep = np.repeat(sw, count)
    oy = local // w_rep
    ox = local - oy * w_rep
    k = np.take(coef, row, axis=0)           # np.take: much faster than fancy indexing
    fx = ox.astype(np.float32) + (k[:, 9] + np.float32(0.5))
    fy = oy.astype(np.float32) + (k[:, 10] + np.float32(0.5))
    w0 = k[:, 0] * fx + k[:, 1] * fy + k[:, 2]
    w1 = k[:, 3] * fx + k[:, 4] * fy + k[:, 5]
    w2 = np.float32(1.0) - w0 - w1
    eps = np.float32(-1e-5)
    inside = np.flatnonzero((w0 >= eps) & (w1 >= eps) & (w2 >= eps))
    if len(inside) == 0:
        return zbuf if depth_only else empty
    k, fx, fy = np.take(k, inside, axis=0), fx.take(inside), fy.take(inside)
    w0, w1, w2 = w0.take(inside), w1.take(inside), w2.take(inside)
    tri = ok.take(row.take(inside))
    pix = (fy.astype(np.int64)) * width + fx.astype(np.int64)
    dep = k[:, 6] * fx + k[:, 7] * fy + k[:, 8]
    np.minimum.at(zbuf, pix, dep)
    if depth_only:
        return zbuf
    win = np.flatnonzero(dep <= zbuf.take(pix))
    owner = np.full(width * height, -1, np.int64)
    owner[pix[win]] = win                       # ties: one of the equal-depth candidates
    covered = np.flatnonzero(owner >= 0)
    k = owner[covered]
    return covered, tri.take(k).astype(np.int64), np.stack([w0.take(k), w1.take(k), w2.take(k)], -1), zbuf


# ============================================================================ render

def _body_pose(pose: HeadPose) -> HeadPose:
    """The shoulders turn a little with the head but stay upright."""
    return HeadPose(yaw=0.35 * pose.yaw, pitch=0.0, roll=0.25 * pose.roll, scale=pose.scale,
                    position=pose.position)


def _neck_pose(pose: HeadPose) -> HeadPose:
    return HeadPose(yaw=0.7 * pose.yaw, pitch=0.5 * pose.pitch, roll=0.6 * pose.roll,
                    scale=pose.scale, position=pose.position)


def _to_camera(mesh: _Mesh, pose: HeadPose) -> tuple[np.ndarray, np.ndarray]:
    if mesh.frame == "head":
        return pose.to_camera(mesh.pos), pose.normals_to_camera(mesh.nrm)
    if mesh.frame == "body":
        bp = _body_pose(pose)
        return bp.to_camera(mesh.pos), bp.normals_to_camera(mesh.nrm)
    # The neck bends: its top follows the head, its base the shoulders.
    bp, hp = _body_pose(pose), pose
    w = mesh.blend[:, None]
    pos = (1 - w) * bp.to_camera(mesh.pos) + w * hp.to_camera(mesh.pos)
    nrm = (1 - w) * bp.normals_to_camera(mesh.nrm) + w * hp.normals_to_camera(mesh.nrm)
    return pos, nrm / np.linalg.norm(nrm, axis=1, keepdims=True)


def _background(kind: str, color: tuple, w: int, h: int, rng: np.random.Generator) -> np.ndarray:
    """A linear-light background image (H, W, 3)."""
    base = _lin(color)
    if kind == "flat":
        img = np.broadcast_to(base, (h, w, 3)).astype(np.float32)
    elif kind == "gradient":
        other = _lin(np.clip(np.asarray(color) * rng.uniform(0.4, 1.3) + rng.normal(0, 0.08, 3), 0, 1))
        t = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
        img = np.broadcast_to(base * (1 - t) + other * t, (h, w, 3)).astype(np.float32)
    elif kind == "blotches":
        # Out-of-focus surroundings: the colour, brighter and darker in soft patches.
        shade = rng.uniform(0.55, 1.35, (4, 5, 1)) + rng.normal(0, 0.04, (4, 5, 3))
        small = np.clip(np.asarray(color)[None, None] * shade, 0, 1)
        img = cv2.resize(_lin(small).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
        img = cv2.GaussianBlur(img, (0, 0), max(w, h) / 12 + 0.5)
    else:  # studio: a soft pool of light behind the head
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        rr = ((xx - w * rng.uniform(0.35, 0.65)) ** 2 + (yy - h * rng.uniform(0.3, 0.6)) ** 2) / (0.5 * max(w, h)) ** 2
        img = base[None, None] * (0.35 + 0.9 * np.exp(-rr))[..., None]
    return np.clip(img, 0, 1).astype(np.float32)


@dataclass(frozen=True)
class Background:
    """What is behind the head: a kind from :data:`BACKGROUNDS`, a colour and a seed."""

    kind: str = "studio"
    color: tuple[float, float, float] = (0.55, 0.58, 0.62)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in BACKGROUNDS:
            raise ValueError(f"background kind must be one of {BACKGROUNDS}, got {self.kind!r}")

    @classmethod
    def sample(cls, rng: np.random.Generator) -> "Background":
        # Mostly muted colours, as behind real portraits; now and then a strong one.
        hue = rng.uniform(0, 1)
        sat = rng.uniform(0.0, 0.35) if rng.random() < 0.8 else rng.uniform(0.35, 0.8)
        val = rng.uniform(0.15, 0.92)
        rgb = np.array([_hue_channel(hue, k) for k in (0, 1, 2)])
        color = val * (1 - sat + sat * rgb)
        return cls(kind=str(rng.choice(BACKGROUNDS)), color=_tuple(color),
                   seed=int(rng.integers(2 ** 31)))


def _hue_channel(hue: float, k: int) -> float:
    """One channel of a fully saturated colour of the given hue (k = 0, 1, 2: r, g, b)."""
    x = (hue * 6.0 + (4.0, 2.0, 0.0)[k]) % 6.0
    return float(np.clip(abs(x - 3.0) - 1.0, 0.0, 1.0))


def _shadow_map(pos: np.ndarray, faces: np.ndarray, cull: np.ndarray, light: np.ndarray,
                res: int, softness: float):
    """An exponential shadow map seen from the key light (orthographic, ``res``²).

    Returns a function mapping camera-frame points to a lit fraction in [0, 1]: the map
    stores exp(k·depth) of the nearest occluder, blurred (soft penumbrae), and a point at
    light-depth ``z`` is lit by about exp(k·(z_occluder − z)).
    """
    light = np.asarray(light, np.float32)
    e2 = np.cross(light, np.array([0.0, 1.0, 0.0], np.float32))
    if np.linalg.norm(e2) < 1e-6:
        e2 = np.cross(light, np.array([1.0, 0.0, 0.0], np.float32))
    e2 /= np.linalg.norm(e2)
    e1 = np.cross(e2, light)
    basis = np.stack([e2, e1], 1).astype(np.float32)
    uv = pos @ basis
    lo, hi = uv.min(0), uv.max(0)
    span = float((hi - lo).max()) * 1.04 + 1e-6
    origin = lo - 0.02 * span
    scale = (res - 1) / span
    xy = (uv - origin) * np.float32(scale)
    ldepth = -(pos @ light)                                  # larger = farther from light
    d0 = float(ldepth.min())
    ldepth = ldepth - d0
    a, b, c = pos[faces[:, 0]], pos[faces[:, 1]], pos[faces[:, 2]]
    facing = (np.cross(b - a, c - a) @ light) > 0
    keep = facing | ~cull
    zbuf = _rasterize(xy, ldepth, faces[keep], res, res, depth_only=True)
    zbuf = zbuf.reshape(res, res)
    k = 40.0 / span                                  # ESM sharpness per camera unit
    far = np.where(np.isfinite(zbuf), zbuf, ldepth.max() + 10.0)
    emap = np.exp(np.clip(k * far, -60, 60)).astype(np.float32)
    sigma = 0.6 + softness * res / 45.0
    emap = cv2.GaussianBlur(emap, (0, 0), sigma)

    def lit(p: np.ndarray) -> np.ndarray:
        q = (p @ basis - origin) * np.float32(scale) - 0.5     # pixel centres at +0.5
        q0 = np.floor(q)
        f = q - q0
        ix = np.clip(q0[:, 0].astype(np.int64), 0, res - 2)
        iy = np.clip(q0[:, 1].astype(np.int64), 0, res - 2)
        e = (emap[iy, ix] * (1 - f[:, 0]) * (1 - f[:, 1]) + emap[iy, ix + 1] * f[:, 0] * (1 - f[:, 1])
             + emap[iy + 1, ix] * (1 - f[:, 0]) * f[:, 1] + emap[iy + 1, ix + 1] * f[:, 0] * f[:, 1])
        z = -(p @ light) - d0
        bias = 0.03 * span
        return np.clip(e * np.exp(np.clip(-k * (z - bias), -60, 60)), 0.0, 1.0)

    return lit


def render_head(identity: HeadIdentity, pose: HeadPose, camera: Camera,
                lighting: Lighting = Lighting(), background: Background | tuple = Background(),
                supersample: float = 2, noise: float = 0.012, return_mask: bool = False):
    """Render a photo-like head: ``uint8`` array ``(H, W, 3)`` (and a bool mask if asked).

    The head lives in the Loomis frame of ``identity.proportions`` and is placed by
    ``pose`` exactly as :func:`loomis.head.construction_lines` places the construction,
    so drawing and photo align. ``background`` is a :class:`Background` or an sRGB triple
    in [0, 1] for a flat colour.
    """
    if not isinstance(identity, HeadIdentity):
        raise TypeError("identity must be a HeadIdentity")
    if not 1 <= supersample <= 4:
        raise ValueError(f"supersample must be between 1 and 4, got {supersample}")
    check_pose_in_front(pose, camera, identity.proportions)
    if isinstance(background, tuple):
        background = Background("flat", tuple(float(v) for v in background))
    ss = supersample
    W, H = int(round(camera.width * ss)), int(round(camera.height * ss))
    sx, sy = W / camera.width, H / camera.height
    cx, cy = camera.principal_point
    cam = Camera(W, H, camera.focal * sx, cx * sx, cy * sy, camera.orthographic, camera.weak_depth)
    # Mesh density follows the output size: about two supersampled pixels per vertex.
    nlon = int(np.clip(round(max(camera.width, camera.height) * 0.55 / 8) * 8, 128, 320))
    meshes = _build_meshes(identity, nlon, int(nlon * 0.68) // 2 * 2)
    # Gather every part in camera space.
    P, N, A, S, O, F, C, SF, SC = [], [], [], [], [], [], [], [], []
    base = 0
    for m in meshes:
        pos, nrm = _to_camera(m, pose)
        P.append(pos), N.append(nrm), A.append(m.albedo), S.append(m.spec), O.append(m.ao)
        F.append(m.faces + base)
        C.append(np.full(len(m.faces), not m.two_sided))
        sf = m.faces if m.shadow_faces is None else m.shadow_faces
        SF.append(sf + base)
        SC.append(np.full(len(sf), not m.two_sided))
        base += len(pos)
    P, N = np.concatenate(P).astype(np.float32), np.concatenate(N).astype(np.float32)
    A, S, O = np.concatenate(A), np.concatenate(S), np.concatenate(O)
    F, cull = np.concatenate(F), np.concatenate(C)
    shadow_faces, shadow_cull = np.concatenate(SF), np.concatenate(SC)
    # Back-face culling in 3D, then rasterise in the supersampled image.
    a, b, c = P[F[:, 0]], P[F[:, 1]], P[F[:, 2]]
    view = np.array([0, 0, 1], np.float32) if cam.orthographic else -a   # towards the camera
    facing = np.einsum("ij,ij->i", np.cross(b - a, c - a), view) > 0
    keep = facing | ~cull
    xy = cam.project(P)
    depth = -P[:, 2] if not cam.orthographic else -P[:, 2]
    pix, fid, bary, _ = _rasterize(xy, depth, F[keep], W, H)
    tri = np.take(F[keep], fid, axis=0)
    # One gather for every attribute: position, normal, albedo, specular, occlusion.
    attrs = np.concatenate([P, N, A, S, O[:, None]], 1)
    g = np.einsum("mk,mkc->mc", bary, np.take(attrs, tri.reshape(-1), axis=0).reshape(len(tri), 3, -1))
    p, n, alb, spec, ao = g[:, 0:3], g[:, 3:6], g[:, 6:9], g[:, 9:11], g[:, 11]
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-9)
    v = cam.view_dirs(p).astype(np.float32)
    back = np.einsum("ij,ij->i", n, v) < 0
    n[back] *= -1                                     # two-sided ears seen from behind
    # Lighting.
    L = lighting.direction.astype(np.float32)
    lit = _shadow_map(P, shadow_faces, shadow_cull, L, 128, lighting.softness)(p)
    ndl = n @ L
    wrap = 0.25
    diff = np.clip((ndl + wrap) / (1 + wrap), 0, None)
    key = lighting.key * diff * lit
    fill_dir = np.array([-L[0], 0.2, 0.9], np.float32)
    fill_dir /= np.linalg.norm(fill_dir)
    fill = lighting.fill * np.clip(n @ fill_dir, 0, None)
    sky = lighting.ambient * (0.55 + 0.45 * n[:, 1]) * ao
    h = L + v
    h /= np.linalg.norm(h, axis=1, keepdims=True)
    spec_term = spec[:, 0] * lighting.specular * np.clip(np.einsum("ij,ij->i", n, h), 0, 1) ** spec[:, 1] * lit
    spec_term *= (spec[:, 1] + 8) / 40.0
    kc = np.asarray(lighting.key_color, np.float32)
    # Warm light scattered under the skin at the shadow edge.
    scatter = np.exp(-((ndl - 0.0) / 0.25) ** 2)[:, None] * np.array([0.10, 0.03, 0.01], np.float32) * lighting.key
    color = alb * (key[:, None] * kc + fill[:, None] + sky[:, None] + scatter * lit[:, None]) \
        + spec_term[:, None] * kc
    color *= 0.55 * lighting.exposure
    rng = np.random.default_rng(background.seed)
    # The background is smooth: make it at a quarter of the size and scale it up.
    small = _background(background.kind, background.color, max(W // 8, 8), max(H // 8, 8), rng)
    img = cv2.resize(small, (W, H), interpolation=cv2.INTER_LINEAR).reshape(-1, 3)
    img[pix] = color
    img = img.reshape(H, W, 3)
    if ss > 1:
        img = cv2.resize(img, (camera.width, camera.height), interpolation=cv2.INTER_AREA)
    # Filmic-ish tone curve, then sRGB.
    img = img / (1.0 + 0.25 * img)
    img = np.where(img <= 0.0031308, 12.92 * img, 1.055 * np.power(np.maximum(img, 0), 1 / 2.4) - 0.055)
    if noise > 0:
        # Sensor grain, mostly in brightness (one field shared by the channels).
        img = img + noise * rng.standard_normal(img.shape[:2], dtype=np.float32)[..., None]
    out = np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if not return_mask:
        return out
    mask = np.zeros(W * H, np.float32)
    mask[pix] = 1.0
    mask = mask.reshape(H, W)
    if ss > 1:
        mask = cv2.resize(mask, (camera.width, camera.height), interpolation=cv2.INTER_AREA)
    return out, mask > 0.5
