"""loomis.pipeline, as every caller relies on it: one construction per face the geometric
engine finds, from every engine, placed and sized on its own face whatever the photo
(two people, a tight crop, a 4000-pixel upscale); no face, no drawing; a sketch's made
photo where the sketch was, at the sketch's size; and the heads as JSON."""
from __future__ import annotations

import dataclasses
import json
import math
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from loomis.camera import Camera, HeadPose
from loomis.engine import GRAPHITE, draw_faces
from loomis.train.inference import Translator
from loomis.train.nets import Generator
from loomis.pipeline import (GEOMETRIC, HEAD_MARGIN, Drawing, Head, NoDrawingError, NoFaceError,
                             crop_camera, cut_square, find_heads, head_square, photo_to_drawing,
                             ink_square, sketch_to_photo)
from loomis.train.synthetic import render_drawing, scene

pytest.importorskip("skimage.data")  # the astronaut photo (conftest) comes from it

GENERATOR = "pix2pix-photo2drawing"  # any name but GEOMETRIC: the translator draws


# ---------------------------------------------------------------------------- helpers
def centre(head: Head) -> np.ndarray:
    x0, y0, x1, y1 = head.box
    return np.array([(x0 + x1) / 2, (y0 + y1) / 2])


def width(head: Head) -> float:
    return head.box[2] - head.box[0]


def nearest(head: Head, heads: list[Head]) -> Head:
    return min(heads, key=lambda h: np.linalg.norm(centre(h) - centre(head)))


def scaled(head: Head, k: float, shift=(0.0, 0.0)) -> Head:
    """``head`` as it should read in the picture moved by ``-shift`` and scaled by ``k``."""
    sx, sy = shift
    x0, y0, x1, y1 = head.box
    bx, by = head.ball_center
    return dataclasses.replace(head, box=((x0 - sx) * k, (y0 - sy) * k, (x1 - sx) * k, (y1 - sy) * k),
                               ball_center=((bx - sx) * k, (by - sy) * k),
                               ball_radius=head.ball_radius * k)


def assert_on(head: Head, want: Head, where: float = 0.1, size: float = 0.12) -> None:
    """``head`` is drawn on ``want``'s face: centres apart by at most ``where`` box widths,
    widths and ball radii within ``size`` of each other."""
    off = np.linalg.norm(centre(head) - centre(want)) / width(want)
    assert off < where, (head, want)
    assert abs(width(head) / width(want) - 1) < size, (head, want)
    assert abs(head.ball_radius / want.ball_radius - 1) < size, (head, want)


def ink(img: Image.Image, level: int = 200) -> np.ndarray:
    return np.asarray(img.convert("L")) < level


def tiny_translator(direction: str = "AtoB", seed: int = 0) -> Translator:
    torch.manual_seed(seed)
    return Translator(Generator(arch="unet_32", ngf=8, image_size=64, direction=direction),
                      runtime="torch")


class Paper:
    """A generator that draws nothing: white paper at its own size."""

    config = SimpleNamespace(image_size=64)

    def __call__(self, img):
        return Image.new("RGB", img.size, "white")


class PerfectDrawer:
    """A generator that draws exactly what the geometric engine draws: for every crop the
    pipeline hands it, the construction of that face seen through the crop's camera.
    It knows the crops by cutting them itself, with the same framing."""

    def __init__(self, photo: Image.Image, estimator, size: int = 256) -> None:
        self.config = SimpleNamespace(image_size=size)
        rgb = np.asarray(photo.convert("RGB"))
        self.crops = []
        for face in estimator.analyse(photo).require():
            square = head_square(face.head, face.camera)
            self.crops.append((cut_square(rgb, square, size).astype(int), face, square))
        self.calls = 0

    def __call__(self, img: Image.Image) -> Image.Image:
        self.calls += 1
        size = self.config.image_size
        a = np.asarray(img.convert("RGB")).astype(int)
        assert a.shape == (size, size, 3)
        crop, face, (x0, y0, side) = min(self.crops, key=lambda c: np.abs(c[0] - a).mean())
        assert np.abs(crop - a).mean() < 1.0, "the pipeline cut a square the engine would not"
        seen = dataclasses.replace(face, camera=crop_camera(face.camera, x0, y0, side, size))
        style = dataclasses.replace(GRAPHITE, width=2.0)
        return Image.fromarray(draw_faces(np.full((size, size, 3), 255, np.uint8), [seen],
                                          style=style))


