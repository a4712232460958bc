"""Head pose and camera: the one coordinate convention every part of Loomis shares.

Frames (all right-handed, y up, as in OpenGL):

* **Head frame** – origin at the centre of the Loomis ball, unit length ``u`` (brow line
  to nose line). At zero pose ``+x`` points to the image's right (the subject's left),
  ``+y`` up, ``+z`` out of the face towards the camera.
* **Camera frame** – the camera sits at the origin and looks down ``-z``; ``+x`` is the
  image's right, ``+y`` the image's top. A head in front of the camera has negative ``z``.
* **Image** – pixels, ``x`` to the right and ``y`` *down*, origin at the top-left corner.

Angles are degrees:

* ``yaw > 0`` turns the face towards the image's right,
* ``pitch > 0`` tilts the face up (chin forward, looking up),
* ``roll > 0`` rotates the head counter-clockwise in the image.

The rotation is ``R = Rz(roll) · Rx(-pitch) · Ry(yaw)`` (head frame → camera frame). This
order is chosen because it makes the two image-space symmetries exact: rotating a photo by
θ counter-clockwise adds θ to roll, and mirroring a photo negates yaw and roll while
keeping pitch.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

__all__ = ["HeadPose", "Camera", "rotation_matrix", "angles_from_matrix", "cross"]


def _rx(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]], dtype=np.float64)


def _ry(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]], dtype=np.float64)


def _rz(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]], dtype=np.float64)


def cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cross product over the last axis of ``(..., 3)`` arrays, broadcast like np.cross.

    Why not np.cross: on one pair of 3-vectors, or a few hundred rows, its axis handling
    costs 5-20x the arithmetic, and the drawing and the pose fit call it in their inner
    loops."""
    a, b = np.asarray(a), np.asarray(b)
    a0, a1, a2 = a[..., 0], a[..., 1], a[..., 2]
    b0, b1, b2 = b[..., 0], b[..., 1], b[..., 2]
    return np.stack([a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0], axis=-1)


