"""Steady poses for video: the One-Euro filter, and a tracker that applies it per face.

A landmarker's reading of a still head shakes by a fraction of a degree from frame to
frame, and a construction drawn from it shakes with it. A fixed low-pass filter that
stills it makes a turning head's drawing trail behind. The One-Euro filter (Casiez,
Roussel and Vogel, CHI 2012) is a low-pass filter whose cut-off rises with the speed of
the signal: heavy smoothing while the head is still, little while it moves.

:class:`PoseTracker` filters each face's angles, its ball centre's image position and its
size, all in degrees or their equivalent (the centre in degrees of arc on the ball: one
ball radius is 57.3°; the size as 57.3 × its logarithm), so one setting serves all six.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from loomis.camera import HeadPose, angles_from_matrix, ray_rotation, rotation_matrix

__all__ = ["OneEuro", "OneEuroFilter", "PoseTracker"]

_DEG = 180.0 / math.pi
_RADIUS_U = 1.4          # the Loomis ball's radius in u: sets the unit of the position


@dataclass(frozen=True)
class OneEuro:
    """The filter's settings. ``min_cutoff`` (Hz) sets the smoothing of a still signal
    (lower: stiller), ``beta`` how fast the cut-off rises with speed (per degree per
    second; higher: less lag when moving), ``d_cutoff`` (Hz) the smoothing of the speed
    estimate itself."""

    min_cutoff: float = 0.3
    beta: float = 0.05
    d_cutoff: float = 1.0

    def __post_init__(self) -> None:
        if not (self.min_cutoff > 0 and self.d_cutoff > 0 and self.beta >= 0):
            raise ValueError("min_cutoff and d_cutoff must be positive and beta at least 0, "
                             f"got {self}")


def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
    tau = 1.0 / (2.0 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """One-Euro filtering of a vector signal, each component on its own."""

    def __init__(self, config: OneEuro = OneEuro()) -> None:
        self.config = config
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None
        self._t = 0.0

    def __call__(self, x: np.ndarray, t: float) -> np.ndarray:
        """The filtered value of sample ``x`` taken at time ``t`` (seconds)."""
        x = np.asarray(x, dtype=np.float64)
        if self._x is None:
            self._x, self._dx, self._t = x.copy(), np.zeros_like(x), t
            return x.copy()
        dt = t - self._t if t > self._t else 1.0 / 30.0
        self._t = max(t, self._t + dt)
        c = self.config
        self._dx += _alpha(c.d_cutoff, dt) * ((x - self._x) / dt - self._dx)
        cutoff = c.min_cutoff + c.beta * np.abs(self._dx)
        self._x = self._x + _alpha(cutoff, dt) * (x - self._x)
        return self._x.copy()

    @property
    def value(self) -> np.ndarray | None:
        return None if self._x is None else self._x.copy()


class PoseTracker:
    """Follows the faces of one video stream and smooths each one's pose.

    A face is matched to the nearest face of the last frame (its ball centre within half
    a face width); a new face starts a new filter, and a face that is gone forgets its."""

    def __init__(self, config: OneEuro = OneEuro()) -> None:
        self.config = config
        # per face: its filter, its last ball centre (pixels), and the ball radius in pixels
        # when it was first seen (the unit its position is filtered in)
        self._tracks: list[tuple[OneEuroFilter, tuple[float, float], float]] = []

    def update(self, faces: list, t: float) -> list:
        """The faces of a frame taken at ``t`` seconds (:class:`loomis.pose.FacePose`),
        smoothed; the same order."""
        free = list(self._tracks)
        tracks, out = [], []
        for face in faces:
            centre = face.center
            near = [k for k in free
                    if math.dist(k[1], centre) < 0.5 * face.width]
            if near:
                filt, _, unit = min(near, key=lambda k: math.dist(k[1], centre))
            else:
                filt, unit = OneEuroFilter(self.config), face.u_pixels * _RADIUS_U
            free = [k for k in free if k[0] is not filt]
            state = _state(face, unit)
            if filt.value is not None:          # unwrap the angles next to the last ones
                state[:3] = filt.value[:3] + (state[:3] - filt.value[:3] + 180.0) % 360.0 - 180.0
            smooth = _face(face, filt(state, t), unit)
            tracks.append((filt, smooth.center, unit))
            out.append(smooth)
        self._tracks = tracks
        return out


def _state(face, unit: float) -> np.ndarray:
    """Angles, the ball centre in degrees of arc on a ball ``unit`` pixels in radius, the
    size as 57.3 × its logarithm."""
    x, y = face.center
    return np.array([face.yaw, face.pitch, face.roll, _DEG * x / unit, _DEG * y / unit,
                     _DEG * math.log(face.u_pixels)])


def _face(face, state: np.ndarray, unit: float):
    """``face`` moved to the filtered state: same landmarks, new pose."""
    yaw, pitch, roll, xs, ys, ls = (float(v) for v in state)
    u_px = math.exp(ls / _DEG)
    cam = face.camera
    cx, cy = cam.principal_point
    z = -cam.focal / u_px
    pos = np.array([(xs * unit / _DEG - cx) * -z / cam.focal,
                    -(ys * unit / _DEG - cy) * -z / cam.focal, z])
    rot = ray_rotation(pos) @ rotation_matrix(yaw, pitch, roll)
    head = HeadPose(*angles_from_matrix(rot), scale=1.0, position=tuple(map(float, pos)))
    return dataclasses.replace(face, yaw=yaw, pitch=pitch, roll=roll, head=head, u_pixels=u_px)
