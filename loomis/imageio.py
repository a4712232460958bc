"""Images in and out: the one boundary where user-supplied pictures become arrays.

Every entry point (the app, the training scripts, the tests) calls :func:`load_image`
first, so that grayscale, palette, RGBA, CMYK, 16-bit and float images, numpy arrays and
file paths all become the same thing: an 8-bit RGB ``PIL.Image``. Bad input is rejected
here with a message a user can act on, instead of failing deep inside torch or OpenCV.
"""
from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = ["ImageError", "load_image", "to_tensor", "to_image", "ImageLike"]

ImageLike = Union[str, os.PathLike, bytes, Image.Image, np.ndarray]

#: Anything larger is refused outright (a decompression bomb or a mistake).
MAX_PIXELS = 20_000 * 20_000


class ImageError(ValueError):
    """The input is not a usable image; the message says why and what to do."""


def _array_to_pil(arr: np.ndarray) -> Image.Image:
    a = np.asarray(arr)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[-1] not in (3, 4)):
        raise ImageError(
            f"an image array must be HxW, HxWx1, HxWx3 or HxWx4; got shape {a.shape}")
    if a.size == 0:
        raise ImageError("the image array is empty")
    if a.dtype == np.bool_:
        a = a.astype(np.uint8) * 255
    elif a.dtype == np.uint16 or a.dtype == np.int32 or a.dtype == np.uint32:
        top = 65535.0 if a.max(initial=0) > 255 else 255.0
        a = np.clip(a.astype(np.float64) / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
    elif np.issubdtype(a.dtype, np.floating):
        if not np.isfinite(a).all():
            raise ImageError("the image array contains NaN or infinite values")
        lo, hi = float(a.min()), float(a.max())
        if lo >= -1.0 and hi <= 1.0 and lo < 0:      # [-1, 1], as generators output
            a = (a + 1.0) / 2.0
        elif hi > 1.0:                                # 0..255 floats
            a = a / 255.0
        a = np.clip(a * 255.0 + 0.5, 0, 255).astype(np.uint8)
    elif a.dtype != np.uint8:
        a = np.clip(a, 0, 255).astype(np.uint8)
    return Image.fromarray(np.ascontiguousarray(a))


def _to_rgb(img: Image.Image, background: tuple[int, int, int]) -> Image.Image:
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        return _to_rgb(_array_to_pil(np.asarray(img)), background)
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        base = Image.new("RGBA", rgba.size, background + (255,))
        return Image.alpha_composite(base, rgba).convert("RGB")
    return img.convert("RGB")


def load_image(src: ImageLike, *, min_size: int = 1,
               background: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    """Return ``src`` as an 8-bit RGB image, whatever its mode or container.

    Transparent pixels are composited onto ``background`` (white paper by default, which
    is what a drawing with a transparent background means). EXIF orientation is applied,
    so a phone photo is upright. Raises :class:`ImageError` with a readable reason.
    """
    if src is None:
        raise ImageError("no image was given")
    if isinstance(src, np.ndarray):
        img = _array_to_pil(src)
    elif isinstance(src, Image.Image):
        img = src
    elif isinstance(src, (bytes, bytearray)):
        img = _open(io.BytesIO(src), "the uploaded bytes")
    elif isinstance(src, (str, os.PathLike)):
        path = Path(src)
        if not path.is_file():
            raise ImageError(f"{path} is not a file")
        img = _open(path, str(path))
    else:
        raise ImageError(f"cannot read an image from a {type(src).__name__}")
    w, h = img.size
    if w * h > MAX_PIXELS:
        raise ImageError(f"the image is {w}x{h}, larger than the {MAX_PIXELS:,} pixels allowed")
    if min(w, h) < min_size:
        raise ImageError(f"the image is {w}x{h}; at least {min_size}x{min_size} pixels are needed")
    try:
        img = ImageOps.exif_transpose(img)
    except Exception:  # malformed EXIF must not make a readable picture unusable
        pass
    return _to_rgb(img, background)


def _open(fp, name: str) -> Image.Image:
    try:
        img = Image.open(fp)
        img.load()
        return img
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise ImageError(f"{name} is not an image file that can be read ({exc})") from None
    except Image.DecompressionBombError as exc:
        raise ImageError(f"{name} is too large to open safely ({exc})") from None


def to_tensor(img: Image.Image):
    """RGB image → float tensor ``(1, 3, H, W)`` in [-1, 1], the networks' input range."""
    import torch

    arr = np.asarray(img.convert("RGB"), dtype=np.float32)
    t = torch.from_numpy(arr).permute(2, 0, 1).unsqueeze(0)
    return t / 127.5 - 1.0


def to_image(t) -> Image.Image:
    """Tensor ``(1, C, H, W)`` or ``(C, H, W)`` in [-1, 1] → 8-bit RGB image."""
    import torch

    t = t.detach().float().cpu()
    if t.dim() == 4:
        if t.shape[0] != 1:
            raise ValueError(f"to_image takes one image, got a batch of {t.shape[0]}")
        t = t[0]
    if t.shape[0] == 1:
        t = t.expand(3, -1, -1)
    arr = ((t.clamp(-1, 1) + 1.0) * 127.5 + 0.5).to(torch.uint8).permute(1, 2, 0).numpy()
    return Image.fromarray(np.ascontiguousarray(arr))


def as_float(img) -> np.ndarray:
    """Any supported image → float64 array in [0, 1], ``H×W`` or ``H×W×C``."""
    if isinstance(img, Image.Image):
        img = np.asarray(img.convert("RGB") if img.mode not in ("L", "RGB") else img)
    if type(img).__module__.startswith("torch"):     # a tensor (torch imported only then)
        t = img.detach().float().cpu()
        if t.dim() == 4:
            if t.shape[0] != 1:
                raise ValueError("give one image at a time, not a batch")
            t = t[0]
        if t.dim() != 3:
            raise ValueError(f"a tensor image must be (C, H, W), got {tuple(t.shape)}")
        return ((t.clamp(-1, 1) + 1) / 2).permute(1, 2, 0).numpy().astype(np.float64)
    a = np.asarray(img)
    if a.dtype == np.uint8:
        return a.astype(np.float64) / 255.0
    if a.dtype == np.bool_:
        return a.astype(np.float64)
    a = a.astype(np.float64)
    if a.size and (a.min() < 0 or a.max() > 1):
        raise ValueError("float images must lie in [0, 1] (pass [-1, 1] tensors as tensors)")
    return a


def gray(a: np.ndarray) -> np.ndarray:
    """Luma of an ``H×W×C`` float image (``H×W`` passes through)."""
    if a.ndim == 3:
        if a.shape[2] == 1:
            return a[..., 0]
        return a[..., :3] @ np.array([0.299, 0.587, 0.114])
    return a


def binarize(img, threshold: float = 0.5) -> np.ndarray:
    """Line pixels of a drawing: True where the gray level is below ``threshold``."""
    return gray(as_float(img)) < threshold