def rotation_matrix(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Head-to-camera rotation for angles in degrees (see the module docstring)."""
    y, p, r = (math.radians(v) for v in (yaw, pitch, roll))
    return _rz(r) @ _rx(-p) @ _ry(y)


def angles_from_matrix(rot: np.ndarray) -> tuple[float, float, float]:
    """Inverse of :func:`rotation_matrix`: ``(yaw, pitch, roll)`` in degrees.

    Pitch is kept in [-90, 90]; near ±90° (gimbal lock) roll is set to 0.
    """
    m = np.asarray(rot, dtype=np.float64)
    # R = Rz(r) Rx(q) Ry(y) with q = -pitch.  Column/row algebra of that product:
    #   m[2,1] =  sin q,  m[0,1] = -sin r cos q, m[1,1] = cos r cos q,
    #   m[2,0] = -cos q sin y, m[2,2] = cos q cos y.
    sq = float(np.clip(m[2, 1], -1.0, 1.0))
    q = math.asin(sq)
    if abs(math.cos(q)) > 1e-6:
        r = math.atan2(-m[0, 1], m[1, 1])
        y = math.atan2(-m[2, 0], m[2, 2])
    else:  # gimbal lock: fold roll into yaw
        r = 0.0
        y = math.atan2(m[0, 2], m[0, 0])
    return math.degrees(y), -math.degrees(q), math.degrees(r)


def ray_rotation(ray: np.ndarray) -> np.ndarray:
    """Smallest rotation taking the optical axis (0, 0, -1) onto ``ray``: what an object
    that looks frontal to a camera aimed at it looks like to a camera aimed elsewhere."""
    a = np.array([0.0, 0.0, -1.0])
    b = np.asarray(ray, dtype=np.float64) / np.linalg.norm(ray)
    v = cross(a, b)
    c = float(a @ b)
    vx = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + vx + vx @ vx / (1.0 + c)


@dataclass(frozen=True)
class HeadPose:
    """Where the head is: rotation (degrees), size of one Loomis unit, and ball centre.

    ``scale`` is the length of one Loomis unit ``u`` in camera-frame units and
    ``position`` the ball centre in the camera frame (``z < 0`` is in front of the camera).
    """

    yaw: float = 0.0
    pitch: float = 0.0
    roll: float = 0.0
    scale: float = 1.0
    position: tuple[float, float, float] = (0.0, 0.0, -12.0)

    @property
    def rotation(self) -> np.ndarray:
        return rotation_matrix(self.yaw, self.pitch, self.roll)

    def line_of_sight_angles(self) -> tuple[float, float, float]:
        """Yaw, pitch, roll as the head looks from the camera: the rotation with the turn
        of the view ray through the ball centre removed (what a photo shows and what
        Loomis reports; ``yaw`` etc. are in the camera's axes)."""
        return angles_from_matrix(ray_rotation(np.asarray(self.position)).T @ self.rotation)

    def to_camera(self, points: np.ndarray) -> np.ndarray:
        """Map ``(..., 3)`` head-frame points to camera-frame points."""
        pts = np.asarray(points, dtype=np.float64)
        return self.scale * pts @ self.rotation.T + np.asarray(self.position, dtype=np.float64)

    def normals_to_camera(self, normals: np.ndarray) -> np.ndarray:
        """Rotate ``(..., 3)`` head-frame directions into the camera frame."""
        return np.asarray(normals, dtype=np.float64) @ self.rotation.T

    def mirrored(self) -> "HeadPose":
        """The pose seen in a mirror about the image's vertical axis through the camera."""
        x, y, z = self.position
        return HeadPose(-self.yaw, self.pitch, -self.roll, self.scale, (-x, y, z))


@dataclass(frozen=True)
class Camera:
    """A pinhole camera (or weak perspective when ``orthographic`` is set).

    ``focal`` is in pixels; the principal point defaults to the image centre. Weak
    perspective projects every point as if it lay at depth ``weak_depth`` (the head's
    ball centre, typically), which is what a centred crop of a face looks like.
    """

    width: int
    height: int
    focal: float
    cx: float | None = None
    cy: float | None = None
    orthographic: bool = False
    weak_depth: float = 12.0
    _principal: tuple[float, float] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.width < 1 or self.height < 1:
            raise ValueError(f"camera size must be positive, got {self.width}x{self.height}")
        if not self.focal > 0:
            raise ValueError(f"focal length must be positive, got {self.focal}")
        cx = self.width / 2.0 if self.cx is None else float(self.cx)
        cy = self.height / 2.0 if self.cy is None else float(self.cy)
        object.__setattr__(self, "_principal", (cx, cy))

    @classmethod
    def from_fov(cls, width: int, height: int, fov_deg: float = 30.0, **kw) -> "Camera":
        """A camera whose horizontal field of view is ``fov_deg``."""
        if not 0 < fov_deg < 180:
            raise ValueError(f"field of view must be in (0, 180) degrees, got {fov_deg}")
        focal = 0.5 * width / math.tan(math.radians(fov_deg) / 2)
        return cls(width, height, focal, **kw)

    @property
    def principal_point(self) -> tuple[float, float]:
        return self._principal

    def project(self, points: np.ndarray) -> np.ndarray:
        """Camera-frame ``(..., 3)`` points → ``(..., 2)`` pixel coordinates (y down)."""
        p = np.asarray(points, dtype=np.float64)
        depth = np.full(p.shape[:-1], self.weak_depth) if self.orthographic else -p[..., 2]
        depth = np.where(np.abs(depth) < 1e-9, 1e-9, depth)
        cx, cy = self._principal
        u = cx + self.focal * p[..., 0] / depth
        v = cy - self.focal * p[..., 1] / depth
        return np.stack([u, v], axis=-1)

    def view_dirs(self, points: np.ndarray) -> np.ndarray:
        """Unit vectors from camera-frame points towards the camera (for visibility)."""
        p = np.asarray(points, dtype=np.float64)
        if self.orthographic:
            return np.broadcast_to(np.array([0.0, 0.0, 1.0]), p.shape).copy()
        v = -p
        return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)
