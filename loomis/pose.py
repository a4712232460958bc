"""Head pose from photos and video: MediaPipe's Face Landmarker, read as the Loomis head.

For every face the result holds yaw, pitch and roll relative to the line of sight (the
angles head-pose datasets label), and a :class:`~loomis.camera.HeadPose` with the
:class:`~loomis.camera.Camera` it was solved through, so that
``construction_lines(face.head, face.camera)`` draws the construction on the face in the
photo, off-centre faces included (the perspective note of loomis-geometry.md).

* **Landmarks** come from the Face Landmarker of :mod:`loomis.landmarker` (IMAGE mode for
  photos, VIDEO mode for a stream): 478 points with a relative depth, and the facial
  transformation matrix, MediaPipe's own fit of its canonical face to them.
* **Camera.** A photo's focal length is unknown: we assume ``fov_deg`` across the longer
  side with the principal point at the centre, and solve and draw through that same
  camera. A picture so tight that this lens would put a face nearer than
  ``min_distance`` is taken for a crop of a wider one, and gets a longer lens.
* **Rotation** (``method``). ``"matrix"`` (default): the transformation matrix's rotation,
  relative to its line of sight, turned from the canonical face's frame into the
  reference's Loomis frame (zero pitch = brow point over the chin, :data:`CANONICAL_TILT_DEG`).
  ``"joint"``, ``"pnp"`` and ``"procrustes"`` are the project's own fits of
  :mod:`loomis.face_reference` to the landmarks (see :func:`_fit_joint`);
  ``"matrix_joint"`` keeps the matrix's yaw and roll and refines its pitch with the joint
  fit. All are measured in ``benchmarks/pose_accuracy.py`` (docs/pose.md). The matrix is
  read on a crop centred on the face (the upright pass): read off-centre in a whole
  frame, its pitch is biased, so video frames use ``stream_method`` ("joint").
* **Position.** With the rotation held, the ball centre is placed by least squares on the
  reference's skull-fixed landmarks, so the construction sits on the face it was read on.

Around the landmarker, for photos: small faces are found with OpenCV's Haar cascades and
read on a crop; each face is read again on a crop turned upright (MediaPipe is most
accurate there); the bundled face detector tells an upright face from one misread upside
down; a picture with no face is tried turned by 180°; several faces are kept, each once.
For video, a :class:`~loomis.smoothing.PoseTracker` per stream steadies each face's angles,
position and scale (One-Euro filters), so the construction holds still on a still head
and follows a turning one.

Bad input is rejected at the boundary by :func:`loomis.imageio.load_image`; images larger
than ``max_side`` are downscaled for detection only (landmarks are scaled back).
"""
from __future__ import annotations

import functools
import math
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from loomis.camera import Camera, HeadPose, angles_from_matrix, cross, ray_rotation, rotation_matrix
from loomis.face_reference import N_LANDMARKS, FaceReference, load_reference, outward_normals
from loomis.imageio import ImageLike, load_image
from loomis.landmarker import FaceReading, Landmarker

__all__ = ["PoseConfig", "FacePose", "PoseResult", "PoseEstimator", "NoFaceError",
           "estimate_poses", "BALL_RADIUS_U", "METHODS"]

#: Loomis ball radius in units of u (loomis-geometry.md: R ≈ 1.4u). The construction in
#: loomis.head uses its own LoomisProportions; pass its ``ball_radius`` to PoseConfig if
#: it differs, so the fitted ball centre is the one that gets drawn.
BALL_RADIUS_U = 1.4

METHODS = ("matrix", "matrix_joint", "joint", "pnp", "procrustes")

#: How far MediaPipe's canonical face leans forward from the reference's zero pitch, by the
#: reference's own definition (brow point straight above the soft-tissue chin) applied to
#: the canonical mesh in face_landmarker.task (tests/test_landmarker.py measures it).
CANONICAL_TILT_DEG = 0.93

#: A crop made upright by the first reading that the face detector scores below this is
#: checked in its other three quarter turns, and turned to the best one if that scores
#: more than QUARTER_TURN_MARGIN higher (see PoseEstimator._quarter_turns).
FACE_SCORE_UPRIGHT = 0.75
QUARTER_TURN_MARGIN = 0.15

# OpenCV's camera frame (x right, y down, z forward) → ours (x right, y up, z backward)
_CV_TO_OURS = np.diag([1.0, -1.0, -1.0])


def _canonical_to_loomis() -> np.ndarray:
    """Rotation taking the reference's (Loomis) head frame into the canonical face's: the
    canonical face's "up" leans CANONICAL_TILT_DEG towards the viewer."""
    t = math.radians(CANONICAL_TILT_DEG)
    y = np.array([0.0, math.cos(t), math.sin(t)])
    return np.column_stack([[1.0, 0.0, 0.0], y, np.cross([1.0, 0.0, 0.0], y)])


_LOOMIS_IN_CANONICAL = _canonical_to_loomis()


