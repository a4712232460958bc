"""The project's own 3D face reference: MediaPipe's 468 landmarks in the Loomis head frame.

Pose fitting needs a rigid 3D position for every landmark, in the frame the Loomis
construction is drawn in. This module *measures* one from photos (the model's canonical
mesh is used only at run time, from the model file, never copied here):

1. **Measure.** MediaPipe's Face Landmarker returns, for every landmark, its image position and
   a relative depth ``z`` on the scale of ``x``. Read as ``(x·W, -y·H, -z·W)`` that is a
   3D shape of the face (y up, z towards the camera, like our head frame).
2. **Pair left with right by mirror matching.** Run the mesh on the photo and on its
   mirror image: landmark ``i`` of the mirrored run, flipped back, lands on the landmark
   ``j`` that is ``i``'s mirror partner. A one-to-one assignment gives the involution
   ``pair``; landmarks paired with themselves lie on the midline.
3. **Average many views.** The photo is rotated, scaled and mirrored; every measured
   shape (mirrored ones re-indexed through ``pair`` and reflected) is aligned by
   similarity Procrustes and averaged, which averages out the network's jitter.
4. **Symmetrise.** The mean shape and its reflected, re-indexed copy are aligned rigidly
   and averaged: the result is exactly symmetric about a plane. Its normal is the head's
   ``+x``. This removes the yaw and roll of the measured photos by construction.
5. **Loomis frame.** Zero pitch is defined the Loomis way: the face front from the brow
   point (soft tissue at the brow line on the midline) down to the front of the chin
   (soft-tissue pogonion) is vertical; anthropometric norms put this line within a few
   degrees of perpendicular to the Frankfurt horizontal that head-pose datasets use.
   The brow line is the mean height of the eyebrow landmarks, the nose line the base of
   the nose (subnasale), and ``u`` is their distance. Points are stored relative to the
   brow point in units of ``u``; the ball centre is ``R`` behind it (``R`` comes from the
   Loomis proportions at load time, so the construction and the fit never disagree).

Depth scale: MediaPipe's ``z`` is only "roughly" on the scale of ``x``. The build reports
anthropometric ratios so it can be checked, and ``depth_scale`` lets the fit stretch
depth if a calibration (e.g. against synthetic heads at known poses) asks for it.

Rebuild with ``python -m loomis.face_reference --out loomis/data/face_reference.npz``
(uses scikit-image's public-domain astronaut photo; ``--photos DIR`` adds more faces).
"""
from __future__ import annotations

import argparse
import functools
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from loomis.camera import cross

__all__ = ["FaceReference", "load_reference", "build_reference", "measure_mesh", "brow_indices",
           "landmark_paths", "contour_indices", "triangles", "vertex_normals", "outward_normals",
           "N_LANDMARKS", "DEFAULT_PATH"]

N_LANDMARKS = 468
DEFAULT_PATH = Path(__file__).parent / "data" / "face_reference.npz"

# Named midline landmarks of MediaPipe's topology (indices are the model's output order,
# an interface, not data): chin bottom, nose base, nose tip, forehead centre.
CHIN = 152
SUBNASALE = 2
NOSE_TIP = 1
FOREHEAD = 10


def landmark_paths() -> dict[str, list[list[int]]]:
    """Ordered polylines of MediaPipe's feature contours (eyes, brows, lips, nose, oval).

    The package ships them as unordered edge sets; chaining the edges gives paths that
    can be drawn as strokes.
    """
    groups = ("right_eye", "left_eye", "right_brow", "left_brow", "lips", "nose", "oval")
    return {name: _chain(_edges(name)) for name in groups}


_CONNECTIONS = {"right_eye": "RIGHT_EYE", "left_eye": "LEFT_EYE",
                "right_brow": "RIGHT_EYEBROW", "left_brow": "LEFT_EYEBROW", "lips": "LIPS",
                "nose": "NOSE", "oval": "FACE_OVAL", "mesh": "TESSELATION"}


