"""The one path every picture takes: photo → faces → each face cropped, translated and
fitted → pasted back; and sketch → the drawn head cropped, translated, pasted back.

Why face by face: a generator sees a square of ``image_size`` pixels. Fed a whole photo
(a phone picture, a group, a tight crop) it sees heads at sizes and places it never
trained on, and draws one construction in the wrong place or of the wrong size. Here
every engine starts from the faces the geometric engine finds (:mod:`loomis.pose`), cuts
each to the framing the generators are trained on (:func:`head_square`, the same square
:mod:`loomis.train.autopairs` cuts training pairs with), and puts the result back where the
face was. So every engine draws one construction per face found, and none on a photo
without one (:class:`~loomis.pose.NoFaceError`).

With ``fit`` (the default) the generator's lines are the evidence the 3D construction is
fitted to (:mod:`loomis.construction_fit`): the pose starts from, and is held near, the
face's landmark pose, and the lines settle its place and size. Without it the raw
drawing of each face is laid over the background.

The app, the scripts, the tests and the benchmarks call :func:`photo_to_drawing`,
:func:`sketch_to_photo` and :func:`find_heads`; nothing else assembles these steps.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import cv2
import numpy as np
from PIL import Image

from loomis.camera import Camera, HeadPose
from loomis.canvas import white_paper
from loomis.draw import DrawStyle
from loomis.engine import (BACKGROUNDS, GRAPHITE, INK, construction_strokes, feature_strokes, ink,
                           line_width, make_background)
from loomis.head import LoomisProportions, Stroke, construction_lines
from loomis.imageio import ImageError, ImageLike, binarize, load_image
from loomis.pose import FacePose, NoFaceError, PoseConfig, PoseEstimator
from loomis.proportions import FaceProportions, measure

if TYPE_CHECKING:
    from loomis.runtime import GraphTranslator as Translator

__all__ = ["GEOMETRIC", "HEAD_MARGIN", "FRAMINGS", "Head", "Drawing", "photo_to_drawing",
           "find_heads", "sketch_to_photo", "frame", "head_square", "crop_camera", "cut_square",
           "ink_square", "NoFaceError", "NoDrawingError"]

#: The engine name of the geometric engine (the generators go by their registry names).
GEOMETRIC = "geometric"
#: Free border around the head in every generator's square, as a fraction of the head.
HEAD_MARGIN = 0.15
#: The most the fit may move the ball, as a share of its distance from the camera (about
#: its size), before the landmark pose is kept instead.
MAX_FIT_MOVE = 0.15
#: Grey level below which a pixel of a sketch counts as drawn when finding the head.
SKETCH_INK = 0.75
#: How a drawing is framed: "heads" crops to the constructions with a margin (on paper
#: the page may extend past the photo), "photo" keeps the photo's frame, "auto" is
#: "heads" on paper and "photo" over a photo.
FRAMINGS = ("auto", "heads", "photo")
#: Free border around the constructions when cropping to them, as a share of their size.
FRAME_MARGIN = 0.08


class NoDrawingError(ImageError):
    """A sketch with nothing drawn on it (or only specks)."""


@dataclass(frozen=True)
class Head:
    """One construction as drawn, in the input photo's pixels (y down) and degrees.

    ``yaw`` > 0: the face turned towards the picture's right; ``pitch`` > 0: tilted up
    (chin forward, looking up); ``roll`` > 0: turned counter-clockwise in the picture.
    All three relative to the line of sight (:mod:`loomis.camera`'s convention). ``box`` is the drawn construction's extent
    (ball, jaw and ear), ``ball_center``/``ball_radius`` the cranial ball's outline."""

    box: tuple[float, float, float, float]
    yaw: float
    pitch: float
    roll: float
    ball_center: tuple[float, float]
    ball_radius: float
    proportions: FaceProportions = FaceProportions()

    def scaled(self, k: float) -> "Head":
        """The same head in a picture ``k`` times as large (angles unchanged)."""
        return dataclasses.replace(
            self, box=tuple(v * k for v in self.box),
            ball_center=tuple(v * k for v in self.ball_center), ball_radius=self.ball_radius * k)

    def to_json(self) -> dict:
        r = lambda v: round(float(v), 2)  # noqa: E731
        return {"box": [r(v) for v in self.box], "yaw": r(self.yaw), "pitch": r(self.pitch),
                "roll": r(self.roll), "ball_center": [r(v) for v in self.ball_center],
                "ball_radius": r(self.ball_radius), "proportions": self.proportions.to_json()}


@dataclass(frozen=True)
class Drawing:
    """What :func:`photo_to_drawing` made: the picture, one :class:`Head` per construction
    drawn, and the engine that drew it; and what the picture was drawn from, so that it
    can be drawn again step by step (:mod:`loomis.steps`) or as vectors (:mod:`loomis.svg`).

    ``strokes`` (the construction) and ``features`` (the face's own lines) are in the
    photo's pixels; ``crop`` is the box ``(x0, y0, x1, y1)`` of the photo's pixels the
    picture shows (it may reach past the photo on paper); ``base`` is the surface the
    lines were drawn on (``background``: paper, faded, pencil or photo), cropped like
    ``image``; ``style`` how they were drawn."""

    image: Image.Image
    heads: list[Head]
    engine: str
    strokes: list[Stroke] = field(default_factory=list)
    features: list[Stroke] = field(default_factory=list)
    style: DrawStyle = GRAPHITE
    base: Image.Image | None = None
    crop: tuple[int, int, int, int] = (0, 0, 0, 0)
    background: str = "paper"

    def render(self, strokes: list[Stroke] | None = None, features: list[Stroke] | None = None,
               style: DrawStyle | None = None) -> Image.Image:
        """``strokes`` and ``features`` (photo pixels; default: this drawing's) drawn on
        this drawing's surface, framed like :attr:`image`."""
        base = np.asarray(self.base if self.base is not None else self.image)
        shift = np.array(self.crop[:2], dtype=np.float64)
        moved = lambda ss: [dataclasses.replace(s, points=s.points - shift) for s in ss]  # noqa: E731
        return Image.fromarray(ink(base, moved(self.strokes if strokes is None else strokes),
                                   moved(self.features if features is None else features),
                                   style or self.style))

    def to_json(self) -> dict:
        return {"engine": self.engine, "heads": [h.to_json() for h in self.heads]}


# ------------------------------------------------------------------------------ framing

def head_square(pose: HeadPose, camera: Camera, proportions: LoomisProportions = LoomisProportions(),
                margin: float = HEAD_MARGIN) -> tuple[float, float, float]:
    """The square ``(x0, y0, side)`` around the whole projected construction (ball, jaw,
    ear) with ``margin`` of its size free on every side: the generators' framing."""
    lo, hi = _extent(construction_lines(pose, camera, proportions, samples=32))
    side = float((hi - lo).max()) * (1.0 + 2.0 * margin)
    cx, cy = (lo + hi) / 2.0
    return cx - side / 2.0, cy - side / 2.0, side


def crop_camera(camera: Camera, x0: float, y0: float, side: float, size: int) -> Camera:
    """The camera of a square crop ``(x0, y0, side)`` of ``camera``'s image resized to
    ``size``: the principal point moves with the crop and everything scales by
    ``size / side``. Drawing through it keeps 3D geometry registered with the crop."""
    k = size / side
    cx, cy = camera.principal_point
    return Camera(size, size, camera.focal * k, cx=(cx - x0) * k, cy=(cy - y0) * k)


def cut_square(rgb: np.ndarray, square: tuple[float, float, float], size: int,
               border: str = "replicate") -> np.ndarray:
    """The square ``(x0, y0, side)`` of ``rgb`` resized to ``size``² in one affine warp
    (sub-pixel exact). Outside the picture: its edge replicated, or white paper."""
    x0, y0, side = square
    k = size / side
    m = np.array([[k, 0.0, -x0 * k], [0.0, k, -y0 * k]])
    interp = cv2.INTER_AREA if k < 1 else cv2.INTER_CUBIC
    if border == "replicate":
        return cv2.warpAffine(rgb, m, (size, size), flags=interp, borderMode=cv2.BORDER_REPLICATE)
    return cv2.warpAffine(rgb, m, (size, size), flags=interp, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=(255, 255, 255))


def uncut_square(square_img: np.ndarray, square: tuple[float, float, float],
                 size: tuple[int, int], fill: tuple[float, float, float],
                 interp: int | None = cv2.INTER_LINEAR) -> np.ndarray:
    """The inverse of :func:`cut_square`: a square picture put back at ``square`` on a
    ``size`` (width, height) canvas of ``fill``. ``interp`` None picks area averaging
    when shrinking and cubic when enlarging."""
    x0, y0, side = square
    k = square_img.shape[1] / side
    if interp is None:
        interp = cv2.INTER_AREA if k > 1 else cv2.INTER_CUBIC
    m = np.array([[1 / k, 0.0, x0], [0.0, 1 / k, y0]])
    return cv2.warpAffine(square_img, m, size, flags=interp, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=fill)


def ink_square(drawing: Image.Image, margin: float = HEAD_MARGIN,
               threshold: float = SKETCH_INK) -> tuple[float, float, float]:
    """The generators' framing of a drawn head: the square around the drawing's lines
    (specks and stray dots left out) with ``margin`` free on every side. Raises
    :class:`NoDrawingError` when nothing is drawn."""
    ink = binarize(drawing, threshold).astype(np.uint8)
    h, w = ink.shape
    n, labels, stats, _ = cv2.connectedComponentsWithStats(ink, connectivity=8)
    # a mark counts when it is more than a speck: at least 1/150 of the picture across
    least = max(3, min(h, w) / 150)
    keep = [i for i in range(1, n)
            if max(stats[i, cv2.CC_STAT_WIDTH], stats[i, cv2.CC_STAT_HEIGHT]) >= least]
    if not keep:
        raise NoDrawingError("nothing is drawn: draw a head (dark lines on light paper) first")
    x0 = min(stats[i, cv2.CC_STAT_LEFT] for i in keep)
    y0 = min(stats[i, cv2.CC_STAT_TOP] for i in keep)
    x1 = max(stats[i, cv2.CC_STAT_LEFT] + stats[i, cv2.CC_STAT_WIDTH] for i in keep)
    y1 = max(stats[i, cv2.CC_STAT_TOP] + stats[i, cv2.CC_STAT_HEIGHT] for i in keep)
    if max(x1 - x0, y1 - y0) < max(8, min(h, w) / 20):
        raise NoDrawingError(f"the drawing is only {x1 - x0}x{y1 - y0} pixels: draw the "
                             "head larger")
    side = float(max(x1 - x0, y1 - y0)) * (1.0 + 2.0 * margin)
    return (x0 + x1) / 2.0 - side / 2.0, (y0 + y1) / 2.0 - side / 2.0, side


def _extent(strokes: list[Stroke]) -> tuple[np.ndarray, np.ndarray]:
    pts = np.concatenate([s.points for s in strokes])
    return pts.min(0), pts.max(0)


def _head(face: FacePose, proportions: LoomisProportions,
          measured: FaceProportions = FaceProportions()) -> Head:
    """A face's construction as a :class:`Head` in its picture's pixels: ``ball_center``
    and ``ball_radius`` are those of the ball's drawn outline (an ellipse, slightly, for
    a face off the picture's centre: its centre, and its mean radius)."""
    strokes = construction_lines(face.head, face.camera, proportions, samples=64)
    lo, hi = _extent(strokes)
    outline = next(s.points for s in strokes if s.kind == "ball")
    centre = (outline.min(0) + outline.max(0)) / 2.0
    radius = float(np.linalg.norm(outline - centre, axis=1).mean())
    return Head((float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])),
                face.yaw, face.pitch, face.roll, (float(centre[0]), float(centre[1])), radius,
                measured)


