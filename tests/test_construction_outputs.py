"""What a user takes away besides the picture: the construction step by step (and as a
GIF), the SVG with its layers, the subject's own proportions, and the framing on paper."""
from __future__ import annotations

import io
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from PIL import Image

from loomis.head import LoomisProportions, StrokeKinds
from loomis.pipeline import frame, photo_to_drawing
from loomis.proportions import FaceProportions, measure
from loomis.steps import STEPS, construction_steps, steps_gif
from loomis.svg import drawing_svg

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def hopper_drawing(grace_hopper, estimator):
    return photo_to_drawing(grace_hopper, estimator=estimator, features=True, framing="heads")


def _ink(img: Image.Image, level: int = 128) -> int:
    return int((np.asarray(img.convert("L")) < level).sum())


# -- step by step -------------------------------------------------------------------------

def test_the_steps_cover_every_construction_line_once_in_the_artists_order():
    kinds = [k for _, ks in STEPS for k in ks]
    assert sorted(kinds) == sorted(StrokeKinds) and len(set(kinds)) == len(kinds)
    titles = [t for t, _ in STEPS]
    assert titles[0] == "The ball" and titles[-1] == "The features"
    assert titles.index("The side plane") < titles.index("The centre line") \
        < titles.index("The brow line and hairline") < titles.index("The nose and chin lines") \
        < titles.index("The jaw") < titles.index("The ear")


def test_each_step_adds_its_lines_and_the_last_is_the_finished_drawing(hopper_drawing):
    steps = construction_steps(hopper_drawing)
    assert [s.number for s in steps] == list(range(1, len(STEPS) + 1))
    assert steps[0].caption == "1. The ball"
    assert all(s.image.size == hopper_drawing.image.size for s in steps)
    assert np.array_equal(np.asarray(steps[-1].image), np.asarray(hopper_drawing.image))
    # each step's picture has more lines on it than the one before
    ink = [_ink(s.image, 250) for s in steps]
    assert all(b > a for a, b in zip(ink, ink[1:])), ink
    # the first step is the ball alone: a ring around the ball's centre
    head = hopper_drawing.heads[0]
    x0, y0 = hopper_drawing.crop[:2]
    ys, xs = np.nonzero(np.asarray(steps[0].image.convert("L")) < 128)
    r = np.hypot(xs + x0 - head.ball_center[0], ys + y0 - head.ball_center[1])
    assert np.median(np.abs(r - head.ball_radius)) < 3


def test_the_steps_animate_as_a_looping_gif(hopper_drawing):
    steps = construction_steps(hopper_drawing)
    gif = Image.open(io.BytesIO(steps_gif(steps, seconds=0.5, hold=2)))
    assert gif.format == "GIF" and gif.n_frames == len(steps) and gif.info["loop"] == 0
    gif.seek(gif.n_frames - 1)
    assert gif.info["duration"] == 2000 and gif.size == steps[-1].image.size


def test_a_generators_raw_lines_have_no_steps(grace_hopper, estimator):
    from loomis.pipeline import Drawing
    raw = Drawing(grace_hopper, [], "pix2pix-photo2drawing")
    with pytest.raises(ValueError, match="no construction"):
        construction_steps(raw)


# -- SVG ----------------------------------------------------------------------------------

def test_the_svg_has_a_layer_each_for_visible_hidden_and_features_in_photo_pixels(hopper_drawing):
    root = ET.fromstring(drawing_svg(hopper_drawing))
    x0, y0, x1, y1 = hopper_drawing.crop
    assert root.get("viewBox") == f"{x0} {y0} {x1 - x0} {y1 - y0}"
    layers = {g.get("id"): g for g in root.iter(f"{SVG}g")}
    assert set(layers) == {"surface", "visible", "hidden", "features"}
    assert layers["hidden"].get("stroke-dasharray")              # dashed, as in the picture
    # every construction line is in the visible or the hidden layer, at its photo pixels
    lines = [pl for k in ("visible", "hidden") for pl in layers[k].iter(f"{SVG}polyline")]
    kinds = {pl.get("class") for pl in lines}
    assert {"ball", "brow", "center", "nose", "chin", "jaw", "ear"} <= kinds
    ball = next(pl for pl in layers["visible"].iter(f"{SVG}polyline") if pl.get("class") == "ball")
    pts = np.array([[float(v) for v in p.split(",")] for p in ball.get("points").split()])
    head = hopper_drawing.heads[0]
    r = np.hypot(*(pts - head.ball_center).T)
    assert np.abs(r - head.ball_radius).max() < 0.05 * head.ball_radius
    assert len(list(layers["features"].iter(f"{SVG}polyline"))) > 10
    # on paper: white paper under the lines, no embedded photo
    assert layers["surface"].find(f"{SVG}rect") is not None
    assert layers["surface"].find(f"{SVG}image") is None


