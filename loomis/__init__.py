"""Loomis: a portrait photo → Andrew Loomis's head construction drawn in each face's pose,
and a construction sketch → a photo of a head.

    import loomis

    drawing = loomis.photo_to_drawing("portrait.jpg")             # the geometric engine
    drawing.image.save("construction.png")
    drawing = loomis.photo_to_drawing("portrait.jpg", "pix2pix")  # a generator, fitted
    for head in loomis.find_heads("portrait.jpg"):                # largest face first
        print(head.yaw, head.pitch, head.roll, head.proportions.notes())
    for step in loomis.construction_steps(drawing):               # ball, side plane, ...
        step.image.save(f"step_{step.number}.png")
    open("construction.svg", "w").write(loomis.drawing_svg(drawing))   # layers
    loomis.sketch_to_photo("sketch.png").save("photo.png")        # pix2pix, drawing → photo

This is what the app calls. Underneath: :mod:`loomis.pipeline` (the one path a picture
takes), :mod:`loomis.steps` and :mod:`loomis.svg` (a drawing step by step, and as vectors), :mod:`loomis.pose` (faces and their pose), :mod:`loomis.registry` (which
generator, from the Hub or ``checkpoints/``) and :mod:`loomis.runtime` (the generators in
ONNX Runtime). The training kit (``loomis.train.nets``, ``loomis.train.models``, ``train/``) needs
``requirements-train.txt``.
"""
from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from PIL import Image

    from loomis.pipeline import Drawing, Head
    from loomis.registry import ModelRegistry
    from loomis.steps import Step

__all__ = ["photo_to_drawing", "sketch_to_photo", "find_heads", "construction_steps",
           "drawing_svg", "GENERATORS"]

#: The learned models by family; the geometric engine is "geometric".
GENERATORS = ("pix2pix", "cyclegan")

_models: "ModelRegistry | None" = None
_lock = threading.Lock()


def _registry(models: "ModelRegistry | None") -> "ModelRegistry":
    global _models
    if models is not None:
        return models
    with _lock:
        if _models is None:
            from loomis.registry import ModelRegistry

            _models = ModelRegistry()
        return _models


def _engine(family: str, direction: str) -> str:
    if family not in GENERATORS:
        raise ValueError(f"unknown engine {family!r}: choose 'geometric' or one of "
                         f"{', '.join(GENERATORS)}")
    return f"{family}-{direction}"


def photo_to_drawing(image: Any, engine: str = "geometric", *,
                     models: "ModelRegistry | None" = None, **options) -> "Drawing":
    """Every face of a photo (path, bytes, PIL image or array) drawn as a Loomis
    construction in its own pose: ``.image`` and ``.heads``. ``engine``: "geometric", or
    a generator family ("pix2pix", "cyclegan") whose lines the construction is fitted to.
    ``options`` go to :func:`loomis.pipeline.photo_to_drawing` (background, style,
    hidden, features, fit, estimator, proportions, own_proportions, framing)."""
    from loomis.pipeline import GEOMETRIC
    from loomis.pipeline import photo_to_drawing as draw

    if engine == GEOMETRIC:
        return draw(image, GEOMETRIC, **options)
    name = _engine(engine, "photo2drawing")
    return draw(image, name, translator=_registry(models).translator(name), **options)


def find_heads(image: Any, engine: str = "geometric", **options) -> "list[Head]":
    """The construction of each face: box, yaw, pitch, roll, ball centre and radius, in
    the photo's pixels and degrees (largest face first)."""
    return photo_to_drawing(image, engine, **options).heads


def sketch_to_photo(drawing: Any, engine: str = "pix2pix", *,
                    models: "ModelRegistry | None" = None) -> "Image.Image":
    """A drawn head (a construction, a sketch, a scan or phone photo of one) → a photo
    of the same size, by a generator family ("pix2pix" or "cyclegan")."""
    from loomis.pipeline import sketch_to_photo as make

    return make(drawing, _registry(models).translator(_engine(engine, "drawing2photo")))


def construction_steps(drawing: "Drawing") -> "list[Step]":
    """A drawing's construction in the order an artist draws it (ball, side plane, centre
    line, brow, nose and chin lines, jaw, ear, features): ``.number``, ``.title``,
    ``.image`` each. :func:`loomis.steps.steps_gif` animates them."""
    from loomis.steps import construction_steps as steps

    return steps(drawing)


def drawing_svg(drawing: "Drawing", photo: bool | None = None) -> str:
    """A drawing's construction as SVG with layers (visible, hidden, features) in the
    photo's pixels, over the embedded photo (``photo``; by default when not on paper)."""
    from loomis.svg import drawing_svg as svg

    return svg(drawing, photo)