def frame(heads: list[Head], size: tuple[int, int], framing: str, background: str,
          margin: float = FRAME_MARGIN) -> tuple[int, int, int, int]:
    """The box ``(x0, y0, x1, y1)`` of the photo's pixels a drawing shows (see
    :data:`FRAMINGS`): around the heads with ``margin`` of their size free, reaching past
    the photo only on paper, where there is nothing to cut."""
    if framing not in FRAMINGS:
        raise ValueError(f"framing must be one of {', '.join(FRAMINGS)}, got {framing!r}")
    w, h = size
    if framing == "photo" or (framing == "auto" and background != "paper") or not heads:
        return 0, 0, w, h
    box = np.array([h_.box for h_ in heads])
    x0, y0 = box[:, :2].min(0)
    x1, y1 = box[:, 2:].max(0)
    pad = margin * max(x1 - x0, y1 - y0)
    x0, y0, x1, y1 = (int(np.floor(x0 - pad)), int(np.floor(y0 - pad)),
                      int(np.ceil(x1 + pad)), int(np.ceil(y1 + pad)))
    if background != "paper":
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    return x0, y0, x1, y1


def _cropped(canvas: np.ndarray, box: tuple[int, int, int, int], paper: tuple[int, int, int]
             ) -> np.ndarray:
    """``canvas`` cut to ``box``; parts of the box past the canvas are ``paper``."""
    x0, y0, x1, y1 = box
    h, w = canvas.shape[:2]
    out = np.empty((y1 - y0, x1 - x0, 3), np.uint8)
    out[:] = paper
    sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = canvas[sy0:sy1, sx0:sx1]
    return out