def test_over_a_photo_the_svg_embeds_it_unless_asked_not_to(grace_hopper, estimator):
    drawing = photo_to_drawing(grace_hopper, estimator=estimator, background="photo",
                               hidden="omit")
    root = ET.fromstring(drawing_svg(drawing))
    surface = root.find(f"{SVG}g[@id='surface']")
    image = surface.find(f"{SVG}image")
    assert image is not None and image.get("{http://www.w3.org/1999/xlink}href").startswith(
        "data:image/png;base64,")
    assert root.get("viewBox") == f"0 0 {grace_hopper.width} {grace_hopper.height}"
    hidden = root.find(f"{SVG}g[@id='hidden']")
    assert len(list(hidden)) == 0                      # hidden lines omitted, as drawn
    bare = ET.fromstring(drawing_svg(drawing, photo=False))
    assert bare.find(f"{SVG}g[@id='surface']/{SVG}image") is None


# -- the subject's own proportions --------------------------------------------------------

def _stretch_below(img: Image.Image, y: int, factor: float) -> Image.Image:
    """``img`` with everything below row ``y`` stretched downwards by ``factor``."""
    w, h = img.size
    below = img.crop((0, y, w, h))
    tall = below.resize((w, round((h - y) * factor)), Image.LANCZOS)
    out = Image.new("RGB", (w, y + tall.height))
    out.paste(img.crop((0, 0, w, y)), (0, 0))
    out.paste(tall, (0, y))
    return out


def test_a_longer_lower_face_is_measured_drawn_and_described(grace_hopper, estimator):
    """Grace Hopper's photo with the face below her nose stretched 30% longer: the lower
    third reads longer, the note says so, and the drawn chin line follows her chin
    down, where the canonical construction lags behind."""
    (face,) = estimator.analyse(grace_hopper).require()
    nose_y = int(face.landmarks[2, 1])                       # the nose's base (subnasale)
    stretched = _stretch_below(grace_hopper, nose_y, 1.3)
    (longer,) = estimator.analyse(stretched).require()
    before, after = measure(face), measure(longer)
    assert after.lower / before.lower > 1.1
    assert after.middle == pytest.approx(before.middle, abs=0.04)
    assert any(n.startswith("lower third") and "longer" in n for n in after.notes())

    def chin_line(img, own):
        d = photo_to_drawing(img, estimator=estimator, own_proportions=own)
        return float(np.median(np.concatenate([s.points[:, 1] for s in d.strokes
                                               if s.kind == "chin"])))
    moved = longer.landmarks[152, 1] - face.landmarks[152, 1]     # the chin, in pixels
    own = chin_line(stretched, True) - chin_line(grace_hopper, True)
    canon = chin_line(stretched, False) - chin_line(grace_hopper, False)
    assert own == pytest.approx(moved, abs=3) and canon < moved - 8


def test_the_canon_is_the_construction_of_an_unmeasured_face():
    canon = FaceProportions()
    assert canon.apply() == LoomisProportions() and canon.notes() == ["close to the canon"]
    longer = FaceProportions(lower=1.2).apply()
    assert longer.chin_y == pytest.approx(-1.0 - 1.2) and longer.nose_y == -1.0


def test_proportions_read_the_same_on_a_mirrored_photo(grace_hopper, estimator):
    (face,) = estimator.analyse(grace_hopper).require()
    (mirrored,) = estimator.analyse(grace_hopper.transpose(Image.Transpose.FLIP_LEFT_RIGHT)).require()
    a, b = measure(face), measure(mirrored)
    for name in ("middle", "lower", "width"):
        assert getattr(a, name) == pytest.approx(getattr(b, name), abs=0.03)


def test_a_face_turned_far_keeps_the_canon():
    from types import SimpleNamespace
    turned = SimpleNamespace(yaw=70.0, pitch=0.0)
    assert measure(turned) == FaceProportions(measured=False)
    assert "canon is drawn" in measure(turned).notes()[0]


# -- framing ------------------------------------------------------------------------------

def test_on_paper_the_drawing_is_cropped_to_the_heads_and_may_reach_past_the_photo(
        grace_hopper, estimator):
    small = Image.new("RGB", (1400, 1000), (200, 200, 200))
    small.paste(grace_hopper.resize((384, 450)), (980, 520))      # a face near a corner
    whole = photo_to_drawing(small, estimator=estimator, framing="photo")
    cropped = photo_to_drawing(small, estimator=estimator, framing="auto")
    assert whole.image.size == small.size
    (head,) = cropped.heads
    x0, y0, x1, y1 = cropped.crop
    bw, bh = head.box[2] - head.box[0], head.box[3] - head.box[1]
    assert x0 < head.box[0] and x1 > head.box[2] and y0 < head.box[1] and y1 > head.box[3]
    assert (x1 - x0) < 1.3 * bw and (y1 - y0) < 1.3 * bh         # the head fills the page
    assert cropped.image.size == (x1 - x0, y1 - y0)
    assert _ink(cropped.image) == pytest.approx(_ink(whole.image), rel=0.02)  # same lines
    # a box past the photo's edge: on paper kept, over the photo clipped to it
    assert frame([head], (300, 300), "heads", "paper")[2] > 300
    assert frame([head], (300, 300), "heads", "photo")[2] == 300
    assert frame([head], (300, 300), "auto", "photo") == (0, 0, 300, 300)
    with pytest.raises(ValueError, match="framing"):
        frame([head], (300, 300), "tight", "paper")