class NoFaceError(ValueError):
    """No usable face in the picture; the message says what was seen and what to try."""


@dataclass(frozen=True)
class PoseConfig:
    """Options of :class:`PoseEstimator`."""

    max_faces: int = 4                 # faces looked for per image
    fov_deg: float = 55.0              # assumed field of view across the longer side
    # Nearer than this (Loomis units, about 5 cm each) the picture is taken for a crop of a
    # wider one, and the focal length grows until the nearest face is this far away: a
    # tight crop of a face would otherwise be drawn with a close-up's perspective.
    min_distance: float = 5.5
    method: Literal["matrix", "matrix_joint", "joint", "pnp", "procrustes"] = "matrix"
    # video frames: read whole, with no centred crop, where the matrix's pitch is biased
    # (docs/pose.md); one landmark reading per frame keeps within the frame budget
    stream_method: Literal["matrix", "matrix_joint", "joint", "pnp", "procrustes"] = "joint"
    depth_weight: float = 1.0          # "joint": MediaPipe's depth against the 2D landmarks
    min_face_px: int = 32              # narrower faces are reported as too small
    max_side: int = 1280               # detection runs on images at most this large
    min_detection_confidence: float = 0.5
    ball_radius: float = BALL_RADIUS_U
    depth_scale: float = 1.0           # stretch of the reference's depth
    contour_landmarks: bool = False    # fit the face outline too (it slides; see FaceReference)
    find_small_faces: bool = True      # photos only: look again with a Haar detector
    upright_pass: bool = True          # photos only: landmarks again on an upright crop
    upside_down: bool = True           # photos only: faces turned past ±110° too
    mirror_average: bool = False       # upright pass: average with the mirror image's reading
    skip_hidden: bool = True           # "joint": no landmarks turned away in the pitch step
    pitch_gain: float = 1.0            # multiplies the pitch read (1/slope, if one is measured)

    def __post_init__(self) -> None:
        if self.max_faces < 1:
            raise ValueError(f"max_faces must be at least 1, got {self.max_faces}")
        if not 1.0 < self.fov_deg < 150.0:
            raise ValueError(f"fov_deg must be in (1, 150), got {self.fov_deg}")
        if not self.min_distance >= 0.0:
            raise ValueError(f"min_distance must be at least 0 Loomis units, got {self.min_distance}")
        for name in ("method", "stream_method"):
            if getattr(self, name) not in METHODS:
                raise ValueError(f"{name} must be one of {METHODS}, "
                                 f"got {getattr(self, name)!r}")
        if not self.depth_weight >= 0.0:
            raise ValueError(f"depth_weight must be at least 0, got {self.depth_weight}")
        if self.max_side < 64:
            raise ValueError(f"max_side must be at least 64, got {self.max_side}")


@dataclass(frozen=True)
class FacePose:
    """One face: angles (degrees), the pose and camera to draw with, and the evidence.

    ``yaw``, ``pitch`` and ``roll`` are the head's rotation *relative to the line of
    sight* (a virtual camera aimed at the ball centre): how turned the head looks, the
    quantity head-pose datasets label, and independent of where the face sits in the
    frame and of the assumed focal length. ``head`` is the same pose in the camera frame
    of ``camera`` (its angles differ for off-centre faces by the direction of the line of
    sight); draw with ``head`` and ``camera`` together.
    """

    yaw: float
    pitch: float
    roll: float
    head: HeadPose                     # camera frame; scale 1: camera units are u
    camera: Camera                     # the camera the pose was solved through
    landmarks: np.ndarray              # (468, 2) image pixels, y down
    depth: np.ndarray                  # (468,) MediaPipe relative depth, pixels, + = nearer
    box: tuple[float, float, float, float]  # landmark bounding box x0, y0, x1, y1
    u_pixels: float                    # one Loomis unit at the ball centre, in pixels
    fit_error: float                   # RMS reprojection error of the fit, in units of u

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def center(self) -> tuple[float, float]:
        """Image position of the ball centre."""
        x, y = self.camera.project(np.asarray(self.head.position))
        return float(x), float(y)


@dataclass(frozen=True)
class PoseResult:
    """All faces of one image, largest first, and the faces too small to use."""

    faces: list[FacePose]
    too_small: list[tuple[float, float, float, float]] = field(default_factory=list)
    size: tuple[int, int] = (0, 0)

    def require(self) -> list[FacePose]:
        """The faces, or :class:`NoFaceError` explaining why there are none."""
        if self.faces:
            return self.faces
        w, h = self.size
        if self.too_small:
            x0, _, x1, _ = self.too_small[0]
            raise NoFaceError(
                f"found {len(self.too_small)} face(s) but the largest is only "
                f"{x1 - x0:.0f} px wide in this {w}x{h} image; use a higher-resolution "
                f"photo, or one where the face fills more of the frame")
        raise NoFaceError(
            f"no face found in this {w}x{h} image; use a photo where one face is clearly "
            f"visible, lit from the front, not hidden by hands or hair, and at least a "
            f"fifth of the picture wide")