# ------------------------------------------------------------------------------ photos

def _style(background: str, style: DrawStyle | None, hidden: str | None) -> DrawStyle:
    style = style or (GRAPHITE if background == "paper" else INK)
    return dataclasses.replace(style, hidden=hidden) if hidden is not None else style


def _find_faces(photo: Image.Image, estimator: PoseEstimator | None,
               proportions: LoomisProportions) -> list[FacePose]:
    """Every face the geometric engine finds, largest first; :class:`NoFaceError` if none."""
    own = estimator is None
    est = PoseEstimator(PoseConfig(ball_radius=proportions.radius)) if own else estimator
    try:
        return est.analyse(photo).require()
    finally:
        if own:
            est.close()


def photo_to_drawing(image: ImageLike, engine: str = GEOMETRIC, *,
                     translator: "Translator | None" = None, background: str = "paper",
                     style: DrawStyle | None = None, hidden: str | None = None,
                     features: bool = False, fit: bool = True,
                     estimator: PoseEstimator | None = None,
                     proportions: LoomisProportions = LoomisProportions(),
                     own_proportions: bool = True, framing: str = "photo") -> Drawing:
    """Draw the Loomis construction of every face in ``image``.

    ``engine`` is :data:`GEOMETRIC` (the landmark pose drawn directly) or a generator's
    name, whose ``translator`` then draws each face's crop; with ``fit`` the construction
    is fitted to those lines (pose held near the landmark pose), without it the raw
    drawing is laid on the background. ``features`` adds the face's own eyes, brows, nose,
    mouth and jaw from the landmarks. ``background`` is one of ``paper``, ``faded``,
    ``pencil``, ``photo``; ``style`` defaults to graphite on paper and red ink elsewhere.
    With ``own_proportions`` each construction follows its face's thirds and width
    (:mod:`loomis.proportions`); without, ``proportions`` (the canon) for every face.
    ``framing`` is one of :data:`FRAMINGS`.

    Raises :class:`~loomis.imageio.ImageError` for an unreadable picture,
    :class:`NoFaceError` when no face is found, ValueError for a bad option.
    """
    if background not in BACKGROUNDS:
        raise ValueError(f"background must be one of {', '.join(BACKGROUNDS)}, got {background!r}")
    if framing not in FRAMINGS:
        raise ValueError(f"framing must be one of {', '.join(FRAMINGS)}, got {framing!r}")
    if engine != GEOMETRIC and translator is None:
        raise ValueError(f"engine {engine!r} needs its translator (loomis.registry)")
    style = _style(background, style, hidden)
    photo = load_image(image)
    rgb = np.asarray(photo)
    faces = _find_faces(photo, estimator, proportions)
    canvas = make_background(rgb, background)
    drawn_faces: list[FacePose] = []     # each face with the construction to draw for it
    props: list[LoomisProportions] = []
    heads: list[Head] = []
    for face in faces:
        if engine != GEOMETRIC:
            square = head_square(face.head, face.camera, proportions)
            drawn = _translate_face(translator, rgb, square)
            if not fit:
                canvas = _lay_over(canvas, drawn, square)
            else:
                face = _fit_face(drawn, face, square, proportions)
        measured = measure(face, proportions.radius) if own_proportions else FaceProportions()
        drawn_faces.append(face)
        props.append(measured.apply(proportions))
        heads.append(_head(face, props[-1], measured))
    if style.width == 0:            # automatic: follow the face, not the canvas
        style = dataclasses.replace(style, width=line_width(drawn_faces))
    strokes = (construction_strokes(drawn_faces, props)
               if engine == GEOMETRIC or fit else [])
    fstrokes = [s for face in drawn_faces for s in feature_strokes(face)] if features else []
    crop = frame(heads, photo.size, framing, background)
    base = Image.fromarray(_cropped(canvas, crop, style.paper))
    drawing = Drawing(base, heads, engine, strokes, fstrokes, style, base, crop, background)
    return dataclasses.replace(drawing, image=drawing.render())


