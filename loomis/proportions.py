"""The subject's own proportions: where a face departs from Loomis's canon, the
construction follows the face, and a short text says how.

Loomis divides the face into equal thirds (hairline–brow, brow–nose, nose–chin) and sets
its width by the ball's side planes. Real faces depart from that, and an artist draws the
face in front of them, not the average one. Here each face's landmarks are taken into
its fitted head frame (the ball's units) and compared with the project's reference face
(:mod:`loomis.face_reference`, the canon in the same frame): the nose and chin lines move
to this face's heights, and the jaw and chin widen or narrow with its cheeks.

The hairline is not among the landmarks (the mesh stops on the forehead), so the upper
third stays canonical. Faces turned or tilted far are not measured: the canon is drawn.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from loomis.face_reference import CHIN, SUBNASALE, brow_indices, load_reference
from loomis.head import LoomisProportions

__all__ = ["FaceProportions", "measure", "REPORT_FROM", "MAX_YAW", "MAX_PITCH"]

#: The smallest departure from the canon worth a sentence (smaller is within what the
#: landmarks and the pose can tell apart).
REPORT_FROM = 0.05
#: Measured ratios are held within this range of the canon (a misread face must not
#: draw a grotesque construction).
LIMITS = (0.8, 1.25)
#: Beyond these angles (degrees) a face's heights and width are not measured.
MAX_YAW, MAX_PITCH = 40.0, 30.0
#: The cheek points of MediaPipe's face oval, right and left of the picture.
CHEEKS = (234, 454)


@dataclass(frozen=True)
class FaceProportions:
    """How one face departs from the canon, as ratios (1 = the canon).

    ``middle`` and ``lower`` are the brow–nose and nose–chin distances in the ball's
    units, ``width`` the face's width at the cheeks; ``measured`` is False where the face
    was turned too far to measure (all ratios 1 then)."""

    middle: float = 1.0
    lower: float = 1.0
    width: float = 1.0
    measured: bool = True

    def apply(self, canon: LoomisProportions = LoomisProportions()) -> LoomisProportions:
        """The construction for this face: the nose and chin lines at its heights, jaw
        and chin at its width; the ball, the brow line and the hairline as the canon."""
        nose_y = canon.nose_y * self.middle
        chin_y = nose_y + (canon.chin_y - canon.nose_y) * self.lower
        jaw = min(canon.jaw_angle_frac * self.width, 1.0)
        return dataclasses.replace(canon, nose_y=nose_y, chin_y=chin_y, ear_bottom=nose_y,
                                   jaw_angle_frac=jaw,
                                   chin_half_width=canon.chin_half_width * self.width)

    def notes(self) -> list[str]:
        """Plain sentences on what departs from the canon by :data:`REPORT_FROM` or more."""
        if not self.measured:
            return ["turned too far to measure: the canon is drawn"]
        out = []
        thirds = self.lower / self.middle - 1.0
        if abs(thirds) >= REPORT_FROM:
            out.append(f"lower third {abs(thirds):.0%} {'longer' if thirds > 0 else 'shorter'} "
                       "than the middle third (the canon makes them equal)")
        face = self.middle + self.lower
        for name, ratio, more, less in (
                ("face", face / 2.0, "longer", "shorter"),
                ("face", self.width / (face / 2.0), "wider for its length", "narrower for its length")):
            if abs(ratio - 1.0) >= REPORT_FROM:
                out.append(f"{name} {abs(ratio - 1.0):.0%} {more if ratio > 1 else less} "
                           "than the canon")
        return out or ["close to the canon"]

    def to_json(self) -> dict:
        r = lambda v: round(float(v), 3)  # noqa: E731
        return {"middle_third": r(self.middle), "lower_third": r(self.lower),
                "width": r(self.width), "measured": self.measured, "notes": self.notes()}


@lru_cache(maxsize=4)
def _reference(radius: float) -> tuple[np.ndarray, np.ndarray]:
    """The canon's heights and cheek width in the head frame: (brow, nose, chin), width."""
    pts = load_reference().head_points(radius)
    return _levels(pts)


def _levels(pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    brow = pts[brow_indices(), 1].mean()
    heights = np.array([brow, pts[SUBNASALE, 1], pts[CHIN, 1]])
    return heights, np.array(abs(pts[CHEEKS[1], 0] - pts[CHEEKS[0], 0]))


def head_frame_landmarks(face, radius: float = LoomisProportions().radius) -> np.ndarray:
    """A face's landmarks (:class:`loomis.pose.FacePose`) in its own head frame, in Loomis
    units: the picture's points taken back through the fitted pose at the depth of the
    face (well in front of the ball's centre, which would read it too large). One depth
    for all points: a portrait's lens is rarely known, and a per-point perspective at an
    assumed focal length stretches the sides and the chin of every telephoto portrait."""
    cam = face.camera
    cx, cy = cam.principal_point
    pos = np.asarray(face.head.position, dtype=np.float64)
    z = face.head.to_camera(load_reference().head_points(radius))[:, 2]
    k = -float(np.median(z)) / cam.focal          # camera units per pixel at the face
    lm = np.asarray(face.landmarks, dtype=np.float64)
    cam_pts = np.column_stack([(lm[:, 0] - cx) * k, -(lm[:, 1] - cy) * k, z])
    return (cam_pts - pos) @ face.head.rotation / face.head.scale


def measure(face, radius: float = LoomisProportions().radius) -> FaceProportions:
    """This face's proportions against the canon (see the module docstring)."""
    if abs(face.yaw) > MAX_YAW or abs(face.pitch) > MAX_PITCH:
        return FaceProportions(measured=False)
    (brow, nose, chin), width = _levels(head_frame_landmarks(face, radius))
    (rbrow, rnose, rchin), rwidth = _reference(radius)
    lo, hi = LIMITS
    clip = lambda v: float(np.clip(v, lo, hi))  # noqa: E731
    return FaceProportions(middle=clip((brow - nose) / (rbrow - rnose)),
                           lower=clip((nose - chin) / (rnose - rchin)),
                           width=clip(width / rwidth))