@pytest.fixture(scope="module")
def scribbler() -> Translator:
    """A randomly initialised tiny U-Net: it draws noise (dark almost everywhere)."""
    return tiny_translator()


@pytest.fixture(scope="module")
def geometric_two(two_faces, estimator) -> Drawing:
    drawing = photo_to_drawing(two_faces, estimator=estimator)
    assert len(drawing.heads) == 2
    return drawing


def cut_tight(photo: Image.Image, estimator, pad: float) -> tuple[tuple[int, ...], Image.Image]:
    """``photo`` cut to its face's landmark box, ``pad`` of the face's width more on
    every side: the box and the crop."""
    x0, y0, x1, y1 = estimator.analyse(photo).require()[0].box
    m = pad * (x1 - x0)
    box = tuple(int(round(v)) for v in (x0 - m, y0 - m, x1 + m, y1 + m))
    return box, photo.crop(box)


@pytest.fixture(scope="module")
def tight(grace_hopper, estimator):
    """Grace Hopper cut to her face's landmarks (chin to brows, cheek to cheek), and that
    crop upscaled to 4000 pixels wide."""
    box, crop = cut_tight(grace_hopper, estimator, 0.0)
    k = 4000 / crop.width
    big = crop.resize((4000, round(crop.height * k)), Image.BICUBIC)
    return SimpleNamespace(box=box, crop=crop, big=big, k=k)


# ------------------------------------------------------------------- two faces, every engine
ENGINES = ["geometric", "noise, fitted", "noise, raw", "perfect, fitted", "empty, fitted"]


def run_engine(kind: str, photo: Image.Image, estimator, scribbler) -> Drawing:
    if kind == "geometric":
        return photo_to_drawing(photo, estimator=estimator)
    translator = {"noise": lambda: scribbler, "perfect": lambda: PerfectDrawer(photo, estimator),
                  "empty": Paper}[kind.split(",")[0]]()
    return photo_to_drawing(photo, GENERATOR, translator=translator, estimator=estimator,
                            fit=kind.endswith("fitted"))


@pytest.mark.parametrize("kind", ENGINES)
def test_every_engine_draws_one_construction_on_each_of_two_faces(kind, two_faces, estimator,
                                                                  scribbler, geometric_two):
    drawing = run_engine(kind, two_faces, estimator, scribbler)
    assert drawing.image.size == two_faces.size and drawing.engine in (GEOMETRIC, GENERATOR)
    assert len(drawing.heads) == 2
    left, right = sorted(drawing.heads, key=lambda h: h.ball_center[0])
    assert left.ball_center[0] < 400 < 460 < right.ball_center[0]   # one on each face
    for head in drawing.heads:
        want = nearest(head, geometric_two.heads)
        # noise (ink everywhere, nothing a construction could match) would pull the fit
        # out to its square's edges: such a fit is not believed, the landmark pose stays
        assert_on(head, want)
        # and there is ink on that face
        x0, y0, x1, y1 = (int(round(v)) for v in want.box)
        assert ink(drawing.image)[max(y0, 0):y1, max(x0, 0):x1].mean() > 0.01


def test_a_fit_to_a_perfect_generators_lines_finds_the_engines_heads(two_faces, estimator,
                                                                     geometric_two):
    drawer = PerfectDrawer(two_faces, estimator)
    heads = find_heads(two_faces, GENERATOR, translator=drawer, estimator=estimator)
    assert drawer.calls == 2
    for head in heads:
        want = nearest(head, geometric_two.heads)
        for angle in ("yaw", "pitch", "roll"):
            assert abs(getattr(head, angle) - getattr(want, angle)) < 3.0, (angle, head, want)
        # the lines settle place and size: the same construction, to a pixel or two
        assert np.linalg.norm(np.subtract(head.ball_center, want.ball_center)) < 0.015 * width(want)
        assert np.abs(np.subtract(head.box, want.box)).max() < 0.02 * width(want)
        assert abs(head.ball_radius / want.ball_radius - 1) < 0.02