@functools.lru_cache(maxsize=None)
def _edges(name: str) -> frozenset[tuple[int, int]]:
    """One of MediaPipe's landmark edge sets (``_CONNECTIONS``), as index pairs."""
    from mediapipe.tasks.python.vision.face_landmarker import FaceLandmarksConnections

    edges = getattr(FaceLandmarksConnections, "FACE_LANDMARKS_" + _CONNECTIONS[name])
    return frozenset((e.start, e.end) for e in edges)


def _chain(edges) -> list[list[int]]:
    """Split an undirected edge set into maximal paths (closed loops repeat their start)."""
    adj: dict[int, list[int]] = {}
    for a, b in edges:
        adj.setdefault(a, []).append(b)
        adj.setdefault(b, []).append(a)
    unused = {frozenset(e) for e in edges}
    paths = []
    # start at path ends (odd degree) first, then at any vertex of a remaining loop
    starts = [v for v in sorted(adj) if len(adj[v]) % 2 == 1] + sorted(adj)
    for s in starts:
        while any(frozenset((s, n)) in unused for n in adj[s]):
            path, v = [s], s
            while True:
                nxt = next((n for n in adj[v] if frozenset((v, n)) in unused), None)
                if nxt is None:
                    break
                unused.discard(frozenset((v, nxt)))
                path.append(nxt)
                v = nxt
            paths.append(path)
    return paths


@dataclass(frozen=True)
class FaceReference:
    """Landmarks relative to the brow point, in units of u, head axes (x right, y up, z out).

    ``points[i]`` is landmark ``i``; ``pair[i]`` its mirror partner; ``rigid`` marks the
    landmarks that do not move with expression (used for the fit); the named heights are
    where the reference face's own lines are (the Loomis ones are 0, -1 and -2 u).
    """

    points: np.ndarray          # (468, 3)
    pair: np.ndarray            # (468,) int
    rigid: np.ndarray           # (468,) bool
    chin_y: float               # measured chin height (Loomis: -2)
    eye_y: float                # measured eye-line height (Loomis: about -0.3)
    mouth_y: float              # measured mouth-line height (Loomis: about -1.33)

    def fit_indices(self, contour: bool = False) -> np.ndarray:
        """Landmarks a pose fit should use: the rigid ones, without the face outline
        unless ``contour`` is set.

        The outline (MediaPipe's face oval) is not a fixed point of the skin: on a turned
        face the network puts it on the silhouette, which slides over the cheek and jaw,
        and on the far side it is hidden and guessed, so it is left out by default
        (``benchmarks/pose_accuracy.py --contour`` measures both)."""
        mask = self.rigid.copy()
        if not contour:
            mask[contour_indices()] = False
        return np.flatnonzero(mask)

    def head_points(self, ball_radius: float, depth_scale: float = 1.0) -> np.ndarray:
        """Landmarks in the head frame: origin at the ball centre ``ball_radius`` u behind
        the brow point; ``depth_scale`` stretches z about the brow point."""
        p = self.points.copy()
        p[:, 2] *= depth_scale
        p[:, 2] += ball_radius
        return p


@functools.lru_cache(maxsize=1)
def triangles() -> np.ndarray:
    """MediaPipe's face-mesh triangles, ``(T, 3)`` landmark indices. The package ships
    the tessellation as an edge set; a triangle is any three mutually joined landmarks."""
    adj: dict[int, set[int]] = {}
    for a, b in _edges("mesh"):
        adj.setdefault(a, set()).add(b)
        adj.setdefault(b, set()).add(a)
    tris = {tuple(sorted((a, b, x))) for a in adj for b in adj[a] for x in adj[a] & adj[b]}
    out = np.array(sorted(tris), dtype=np.int64)
    out.setflags(write=False)
    return out


