"""The input guard: every kind of bad picture a user (or a broken client) may send, through
``load_image`` and the drawing canvas alike, either becomes an RGB image no larger than
asked or an ``ImageError`` whose message says what is wrong, the same words on both paths,
never a server folder; a huge picture is answered at once, without being decoded whole."""
from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from loomis.canvas import EmptyCanvasError, canvas_to_drawing
from loomis.imageio import MAX_PIXELS, ImageError, load_image, load_image_with_size

ROOT = Path(__file__).resolve().parents[1]
MAX_SIDE = 2048


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def white_png(path: Path, w: int, h: int) -> Path:
    """A real, valid all-white RGB PNG of ``w×h``, written row by row (a 13000×13000 one
    is ~500 KB on disk and never held in memory here)."""
    z = zlib.compressobj(9)
    row = b"\x00" + b"\xff" * (3 * w)
    data = b"".join(z.compress(row) for _ in range(h)) + z.flush()
    path.write_bytes(b"\x89PNG\r\n\x1a\n"
                     + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                     + _chunk(b"IDAT", data) + _chunk(b"IEND", b""))
    return path


def _drawing(size=(60, 40), mode="RGB") -> Image.Image:
    """A small picture with a dark line on light paper (not one flat colour)."""
    img = Image.new("RGB", size, (235, 230, 220))
    img.paste((30, 30, 30), (5, size[1] // 2, size[0] - 5, size[1] // 2 + 3))
    return img.convert(mode)


def _save(img: Image.Image, path: Path, **kw) -> Path:
    img.save(path, **kw)
    return path


@pytest.fixture(scope="module")
def huge_png(tmp_path_factory) -> Path:
    return white_png(tmp_path_factory.mktemp("huge") / "huge.png", 13000, 13000)


@pytest.fixture(scope="module")
def huge_jpeg(tmp_path_factory) -> Path:
    """A 12000×9000 JPEG (108 megapixels, a few MB): decodable only reduced."""
    img = Image.new("L", (12000, 9000), 250)
    img.paste(20, (3000, 2000, 9000, 2600))
    path = tmp_path_factory.mktemp("huge") / "huge.jpg"
    img.save(path, quality=80)
    return path


def _truncated(fmt: str, tmp: Path) -> Path:
    buf = io.BytesIO()
    _drawing((200, 150)).save(buf, fmt)
    path = tmp / f"cut.{fmt.lower()}"
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    return path


def _bomb_header(tmp: Path) -> Path:
    """A PNG whose header claims 100000×100000 pixels, with a few bytes of data."""
    path = tmp / "bomb.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n"
                     + _chunk(b"IHDR", struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0))
                     + _chunk(b"IDAT", zlib.compress(b"\x00" * 100)) + _chunk(b"IEND", b""))
    return path


def _animated_gif(tmp: Path) -> Path:
    frames = [_drawing((40, 30)), Image.new("RGB", (40, 30), (200, 0, 0))]
    path = tmp / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    return path


def _sixteen_bit(tmp: Path) -> Path:
    a = (np.asarray(_drawing().convert("L"), np.uint16) * 257)
    return _save(Image.fromarray(a), tmp / "sixteen.png")


def _palette_transparent(tmp: Path) -> Path:
    img = _drawing().convert("P")
    return _save(img, tmp / "ptrans.png", transparency=int(np.asarray(img)[0, 0]))


def _transparent(tmp: Path) -> Path:
    img = Image.new("RGBA", (60, 40), (0, 0, 0, 0))
    img.paste((20, 20, 20, 255), (5, 20, 55, 23))
    return _save(img, tmp / "clear.png")


def _rotated_jpeg(tmp: Path) -> Path:
    exif = Image.Exif()
    exif[0x0112] = 6
    return _save(_drawing((60, 40)), tmp / "phone.jpg", exif=exif)


def _text(name: str, content: bytes):
    def make(tmp: Path) -> Path:
        path = tmp / name
        path.write_bytes(content)
        return path
    return make


def _npy(tmp: Path) -> Path:
    path = tmp / "array.npy"
    np.save(path, np.zeros((8, 8, 3), np.uint8))
    return path


def _zip(tmp: Path) -> Path:
    import zipfile
    path = tmp / "pictures.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("a.txt", "x")
    return path


def _folder(tmp: Path) -> Path:
    (tmp / "a_folder").mkdir(exist_ok=True)
    return tmp / "a_folder"