def test_a_generator_that_draws_nothing_leaves_the_landmark_construction(two_faces, estimator,
                                                                         geometric_two):
    drawing = photo_to_drawing(two_faces, GENERATOR, translator=Paper(), estimator=estimator)
    assert drawing.heads == geometric_two.heads
    assert np.array_equal(np.asarray(drawing.image), np.asarray(geometric_two.image))


def test_without_the_fit_the_generators_own_drawing_lies_on_each_faces_square(
        two_faces, estimator, scribbler, geometric_two):
    drawing = photo_to_drawing(two_faces, GENERATOR, translator=scribbler, fit=False,
                               estimator=estimator)
    assert drawing.heads == geometric_two.heads        # the landmark pose, not drawn over
    grey = np.asarray(drawing.image.convert("L"))
    near = np.zeros(grey.shape, bool)
    for face in estimator.analyse(two_faces).faces:
        x0, y0, side = head_square(face.head, face.camera)
        px = side / scribbler.config.image_size      # one pixel of the generator's drawing
        # the noise drawing covers the face's square (but for its resampled edge) ...
        inner = grey[max(0, round(y0 + px)):round(y0 + side - px),
                     max(0, round(x0 + px)):round(x0 + side - px)]
        assert inner.size > 0.8 * side ** 2 and (inner < 250).mean() > 0.9
        # ... and nothing outside it: paper wherever no square lies
        near[max(0, math.floor(y0 - px - 1)):math.ceil(y0 + side + px + 1),
             max(0, math.floor(x0 - px - 1)):math.ceil(x0 + side + px + 1)] = True
    assert (grey[~near] == 255).all() and (~near).mean() > 0.3


# ------------------------------------------------------------------ a tight crop, upscaled
TIGHT_ENGINES = ["geometric", "perfect, fitted", "noise, raw"]


@pytest.mark.parametrize("kind", TIGHT_ENGINES)
def test_a_tight_crop_and_its_4000px_upscale_get_one_head_on_the_face(
        kind, tight, grace_hopper, estimator, scribbler):
    (whole,) = find_heads(grace_hopper, estimator=estimator)
    on_face = scaled(whole, 1.0, tight.box[:2])     # the whole photo's head, in crop pixels
    small = run_engine(kind, tight.crop, estimator, scribbler)
    assert small.image.size == tight.crop.size and len(small.heads) == 1
    (head,) = small.heads
    # on her face (the construction overflows the crop as her head does) ...
    assert np.linalg.norm(centre(head) - centre(on_face)) < 0.1 * width(on_face)
    assert 0 < head.ball_center[0] < tight.crop.width and 0 < head.ball_center[1] < tight.crop.height
    # ... about the face's size: as wide as the cheek-to-cheek landmarks, give or take
    # (the exact size: test_cropping_a_photo_keeps_its_heads_size) ...
    face = estimator.analyse(tight.crop).faces[0]
    assert 0.85 < width(head) / face.width < 1.3
    # ... and the same as the geometric engine's on this crop
    (geometric,) = find_heads(tight.crop, estimator=estimator)
    assert_on(head, geometric, where=0.05, size=0.08)
    # upscaled 4000 px wide: the same head, in the big picture's pixels
    big = run_engine(kind, tight.big, estimator, scribbler)
    assert big.image.size == tight.big.size and len(big.heads) == 1
    assert_on(big.heads[0], scaled(head, tight.k), where=0.03, size=0.05)
    assert abs(big.heads[0].yaw - head.yaw) < 5 and abs(big.heads[0].roll - head.roll) < 5