@dataclass(frozen=True)
class _Mesh:
    """One face's reading, moved into the picture's pixels: the landmarks (468, 3: x, y
    down, depth + nearer) and the matrix's rotation relative to the line of sight, in the
    Loomis frame (``rel``: the head frame → a camera aimed at the face)."""

    pts: np.ndarray
    rel: np.ndarray

    @staticmethod
    def of(reading: FaceReading) -> "_Mesh":
        m = reading.matrix
        # MediaPipe's camera frame is ours (x right, y up, z backward); the translation is
        # the ray to the canonical face's origin, inside the head like the ball centre
        rel = ray_rotation(m[:3, 3]).T @ _orthonormal(m[:3, :3]) @ _LOOMIS_IN_CANONICAL
        return _Mesh(reading.points[:N_LANDMARKS].copy(), rel)

    def warped_back(self, m: np.ndarray) -> "_Mesh":
        """The reading of a crop made from the picture by the 2×3 affine ``m`` (a turn
        and a shift, y down), in the picture's pixels and orientation."""
        import cv2

        inv = cv2.invertAffineTransform(m)
        pts = np.column_stack([self.pts[:, :2] @ inv[:, :2].T + inv[:, 2], self.pts[:, 2]])
        # the crop shows the picture turned counter-clockwise by beta: turn the head back
        beta = math.atan2(-m[1, 0], m[0, 0])
        c, s = math.cos(-beta), math.sin(-beta)
        turn = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
        return _Mesh(pts, turn @ self.rel)

    def shifted(self, dx: float, dy: float) -> "_Mesh":
        return _Mesh(self.pts + np.array([dx, dy, 0.0]), self.rel)


def _orthonormal(rot: np.ndarray) -> np.ndarray:
    """The nearest rotation (the matrix carries the canonical face's scale)."""
    u, _, vt = np.linalg.svd(rot)
    return u @ np.diag([1.0, 1.0, np.linalg.det(u @ vt)]) @ vt


