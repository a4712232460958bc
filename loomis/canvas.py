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

from loomis.imageio import ImageError, load_image, load_image_with_size

PAPER = (255, 255, 255)
#: The grey of a firm line in the models' training drawings (graphite on white).
LINE_TONE = 40 / 255
#: Canvas pictures are scaled to at most this side before any work (the generators draw
#: at 128–256 px; the app's canvas is 512).
MAX_SIDE = 2048
_PARTS = ("background", "layers", "composite")


class EmptyCanvasError(ImageError):
    """Nothing was drawn on the canvas."""


def _part(value, max_side: int | None) -> tuple[np.ndarray, tuple[int, int]] | None:
    """A background, layer or composite (file path, bytes, PIL image or array) through the
    input guard, as ``H×W×4`` uint8 with its transparency, and its size before scaling."""
    if value is None:
        return None
    img, size = load_image_with_size(value, max_side=max_side, background=None)
    return np.asarray(img), size


def _is_flat(rgba: np.ndarray, tol: int = 6) -> bool:
    """One colour everywhere once laid on white paper (a theme fill, a blank or fully
    transparent picture), not a drawing; strokes on a transparent ground are a drawing."""
    img = Image.fromarray(np.ascontiguousarray(rgba), "RGBA")
    paper = Image.new("RGB", img.size, PAPER)
    paper.paste(img, (0, 0), img)
    return all(hi - lo <= tol for lo, hi in paper.getextrema())


def _over(paper: Image.Image, layer: np.ndarray) -> None:
    """Alpha-composite ``layer`` (RGBA array) onto ``paper`` (RGB, in place), cropped to
    fit; Pillow blends in place, with no full-size float copies."""
    w, h = paper.size
    img = Image.fromarray(np.ascontiguousarray(layer[:h, :w]), "RGBA")
    paper.paste(img, (0, 0), img)


def _most_common_colour(rgb: np.ndarray) -> np.ndarray:
    packed = (rgb[..., 0].astype(np.uint32) << 16) | (rgb[..., 1].astype(np.uint32) << 8) | rgb[..., 2]
    values, counts = np.unique(packed.ravel(), return_counts=True)
    top = int(values[counts.argmax()])
    return np.array([top >> 16, (top >> 8) & 255, top & 255], np.int16)


def _canvas_parts(value: dict, max_side: int | None) -> list[tuple[str, np.ndarray]]:
    """The dict's pictures, each through the guard, all at the scale of the first one (a
    canvas's parts share one size; a larger part is scaled alike, then cropped)."""
    if not any(k in value for k in _PARTS):
        raise ImageError("the canvas value is a dict without background, layers or "
                         "composite: not a drawing canvas's value")
    layers = value.get("layers")
    if layers is None:
        layers = []
    if not isinstance(layers, (list, tuple)):
        raise ImageError(f"the canvas's layers must be a list of images, not "
                         f"{type(layers).__name__}")
    named = [("background", value.get("background")), *(("layer", x) for x in layers),
             ("composite", value.get("composite"))]
    parts = [(what, _part(x, max_side)) for what, x in named]
    parts = [(what, p) for what, p in parts if p is not None]
    if not parts:
        return []
    ref_arr, (ref_w, _) = parts[0][1]
    scale = ref_arr.shape[1] / ref_w
    out = []
    for what, (arr, (w, h)) in parts:
        want = (max(1, round(w * scale)), max(1, round(h * scale)))
        if (arr.shape[1], arr.shape[0]) != want:     # scaled by another factor than the first
            arr = np.asarray(Image.fromarray(arr).resize(want, Image.LANCZOS))
        out.append((what, arr))
    return out


def canvas_to_drawing(value, *, max_side: int | None = MAX_SIDE) -> Image.Image:
    """The canvas as an RGB drawing on white paper.

    Accepts a Sketchpad/ImageEditor value (a dict whose ``background``, ``layers`` and
    ``composite`` are file paths, bytes, PIL images or arrays), or a plain image (upload).
    Every picture goes through :func:`loomis.imageio.load_image`'s guard and is scaled to
    at most ``max_side`` before any work. Raises :class:`EmptyCanvasError` when nothing
    was drawn (an empty or theme-filled canvas) and :class:`~loomis.imageio.ImageError`
    for anything that is not an image.
    """
    if value is None:
        raise EmptyCanvasError("the canvas is empty: draw a head (or upload a drawing) first")
    if not isinstance(value, dict):
        img = load_image(value, max_side=max_side)       # transparency onto white paper
        if _is_flat(np.asarray(img.convert("RGBA"))):
            raise EmptyCanvasError("the drawing is blank (one flat colour): draw some lines first")
        return img
    parts = _canvas_parts(value, max_side)
    if not parts:
        raise EmptyCanvasError("the canvas is empty: draw a head (or upload a drawing) first")
    background = parts[0][1] if parts[0][0] == "background" else None
    layers = [arr for what, arr in parts if what == "layer"]
    composite = parts[-1][1] if parts[-1][0] == "composite" else None
    h, w = parts[0][1].shape[:2]
    paper = Image.new("RGB", (w, h), PAPER)
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
        fill = _most_common_colour(rgb)
        comp = composite.copy()
        comp[(np.abs(rgb.astype(np.int16) - fill).max(-1) <= 6)] = (*PAPER, 255)
        _over(paper, comp)
        drawn = True
    if not drawn:
        raise EmptyCanvasError("the canvas is empty: draw a head (or upload a drawing) first")
    return paper


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