@pytest.mark.parametrize("pad", [0.0, 0.1, 0.3, 0.6])
def test_cropping_a_photo_keeps_its_heads_size(pad, grace_hopper, estimator):
    """Her head is as big in a crop as in the whole photo, down to a crop to her face's
    landmarks (pad: the margin around them, in face widths)."""
    (whole,) = find_heads(grace_hopper, estimator=estimator)
    box, crop = cut_tight(grace_hopper, estimator, pad)
    heads = find_heads(crop, estimator=estimator)
    assert len(heads) == 1
    assert_on(heads[0], scaled(whole, 1.0, box[:2]), where=0.1, size=0.12)


# ------------------------------------------------------------------------ no face, bad options
@pytest.mark.parametrize("kind", ["geometric", "noise, fitted", "noise, raw"])
def test_a_blank_page_has_no_face_for_any_engine(kind, estimator, scribbler):
    page = Image.new("RGB", (640, 480), "white")
    with pytest.raises(NoFaceError, match="no face found"):
        run_engine(kind, page, estimator, scribbler)


def test_bad_options_are_refused(astronaut, estimator):
    with pytest.raises(ValueError, match="background must be one of"):
        photo_to_drawing(astronaut, background="canvas", estimator=estimator)
    with pytest.raises(ValueError, match="needs its translator"):
        photo_to_drawing(astronaut, GENERATOR, estimator=estimator)


# ---------------------------------------------------------------------------------- JSON
def test_heads_as_json(grace_hopper, estimator):
    drawing = photo_to_drawing(grace_hopper, estimator=estimator)
    (head,) = drawing.heads
    data = json.loads(json.dumps(head.to_json()))
    assert set(data) == {"box", "yaw", "pitch", "roll", "ball_center", "ball_radius",
                         "proportions"}
    assert set(data["proportions"]) == {"middle_third", "lower_third", "width", "measured",
                                        "notes"}
    assert data["proportions"]["measured"] and data["proportions"]["notes"]
    assert len(data["box"]) == 4 and len(data["ball_center"]) == 2
    values = [*data["box"], *data["ball_center"], data["yaw"], data["pitch"], data["roll"],
              data["ball_radius"]]
    assert all(type(v) is float and math.isfinite(v) and round(v, 2) == v for v in values)
    x0, y0, x1, y1 = data["box"]
    bx, by = data["ball_center"]
    assert 0 <= x0 < bx < x1 <= grace_hopper.width and 0 <= y0 < by < y1 <= grace_hopper.height
    assert 0 < 2 * data["ball_radius"] <= max(x1 - x0, y1 - y0) + 0.02
    # a portrait facing the camera: small angles
    assert all(abs(data[a]) < 20 for a in ("yaw", "pitch", "roll"))
    assert np.allclose(data["box"], head.box, atol=0.005)
    assert drawing.to_json() == {"engine": GEOMETRIC, "heads": [data]}


def test_the_angles_turn_as_documented(grace_hopper, estimator):
    """yaw > 0: the face turned towards the picture's right (a mirror flips it); roll > 0:
    the head turned counter-clockwise in the picture."""
    from loomis.train.synthetic import render_photo

    turned = render_photo(scene(0, 9), 256)        # a rendered head turned well to one side
    (head,) = find_heads(turned, estimator=estimator)
    nose = estimator.analyse(turned).faces[0].landmarks[1]
    assert abs(head.yaw) > 20 and np.sign(head.yaw) == np.sign(nose[0] - head.ball_center[0])
    (mirrored,) = find_heads(turned.transpose(Image.FLIP_LEFT_RIGHT), estimator=estimator)
    assert np.sign(mirrored.yaw) == -np.sign(head.yaw) and abs(mirrored.yaw + head.yaw) < 8
    (upright,) = find_heads(grace_hopper, estimator=estimator)
    for angle in (15, -15):                         # PIL: positive is counter-clockwise
        tilted = grace_hopper.rotate(angle, resample=Image.BICUBIC, fillcolor=(128, 128, 128))
        (head,) = find_heads(tilted, estimator=estimator)
        assert abs(head.roll - upright.roll - angle) < 5