def vertex_normals(points: np.ndarray, tris: np.ndarray) -> np.ndarray:
    """Unit normal at each vertex of a triangle mesh: the sum of its triangles' normals
    (so larger triangles count more), each on the side its corners' order gives."""
    a, b, c = (points[tris[:, k]] for k in range(3))
    face_n = cross(b - a, c - a)
    n = np.zeros_like(points, dtype=np.float64)
    for k in range(3):
        np.add.at(n, tris[:, k], face_n)
    return n / (np.linalg.norm(n, axis=1, keepdims=True) + 1e-12)


def outward_normals(points: np.ndarray) -> np.ndarray:
    """Unit surface normal at each landmark of ``points`` (head frame, y up), pointing
    out of the face: :func:`vertex_normals` over MediaPipe's triangles, each ordered so
    that its normal points away from a point on the head's vertical axis inside the
    face."""
    tris = triangles()
    a, b, c = (points[tris[:, k]] for k in range(3))
    inside = np.array([0.0, points[:, 1].mean(), 0.0])
    inward = np.einsum("ij,ij->i", cross(b - a, c - a), (a + b + c) / 3.0 - inside) < 0
    return vertex_normals(points, np.where(inward[:, None], tris[:, [0, 2, 1]], tris))


@functools.lru_cache(maxsize=1)
def contour_indices() -> np.ndarray:
    """Indices of MediaPipe's face-oval landmarks (the outline of the face)."""
    return np.array(sorted({i for e in _edges("oval") for i in e}), dtype=np.int64)


