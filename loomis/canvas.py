"""A drawing canvas's value → the drawing on white paper that the sketch → photo models expect.

Why this exists: Gradio's ``Sketchpad`` returns ``{"background", "layers", "composite"}``,
and its ``composite`` is painted on the *page theme's* canvas colour (#333333 in dark
mode), while the generators were trained on black lines on white paper. So the layers
(RGBA, transparent where nothing was drawn) are composited onto white here, and the
background is used only when it carries a picture (an uploaded drawing), never when it
is a flat theme fill.
"""
from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

from loomis.imageio import ImageError, load_image

PAPER = (255, 255, 255)
#: The grey of a firm line in the models' training drawings (graphite on white).
LINE_TONE = 40 / 255


class EmptyCanvasError(ImageError):
    """Nothing was drawn on the canvas."""


def _rgba(value) -> np.ndarray | None:
    """A layer/background (numpy, PIL or a file path) as ``H×W×4`` uint8, or None."""
    if value is None:
        return None
    if isinstance(value, (str, bytes)) or hasattr(value, "__fspath__"):
        value = Image.open(value)
    if isinstance(value, Image.Image):
        return np.asarray(value.convert("RGBA"))
    arr = np.asarray(value)
    if arr.size == 0:
        return None
    if arr.dtype != np.uint8:
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    if arr.ndim == 2:
        arr = np.stack([arr] * 3, -1)
    if arr.shape[-1] == 3:
        arr = np.concatenate([arr, np.full(arr.shape[:2] + (1,), 255, np.uint8)], -1)
    return arr


def _is_flat(rgba: np.ndarray, tol: int = 6) -> bool:
    """One colour (or fully transparent) everywhere: a theme fill, not a picture."""
    visible = rgba[..., 3] > 8
    if not visible.any():
        return True
    rgb = rgba[..., :3][visible].astype(np.int16)
    return bool((rgb.max(0) - rgb.min(0)).max() <= tol)


def _over(base: np.ndarray, layer: np.ndarray) -> np.ndarray:
    """Alpha-composite ``layer`` (RGBA) onto ``base`` (RGB float), cropped/padded to fit."""
    h, w = base.shape[:2]
    layer = layer[:h, :w]
    a = layer[..., 3:4].astype(np.float32) / 255
    region = base[:layer.shape[0], :layer.shape[1]]
    region[:] = region * (1 - a) + layer[..., :3].astype(np.float32) * a
    return base


def canvas_to_drawing(value) -> Image.Image:
    """The canvas as an RGB drawing on white paper.

    Accepts a Sketchpad/ImageEditor value (dict), or a plain image (upload). Raises
    :class:`EmptyCanvasError` when nothing was drawn (an empty or theme-filled canvas) and
    :class:`~loomis.imageio.ImageError` for anything that is not an image.
    """
    if value is None:
        raise EmptyCanvasError("the canvas is empty: draw a head (or upload a drawing) first")
    if not isinstance(value, dict):
        img = load_image(value)
        if _is_flat(np.asarray(img.convert("RGBA"))):
            raise EmptyCanvasError("the drawing is blank (one flat colour): draw some lines first")
        return img
    background = _rgba(value.get("background"))
    layers = [x for x in (_rgba(layer) for layer in (value.get("layers") or [])) if x is not None]
    composite = _rgba(value.get("composite"))
    shapes = [x.shape[:2] for x in [background, *layers, composite] if x is not None]
    if not shapes:
        raise EmptyCanvasError("the canvas is empty: draw a head (or upload a drawing) first")
    h, w = shapes[0]
    paper = np.empty((h, w, 3), np.float32)
    paper[:] = PAPER
    drawn = False
    if background is not None and not _is_flat(background):
        _over(paper, background)      # an uploaded drawing under the strokes
        drawn = True
    for layer in layers:
        if (layer[..., 3] > 8).any():
            _over(paper, layer)
            drawn = True
    if not layers and composite is not None and not drawn and not _is_flat(composite):
        # no layers given (an older client): the composite's most common colour is the
        # theme's canvas, which becomes paper
        rgb = composite[..., :3]
        flat = rgb.reshape(-1, 3)
        colours, counts = np.unique(flat, axis=0, return_counts=True)
        fill = colours[counts.argmax()]
        comp = composite.copy()
        comp[(np.abs(rgb.astype(np.int16) - fill).max(-1) <= 6)] = (*PAPER, 255)
        _over(paper, comp)
        drawn = True
    if not drawn:
        raise EmptyCanvasError("the canvas is empty: draw a head (or upload a drawing) first")
    return Image.fromarray(np.round(paper).astype(np.uint8))


def white_paper(drawing: Image.Image) -> Image.Image:
    """A drawing's paper made white and even, its lines kept: a scan or phone photo of a
    pencil sketch has grey, unevenly lit paper, which the models (trained on lines on
    white) and the search for the drawn head would take for ink.

    The paper's brightness is estimated everywhere by a grey closing (a maximum filter
    wider than any line, then its minimum) blurred smooth, and the picture is divided by
    it; what is left is darkened so the firmest lines are graphite-dark. A drawing
    already on white comes back unchanged."""
    gray = np.asarray(drawing.convert("L"), dtype=np.float32)
    if float(np.median(gray)) >= 250.0:             # white paper already: leave it alone
        return drawing.convert("RGB")
    h, w = gray.shape
    k = max(3, int(min(h, w) / 25) | 1)            # wider than a pencil line at this size
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    paper = cv2.morphologyEx(gray, cv2.MORPH_CLOSE, kernel)
    paper = cv2.GaussianBlur(paper, (0, 0), k)
    flat = np.clip(gray / np.maximum(paper, 1.0), 0.0, 1.0)
    # lines as dark as the models' graphite: a line half as bright as its paper is a firm
    # pencil line, not a faint one; only darkened, never lightened
    ink = flat[flat < 0.85]
    if ink.size >= 50:
        darkest = float(np.percentile(ink, 5))
        if darkest > LINE_TONE:
            flat = 1.0 - (1.0 - flat) * (1.0 - LINE_TONE) / (1.0 - darkest)
    out = np.round(np.clip(flat, 0.0, 1.0) * 255).astype(np.uint8)
    return Image.fromarray(np.stack([out] * 3, -1))