def find_heads(image: ImageLike, engine: str = GEOMETRIC, **kwargs) -> list[Head]:
    """The constructions :func:`photo_to_drawing` draws, without keeping the picture."""
    return photo_to_drawing(image, engine, background="paper", **kwargs).heads


def _translate_face(translator: "Translator", rgb: np.ndarray,
                    square: tuple[float, float, float]) -> Image.Image:
    """The generator's drawing of one face's square, at the generator's own size."""
    size = translator.config.image_size
    return translator(Image.fromarray(cut_square(rgb, square, size)))


def _fit_face(drawn: Image.Image, face: FacePose, square: tuple[float, float, float],
              proportions: LoomisProportions) -> FacePose:
    """``face`` with its construction fitted to the generator's drawing of its square (the
    landmark pose kept where the generator drew too little to fit).

    The crop's camera is the photo's camera shifted and scaled, so the landmark pose holds
    in it unchanged: the fit starts there, is held near its angles, and the lines settle
    place, size and whatever angle they clearly disagree on. A fit that moves the ball
    by more than :data:`MAX_FIT_MOVE` of its distance is not believed: the landmark pose
    is kept (a generator that drew noise, or another head)."""
    from loomis.construction_fit import EmptyDrawingError, FitConfig, fit_construction

    x0, y0, side = square
    crop_cam = crop_camera(face.camera, x0, y0, side, drawn.width)
    start = face.head
    try:
        fitted = fit_construction(drawn, FitConfig(proportions=proportions),
                                  pose_hint=(start.yaw, start.pitch, start.roll),
                                  camera=crop_cam, start=start)
    except EmptyDrawingError:
        return face
    pose = fitted.pose
    moved = np.linalg.norm(np.subtract(pose.position, start.position))
    if moved > MAX_FIT_MOVE * np.linalg.norm(start.position):
        return face     # lines that put the head elsewhere are not a drawing of this face
    yaw, pitch, roll = pose.line_of_sight_angles()
    return dataclasses.replace(face, head=pose, yaw=float(yaw), pitch=float(pitch),
                               roll=float(roll))


