"""Head pose from photos: MediaPipe landmarks fitted to the project's own 3D face reference.

For every face the result holds yaw, pitch and roll in the convention of
:mod:`loomis.camera`, a :class:`~loomis.camera.HeadPose` (ball centre and unit ``u``) and
the :class:`~loomis.camera.Camera` it was estimated through, so that drawing the Loomis
construction with ``construction_lines(face.head, face.camera)`` puts it on the face in
the photo, off-centre faces included (the perspective note of loomis-geometry.md).

How the fit works, and why:

* **Landmarks** come from MediaPipe 0.10.21's legacy face mesh (offline, model in the
  wheel): 468 points with image positions and a relative depth.
* **Reference** is :mod:`loomis.face_reference`, measured and symmetrised by this project;
  its frame is the Loomis head frame, so the fitted pose *is* the construction's pose.
* **Camera.** A photo's focal length is unknown; we assume a field of view of ``fov_deg``
  (55° across the longer side, a normal lens or a phone's main camera cropped to a
  portrait) with the principal point at the image centre. The pose is solved and the
  construction drawn through that same camera, so the two stay consistent even where the
  guess is off; a wrong guess mostly changes the estimated distance, little the angles.
  A picture so tight that this lens would put a face nearer than ``min_distance`` is taken
  for a crop of a wider one: the focal length grows until the face is that far, so a
  face cropped to its chin is not drawn with a close-up's perspective.
* **Fit** (``method``): ``"joint"`` (default) starts from ``"pnp"``, perspective-n-point
  on the 2D landmarks of the skull-fixed part of the face (cv2.solvePnP,
  Levenberg-Marquardt from a weak-perspective start), and then settles the pitch on the
  2D landmarks *and* MediaPipe's relative depth of the same landmarks together
  (``depth_weight`` 1: depth counts like one more image coordinate; see
  :func:`_fit_joint`). ``"procrustes"`` aligns MediaPipe's 3D landmarks to the reference
  (similarity Umeyama) and turns the result by the line of sight to the face.
  ``benchmarks/pose_accuracy.py`` measures all three.

What was measured, and decided (``benchmarks/pose_accuracy.py``; real labelled photos
are the only test that settles it):

* **Depth of the reference** (``depth_scale``) stays 1: MediaPipe's ``z`` as measured.
  Without using any labels, the landmarks are explained best by a rigid reference (lowest
  reprojection error) at scale 1.0-1.1 on the re-rendered astronaut and 0.9-1.0 on the
  procedural heads, and the procedural heads (a geometry made independently of
  MediaPipe) read yaw with slope 1.03 at 1.0. Shrinking depth to 0.7 would undo the
  re-render's yaw squeeze but over-turn the procedural heads by 15%.
* **Squeezed angles come from the 2D landmarks, not the fit**: on the re-rendered
  astronaut the fit to the *true* projected landmarks is exact, and MediaPipe's landmark
  errors are proportional to each landmark's depth, i.e. the network draws a slightly
  less turned face; they are largest on the face outline, which is therefore left out of
  the fit. Yaw slope is 0.8 on the bare face mask, 0.83 with a head around it, 0.94 on
  the scanned face and ~1.0 on the procedural heads. Pitch from the 2D landmarks alone
  (``"pnp"``) has slope 0.62-0.75 on all of them, barely moving with image size
  (320-1024 px), landmark subset, focal length or depth scale. MediaPipe's depth keeps
  more of it: the joint fit reads pitch with slope 0.78-0.95 and an MAE 1.7-2.4° lower
  than PnP's on the six rendered sets; on centred faces through 5-70° lenses the two
  MAEs are close (1.9-2.0 against 2.0-2.2), but PnP reads pitch 1.6-1.9° low on average
  and the joint fit within 1.4°. Yaw and roll are unchanged (they are PnP's). Those are
  the attention mesh's figures with ``skip_hidden``; the plain mesh's were 0.6-0.7,
  0.73-0.86 and 1.6-2.0° on four sets. Depth is taken along the ray to the face: along
  the ray to the ball centre the depth-only fit read pitch 0.5-6.3° low through 5-70°
  lenses (now 0.6° at most), and on the real astronaut photo the 2D and depth-only fits
  were 4.6° apart; now they agree within 1.2° for assumed fields of view up to 55°.
  ``pitch_gain`` (1/slope) stays off until labelled real photos confirm a factor, and
  so does a larger ``depth_weight`` (3 and 4 read pitch better still on the renders and
  the scan, but over-read it through the lenses: slope 1.10-1.17).
* **Zero pitch** is the brow point to soft-tissue chin line vertical (see
  :mod:`loomis.face_reference`), which is within about 2° of "Frankfurt plane
  horizontal", the "looking straight ahead" of head-pose datasets (the soft-tissue
  facial angle averages about 90-92° with a spread of ±5-7° between people). The Loomis
  construction itself sets the chin 0.18-0.32 u behind the brow (5-9° of pitch): the
  procedural heads read about 6° "down" for that reason alone, which the benchmark
  reports separately.
* **Landmarks turned away** (``skip_hidden``) are left out of the joint fit's pitch
  step: those whose reference surface faces away from the camera at PnP's pose. There
  MediaPipe cannot see the skin and draws what it has learnt faces look like, which our
  reference (MediaPipe's own reading of a face) agrees with, and other faces do not. On
  every face independent of the reference, pitch MAE falls: the scan 4.19 → 3.86 (its
  30-60° half 4.87 → 4.25), the scan over a head 3.48 → 3.23, the procedural heads
  4.51 → 4.28, the training scenes 4.68 → 4.49. The faces with the reference's geometry
  read the same or a little worse: the re-rendered astronaut 2.34 → 2.45, the lens sets
  0.2-0.3° (slope 1.06-1.08 → 1.09-1.11). Yaw and roll move by 0.04° at most.
* **Landmark model** (``refine_landmarks``) is MediaPipe's attention mesh, for 1-2 ms
  more than the plain mesh. It was left off while every test face had either the
  reference's geometry or the procedural heads' (summed MAE 3% lower, no clear winner).
  Gradio's 3D scan of a real person (``--scan``) is the first face independent of both,
  in geometry and in skin, and there it is better on every axis: MAE yaw / pitch / roll
  2.9 / 5.0 / 1.9 → 2.0 / 4.2 / 1.5 bare, 2.6 / 4.2 / 1.6 → 2.1 / 3.5 / 1.5 over a
  procedural head (200 poses each, before ``skip_hidden``). It also reads the
  procedural heads' yaw 0.3-0.7° better and the astronaut face's pitch up to 1.3°
  better. What it costs: pitch through the ``--lens`` set is over-read (slope
  1.06-1.08, 0.3-0.6° worse), and on the two real photos at hand (the astronaut,
  matplotlib's Grace Hopper) roll follows an in-plane turn less closely (0.34-0.52° off
  on average, against 0.16-0.17°), while mirrored yaw sums to −0.4 and 1.4° instead of
  −2.8 and 0.5°.
* **Mirror averaging** (``mirror_average``, photos only) stays off. MediaPipe is not
  mirror-symmetric: mirroring the astronaut photo moves its yaw by 2.8° more than a sign
  flip with the plain mesh (0.4° with the attention mesh, which is 1.4° off on Grace
  Hopper). Averaging the upright pass's landmarks with those of its mirror image
  (re-indexed through the reference's left/right pairs) makes yaw and roll flip exactly
  (sums within 0.1° on both real photos) and, measured with the plain mesh, lowers the
  summed MAE over the benchmark's eight rendered sets by 5% (roll 0.03-0.24° better on
  every set, yaw on seven of eight; pitch up to 0.5° better on four and 0.01-0.23° worse
  on the others), for one more MediaPipe pass: 6 ms, a single 640×480 photo drawn in 30
  instead of 24 ms. Real photos decide whether that is worth it.
* **Focal length**: solving with 30°, 50°, 55° or 75° instead of the renders' true field
  of view moves the mean errors by 1-2°, with no single value best on every set; the
  angles are relative to the line of sight, so the guess matters little.

* **Upside-down faces** (``upside_down``, photos only). MediaPipe reads faces within
  about ±110° of upright. Beyond that it finds none, or worse, reads the face as an
  upright one: the astronaut turned by 180° reads roll −5°, pitch −22°. The upright
  pass's crop is given quarter turns when MediaPipe's face detector scores one clearly
  higher than the crop (:meth:`PoseEstimator._quarter_turns`), and a picture where
  nothing else found a face is read again turned by 180° (:meth:`_landmarks_turned`).
  On the two real photos turned by 0-340° in 20° steps, 23 of 36 turns read within 2°
  before and 35 now (the astronaut turned by 240°, found only in a tile of the picture,
  reads 8° off). On 730 renders of seven sets turned by 180°, wrong rolls (off by more
  than 20°) went from 675 to 96 and missed faces from 54 to 12; upright, the same
  renders read exactly as before. It costs one detector call per photo: a 640×480
  photo's pose takes 19.8 instead of 17.3 ms.

Bad input is rejected at the boundary by :func:`loomis.imageio.load_image`; images larger
than ``max_side`` are downscaled for detection only (landmarks are scaled back).
"""
from __future__ import annotations