@functools.lru_cache(maxsize=4)
def load_reference(path: str | Path = DEFAULT_PATH) -> FaceReference:
    """Load the reference written by :func:`build_reference` (cached; arrays read-only)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing; rebuild it with `python -m loomis.face_reference --out {path}`")
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    for k in ("points", "pair", "rigid"):
        arrays[k].setflags(write=False)
    return FaceReference(points=arrays["points"], pair=arrays["pair"], rigid=arrays["rigid"],
                         chin_y=float(arrays["chin_y"]), eye_y=float(arrays["eye_y"]),
                         mouth_y=float(arrays["mouth_y"]))


# --------------------------------------------------------------------------- measuring

def measure_mesh(landmarker, rgb: np.ndarray) -> np.ndarray | None:
    """Read an RGB uint8 array with a :class:`loomis.landmarker.Landmarker`: the largest
    face as (468, 3) ``(x, -y, depth)`` (pixels, y up, z towards the camera), or None."""
    faces = [r.points[:N_LANDMARKS] * np.array([1.0, -1.0, 1.0])
             for r in landmarker.read(rgb)]
    return max(faces, key=lambda a: np.ptp(a[:, 0]), default=None)


def _similarity(src: np.ndarray, dst: np.ndarray, scale: bool = True):
    """Umeyama: (s, R, t) minimising |s R src + t - dst|² with a proper rotation R."""
    ms, md = src.mean(0), dst.mean(0)
    a, b = src - ms, dst - md
    u, sig, vt = np.linalg.svd(b.T @ a)
    d = np.sign(np.linalg.det(u @ vt))
    dm = np.diag([1.0, 1.0, d])
    rot = u @ dm @ vt
    s = float((sig * np.diag(dm)).sum() / (a ** 2).sum()) if scale else 1.0
    return s, rot, md - s * rot @ ms


def _apply(sim, pts):
    s, rot, t = sim
    return s * pts @ rot.T + t


def _mirror_pairs(m0: np.ndarray, m1_flipped_back: np.ndarray) -> np.ndarray:
    from scipy.optimize import linear_sum_assignment

    cost = np.linalg.norm(m1_flipped_back[:, None, :] - m0[None, :, :], axis=-1)
    rows, cols = linear_sum_assignment(cost)
    pair = np.empty(len(m0), dtype=np.int64)
    pair[rows] = cols
    return pair


def _views(rgb: np.ndarray):
    """Rotated / scaled / mirrored copies of a photo, with whether each is mirrored."""
    import cv2

    h, w = rgb.shape[:2]
    for mirrored in (False, True):
        base = rgb[:, ::-1] if mirrored else rgb
        for angle in (-15, -7, 0, 7, 15):
            for scale in (0.8, 1.0, 1.25):
                m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale)
                yield mirrored, cv2.warpAffine(np.ascontiguousarray(base), m, (w, h),
                                               flags=cv2.INTER_LINEAR,
                                               borderMode=cv2.BORDER_REPLICATE)


def build_reference(photos: list[np.ndarray], *, verbose: bool = True) -> tuple[dict, dict]:
    """Derive the reference from RGB photos of (roughly frontal) faces.

    Returns the arrays to save and a report of checks (pairing, symmetry, proportions).
    """
    from loomis.landmarker import Landmarker

    fm = Landmarker(max_faces=1)
    # 2. mirror pairing, voted over all photos
    votes = np.zeros((N_LANDMARKS, N_LANDMARKS), dtype=np.int64)
    for rgb in photos:
        m0 = measure_mesh(fm, rgb)
        m1 = measure_mesh(fm, rgb[:, ::-1])
        if m0 is None or m1 is None:
            raise ValueError("no face found in a reference photo")
        m1[:, 0] = rgb.shape[1] - m1[:, 0]
        votes[np.arange(N_LANDMARKS), _mirror_pairs(m0, m1)] += 1
    pair = votes.argmax(1)
    involution = int((pair[pair] == np.arange(N_LANDMARKS)).sum())
    if involution != N_LANDMARKS:
        raise ValueError(f"mirror pairing is not an involution ({involution}/{N_LANDMARKS})")

    # 3. many views, aligned and averaged (generalised Procrustes)
    shapes = []
    for rgb in photos:
        for mirrored, view in _views(rgb):
            m = measure_mesh(fm, view)
            if m is None:
                continue
            if mirrored:           # reflect and re-index: the same physical landmarks
                m = m[pair] * np.array([-1.0, 1.0, 1.0])
            shapes.append(m)
    fm.close()
    mean = shapes[0] - shapes[0].mean(0)
    for _ in range(4):
        aligned = np.stack([_apply(_similarity(s, mean), s) for s in shapes])
        new = aligned.mean(0)
        new *= math.sqrt((mean ** 2).sum() / (new ** 2).sum())
        mean = new - new.mean(0)
    jitter = float(np.sqrt(((aligned - mean) ** 2).sum(-1)).mean())

    # 4. symmetrise: mean of the shape and its aligned mirror image
    refl = mean[pair] * np.array([-1.0, 1.0, 1.0])
    sym = 0.5 * (mean + _apply(_similarity(refl, mean, scale=False), refl))
    lateral = pair != np.arange(N_LANDMARKS)
    diffs = sym[lateral] - sym[pair[lateral]]
    _, _, vt = np.linalg.svd(diffs, full_matrices=False)
    x_axis = vt[0] / np.linalg.norm(vt[0])
    if x_axis @ (sym[263] - sym[33]) < 0:        # subject's left eye is on the image right
        x_axis = -x_axis
    centre = 0.5 * (sym + sym[pair]).mean(0)

    # 5. the Loomis frame: brow point to chin vertical
    brows = brow_indices()
    midline = np.flatnonzero(~lateral)
    up0 = sym[FOREHEAD] - sym[CHIN]
    for _ in range(3):
        y_axis = up0 - (up0 @ x_axis) * x_axis
        y_axis /= np.linalg.norm(y_axis)
        z_axis = np.cross(x_axis, y_axis)
        local = (sym - centre) @ np.stack([x_axis, y_axis, z_axis]).T
        brow_y = float(local[brows, 1].mean())
        brow_pt = _profile_point(local, midline, brow_y)
        chin_pt = _chin_point(local, midline, float(local[CHIN, 1]))
        up_local = brow_pt - chin_pt
        up0 = np.stack([x_axis, y_axis, z_axis]).T @ up_local
    local[:, 0] -= local[midline, 0].mean()
    u = brow_y - float(local[SUBNASALE, 1])
    points = (local - brow_pt) / u
    points[:, 0] = 0.5 * (points[:, 0] - points[pair, 0])     # exact symmetry in x
    points[:, 1:] = 0.5 * (points[:, 1:] + points[pair, 1:])

    rigid = _rigid_mask(points)
    eye_y = float(points[[33, 133, 263, 362], 1].mean())
    mouth_y = float(points[[61, 291, 13, 14], 1].mean())
    face_w = float(points[454, 0] - points[234, 0])
    report = {
        "views": len(shapes), "landmark_jitter_u": jitter / u,
        "midline_landmarks": int((~lateral).sum()),
        "chin_y_u": float(points[CHIN, 1]), "eye_y_u": eye_y, "mouth_y_u": mouth_y,
        "face_width_u (oval 234-454)": face_w,
        "nose_tip_protrusion_u": float(points[NOSE_TIP, 2]),
        "depth_nose_tip_to_oval_side / face_width":
            float((points[NOSE_TIP, 2] - points[[234, 454], 2].mean()) / face_w),
        "rigid_landmarks": int(rigid.sum()),
    }
    if verbose:
        print(json.dumps(report, indent=1))
    arrays = {"points": points.astype(np.float64), "pair": pair.astype(np.int64),
              "rigid": rigid, "chin_y": np.float64(points[CHIN, 1]),
              "eye_y": np.float64(eye_y), "mouth_y": np.float64(mouth_y)}
    return arrays, report


def brow_indices() -> np.ndarray:
    """The landmarks of both eyebrows (MediaPipe's brow connections)."""
    edges = _edges("left_brow") | _edges("right_brow")
    return np.array(sorted({i for e in edges for i in e}))


def _profile_point(local: np.ndarray, midline: np.ndarray, y: float) -> np.ndarray:
    """The front of the midline profile at height ``y`` (linear interpolation)."""
    pts = local[midline]
    order = np.argsort(pts[:, 1])
    z = float(np.interp(y, pts[order, 1], pts[order, 2]))
    near = np.abs(pts[:, 1] - y) < 0.05 * np.ptp(pts[:, 1])
    if near.any():                # several profile points at this height: the frontmost
        z = max(z, float(pts[near, 2].max()))
    return np.array([0.0, y, z])


def _chin_point(local: np.ndarray, midline: np.ndarray, menton_y: float) -> np.ndarray:
    """Soft-tissue pogonion: the frontmost midline point of the chin (between the lower
    lip's fold and the chin's bottom)."""
    lip_y = float(local[17, 1])               # lower edge of the lower lip
    lo = menton_y + 0.15 * (lip_y - menton_y)
    hi = menton_y + 0.7 * (lip_y - menton_y)
    band = midline[(local[midline, 1] >= lo) & (local[midline, 1] <= hi)]
    return local[band[np.argmax(local[band, 2])]]


def _rigid_mask(points: np.ndarray) -> np.ndarray:
    """Landmarks that stay put when the face talks, smiles or blinks: the skull-fixed part
    of the face (forehead, brows' bony base, nose, cheekbones, temples). Everything lower
    than just under the nose, and the eyelids, move with expression and are left out."""
    lids = {i for e in _edges("left_eye") | _edges("right_eye") for i in e}
    mask = points[:, 1] > -1.1                    # above the upper lip
    mask[list(lids)] = False
    return mask


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_PATH)
    ap.add_argument("--photos", type=Path, default=None,
                    help="folder of extra frontal portraits to measure as well")
    args = ap.parse_args(argv)
    import skimage.data

    from loomis.imageio import load_image

    photos = [skimage.data.astronaut()]
    if args.photos is not None:
        photos += [np.asarray(load_image(p)) for p in sorted(args.photos.iterdir())
                   if p.is_file()]
    arrays, report = build_reference(photos)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **arrays)
    print(f"wrote {args.out} from {len(photos)} photo(s), {report['views']} views")


if __name__ == "__main__":
    main()