def _lay_over(canvas: np.ndarray, drawn: Image.Image, square: tuple[float, float, float]
              ) -> np.ndarray:
    """A generated drawing (dark lines on white) laid over ``canvas`` at ``square``: the
    darker of the two wherever the square falls on the picture."""
    h, w = canvas.shape[:2]
    back = uncut_square(np.asarray(drawn.convert("RGB")), square, (w, h), (255, 255, 255))
    return np.minimum(canvas, back)


# ------------------------------------------------------------------------------ sketches

def sketch_to_photo(drawing: ImageLike, translator: "Translator") -> Image.Image:
    """A drawn head (dark lines on light paper, any size) → a photo of the same size: the
    paper is made white (:func:`loomis.canvas.white_paper`: scans and phone photos of
    sketches), the head is found by its lines, cut to the generator's framing, translated
    and put back; around it, the made photo's own border colour. Raises
    :class:`NoDrawingError` when nothing is drawn."""
    img = white_paper(load_image(drawing))
    square = ink_square(img)
    size = translator.config.image_size
    crop = cut_square(np.asarray(img), square, size, border="white")
    made = np.asarray(translator(Image.fromarray(crop)).convert("RGB"))
    fill = np.median(np.concatenate([made[0], made[-1], made[:, 0], made[:, -1]]), axis=0)
    return Image.fromarray(uncut_square(made, square, img.size, tuple(float(c) for c in fill),
                                        interp=None))