import functools
import math
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

from loomis.camera import Camera, HeadPose, angles_from_matrix, cross, rotation_matrix
from loomis.face_reference import N_LANDMARKS, FaceReference, load_reference, outward_normals
from loomis.imageio import ImageLike, load_image

__all__ = ["PoseConfig", "FacePose", "PoseResult", "PoseEstimator", "NoFaceError",
           "estimate_poses", "BALL_RADIUS_U"]

#: Loomis ball radius in units of u (loomis-geometry.md: R ≈ 1.4u). The construction in
#: loomis.head uses its own LoomisProportions; pass its ``ball_radius`` to PoseConfig if
#: it differs, so the fitted ball centre is the one that gets drawn.
BALL_RADIUS_U = 1.4

#: A crop made upright by the first reading that MediaPipe's face detector scores below
#: this is checked in its other three quarter turns, and turned to the best one if that
#: scores more than QUARTER_TURN_MARGIN higher (see PoseEstimator._quarter_turns).
FACE_SCORE_UPRIGHT = 0.75
QUARTER_TURN_MARGIN = 0.15

# OpenCV's camera frame (x right, y down, z forward) → ours (x right, y up, z backward)
_CV_TO_OURS = np.diag([1.0, -1.0, -1.0])


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
    method: Literal["joint", "pnp", "procrustes"] = "joint"
    depth_weight: float = 1.0          # "joint": MediaPipe's depth against the 2D landmarks
    min_face_px: int = 32              # narrower faces are reported as too small
    max_side: int = 1280               # detection runs on images at most this large
    min_detection_confidence: float = 0.5
    refine_landmarks: bool = True      # MediaPipe's attention mesh (see module doc)
    ball_radius: float = BALL_RADIUS_U
    depth_scale: float = 1.0           # stretch of the reference's depth (see module doc)
    contour_landmarks: bool = False    # fit the face outline too (it slides; see FaceReference)
    find_small_faces: bool = True      # photos only: look again with a Haar detector
    upright_pass: bool = True          # photos only: landmarks again on an upright crop
    upside_down: bool = True           # photos only: faces turned past ±110° too
    mirror_average: bool = False       # upright pass: average with its mirror (module doc)
    skip_hidden: bool = True           # "joint": no landmarks turned away in the pitch step
    # MediaPipe's landmarks move less than the face when it pitches: on renders at known
    # poses the fitted pitch is ~0.8-0.9x the true one with "joint", ~0.6x with "pnp"
    # (benchmarks/pose_accuracy.py reports the slope). Left at 1 until labelled real
    # photos confirm a factor; 1/slope fixes it.
    pitch_gain: float = 1.0

    def __post_init__(self) -> None:
        if self.max_faces < 1:
            raise ValueError(f"max_faces must be at least 1, got {self.max_faces}")
        if not 1.0 < self.fov_deg < 150.0:
            raise ValueError(f"fov_deg must be in (1, 150), got {self.fov_deg}")
        if not self.min_distance >= 0.0:
            raise ValueError(f"min_distance must be at least 0 Loomis units, got {self.min_distance}")
        if self.method not in ("joint", "pnp", "procrustes"):
            raise ValueError("method must be 'joint', 'pnp' or 'procrustes', "
                             f"got {self.method!r}")
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


