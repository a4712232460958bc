"""Images in and out: the one boundary where user-supplied pictures become arrays.

Every entry point (the app, the training scripts, the tests) calls :func:`load_image`
first, so that grayscale, palette, RGBA, CMYK, 16-bit and float images, numpy arrays and
file paths all become the same thing: an 8-bit RGB ``PIL.Image``. Bad input is rejected
here with a message a user can act on, instead of failing deep inside torch or OpenCV.

Memory is bounded before any pixel is decoded: a file's size is read from its header,
a JPEG larger than ``max_side`` is decoded already reduced (DCT scaling), and anything
that would still need more than :data:`MAX_PIXELS` decoded pixels is refused, so a small
file that claims a huge picture (a decompression bomb, or a 500 KB all-white
13000×13000 PNG) costs nothing. Messages name a file by its base name only, never by
the server folder an upload sits in.
"""
from __future__ import annotations

import io
import os
import re
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image

__all__ = ["ImageError", "load_image", "load_image_with_size", "to_tensor", "to_image",
           "ImageLike", "MAX_PIXELS"]

ImageLike = Union[str, os.PathLike, bytes, Image.Image, np.ndarray]

#: The most pixels ever decoded or held at full size (200 MB in memory, twice a
#: 24-megapixel camera's photo); larger pictures are refused, except JPEGs that a
#: ``max_side`` lets decode reduced.
MAX_PIXELS = 50_000_000
#: The file formats opened; other formats Pillow knows (EPS runs Ghostscript, PSD, ICO…)
#: are not pictures a user means to draw from.
FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF", "PPM", "AVIF")
_READABLE = "use a PNG, JPEG, WebP, GIF, BMP or TIFF picture"
#: EXIF orientation → the transposition that makes the picture upright
_UPRIGHT = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
            4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
            6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
            8: Image.Transpose.ROTATE_90}