class PoseEstimator:
    """Landmarks + pose, with one Face Landmarker reused across calls.

    ``static_image_mode=True`` treats every call as an unrelated photo; ``False`` is for a
    video stream: the landmarker tracks faces from frame to frame (VIDEO mode, faster).
    Smoothing belongs to each stream: a :class:`loomis.smoothing.PoseTracker` per stream.

    Thread safety: calls on one estimator are serialised by the landmarker's lock, so
    sharing one between threads is safe but not parallel.
    """

    def __init__(self, config: PoseConfig = PoseConfig(), *, static_image_mode: bool = True,
                 reference: FaceReference | None = None) -> None:
        self.config = config
        self.static_image_mode = static_image_mode
        self.reference = reference if reference is not None else load_reference()
        self._marks = Landmarker(video=not static_image_mode, max_faces=config.max_faces,
                                 min_confidence=config.min_detection_confidence)
        self._ref = self.reference.head_points(config.ball_radius, config.depth_scale)
        self._rigid = self.reference.fit_indices(contour=config.contour_landmarks)
        self._normals = outward_normals(self._ref)

    # ------------------------------------------------------------------ public API
    def estimate(self, image: ImageLike) -> list[FacePose]:
        """Faces in ``image`` (path, bytes, PIL or numpy), largest first; [] if none."""
        return self.analyse(image).faces

    def analyse(self, image: ImageLike) -> PoseResult:
        """Like :meth:`estimate`, but also reports faces too small to use."""
        rgb = np.asarray(load_image(image))
        return self.analyse_array(rgb)

    def analyse_array(self, rgb: np.ndarray, timestamp_ms: float | None = None) -> PoseResult:
        """Fast path for an ``(H, W, 3)`` uint8 RGB array (a video frame): no conversion.
        In video mode ``timestamp_ms`` is the frame's time (default: now)."""
        h, w = rgb.shape[:2]
        camera = self.camera_for(w, h)
        if not self.static_image_mode:
            stamp = time.monotonic() * 1000.0 if timestamp_ms is None else float(timestamp_ms)
            meshes = self._landmarks(rgb, stamp)
            faces = [self._fit(m, camera, _box(m.pts), method=self.config.stream_method)
                     for m in meshes]
            faces = [f for f in faces if f.width >= self.config.min_face_px]
            return PoseResult(_distinct(sorted(faces, key=lambda f: -f.width)), [], (w, h))
        meshes = self._landmarks(rgb)
        small: list[tuple[float, float, float, float]] = []
        if not meshes and self.config.find_small_faces:
            meshes, small = self._landmarks_small(rgb)
        # last, as MediaPipe also finds some upright faces turned upside down, and
        # misreads them: such a face is kept only if the face detector confirms it
        turned = False
        if not meshes and self.config.upside_down and self.config.upright_pass:
            meshes = self._landmarks_turned(rgb)
            turned = bool(meshes)
        faces, used = [], []
        for mesh in meshes:
            box = _box(mesh.pts)
            if box[2] - box[0] < self.config.min_face_px:
                small.append(box)
                continue
            if self.config.upright_pass:
                # the upright crop needs only the roll and the box: a rough fit will do
                upright = self._upright_landmarks(rgb, self._fit(mesh, camera, box, rough=True),
                                                  mesh, confirm=turned)
                if upright is None and turned:
                    continue
                if upright is not None:
                    mesh = upright
            faces.append(self._fit(mesh, camera, _box(mesh.pts)))
            used.append(mesh)
        nearest = min((float(np.linalg.norm(f.head.position)) for f in faces), default=np.inf)
        if nearest < self.config.min_distance:
            # a picture this tight is a crop of a wider one: a longer lens, less perspective
            camera = Camera(w, h, camera.focal * self.config.min_distance / nearest)
            faces = [self._fit(mesh, camera, _box(mesh.pts)) for mesh in used]
        faces = _distinct(sorted(faces, key=lambda f: -f.width))
        small.sort(key=lambda b: -(b[2] - b[0]))
        return PoseResult(faces, small, (w, h))

    def camera_for(self, width: int, height: int) -> Camera:
        """The pinhole camera assumed for an image of this size (see module docstring)."""
        focal = 0.5 * max(width, height) / math.tan(math.radians(self.config.fov_deg) / 2)
        return Camera(width, height, focal)

    def face_score(self, rgb: np.ndarray) -> float:
        """The bundled face detector's best face score in an RGB array, 0 for none."""
        return self._marks.face_score(rgb)

    def close(self) -> None:
        self._marks.close()

    def __enter__(self) -> "PoseEstimator":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ landmarks
    def _landmarks(self, rgb: np.ndarray, timestamp_ms: float | None = None) -> list[_Mesh]:
        """The landmarker on a copy no larger than max_side, in full-size pixels."""
        h, w = rgb.shape[:2]
        small = rgb
        factor = max(h, w) / self.config.max_side
        if factor > 1.0:
            import cv2

            small = cv2.resize(rgb, (round(w / factor), round(h / factor)),
                               interpolation=cv2.INTER_AREA)
        stamp = None if timestamp_ms is None else int(timestamp_ms)
        out = []
        for reading in self._marks.read(small, stamp):
            mesh = _Mesh.of(reading)
            if factor > 1.0:
                mesh.pts[:, :2] *= np.array([w / small.shape[1], h / small.shape[0]])
                mesh.pts[:, 2] *= w / small.shape[1]
            out.append(mesh)
        return out

    def _landmarks_turned(self, rgb: np.ndarray) -> list[_Mesh]:
        """Landmarks of the picture turned by 180°, mapped back: MediaPipe finds no face
        in some photos of upside-down heads that it finds once they are the right way up.
        Tried only after everything else found nothing, and a face found this way is kept
        only if the face detector confirms it (``confirm`` of :meth:`_upright_landmarks`):
        MediaPipe also finds some upright turned heads in the turned picture, upside down."""
        h, w = rgb.shape[:2]
        half_turn = np.array([[-1.0, 0.0, w], [0.0, -1.0, h]])
        return [m.warped_back(half_turn) for m in self._landmarks(rgb[::-1, ::-1])]

    def _landmarks_small(self, rgb: np.ndarray):
        """Small faces: the landmarker's detector sees the whole picture at 128 px and
        misses faces narrower than about a sixth of it. OpenCV's Haar cascades (shipped in
        the wheel) find small frontal and profile faces; the landmarker then runs on a
        crop around each candidate, which brings the face up to a size it handles. Tilted
        faces, which the cascades miss, are looked for in overlapping half-size tiles.
        Returns the meshes and the boxes of candidates too small for landmarks at all."""
        import cv2

        h, w = rgb.shape[:2]
        factor = max(1.0, max(h, w) / self.config.max_side)
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        if factor > 1.0:
            gray = cv2.resize(gray, (round(w / factor), round(h / factor)),
                              interpolation=cv2.INTER_AREA)
        gray = cv2.equalizeHist(gray)
        min_px = max(12, int(0.6 * self.config.min_face_px / factor))
        boxes = []
        for name, flip in (("haarcascade_frontalface_default.xml", False),
                           ("haarcascade_profileface.xml", False),
                           ("haarcascade_profileface.xml", True)):
            img = gray[:, ::-1] if flip else gray
            found = _cascade(name).detectMultiScale(img, scaleFactor=1.1, minNeighbors=5,
                                                    minSize=(min_px, min_px))
            for x, y, bw, bh in (found if len(found) else []):
                if flip:
                    x = img.shape[1] - x - bw
                boxes.append(np.array([x, y, bw, bh], dtype=np.float64) * factor)
        boxes.sort(key=lambda b: -b[2])
        meshes: list[_Mesh] = []
        tiny: list[tuple[float, float, float, float]] = []

        def add(found: list[_Mesh]) -> None:
            for mesh in found:
                c = mesh.pts[:, :2].mean(0)
                if all(np.linalg.norm(c - m.pts[:, :2].mean(0)) > 0.3 * np.ptp(m.pts[:, 0])
                       for m in meshes):
                    meshes.append(mesh)

        for x, y, bw, bh in boxes[: 3 * self.config.max_faces]:
            cx, cy, half = x + bw / 2, y + bh / 2, 1.3 * max(bw, bh)
            x0, y0 = int(max(0, cx - half)), int(max(0, cy - half))
            x1, y1 = int(min(w, cx + half)), int(min(h, cy + half))
            crop = rgb[y0:y1, x0:x1]
            if min(crop.shape[:2]) < 8:
                continue
            found_here = self._landmarks(crop)
            if not found_here and bw < 2 * self.config.min_face_px:
                tiny.append((float(x), float(y), float(x + bw), float(y + bh)))
            add([m.shifted(x0, y0) for m in found_here])
            if len(meshes) >= self.config.max_faces:
                break
        if not meshes:      # Haar misses tilted faces: the landmarker on half-size tiles
            th, tw = h // 2, w // 2
            for y0 in (0, h // 4, h - th):
                for x0 in (0, w // 4, w - tw):
                    add([m.shifted(x0, y0) for m in self._landmarks(rgb[y0:y0 + th, x0:x0 + tw])])
        return meshes[: self.config.max_faces], (tiny if not meshes else [])

    def _upright_landmarks(self, rgb: np.ndarray, face: FacePose, mesh: _Mesh,
                           confirm: bool = False, check: bool = True) -> _Mesh | None:
        """Landmarks again, on a square crop around the face turned so the face is upright.

        The landmarker is most accurate on upright, well-framed faces: a second reading
        on a crop turned by the first reading's roll removes most of what a rolled head
        costs (``benchmarks/pose_accuracy.py``). With ``mirror_average`` the crop's mirror
        image is read too and the two are averaged. With ``confirm``, None unless the face
        detector sees a face in the crop clearly (a reading of the picture turned by 180°,
        :meth:`_landmarks_turned`). ``check`` is the quarter-turn check
        (:meth:`_quarter_turns`); when it turns the crop, the face read there gives a new
        upright crop, read once more."""
        import cv2

        x0, y0, x1, y1 = face.box
        cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
        side = int(2.2 * max(x1 - x0, y1 - y0))
        if side < 16:
            return None
        m = cv2.getRotationMatrix2D((cx, cy), -face.roll, 1.0)
        m[:, 2] += (side / 2.0 - cx, side / 2.0 - cy)
        crop = cv2.warpAffine(rgb, m, (side, side), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)
        turns = self._quarter_turns(crop) if check and self.config.upside_down else 0
        if turns is None and confirm:
            return None
        if turns:
            turned = self._central_mesh(np.rot90(crop, turns))
            if turned is None:
                return None
            # np.rot90 once takes the crop's point (x, y) to (y, side - x), in the continuous
            # pixel coordinates of the landmarks (as the mirror below)
            quarter = np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, side], [0.0, 0.0, 1.0]])
            m = (np.linalg.matrix_power(quarter, turns) @ np.vstack([m, [0.0, 0.0, 1.0]]))[:2]
            found = turned.warped_back(m)
            return self._upright_landmarks(
                rgb, self._fit(found, face.camera, _box(found.pts), rough=True), found,
                check=False)
        found = self._central_mesh(crop)
        if found is None:
            return None
        if self.config.mirror_average:
            mirrored = self._central_mesh(crop[:, ::-1])   # _landmarks makes it contiguous
            if mirrored is not None:
                pts = mirrored.pts.copy()
                pts[:, 0] = side - pts[:, 0]
                flip = np.diag([-1.0, 1.0, 1.0])
                # landmark i of the mirror image is landmark pair[i] of the photo
                found = _Mesh(0.5 * (found.pts + pts[self.reference.pair]),
                              _orthonormal(found.rel + flip @ mirrored.rel @ flip))
        return found.warped_back(m)

    def _quarter_turns(self, crop: np.ndarray) -> int | None:
        """How many quarter turns (``np.rot90``) bring the face in an "upright" crop the
        right way up: 0 unless the first reading was wrong, None if no turn of the crop
        scores as a face clearly (the caller keeps the crop as it is, or drops it).

        On a face turned past about ±110° the landmarker can come back with an upright
        face, misread, and nothing in the mesh or the fit tells. The bundled face detector
        tells, roughly: it scores most faces the right way up 0.75-0.95, and a crop made
        from a wrong reading lower. So when it scores the crop below FACE_SCORE_UPRIGHT,
        the crop's three other quarter turns are scored too, and the best one is taken if
        it wins by more than QUARTER_TURN_MARGIN. Costs one detector call per photo, four
        when the first scores low."""
        import cv2

        small = cv2.resize(crop, (128, 128), interpolation=cv2.INTER_AREA)
        scores = [self.face_score(small)]
        if scores[0] >= FACE_SCORE_UPRIGHT:
            return 0
        scores += [self.face_score(np.rot90(small, k)) for k in (1, 2, 3)]
        best = int(np.argmax(scores))
        return best if scores[best] - scores[0] > QUARTER_TURN_MARGIN else None

    def _central_mesh(self, crop: np.ndarray) -> _Mesh | None:
        """The reading of the face nearest the centre of a crop made around it."""
        meshes = self._landmarks(crop)
        if not meshes:
            return None
        centre = np.array(crop.shape[1::-1]) / 2.0
        return min(meshes, key=lambda m: np.linalg.norm(m.pts[:, :2].mean(0) - centre))

    # ------------------------------------------------------------------ the fit
    def _fit(self, mesh: _Mesh, camera: Camera, box, rough: bool = False,
             method: str | None = None) -> FacePose:
        """The pose from one face's reading, by ``method`` (default: the config's).
        ``rough`` (all the upright crop needs: the roll and the box) skips the
        refinements: the matrix as read, or PnP's fit."""
        pts = mesh.pts
        method = method or self.config.method
        rot, pos = _fit_weak(pts, self._ref, self._rigid, camera)
        if method.startswith("matrix"):
            for _ in range(2):           # the line of sight follows the position
                rot = ray_rotation(pos) @ mesh.rel
                placed = _fit_position(pts[:, :2], self._ref, self._rigid, camera, rot)
                if placed[2] < 0:        # in front of the camera (else keep the weak fit's)
                    pos = placed
            if method == "matrix_joint" and not rough:
                rot, pos = _fit_joint(pts, self._ref, self._facing(rot, pos), camera, rot,
                                      pos, self.config.depth_weight)
        else:
            if method in ("joint", "pnp"):
                rot, pos = _fit_pnp(pts[:, :2], self._ref, self._rigid, camera, rot, pos)
            if method == "joint" and not rough:
                idx = self._facing(rot, pos) if self.config.skip_hidden else self._rigid
                rot, pos = _fit_joint(pts, self._ref, idx, camera, rot, pos,
                                      self.config.depth_weight)
        # the reported angles are relative to the line of sight (see FacePose)
        ray = ray_rotation(pos)
        yaw, pitch, roll = angles_from_matrix(ray.T @ rot)
        if self.config.pitch_gain != 1.0:
            pitch = float(np.clip(pitch * self.config.pitch_gain, -89.0, 89.0))
            rot = ray @ rotation_matrix(yaw, pitch, roll)
        return _face_pose(yaw, pitch, roll, rot, pos, camera, pts, box,
                          self._ref, self._rigid)

    def _facing(self, rot: np.ndarray, pos: np.ndarray) -> np.ndarray:
        """The fit's landmarks whose reference surface faces the camera at this pose.

        Where the face turns away, the landmarker cannot see the skin and draws its
        landmarks from what it has learnt faces look like; our reference is MediaPipe's own
        reading of a face, so those guesses agree with it, and with nobody else's face.
        Keeps them all if fewer than 40 would be left."""
        idx = self._rigid
        q = self._ref[idx] @ rot.T + pos
        towards_camera = -q / np.linalg.norm(q, axis=1, keepdims=True)
        facing = np.einsum("ij,ij->i", self._normals[idx] @ rot.T, towards_camera) > 0.0
        return idx[facing] if facing.sum() >= 40 else idx


