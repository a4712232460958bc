"""The library's front door, ``import loomis``: what the README shows a user."""
from __future__ import annotations

import numpy as np
import pytest

import loomis


def test_a_photo_becomes_a_drawing_and_its_heads(grace_hopper):
    drawing = loomis.photo_to_drawing(grace_hopper)
    assert drawing.image.size == grace_hopper.size and drawing.engine == "geometric"
    heads = loomis.find_heads(grace_hopper)
    assert len(heads) == len(drawing.heads) == 1
    assert abs(heads[0].yaw) < 10 and abs(heads[0].roll) < 10   # a near-frontal portrait
    x0, y0, x1, y1 = heads[0].box
    assert 0 <= x0 < x1 <= grace_hopper.width and y1 > y0


def test_a_generator_by_family_and_back_to_a_photo(astronaut):
    drawing = loomis.photo_to_drawing(astronaut, "pix2pix", background="paper")
    assert len(drawing.heads) == 1 and drawing.engine == "pix2pix-photo2drawing"
    ink = np.asarray(drawing.image.convert("L")) < 200
    assert 0.003 < ink.mean() < 0.2                       # thin lines on white paper
    photo = loomis.sketch_to_photo(drawing.image)
    assert photo.size == drawing.image.size
    assert len(loomis.find_heads(photo)) == 1            # it reads as a face again


def test_an_unknown_engine_names_the_choices(astronaut):
    with pytest.raises(ValueError, match="'geometric' or one of pix2pix, cyclegan"):
        loomis.photo_to_drawing(astronaut, "pix2pix-photo2drawing")


def test_the_library_gives_the_steps_and_the_svg_of_a_drawing(grace_hopper, estimator):
    import xml.etree.ElementTree as ET
    drawing = loomis.photo_to_drawing(grace_hopper, estimator=estimator, framing="heads")
    steps = loomis.construction_steps(drawing)
    assert [s.title for s in steps][:3] == ["The ball", "The side plane", "The centre line"]
    root = ET.fromstring(loomis.drawing_svg(drawing))
    assert root.get("width") == str(drawing.image.width)
    assert drawing.heads[0].proportions.notes()