class PoseEstimator:
    """Landmarks + pose fit, with one MediaPipe FaceMesh reused across calls.

    ``static_image_mode=True`` treats every call as an unrelated photo (detection each
    time); ``False`` is for a video stream: MediaPipe tracks the face from frame to frame,
    which is several times faster, so use one estimator per stream.

    Thread safety: MediaPipe graphs are not re-entrant; calls on one estimator are
    serialised by a lock, so sharing one between threads is safe but not parallel. Use
    one estimator per thread (or per stream) for throughput.
    """

    def __init__(self, config: PoseConfig = PoseConfig(), *, static_image_mode: bool = True,
                 reference: FaceReference | None = None) -> None:
        import mediapipe as mp

        self.config = config
        self.static_image_mode = static_image_mode
        self.reference = reference if reference is not None else load_reference()
        self._mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=static_image_mode, max_num_faces=config.max_faces,
            refine_landmarks=config.refine_landmarks,
            min_detection_confidence=config.min_detection_confidence,
            min_tracking_confidence=0.5)
        self._detector = None              # MediaPipe's face detector, made on first use
        self._lock = threading.Lock()
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

    def analyse_array(self, rgb: np.ndarray) -> PoseResult:
        """Fast path for an ``(H, W, 3)`` uint8 RGB array (a video frame): no conversion."""
        h, w = rgb.shape[:2]
        camera = self.camera_for(w, h)
        meshes = self._landmarks(rgb)
        small: list[tuple[float, float, float, float]] = []
        if not meshes and self.static_image_mode and self.config.find_small_faces:
            meshes, small = self._landmarks_small(rgb)
        # last, as MediaPipe also finds some upright faces turned upside down, and
        # misreads them: such a face is kept only if the face detector confirms it
        turned = False
        if (not meshes and self.static_image_mode and self.config.upside_down
                and self.config.upright_pass):
            meshes = self._landmarks_turned(rgb)
            turned = bool(meshes)
        faces, used = [], []
        for pts in meshes:
            box = _box(pts)
            if box[2] - box[0] < self.config.min_face_px:
                small.append(box)
                continue
            if self.static_image_mode and self.config.upright_pass:
                # the upright crop needs only the roll and the box: PnP's will do
                upright = self._upright_landmarks(rgb, self._fit(pts, camera, box, rough=True),
                                                  confirm=turned)
                if upright is None and turned:
                    continue
                if upright is not None:
                    pts = upright
            faces.append(self._fit(pts, camera, _box(pts)))
            used.append(pts)
        nearest = min((float(np.linalg.norm(f.head.position)) for f in faces), default=np.inf)
        if nearest < self.config.min_distance:
            # a picture this tight is a crop of a wider one: a longer lens, less perspective
            camera = Camera(w, h, camera.focal * self.config.min_distance / nearest)
            faces = [self._fit(pts, camera, _box(pts)) for pts in used]
        faces = _distinct(sorted(faces, key=lambda f: -f.width))
        small.sort(key=lambda b: -(b[2] - b[0]))
        return PoseResult(faces, small, (w, h))

    def camera_for(self, width: int, height: int) -> Camera:
        """The pinhole camera assumed for an image of this size (see module docstring)."""
        focal = 0.5 * max(width, height) / math.tan(math.radians(self.config.fov_deg) / 2)
        return Camera(width, height, focal)

    def close(self) -> None:
        with self._lock:
            self._mesh.close()
            if self._detector is not None:
                self._detector.close()

    def __enter__(self) -> "PoseEstimator":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ landmarks
    def _landmarks(self, rgb: np.ndarray) -> list[np.ndarray]:
        """MediaPipe on a copy no larger than max_side: (468, 3) per face, in full-size
        pixels, columns x, y (down) and depth (towards the camera, pixels)."""
        h, w = rgb.shape[:2]
        small = rgb
        factor = max(h, w) / self.config.max_side
        if factor > 1.0:
            import cv2

            small = cv2.resize(rgb, (round(w / factor), round(h / factor)),
                               interpolation=cv2.INTER_AREA)
        with self._lock:
            res = self._mesh.process(np.ascontiguousarray(small))
        out = []
        for lms in res.multi_face_landmarks or []:
            a = np.array([(p.x, p.y, p.z) for p in lms.landmark[:N_LANDMARKS]])
            a *= np.array([w, h, -w])        # normalised → full-size pixels
            out.append(a)
        return out

    def _landmarks_turned(self, rgb: np.ndarray) -> list[np.ndarray]:
        """Landmarks of the picture turned by 180°, mapped back: MediaPipe finds no face
        in some photos of upside-down heads (the astronaut turned by 130° or 170°) that
        it finds once they are the right way up. Tried only after everything else found
        nothing, and a face found this way is kept only if the face detector confirms it
        (``confirm`` of :meth:`_upright_landmarks`): on a few renders of upright heads at
        45-60° of yaw, where MediaPipe misses the face, it finds it in the turned picture
        and reads it upside down."""
        h, w = rgb.shape[:2]
        meshes = self._landmarks(rgb[::-1, ::-1])       # _landmarks makes it contiguous
        for pts in meshes:
            pts[:, 0] = w - pts[:, 0]
            pts[:, 1] = h - pts[:, 1]
        return meshes

    def _landmarks_small(self, rgb: np.ndarray):
        """Small faces: MediaPipe's detector sees the whole picture at 128 px and misses
        faces narrower than about a sixth of it. OpenCV's Haar cascades (shipped in the
        wheel) find small frontal and profile faces; MediaPipe then runs on a crop around
        each candidate, which brings the face up to a size it handles. Tilted faces, which
        the cascades miss, are looked for in overlapping half-size tiles. Returns the
        meshes and the boxes of candidates too small for landmarks at all."""
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
        meshes: list[np.ndarray] = []
        tiny: list[tuple[float, float, float, float]] = []
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
            for pts in found_here:
                pts = pts + np.array([x0, y0, 0.0])
                c = pts[:, :2].mean(0)
                if all(np.linalg.norm(c - m[:, :2].mean(0)) > 0.3 * np.ptp(m[:, 0])
                       for m in meshes):
                    meshes.append(pts)
            if len(meshes) >= self.config.max_faces:
                break
        if not meshes:      # Haar misses tilted faces: MediaPipe on half-size tiles
            th, tw = h // 2, w // 2
            for y0 in (0, h // 4, h - th):
                for x0 in (0, w // 4, w - tw):
                    for pts in self._landmarks(rgb[y0:y0 + th, x0:x0 + tw]):
                        pts = pts + np.array([x0, y0, 0.0])
                        c = pts[:, :2].mean(0)
                        if all(np.linalg.norm(c - m[:, :2].mean(0)) > 0.3 * np.ptp(m[:, 0])
                               for m in meshes):
                            meshes.append(pts)
        return meshes[: self.config.max_faces], (tiny if not meshes else [])

    def _upright_landmarks(self, rgb: np.ndarray, face: FacePose, confirm: bool = False,
                           check: bool = True) -> np.ndarray | None:
        """Landmarks again, on a square crop around the face turned so the face is upright.

        MediaPipe is most accurate on upright, well-framed faces; on a head rolled by 40°
        its landmarks drift enough to misread roll by ~9° and yaw/pitch by a few degrees.
        A second pass on a crop rotated by the first estimate's roll removes most of it
        (measured in benchmarks/pose_accuracy.py). Photos only: video tracking already
        follows the face's rotation. With ``mirror_average`` the crop's mirror image is
        read too and the two are averaged (see the module docstring). With ``confirm``,
        None unless the face detector sees a face in the crop clearly (a reading of the
        picture turned by 180°, :meth:`_landmarks_turned`). ``check`` is the quarter-turn
        check (:meth:`_quarter_turns`); when it turns the crop, the face read there gives
        a new upright crop, read once more (MediaPipe reads best near upright)."""
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
            # pixel coordinates of MediaPipe's landmarks (as the mirror below)
            quarter = np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, side], [0.0, 0.0, 1.0]])
            m = (np.linalg.matrix_power(quarter, turns) @ np.vstack([m, [0.0, 0.0, 1.0]]))[:2]
            found = _unwarp(turned, m)
            return self._upright_landmarks(
                rgb, self._fit(found, face.camera, _box(found), rough=True), check=False)
        pts = self._central_mesh(crop)
        if pts is None:
            return None
        if self.config.mirror_average:
            mirrored = self._central_mesh(crop[:, ::-1])   # _landmarks makes it contiguous
            if mirrored is not None:
                mirrored[:, 0] = side - mirrored[:, 0]
                # landmark i of the mirror image is landmark pair[i] of the photo
                pts = 0.5 * (pts + mirrored[self.reference.pair])
        return _unwarp(pts, m)

    def _quarter_turns(self, crop: np.ndarray) -> int | None:
        """How many quarter turns (``np.rot90``) bring the face in an "upright" crop the
        right way up: 0 unless the first reading was wrong, None if no turn of the crop
        scores as a face clearly (the caller keeps the crop as it is, or drops it).

        On a face turned past about ±110° MediaPipe's mesh can come back as an upright
        face, misread (the astronaut turned by 180° reads roll −5°, pitch −22°), and
        nothing in the mesh or the fit tells: such a reading often fits the reference
        better than a right one. MediaPipe's face detector tells, roughly: it scores
        most faces the right way up 0.75-0.95, and a crop made from a wrong reading
        lower. So when it scores the crop below FACE_SCORE_UPRIGHT, the crop's three
        other quarter turns are scored too, and the best one is taken if it wins by more
        than QUARTER_TURN_MARGIN. MediaPipe's mesh reads faces within ±110° of upright,
        so a turn only has to land the face within that.

        The thresholds come from 1088 crops: the benchmark's rendered sets and the scan,
        upright and turned by 180°, and the two real photos in four versions turned in
        10° steps. Of the 605 crops whose first reading had the face the right way up,
        6% score below 0.75 and 2 are turned, both by 90° (their first reading was
        already 60-90° off); 435 of the 483 crops made upside down are turned. Costs
        one detector call per photo (2.5 ms), four when the first scores low."""
        import cv2

        small = cv2.resize(crop, (128, 128), interpolation=cv2.INTER_AREA)
        scores = [self.face_score(small)]
        if scores[0] >= FACE_SCORE_UPRIGHT:
            return 0
        scores += [self.face_score(np.rot90(small, k)) for k in (1, 2, 3)]
        best = int(np.argmax(scores))
        return best if scores[best] - scores[0] > QUARTER_TURN_MARGIN else None

    def face_score(self, rgb: np.ndarray) -> float:
        """MediaPipe's short-range face detector: the best face score, 0 for none."""
        with self._lock:
            if self._detector is None:
                import mediapipe as mp

                # a low threshold, so that weak faces still get their score
                self._detector = mp.solutions.face_detection.FaceDetection(
                    model_selection=0, min_detection_confidence=0.01)
            res = self._detector.process(np.ascontiguousarray(rgb))
        return max((d.score[0] for d in res.detections or []), default=0.0)

    def _central_mesh(self, crop: np.ndarray) -> np.ndarray | None:
        """The landmarks of the face nearest the centre of a crop made around it."""
        meshes = self._landmarks(crop)
        if not meshes:
            return None
        centre = np.array(crop.shape[1::-1]) / 2.0
        return min(meshes, key=lambda a: np.linalg.norm(a[:, :2].mean(0) - centre))

    # ------------------------------------------------------------------ the fit
    def _fit(self, pts: np.ndarray, camera: Camera, box, rough: bool = False) -> FacePose:
        """The pose from one face's landmarks. ``rough`` stops "joint" at its PnP start:
        the joint step turns the head about its pitch axis only, so the roll is the same
        to within 0.004° (the line of sight moves a little with the position), which is
        all the upright crop needs; it saves 2 ms of a photo's 20."""
        rot, pos = _fit_weak(pts, self._ref, self._rigid, camera)
        if self.config.method in ("joint", "pnp"):
            rot, pos = _fit_pnp(pts[:, :2], self._ref, self._rigid, camera, rot, pos)
        if self.config.method == "joint" and not rough:
            idx = self._facing(rot, pos) if self.config.skip_hidden else self._rigid
            rot, pos = _fit_joint(pts, self._ref, idx, camera, rot, pos,
                                  self.config.depth_weight)
        # the reported angles are relative to the line of sight (see FacePose)
        ray = _ray_rotation(pos)
        yaw, pitch, roll = angles_from_matrix(ray.T @ rot)
        if self.config.pitch_gain != 1.0:
            pitch = float(np.clip(pitch * self.config.pitch_gain, -89.0, 89.0))
            rot = ray @ rotation_matrix(yaw, pitch, roll)
        head = HeadPose(*angles_from_matrix(rot), scale=1.0, position=tuple(map(float, pos)))
        proj = camera.project(head.to_camera(self._ref[self._rigid]))
        u_px = camera.focal / -pos[2]
        err = float(np.sqrt(((proj - pts[self._rigid, :2]) ** 2).sum(1).mean()) / u_px)
        return FacePose(yaw, pitch, roll, head, camera,
                        landmarks=pts[:, :2].copy(), depth=pts[:, 2].copy(), box=box,
                        u_pixels=float(u_px), fit_error=err)

    def _facing(self, rot: np.ndarray, pos: np.ndarray) -> np.ndarray:
        """The fit's landmarks whose reference surface faces the camera at this pose.

        Where the face turns away, MediaPipe cannot see the skin and draws its landmarks
        from what it has learnt faces look like; our reference is MediaPipe's own reading
        of a face, so those guesses agree with it, and with nobody else's face. On the
        faces independent of the reference they pull the joint fit's pitch towards the
        reference's (``skip_hidden``; see the module docstring). Keeps them all if fewer
        than 40 would be left."""
        idx = self._rigid
        q = self._ref[idx] @ rot.T + pos
        towards_camera = -q / np.linalg.norm(q, axis=1, keepdims=True)
        facing = np.einsum("ij,ij->i", self._normals[idx] @ rot.T, towards_camera) > 0.0
        return idx[facing] if facing.sum() >= 40 else idx


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