def _face_pose(yaw: float, pitch: float, roll: float, rot: np.ndarray, pos: np.ndarray,
               camera: Camera, pts: np.ndarray, box, ref: np.ndarray,
               rigid: np.ndarray) -> FacePose:
    """A FacePose from a solved rotation and position, with its reprojection error."""
    head = HeadPose(*angles_from_matrix(rot), scale=1.0, position=tuple(map(float, pos)))
    proj = camera.project(head.to_camera(ref[rigid]))
    u_px = camera.focal / -pos[2]
    err = float(np.sqrt(((proj - pts[rigid, :2]) ** 2).sum(1).mean()) / u_px)
    return FacePose(yaw, pitch, roll, head, camera, landmarks=pts[:, :2].copy(),
                    depth=pts[:, 2].copy(), box=box, u_pixels=float(u_px), fit_error=err)


def _fit_position(pts2d: np.ndarray, ref: np.ndarray, idx: np.ndarray, camera: Camera,
                  rot: np.ndarray) -> np.ndarray:
    """The ball centre that best projects the rotated reference onto the landmarks, the
    rotation held: linear least squares (each projection equation times the depth)."""
    a = ref[idx] @ rot.T
    f = camera.focal
    cx, cy = camera.principal_point
    dx, dy = pts2d[idx, 0] - cx, pts2d[idx, 1] - cy
    n = len(idx)
    # x: dx·(−(a_z + p_z)) = f·(a_x + p_x);  y (down): dy·(−(a_z + p_z)) = −f·(a_y + p_y)
    lhs = np.zeros((2 * n, 3))
    lhs[:n, 0] = f
    lhs[:n, 2] = dx
    lhs[n:, 1] = -f
    lhs[n:, 2] = dy
    rhs = np.concatenate([-dx * a[:, 2] - f * a[:, 0], -dy * a[:, 2] + f * a[:, 1]])
    return np.linalg.lstsq(lhs, rhs, rcond=None)[0]