def test_the_ball_fields_describe_the_drawn_ball_outline(grace_hopper, estimator):
    """``ball_center``/``ball_radius``: a circle a client can draw over the photo that
    follows the construction's ball as drawn (within 3% of its radius)."""
    from loomis.head import LoomisProportions, construction_lines

    face = estimator.analyse(grace_hopper).faces[0]
    (head,) = find_heads(grace_hopper, estimator=estimator)
    (ball,) = [s for s in construction_lines(face.head, face.camera, LoomisProportions())
               if s.kind == "ball"]
    off = np.abs(np.linalg.norm(ball.points - np.asarray(head.ball_center), axis=1)
                 / head.ball_radius - 1)
    assert off.max() < 0.03


# ------------------------------------------------------------------------------ sketches
class Stamp:
    """A drawing → photo "generator" that shows where it was used: grey border, red inside
    (the border is 1/8 of the side); it keeps what it was given."""

    config = SimpleNamespace(image_size=64)

    def __init__(self) -> None:
        self.seen: list[Image.Image] = []

    def __call__(self, img: Image.Image) -> Image.Image:
        self.seen.append(img)
        out = np.full((64, 64, 3), 90, np.uint8)
        out[8:56, 8:56] = (220, 30, 30)
        return Image.fromarray(out)


def test_the_made_photo_lies_where_the_head_was_drawn():
    canvas = Image.new("RGB", (1200, 900), "white")
    canvas.paste(render_drawing(scene(0, 5), 256).resize((240, 240)), (30, 40))
    drawn = ink(canvas, 191)
    ys, xs = np.nonzero(drawn)
    cx, cy = (xs.min() + xs.max() + 1) / 2, (ys.min() + ys.max() + 1) / 2
    side = max(xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min()) * (1 + 2 * HEAD_MARGIN)

    stamp = Stamp()
    out = sketch_to_photo(canvas, stamp)
    assert out.size == canvas.size and out.mode == "RGB"
    # the generator was shown the drawn head alone, centred, with the generators' margin
    (given,) = stamp.seen
    assert given.size == (64, 64)
    gy, gx = np.nonzero(ink(given, 191))
    assert abs((gx.min() + gx.max()) / 2 - 31.5) < 2 and abs((gy.min() + gy.max()) / 2 - 31.5) < 2
    assert abs(max(np.ptp(gx), np.ptp(gy)) + 1 - 64 / (1 + 2 * HEAD_MARGIN)) < 3
    # and what it made was put back on the square around the drawn head
    rgb = np.asarray(out).astype(int)
    red = (rgb[..., 0] > 180) & (rgb[..., 1] < 80)
    ry, rx = np.nonzero(red)
    assert abs((rx.min() + rx.max() + 1) / 2 - cx) < 3 and abs((ry.min() + ry.max() + 1) / 2 - cy) < 3
    assert abs(np.ptp(rx) + 1 - side * 48 / 64) < 4 and abs(np.ptp(ry) + 1 - side * 48 / 64) < 4
    # elsewhere the made photo's border colour, not the white of the page
    assert (np.abs(rgb[~red] - 90).max(-1) <= 2).mean() > 0.98
    assert abs(red.sum() / (side * 48 / 64) ** 2 - 1) < 0.05