def _unwarp(pts: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Landmarks read in a crop made by the affine ``m``, back in the picture."""
    import cv2

    inv = cv2.invertAffineTransform(m)
    return np.column_stack([pts[:, :2] @ inv[:, :2].T + inv[:, 2], pts[:, 2]])


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
    of sight to the face, not to the ball centre behind it. At 50° and 70° fields of view
    the ball-centre ray read pitch 4 and 6° low on centred renders; the face's own ray
    removes most of that (benchmarks/pose_accuracy.py)."""
    from loomis.face_reference import _similarity

    src = ref[idx]
    dst = np.column_stack([pts[idx, 0], -pts[idx, 1], pts[idx, 2]])  # y up, z nearer
    s, rot_view, t = _similarity(src, dst)
    cx, cy = camera.principal_point

    def ray_through(x: float, y_up: float) -> np.ndarray:
        return np.array([(x - cx) / camera.focal, (y_up + cy) / camera.focal, -1.0])

    centre = dst.mean(0)                      # the landmarks' centre in the image
    rot = _ray_rotation(ray_through(centre[0], centre[1])) @ rot_view
    # the ball centre: its image position and its depth for s pixels per unit
    pos = ray_through(t[0], t[1]) * camera.focal / s
    return rot, pos


def _ray_rotation(ray: np.ndarray) -> np.ndarray:
    """Smallest rotation taking the optical axis (0, 0, -1) onto ``ray``: what an object
    that looks frontal to a camera aimed at it looks like to a camera aimed elsewhere."""
    a = np.array([0.0, 0.0, -1.0])
    b = ray / np.linalg.norm(ray)
    v = cross(a, b)
    c = float(a @ b)
    vx = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + vx + vx @ vx / (1.0 + c)


def _fit_pnp(pts2d, ref, idx, camera: Camera, rot0, pos0):
    """Perspective-n-point, Levenberg-Marquardt from the weak-perspective start."""
    import cv2

    cx, cy = camera.principal_point
    k = np.array([[camera.focal, 0, cx], [0, camera.focal, cy], [0, 0, 1]], dtype=np.float64)
    rvec, _ = cv2.Rodrigues(_CV_TO_OURS @ rot0)
    tvec = (_CV_TO_OURS @ pos0).reshape(3, 1)
    rvec, tvec = cv2.solvePnPRefineLM(ref[idx].astype(np.float64),
                                      pts2d[idx].astype(np.float64), k, None, rvec, tvec)
    rot = _CV_TO_OURS @ cv2.Rodrigues(rvec)[0]
    pos = _CV_TO_OURS @ tvec.ravel()
    if pos[2] >= 0:      # a degenerate solution behind the camera: keep the weak one
        return rot0, pos0
    return rot, pos


def _fit_joint(pts: np.ndarray, ref: np.ndarray, idx: np.ndarray, camera: Camera,
               rot0: np.ndarray, pos0: np.ndarray, depth_weight: float,
               pitch_only: bool = True, iterations: int = 30):
    """Least squares on the 2D landmarks *and* MediaPipe's relative depth together.

    Why: MediaPipe's 2D landmarks move less than the face when it nods (a 2D fit reads
    0.6-0.7 of the true pitch on every rendered set), while its depth column, which says
    how far forward the brow, nose and chin are, keeps most of the pitch. For yaw it is
    the other way round: the depth under-turns it (a 3D-to-3D fit read yaw 5.6-6.2° off
    where the 2D fit was 3.1-3.6° off, on centred renders). So by default
    (``pitch_only``) only the pitch and the position move from the PnP solution: the
    rotation turns about the head's pitch axis relative to the line of sight.

    Residuals per landmark: the reprojection error in x and y (pixels), and
    ``depth_weight`` times the difference between MediaPipe's depth and the reference's
    depth at the face's scale (``focal / distance`` pixels per unit; both centred, so only
    the shape counts). MediaPipe's depth is on the scale of x, so weight 1 counts it as
    one more image coordinate. Depth is measured along the line of sight to the
    landmarks' centre, which is how MediaPipe sees a face (its crop is centred on it):
    along the ray to the ball centre instead, a depth-only fit read pitch 4-6° low at
    50-70° fields of view (see :func:`_fit_weak`). Levenberg-Marquardt on a rotation
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
        ray = _ray_rotation(pos)
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
            converged = cost - new_cost < 1e-10 * cost
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