@functools.lru_cache(maxsize=4)
def _cascade_cached(name: str, thread: int):
    import cv2

    path = Path(cv2.data.haarcascades) / name
    cascade = cv2.CascadeClassifier(str(path))
    if cascade.empty():
        raise RuntimeError(f"OpenCV's {path} is missing; reinstall opencv-contrib-python")
    return cascade


def _cascade(name: str):
    """One loaded cascade per thread (a CascadeClassifier is not safe to share)."""
    return _cascade_cached(name, threading.get_ident())


def _distinct(faces: list[FacePose], overlap: float = 0.5) -> list[FacePose]:
    """``faces`` (largest first) without those lying mostly (``overlap`` of their box)
    inside a larger one: MediaPipe sometimes finds one face twice, the second mesh
    smaller and inside the first."""
    kept: list[FacePose] = []
    for face in faces:
        x0, y0, x1, y1 = face.box
        area = max(x1 - x0, 1e-9) * max(y1 - y0, 1e-9)
        if all(max(0.0, min(x1, k.box[2]) - max(x0, k.box[0]))
               * max(0.0, min(y1, k.box[3]) - max(y0, k.box[1])) < overlap * area
               for k in kept):
            kept.append(face)
    return kept


def _box(pts: np.ndarray) -> tuple[float, float, float, float]:
    return (float(pts[:, 0].min()), float(pts[:, 1].min()),
            float(pts[:, 0].max()), float(pts[:, 1].max()))