#: name → (make the file in a folder, None when it loads, else words its message contains)
FILES = {
    "0-byte": (_text("empty.png", b""), ["'empty.png'", "empty (0 bytes)"]),
    "truncated PNG": (lambda t: _truncated("PNG", t), ["'cut.png'", "damaged or incomplete PNG"]),
    "truncated JPEG": (lambda t: _truncated("JPEG", t), ["'cut.jpeg'", "damaged or incomplete JPEG"]),
    "text": (_text("notes.png", b"just some notes\n"), ["not an image", "it is text"]),
    "HTML": (_text("page.jpg", b"<!DOCTYPE html><html><body>404</body></html>"), ["web page (HTML)"]),
    "SVG": (_text("head.svg", b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>'),
            ["SVG", "export it as a PNG"]),
    "PDF": (_text("scan.pdf", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n"), ["PDF document"]),
    "npy": (_npy, ["NumPy array file"]),
    "ZIP": (_zip, ["ZIP archive"]),
    "HEIC": (_text("iphone.heic", b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic"), ["HEIC"]),
    "binary noise": (_text("noise.png", bytes(range(256)) * 4), ["not a format Loomis reads"]),
    "ICO (a format not opened)": (lambda t: _save(_drawing((32, 32)), t / "icon.ico"),
                                  ["not a format Loomis reads"]),
    "bomb header": (_bomb_header, ["'bomb.png'", "too large", "at most 50 megapixels"]),
    "folder": (_folder, ["'a_folder' is not a file", "folder"]),
    "missing file": (lambda t: t / "nope.png", ["'nope.png' is not a file"]),
    "animated GIF": (_animated_gif, None),
    "CMYK JPEG": (lambda t: _save(_drawing(mode="CMYK"), t / "cmyk.jpg"), None),
    "16-bit PNG": (_sixteen_bit, None),
    "palette PNG": (lambda t: _save(_drawing().convert("P"), t / "palette.png"), None),
    "palette, transparent": (_palette_transparent, None),
    "transparent RGBA": (_transparent, None),
    "grey + alpha": (lambda t: _save(_drawing().convert("LA"), t / "la.png"), None),
    "1-bit": (lambda t: _save(_drawing().convert("1"), t / "bits.png"), None),
    "WebP": (lambda t: _save(_drawing(), t / "x.webp"), None),
    "TIFF": (lambda t: _save(_drawing(), t / "x.tiff"), None),
    "BMP": (lambda t: _save(_drawing(), t / "x.bmp"), None),
    "EXIF-rotated JPEG": (_rotated_jpeg, None),
    "20000×100 strip": (lambda t: _save(_drawing((20000, 100)), t / "strip.png"), None),
}


def _error(fn, *args, **kw) -> str:
    with pytest.raises(ImageError) as info:
        fn(*args, **kw)
    return str(info.value)


@pytest.mark.parametrize("kind", list(FILES))
def test_every_kind_of_file_loads_or_says_what_is_wrong(kind, tmp_path):
    make, words = FILES[kind]
    path = make(tmp_path)
    if words is None:
        img = load_image(path, max_side=MAX_SIDE)
        assert img.mode == "RGB" and max(img.size) <= MAX_SIDE
        small = load_image(path, max_side=24)
        assert small.mode == "RGB" and max(small.size) == 24
        return
    message = _error(load_image, path, max_side=MAX_SIDE)
    for word in words:
        assert word in message, message
    assert str(tmp_path) not in message            # the base name, never the folder


@pytest.mark.parametrize("kind", [k for k, (_, words) in FILES.items() if words])
def test_the_canvas_gives_the_same_message_for_the_same_fault(kind, tmp_path):
    make, _ = FILES[kind]
    path = make(tmp_path)
    expected = _error(load_image, path, max_side=MAX_SIDE)
    assert _error(canvas_to_drawing, path) == expected                      # an upload
    for value in ({"background": str(path), "layers": [], "composite": None},
                  {"background": None, "layers": [str(path)], "composite": None},
                  {"background": None, "layers": [], "composite": path.read_bytes()
                   if path.is_file() else str(path)}):
        message = _error(canvas_to_drawing, value)
        assert message == expected or (message == expected.replace(f"'{path.name}'",
                                                                      "the uploaded data"))


@pytest.mark.parametrize("kind", [k for k, (_, words) in FILES.items() if words is None])
def test_the_canvas_takes_every_readable_kind(kind, tmp_path):
    path = FILES[kind][0](tmp_path)
    for value in (path, {"background": str(path), "layers": [], "composite": None},
                  {"background": None, "layers": [path.read_bytes()], "composite": None}):
        out = canvas_to_drawing(value)
        assert out.mode == "RGB" and max(out.size) <= MAX_SIDE
    if "strip" not in kind:          # (a strip 32 pixels long is one flat row)
        assert max(canvas_to_drawing(path, max_side=32).size) == 32


def test_what_the_readable_kinds_become(tmp_path):
    gif = load_image(_animated_gif(tmp_path))
    assert gif.getpixel((0, 0)) == (235, 230, 220)              # the first frame
    for make in (_transparent, _palette_transparent):
        assert load_image(make(tmp_path)).getpixel((0, 0)) == (255, 255, 255)   # paper
    phone, size = load_image_with_size(_rotated_jpeg(tmp_path), max_side=30)
    assert phone.size == (20, 30) and size == (40, 60)          # upright, size of the photo
    strip, size = load_image_with_size(FILES["20000×100 strip"][0](tmp_path), max_side=MAX_SIDE)
    assert strip.size == (2048, 10) and size == (20000, 100)
    sixteen = np.asarray(load_image(_sixteen_bit(tmp_path)))
    assert sixteen.min() <= 35 and sixteen.max() >= 225         # 16 → 8 bits, not clipped


def test_too_small_states_the_real_minimum(tmp_path):
    dot = _save(Image.new("RGB", (1, 1), "white"), tmp_path / "dot.png")
    assert load_image(dot).size == (1, 1)                       # the default minimum is 1
    assert "is 1×1 pixels, too small: at least 16×16 pixels" in _error(load_image, dot, min_size=16)
    strip = _save(_drawing((20000, 100)), tmp_path / "strip.png")
    message = _error(load_image, strip, min_size=16, max_side=MAX_SIDE)
    assert "20000×100 pixels, too long and thin" in message and "2048×10" in message
    assert "at least 16×16" in message


BAD_VALUES = {
    "None": (None, "no image was given"),
    "int": (7, "cannot read an image from an int"),
    "float": (3.5, "cannot read an image from a float"),
    "dict without keys": ({}, "cannot read an image from a dict"),
    "list": ([[0, 0], [0, 0]], "cannot read an image from a list"),
    "NaN array": (np.full((8, 8, 3), np.nan), "NaN or infinite"),
    "inf array": (np.full((8, 8), np.inf, np.float32), "NaN or infinite"),
    "H×W×5": (np.zeros((8, 8, 5), np.uint8), "got shape (8, 8, 5)"),
    "H×W×2": (np.zeros((8, 8, 2), np.uint8), "got shape (8, 8, 2)"),
    "4-D": (np.zeros((1, 8, 8, 3), np.uint8), "got shape (1, 8, 8, 3)"),
    "1-D": (np.zeros(64, np.uint8), "got shape (64,)"),
    "empty array": (np.zeros((0, 0, 3), np.uint8), "the image array is empty"),
    "object array": (np.full((4, 4), None, object), "must hold numbers"),
    "complex array": (np.zeros((4, 4), complex), "must hold numbers"),
    "string array": (np.full((4, 4), "x"), "must hold numbers"),
    "huge array": (np.broadcast_to(np.uint8(9), (7000, 8000)), "8000×7000 pixels (56 megapixels), too large"),
    "text bytes": (b"hello", "the uploaded data is not an image Loomis can read: it is text"),
}


@pytest.mark.parametrize("kind", list(BAD_VALUES))
def test_bad_values_are_readable_errors_on_both_paths(kind):
    value, words = BAD_VALUES[kind]
    assert words in _error(load_image, value)
    if value is None:
        with pytest.raises(EmptyCanvasError, match="canvas is empty"):
            canvas_to_drawing(None)
        return
    if isinstance(value, dict):
        assert "not a drawing canvas's value" in _error(canvas_to_drawing, value)
    else:
        assert words in _error(canvas_to_drawing, value)
    # inside a canvas value too, in every place
    for value in ({"background": value}, {"layers": [value]}, {"composite": value}):
        assert words in _error(canvas_to_drawing, value)


@pytest.mark.parametrize("arr", [
    np.ones((8, 8), bool), np.arange(-50, 14).reshape(8, 8).astype(np.int64),
    np.linspace(0, 1, 192).reshape(8, 8, 3), np.full((8, 8, 1), 700, np.uint16),
    np.zeros((8, 8, 4), np.float16),
], ids=["bool", "int64 with negatives", "floats in [0, 1]", "H×W×1 16-bit", "float16 RGBA"])
def test_odd_but_valid_arrays_load(arr):
    out = load_image(arr, max_side=4)
    assert out.mode == "RGB" and out.size == (4, 4)


def test_canvas_values_that_are_not_canvases():
    assert "layers must be a list" in _error(canvas_to_drawing, {"layers": "abc"})
    assert "layers must be a list" in _error(canvas_to_drawing, {"layers": 5})
    with pytest.raises(EmptyCanvasError, match="canvas is empty"):
        canvas_to_drawing({"background": None, "layers": [None], "composite": None})
    clear = np.zeros((64, 64, 4), np.uint8)
    with pytest.raises(EmptyCanvasError, match="canvas is empty"):
        canvas_to_drawing({"background": None, "layers": [clear], "composite": None})


def test_canvas_parts_are_scaled_alike_before_any_work():
    """A large upload under strokes drawn at the same size: both scaled by one factor."""
    background = np.full((3000, 4000, 3), 240, np.uint8)
    background[1000:1100, :] = 30
    layer = np.zeros((3000, 4000, 4), np.uint8)
    layer[2000:2040, 500:3500] = (10, 10, 10, 255)
    out = np.asarray(canvas_to_drawing({"background": background, "layers": [layer],
                                        "composite": None}, max_side=400))
    assert out.shape == (300, 400, 3)
    assert out[105, 200].max() < 80 and out[202, 200].max() < 80 and out[150, 200].min() > 200


def test_the_13000_pixel_png_is_answered_at_once_without_decoding(huge_png):
    assert huge_png.stat().st_size < 1_000_000
    for call in (lambda: load_image(huge_png, max_side=MAX_SIDE),
                 lambda: canvas_to_drawing(huge_png),
                 lambda: canvas_to_drawing({"background": str(huge_png), "layers": [], "composite": None}),
                 lambda: load_image(Image.open(huge_png))):        # opened, not yet decoded
        start = time.perf_counter()
        with pytest.raises(ImageError, match=r"is 13000×13000 pixels \(169 megapixels\), too large"):
            call()
        assert time.perf_counter() - start < 3.0


def test_a_huge_jpeg_is_decoded_reduced(huge_jpeg):
    start = time.perf_counter()
    img, size = load_image_with_size(huge_jpeg, max_side=MAX_SIDE)
    assert img.size == (2048, 1536) and size == (12000, 9000)
    drawing = canvas_to_drawing({"background": str(huge_jpeg), "layers": [], "composite": None})
    assert drawing.size == (2048, 1536)
    assert time.perf_counter() - start < 3.0
    assert np.asarray(img)[int(2300 * 1536 / 9000), 1024].max() < 60        # the dark band
    # without max_side it would be decoded whole: more than the budget, refused
    assert 12000 * 9000 > MAX_PIXELS
    assert "too large" in _error(load_image, huge_jpeg)


def test_peak_memory_stays_small_for_huge_pictures(huge_png, huge_jpeg):
    """Measured in a fresh process (Pillow's buffers are outside tracemalloc's view): the
    peak resident memory (VmHWM) grows by far less than one decoded picture would need
    (the PNG alone would be 676 MB, the JPEG 108 MB)."""
    script = f"""
import json
from loomis.canvas import canvas_to_drawing
from loomis.imageio import ImageError, load_image

def peak():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmHWM")) // 1024

before = peak()
for call in (lambda: load_image({str(huge_png)!r}, max_side=2048),
             lambda: canvas_to_drawing({str(huge_png)!r})):
    try:
        call()
    except ImageError:
        pass
after_png = peak()
load_image({str(huge_jpeg)!r}, max_side=2048)
canvas_to_drawing({{"background": {str(huge_jpeg)!r}, "layers": [], "composite": None}})
print(json.dumps([before, after_png, peak()]))
"""
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    before, after_png, after_jpeg = json.loads(proc.stdout.strip().splitlines()[-1])
    assert after_png - before <= 20, (before, after_png)
    assert after_jpeg - before <= 100, (before, after_jpeg)