def sketch(size: tuple[int, int]) -> Image.Image:
    """A head drawn in the middle of a white page: a ball, a jaw, a centre line."""
    w, h = size
    page = np.full((h, w, 3), 255, np.uint8)
    r, cx, cy, t = min(w, h) // 6, w // 2, h // 2, max(1, min(w, h) // 100)
    cv2.circle(page, (cx, cy - r // 2), r, (30, 30, 30), t)
    cv2.polylines(page, [np.array([[cx - r, cy], [cx, cy + r * 3 // 2], [cx + r, cy]])], False,
                  (30, 30, 30), t)
    cv2.line(page, (cx, cy - 3 * r // 2), (cx, cy + r * 3 // 2), (30, 30, 30), t)
    return Image.fromarray(page)


@pytest.mark.parametrize("size", [(1200, 900), (300, 500), (64, 64)])
def test_a_generators_photo_has_the_sketchs_size(size):
    out = sketch_to_photo(sketch(size), tiny_translator("BtoA"))
    assert out.size == size and out.mode == "RGB"


def test_nothing_drawn_is_refused():
    blank = Image.new("RGB", (512, 512), "white")
    with pytest.raises(NoDrawingError, match="nothing is drawn"):
        sketch_to_photo(blank, Stamp())
    specks = np.full((512, 512, 3), 255, np.uint8)
    specks[100, 100] = specks[300:302, 40:42] = specks[400, 500] = 0
    with pytest.raises(NoDrawingError):
        sketch_to_photo(Image.fromarray(specks), Stamp())
    assert issubclass(NoDrawingError, ValueError)


# ------------------------------------------------------------------------------ cameras
def test_crop_cameras_keep_points_registered():
    """A square cut from a picture and resized: its camera projects every 3D point where
    the point lands in the cut (so a construction drawn through it sits on the face), and
    a crop of a crop is one crop."""
    cam = Camera(640, 480, 500.0, cx=300.0, cy=250.0)
    rng = np.random.default_rng(0)
    pts = HeadPose(20, 10, 5, 1.0, (1.0, -0.5, -14.0)).to_camera(rng.normal(size=(50, 3)))
    x0, y0, side, size = 200.5, 90.25, 240.0, 96
    crop = crop_camera(cam, x0, y0, side, size)
    assert (crop.width, crop.height) == (size, size)
    np.testing.assert_allclose(crop.project(pts), (cam.project(pts) - [x0, y0]) * size / side,
                               atol=1e-9)
    # back from the crop's pixels to the picture's: the same points
    np.testing.assert_allclose(crop.project(pts) * side / size + [x0, y0], cam.project(pts),
                               atol=1e-9)
    inner = crop_camera(crop, 10.0, 20.0, 48.0, 64)
    direct = crop_camera(cam, x0 + 10 * side / size, y0 + 20 * side / size, 48 * side / size, 64)
    np.testing.assert_allclose(inner.project(pts), direct.project(pts), atol=1e-9)
    # the pixels agree with the camera: cut_square puts a dot where the crop projects it
    photo = np.full((480, 640, 3), 255, np.uint8)
    u, v = (int(round(c)) for c in cam.project(pts[0]))
    photo[v - 3:v + 4, u - 3:u + 4] = 0
    cut = cut_square(photo, (x0, y0, side), size)
    ys, xs = np.nonzero(cut.min(-1) < 128)
    np.testing.assert_allclose([xs.mean(), ys.mean()], crop.project(pts[0]), atol=1.0)


def test_a_pencil_sketch_on_grey_uneven_paper_is_read_as_lines_on_white():
    """A scan or phone photo of a sketch: grey paper, lit from one side, with grain. The
    paper becomes white and the head is framed as on clean paper; on white paper nothing
    changes."""
    from loomis.canvas import white_paper

    clean = Image.new("RGB", (400, 300), "white")
    clean.paste(render_drawing(scene(0, 5), 256).resize((180, 180)), (150, 70))
    a = np.asarray(clean.convert("L"), dtype=np.float32) / 255
    h, w = a.shape
    yy, xx = np.mgrid[0:h, 0:w]
    light = 0.5 + 0.3 * xx / w + 0.1 * yy / h
    grain = np.random.default_rng(0).normal(0, 4, a.shape)
    scan = Image.fromarray(np.clip(a * light * 255 + grain, 0, 255).astype(np.uint8))
    white = white_paper(scan)
    paper = np.asarray(white.convert("L"))[a > 0.99]
    assert np.median(paper) > 235 and (paper > 200).mean() > 0.97
    np.testing.assert_allclose(ink_square(white), ink_square(clean), atol=3)
    # the lines stay lines: dark where they were drawn
    assert np.asarray(white.convert("L"))[a < 0.3].mean() < 110
    assert white_paper(clean).tobytes() == clean.tobytes()
    stamp = Stamp()
    sketch_to_photo(scan, stamp)
    gy, gx = np.nonzero(ink(stamp.seen[0], 191))
    assert abs((gx.min() + gx.max()) / 2 - 31.5) < 3 and abs((gy.min() + gy.max()) / 2 - 31.5) < 3