def _fit_weak(pts: np.ndarray, ref: np.ndarray, idx: np.ndarray, camera: Camera):
    """Weak-perspective fit of MediaPipe's 3D landmarks (similarity Procrustes), turned
    from the line of sight through the landmarks' centre into the camera frame.

    MediaPipe reads a face the way a camera aimed at it would: its depth axis is the line
    of sight to the face, not to the ball centre behind it; taking the ball-centre ray reads
    pitch low at wide fields of view."""
    from loomis.face_reference import _similarity

    src = ref[idx]
    dst = np.column_stack([pts[idx, 0], -pts[idx, 1], pts[idx, 2]])  # y up, z nearer
    s, rot_view, t = _similarity(src, dst)
    cx, cy = camera.principal_point

    def ray_through(x: float, y_up: float) -> np.ndarray:
        return np.array([(x - cx) / camera.focal, (y_up + cy) / camera.focal, -1.0])

    centre = dst.mean(0)                      # the landmarks' centre in the image
    rot = ray_rotation(ray_through(centre[0], centre[1])) @ rot_view
    # the ball centre: its image position and its depth for s pixels per unit
    pos = ray_through(t[0], t[1]) * camera.focal / s
    return rot, pos


def _fit_pnp(pts2d, ref, idx, camera: Camera, rot0, pos0):
    """Perspective-n-point, Levenberg-Marquardt from the weak-perspective start."""
    import cv2

    cx, cy = camera.principal_point
    k = np.array([[camera.focal, 0, cx], [0, camera.focal, cy], [0, 0, 1]], dtype=np.float64)
    rvec, _ = cv2.Rodrigues(_CV_TO_OURS @ rot0)
    tvec = (_CV_TO_OURS @ pos0).reshape(3, 1)
    # from the weak-perspective start five steps settle it (OpenCV's default is twenty)
    rvec, tvec = cv2.solvePnPRefineLM(ref[idx].astype(np.float64),
                                      pts2d[idx].astype(np.float64), k, None, rvec, tvec,
                                      (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_COUNT, 5, 1e-6))
    rot = _CV_TO_OURS @ cv2.Rodrigues(rvec)[0]
    pos = _CV_TO_OURS @ tvec.ravel()
    if pos[2] >= 0:      # a degenerate solution behind the camera: keep the weak one
        return rot0, pos0
    return rot, pos