_MAGIC = [(b"\x89PNG\r\n\x1a\n", "PNG"), (b"\xff\xd8\xff", "JPEG"), (b"GIF87a", "GIF"),
          (b"GIF89a", "GIF"), (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"), (b"BM", "BMP")]


class ImageError(ValueError):
    """The input is not a usable image; the message says why and what to do."""


# --------------------------------------------------------------------------- messages

def _megapixels(n: int) -> str:
    return f"{n / 1e6:.0f}" if n >= 10e6 else f"{n / 1e6:.1f}"


def _too_large(name: str, w: int | None, h: int | None, pixels: int) -> ImageError:
    size = (f"{w}×{h} pixels ({_megapixels(pixels)} megapixels)" if w
            else f"{_megapixels(pixels)} megapixels")
    return ImageError(f"{name} is {size}, too large: Loomis opens at most "
                      f"{MAX_PIXELS // 1_000_000} megapixels. Scale it down (2048 pixels a "
                      "side is plenty) and try again")


def _too_small(name: str, w: int, h: int, min_size: int) -> ImageError:
    return ImageError(f"{name} is {w}×{h} pixels, too small: at least "
                      f"{min_size}×{min_size} pixels are needed")


def _what_it_is(head: bytes) -> str:
    """Why bytes that Pillow cannot open are not a picture, from their first bytes."""
    if not head:
        return "the file is empty (0 bytes); save or upload it again"
    for magic, fmt in _MAGIC:
        if head.startswith(magic):
            return (f"it is a damaged or incomplete {fmt} file (cut off while saving or "
                    "uploading?); save or upload it again")
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "it is a damaged or incomplete WebP file; save or upload it again"
    if head[4:8] == b"ftyp" and head[8:12] in (b"heic", b"heix", b"mif1", b"msf1", b"hevc"):
        return "it is a HEIC photo, which Loomis does not read; export it as JPEG"
    if head.startswith(b"%PDF"):
        return "it is a PDF document; export the page as a PNG or JPEG picture"
    if head.startswith(b"\x93NUMPY"):
        return ("it is a NumPy array file (.npy); load it with numpy.load and pass the "
                "array, or save it as a PNG")
    if head.startswith(b"PK\x03\x04"):
        return "it is a ZIP archive; unpack it and use the picture inside"
    low = head[:2048].lower()
    if b"<svg" in low:
        return "it is an SVG (vector) drawing; export it as a PNG picture"
    if b"<html" in low or b"<!doctype html" in low:
        return "it is a web page (HTML), not the picture itself; save the picture instead"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and "\x00" not in text:
        return f"it is text; {_READABLE}"
    return f"it is not a format Loomis reads; {_READABLE}"


def _unreadable(name: str, fp) -> ImageError:
    try:
        fp.seek(0)
        head = fp.read(2048)
    except (OSError, ValueError):
        head = b"?"
    return ImageError(f"{name} is not an image Loomis can read: {_what_it_is(head)}")


# --------------------------------------------------------------------------- arrays

def _array_size(a: np.ndarray) -> tuple[int, int]:
    """``(width, height)`` of an image array, after checking its shape and type."""
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[-1] not in (1, 3, 4)):
        raise ImageError(
            f"an image array must be H×W, H×W×1, H×W×3 or H×W×4; got shape {a.shape}")
    if a.size == 0:
        raise ImageError(f"the image array is empty (shape {a.shape})")
    if a.dtype.kind not in "buif":
        raise ImageError(f"an image array must hold numbers; got {a.dtype}")
    return a.shape[1], a.shape[0]


def _array_to_pil(arr: np.ndarray) -> Image.Image:
    a = np.asarray(arr)
    _array_size(a)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.dtype == np.bool_:
        a = a.astype(np.uint8) * 255
    elif a.dtype in (np.uint16, np.int32, np.uint32):
        top = 65535 if a.max(initial=0) > 255 else 255
        a = np.clip(a, 0, top).astype(np.uint32)
        a = ((a * 255 + top // 2) // top).astype(np.uint8)
    elif a.dtype.kind == "f":
        a = a.astype(np.float32, copy=False)
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


# --------------------------------------------------------------------------- decoding

def _fit(w: int, h: int, max_side: int) -> tuple[int, int]:
    """``(w, h)`` scaled so that the longer side is ``max_side`` (aspect kept)."""
    s = max_side / max(w, h)
    return max(1, round(w * s)), max(1, round(h * s))


def _check_size(name: str, w: int, h: int, min_size: int, pixels: int | None = None) -> None:
    """Refuse a ``w``×``h`` picture smaller than ``min_size`` a side, or one whose pixels
    to decode (``pixels``: all of them unless it is decoded reduced) pass MAX_PIXELS."""
    if min(w, h) < min_size:
        raise _too_small(name, w, h, min_size)
    if (w * h if pixels is None else pixels) > MAX_PIXELS:
        raise _too_large(name, w, h, w * h)


def _decode(fp, name: str, min_size: int, max_side: int | None
            ) -> tuple[Image.Image, tuple[int, int]]:
    """Open ``fp`` lazily, check its header, then decode it (reduced, for a JPEG larger
    than ``max_side``). Returns the image and its size as the header gives it."""
    try:
        img = Image.open(fp, formats=FORMATS)
    except Image.DecompressionBombError as exc:
        found = re.search(r"\((\d+) pixels\)", str(exc))
        raise _too_large(name, None, None, int(found.group(1)) if found else 2 * MAX_PIXELS) from None
    except MemoryError:
        raise
    except Exception:       # Pillow's plugins raise many kinds on a malformed header
        raise _unreadable(name, fp) from None
    w, h = img.size
    if max_side and max(w, h) > max_side and img.format in ("JPEG", "MPO"):
        img.draft(None, _fit(w, h, max_side))       # decoded at 1/2, 1/4 or 1/8 size
    _check_size(name, w, h, min_size, img.width * img.height)
    try:
        img.load()
    except MemoryError:
        raise
    except Exception:
        raise _unreadable(name, fp) from None
    return img, (w, h)


def _open(src: ImageLike, min_size: int, max_side: int | None) -> tuple[Image.Image, str, tuple[int, int]]:
    """``src`` as a loaded Pillow image (any mode), its name for messages and its full size."""
    if src is None:
        raise ImageError("no image was given")
    if isinstance(src, np.ndarray):
        name = "the image array"
        w, h = _array_size(src)
        _check_size(name, w, h, min_size)
        return _array_to_pil(src), name, (w, h)
    if isinstance(src, Image.Image):
        name = "the image"
        w, h = src.size
        _check_size(name, w, h, min_size)
        try:
            src.load()
        except MemoryError:
            raise
        except Exception:
            raise ImageError(f"{name} is not an image Loomis can read: its pixels could "
                             "not be decoded (a damaged file?)") from None
        return src, name, (w, h)
    if isinstance(src, (bytes, bytearray, memoryview)):
        name = "the uploaded data"
        img, size = _decode(io.BytesIO(bytes(src)), name, min_size, max_side)
        return img, name, size
    if isinstance(src, (str, os.PathLike)):
        path = Path(src)
        name = f"'{path.name}'"        # the base name only: never a server folder
        if not path.is_file():
            raise ImageError(f"{name} is not a file" + (" (it is a folder)" if path.is_dir()
                                                          else " (nothing by that name)"))
        try:
            with open(path, "rb") as f:
                img, size = _decode(f, name, min_size, max_side)
        except OSError as exc:          # unreadable on disk (permissions, I/O)
            raise ImageError(f"{name} could not be read ({exc.strerror or 'I/O error'})") from None
        return img, name, size
    kind = type(src).__name__
    raise ImageError(f"cannot read an image from {'an' if kind[:1] in 'aeiou' else 'a'} {kind}: "
                     "give a picture file, its bytes, a PIL image or a numpy array")


def _orientation(img: Image.Image) -> int:
    try:
        value = int(img.getexif().get(0x0112, 1))
    except Exception:  # malformed EXIF must not make a readable picture unusable
        return 1
    return value if value in _UPRIGHT else 1


def _scalable(img: Image.Image) -> Image.Image:
    """``img`` in a mode Pillow resizes with a real filter (palette and bit modes are not)."""
    if img.mode == "P":
        return img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode == "PA":
        return img.convert("RGBA")
    if img.mode == "1":
        return img.convert("L")
    if img.mode.startswith("I;16"):
        return img.convert("I")
    return img


def _to_rgb(img: Image.Image, background: tuple[int, int, int] | None) -> Image.Image:
    """8-bit RGB, transparency painted onto ``background``; RGBA when ``background`` is None."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        img = _array_to_pil(np.asarray(img))
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if background is None:
        return img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        out = Image.new("RGB", rgba.size, tuple(background))
        out.paste(rgba, mask=rgba.getchannel("A"))
        return out
    return img.convert("RGB")


def load_image_with_size(src: ImageLike, *, min_size: int = 1, max_side: int | None = None,
                         background: tuple[int, int, int] | None = (255, 255, 255)
                         ) -> tuple[Image.Image, tuple[int, int]]:
    """:func:`load_image`, and the picture's own ``(width, height)`` (upright) before any
    scaling: the factor back to the input's pixels is ``size[0] / image.width``."""
    if max_side is not None and max_side < 1:
        raise ValueError(f"max_side must be a positive number of pixels, got {max_side!r}")
    img, name, (w, h) = _open(src, min_size, max_side)
    orientation = _orientation(img)
    if max_side and max(img.size) > max_side:
        target = _fit(w, h, max_side)
        if min(target) < min_size:
            tw, th = target if orientation < 5 else target[::-1]
            raise ImageError(f"{name} is {w}×{h} pixels, too long and thin: scaled to "
                             f"{max_side} pixels on its longer side it is {tw}×{th}, and at "
                             f"least {min_size}×{min_size} pixels are needed")
        img = _scalable(img).resize(target, Image.LANCZOS, reducing_gap=2.0)
    if orientation != 1:
        img = img.transpose(_UPRIGHT[orientation])
    out = _to_rgb(img, background)
    for key in ("exif", "xmp", "XML:com.adobe.xmp", "Raw profile type exif"):
        out.info.pop(key, None)          # upright now: no orientation to apply again
    return out, ((h, w) if orientation >= 5 else (w, h))


def load_image(src: ImageLike, *, min_size: int = 1, max_side: int | None = None,
               background: tuple[int, int, int] | None = (255, 255, 255)) -> Image.Image:
    """Return ``src`` (a file path, its bytes, a PIL image or a numpy array) as an 8-bit
    RGB image, whatever its mode or container.

    Transparent pixels are composited onto ``background`` (white paper by default, which
    is what a drawing with a transparent background means; ``None`` keeps them and gives
    RGBA). EXIF orientation is applied, so a phone photo is upright. ``max_side`` scales
    the picture (aspect kept) so that its longer side is at most that, already while
    decoding where the format allows; ``min_size`` is the shortest side accepted, before
    and after that scaling. Raises :class:`ImageError` with a readable reason.
    """
    return load_image_with_size(src, min_size=min_size, max_side=max_side,
                                background=background)[0]


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
