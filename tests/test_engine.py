"""The geometric engine: the construction lands on the face, in every background."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from loomis.engine import live_frame, pencil_sketch
from loomis.pipeline import photo_to_drawing
from loomis.pose import NoFaceError, PoseEstimator

pytest.importorskip("skimage.data")  # the astronaut photo (conftest) comes from it


def engine_picture(image, **options):
    """The geometric engine's picture (faded photo under the lines unless told)."""
    return photo_to_drawing(image, **{"background": "faded", **options}).image


@pytest.fixture(scope="module")
def face_box(estimator, astronaut):
    return estimator.estimate(astronaut)[0].box


def _ink(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert("L")) < 200


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask)
    return xs.min(), ys.min(), xs.max(), ys.max()


@pytest.mark.parametrize("background", ["faded", "pencil", "paper", "photo"])
def test_every_background_gives_an_rgb_image_of_the_photo_size(estimator, astronaut,
                                                               background):
    out = engine_picture(astronaut, background=background, estimator=estimator)
    assert out.mode == "RGB" and out.size == astronaut.size
    assert not np.array_equal(np.asarray(out), np.asarray(astronaut))


def test_construction_on_paper_sits_on_the_face(estimator, astronaut, face_box):
    out = engine_picture(astronaut, background="paper", estimator=estimator)
    ink = _ink(out)
    assert 0.005 < ink.mean() < 0.2
    x0, y0, x1, y1 = _bbox(ink)
    fx0, fy0, fx1, fy1 = face_box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    assert fx0 < cx < fx1 and fy0 - 0.3 * (fy1 - fy0) < cy < fy1
    # the drawing is head-sized: wider than the face's landmarks, but not by much
    assert 0.9 * (fx1 - fx0) < x1 - x0 < 2.0 * (fx1 - fx0)
    assert y1 < fy1 + 0.25 * (fy1 - fy0)          # ends near the chin
    # the ball reaches above the landmarks (the cranium), so ink exists above the face
    assert y0 < fy0


def test_mirrored_photo_gives_mirrored_drawing(estimator, astronaut):
    a = _ink(engine_picture(astronaut, background="paper", estimator=estimator,
                             hidden="omit"))
    b = _ink(engine_picture(astronaut.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
                             background="paper", estimator=estimator, hidden="omit"))
    b = b[:, ::-1]
    import cv2

    grow = lambda m: cv2.dilate(m.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
    overlap = (grow(a) & b).sum() / b.sum()
    assert overlap > 0.85


def test_features_and_hidden_line_options_change_the_ink(estimator, astronaut):
    plain = _ink(engine_picture(astronaut, background="paper", estimator=estimator))
    feats = _ink(engine_picture(astronaut, background="paper", estimator=estimator,
                                 features=True))
    omit = _ink(engine_picture(astronaut, background="paper", estimator=estimator,
                                hidden="omit"))
    assert feats.sum() > 1.1 * plain.sum()
    assert omit.sum() < plain.sum()


def test_off_centre_face_is_drawn_where_it_is(estimator, astronaut):
    canvas = Image.new("RGB", (1100, 900), (90, 100, 110))
    canvas.paste(astronaut, (588, 388))
    face = estimator.estimate(canvas)[0]
    ink = _ink(engine_picture(canvas, background="paper", estimator=estimator))
    x0, y0, x1, y1 = _bbox(ink)
    fx0, fy0, fx1, fy1 = face.box
    assert fx0 < (x0 + x1) / 2 < fx1 and fy0 - 0.3 * (fy1 - fy0) < (y0 + y1) / 2 < fy1


def test_every_face_gets_a_construction(estimator, astronaut):
    canvas = Image.new("RGB", (1024, 512), (255, 255, 255))
    canvas.paste(astronaut, (0, 0))
    canvas.paste(astronaut, (512, 0))
    ink = _ink(engine_picture(canvas, background="paper", estimator=estimator))
    assert ink[:, :512].sum() > 0.5 * ink[:, 512:].sum() > 0


def test_no_face_raises_a_clear_error(estimator):
    with pytest.raises(NoFaceError, match="no face found"):
        engine_picture(np.full((200, 300, 3), 128, np.uint8), estimator=estimator)
    assert issubclass(NoFaceError, ValueError)


def test_bad_options_are_rejected(estimator, astronaut):
    with pytest.raises(ValueError, match="background"):
        engine_picture(astronaut, background="chalk", estimator=estimator)
    with pytest.raises(ValueError, match="hidden"):
        engine_picture(astronaut, hidden="dotted", estimator=estimator)


def test_grayscale_photo_in_rgb_drawing_out(estimator, astronaut):
    out = engine_picture(astronaut.convert("L"), estimator=estimator)
    assert out.mode == "RGB" and out.size == astronaut.size


def test_live_frame_draws_or_passes_through(astronaut):
    frame = np.asarray(astronaut.resize((640, 480)))
    with PoseEstimator(static_image_mode=False) as video:
        out = live_frame(frame, video, features=True)
        assert out.shape == frame.shape and out.dtype == np.uint8
        assert (np.abs(out.astype(int) - frame).sum(-1) > 60).mean() > 0.005
        blank = np.full((480, 640, 3), 90, np.uint8)
        assert live_frame(blank, video) is blank
        assert live_frame(None, video) is None
        odd = np.zeros((480, 640), np.float32)
        assert live_frame(odd, video) is odd
        huge = np.asarray(astronaut.resize((6000, 6000)))      # scaled down, then drawn
        out = live_frame(huge, video, timestamp_ms=10_000)
        assert out.shape == (1280, 1280, 3)


def test_pencil_sketch_keeps_edges_and_whitens_flat_areas():
    img = np.full((100, 100, 3), 150, np.uint8)
    img[:, 50:] = 40
    out = pencil_sketch(img)
    assert out.shape == img.shape
    assert out[50, 10].min() > 200 and out[50, 90].min() > 150   # flat: near paper
    assert out[50, 48:53].min() < out[50, 10].min() - 40          # the edge is drawn