def _fit_joint(pts: np.ndarray, ref: np.ndarray, idx: np.ndarray, camera: Camera,
               rot0: np.ndarray, pos0: np.ndarray, depth_weight: float,
               pitch_only: bool = True, iterations: int = 30):
    """Least squares on the 2D landmarks *and* MediaPipe's relative depth together.

    Why: MediaPipe's 2D landmarks move less than the face when it nods (a 2D fit
    under-reads pitch), while its depth column, which says how far forward the brow, nose
    and chin are, keeps most of the pitch. For yaw it is the other way round: the depth
    under-turns it. So by default
    (``pitch_only``) only the pitch and the position move from the PnP solution: the
    rotation turns about the head's pitch axis relative to the line of sight.

    Residuals per landmark: the reprojection error in x and y (pixels), and
    ``depth_weight`` times the difference between MediaPipe's depth and the reference's
    depth at the face's scale (``focal / distance`` pixels per unit; both centred, so only
    the shape counts). MediaPipe's depth is on the scale of x, so weight 1 counts it as
    one more image coordinate. Depth is measured along the line of sight to the
    landmarks' centre, which is how MediaPipe sees a face (its crop is centred on it):
    along the ray to the ball centre instead, pitch reads low (see :func:`_fit_weak`). Levenberg-Marquardt on a rotation
    increment (left-multiplied) and the position, with the analytic Jacobian."""
    import cv2

    p_ref = ref[idx]
    obs = pts[idx]
    obs_z = obs[:, 2] - obs[:, 2].mean()
    f = camera.focal
    n = len(idx)

    def residuals(rot, pos):
        a = p_ref @ rot.T                      # rotated, about the ball centre
        q = a + pos
        d = -q[:, 2]
        centre = q.mean(0)                     # the landmarks' centre, camera frame
        dist = float(np.linalg.norm(centre))
        toward = -centre / dist                # from the face towards the camera
        s = f / -centre[2]                     # pixels per unit at the face
        rel = a - a.mean(0)
        along = rel @ toward
        r = np.empty(3 * n)
        r[:2 * n] = (camera.project(q) - obs[:, :2]).T.ravel()   # the drawing's projection
        r[2 * n:] = depth_weight * (s * along - obs_z)
        return r, (a, q, d, s, toward, rel, along, dist)

    def jacobian(a, q, d, s, toward, rel, along, dist):
        jac = np.empty((3 * n, 6))
        du_dq = np.stack([f / d, np.zeros(n), f * q[:, 0] / d ** 2], axis=1)
        dv_dq = np.stack([np.zeros(n), -f / d, -f * q[:, 1] / d ** 2], axis=1)
        # a rotation increment omega moves a by omega x a, so for any gradient g of a
        # residual with respect to a point, g . (omega x a) = omega . (a x g)
        jac[:n, :3] = cross(a, du_dq)
        jac[n:2 * n, :3] = cross(a, dv_dq)
        jac[:n, 3:] = du_dq
        jac[n:2 * n, 3:] = dv_dq
        # depth: the landmarks turn about their centre b = mean(a), and the line of
        # sight follows the centre, which moves by -[b]x omega + d pos
        b = a.mean(0)
        g = -(rel - np.outer(along, toward)) / dist        # d along / d centre
        d_along_dw = cross(rel, toward) + cross(b, g)
        ds_dcentre = np.array([0.0, 0.0, s * s / f])
        ds_dw = np.array([b[1], -b[0], 0.0]) * (s * s / f)  # via centre_z
        jac[2 * n:, :3] = depth_weight * (s * d_along_dw + np.outer(along, ds_dw))
        jac[2 * n:, 3:] = depth_weight * (s * g + np.outer(along, ds_dcentre))
        return jac

    def pitch_axis(rot, pos):
        """The axis a change of pitch alone turns the head about (camera frame)."""
        ray = ray_rotation(pos)
        roll = angles_from_matrix(ray.T @ rot)[2]
        return ray @ rotation_matrix(0.0, 0.0, roll)[:, 0]

    rot, pos = rot0.copy(), np.asarray(pos0, dtype=np.float64).copy()
    r, state = residuals(rot, pos)
    cost = float(r @ r)
    damping = 1e-3
    for _ in range(iterations):
        jac = jacobian(*state)
        if pitch_only:           # rotation increments about the pitch axis only
            axis = pitch_axis(rot, pos)
            jac = np.column_stack([jac[:, :3] @ axis, jac[:, 3:]])
        jtj, jtr = jac.T @ jac, jac.T @ r
        step = np.linalg.solve(jtj + damping * np.diag(np.diag(jtj) + 1e-12), -jtr)
        turn = axis * step[0] if pitch_only else step[:3]
        new_rot = cv2.Rodrigues(turn)[0] @ rot
        new_pos = pos + step[-3:]
        if new_pos[2] >= 0:                  # would put the head behind the camera
            damping *= 10.0
            continue
        new_r, new_state = residuals(new_rot, new_pos)
        new_cost = float(new_r @ new_r)
        if new_cost < cost:
            converged = cost - new_cost < 1e-6 * cost
            rot, pos, r, state, cost = new_rot, new_pos, new_r, new_state, new_cost
            damping = max(damping / 10.0, 1e-9)
            if converged:
                break
        else:
            damping *= 10.0
            if damping > 1e8:
                break
    return rot, pos


def estimate_poses(image: ImageLike, config: PoseConfig = PoseConfig()) -> list[FacePose]:
    """Poses of all faces in one photo, largest first (``[]`` when there is none).

    Builds a :class:`PoseEstimator` per call (about 30 ms); keep one estimator for many
    images or for video.
    """
    with PoseEstimator(config) as est:
        return est.estimate(image)
