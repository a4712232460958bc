"""Every kind of picture a user may hand us becomes 8-bit RGB, or a readable error."""
import io

import numpy as np
import pytest
import torch
from PIL import Image

from loomis.imageio import ImageError, load_image, to_image, to_tensor
from loomis.train.inference import Translator, pad_to_square
from loomis.train.nets import Generator


def _rgb():
    arr = np.zeros((20, 30, 3), np.uint8)
    arr[..., 0] = np.arange(30, dtype=np.uint8) * 8
    return Image.fromarray(arr)


@pytest.mark.parametrize("mode", ["L", "P", "RGBA", "LA", "CMYK", "I;16", "I", "F", "1"])
def test_every_pil_mode_becomes_rgb(mode):
    img = _rgb().convert(mode) if mode not in ("I;16",) else Image.fromarray(
        (np.arange(600, dtype=np.uint16).reshape(20, 30) * 100))
    out = load_image(img)
    assert out.mode == "RGB" and out.size == (30, 20)


def test_transparent_pixels_become_white_paper():
    rgba = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    assert load_image(rgba).getpixel((0, 0)) == (255, 255, 255)


@pytest.mark.parametrize("arr", [
    np.zeros((8, 8), np.uint8), np.zeros((8, 8, 1), np.uint8), np.zeros((8, 8, 4), np.uint8),
    np.full((8, 8, 3), 65535, np.uint16), np.linspace(-1, 1, 192).reshape(8, 8, 3),
    np.ones((8, 8), bool),
])
def test_arrays_of_any_dtype(arr):
    out = load_image(arr)
    assert out.size == (8, 8) and out.mode == "RGB"


def test_sixteen_bit_scales_to_eight_bit():
    assert load_image(np.full((2, 2), 65535, np.uint16)).getpixel((0, 0)) == (255, 255, 255)


def test_files_bytes_and_exif_rotation(tmp_path):
    img = _rgb()
    buf = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to view"
    img.save(buf, "JPEG", exif=exif)
    out = load_image(buf.getvalue())
    assert out.size == (20, 30)  # upright
    p = tmp_path / "x.png"
    img.save(p)
    assert load_image(p).size == (30, 20)
    assert load_image(str(p)).size == (30, 20)


@pytest.mark.parametrize("bad,message", [
    (None, "no image"), (b"hello", "not an image"), (np.zeros((0, 3)), "shape|empty"),
    (np.zeros((4, 4, 2)), "shape"), (np.full((4, 4), np.nan), "NaN"), (3.5, "cannot read"),
])
def test_bad_input_is_a_readable_error(bad, message):
    with pytest.raises(ImageError, match=message):
        load_image(bad)


def test_truncated_file_and_missing_path(tmp_path):
    p = tmp_path / "cut.png"
    buf = io.BytesIO()
    _rgb().save(buf, "PNG")
    p.write_bytes(buf.getvalue()[:60])
    with pytest.raises(ImageError, match="cut.png"):
        load_image(p)
    with pytest.raises(ImageError, match="is not a file"):
        load_image(tmp_path / "nope.png")
    with pytest.raises(ImageError, match="too small: at least 32×32"):
        load_image(_rgb(), min_size=32)


def test_tensor_round_trip_is_lossless():
    img = _rgb()
    t = to_tensor(img)
    assert t.shape == (1, 3, 20, 30) and t.min() >= -1 and t.max() <= 1
    assert np.array_equal(np.asarray(to_image(t)), np.asarray(img))


def test_pad_to_square_keeps_content_box():
    sq, box = pad_to_square(_rgb(), (255, 255, 255))
    assert sq.size == (30, 30) and box == (0, 5, 30, 25)
    assert sq.getpixel((0, 0)) == (255, 255, 255)
    edge, _ = pad_to_square(_rgb(), None)
    assert edge.getpixel((29, 0)) == _rgb().getpixel((29, 0))


def test_translator_returns_the_input_size_for_any_image():
    torch.manual_seed(0)
    tr = Translator(Generator(arch="unet_32", ngf=8, image_size=64))
    for size in [(64, 64), (100, 37), (1, 1), (333, 500)]:
        out = tr(Image.new("L", size, 128))
        assert out.size == size and out.mode == "RGB"
    assert tr(np.zeros((50, 80, 3), np.uint8), keep_size=False).size == (64, 64)


def test_onnxruntime_path_equals_torch_and_is_cached(tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    from loomis.train import inference

    monkeypatch.setenv("LOOMIS_CACHE", str(tmp_path / "cache"))
    torch.manual_seed(0)
    g = Generator(arch="resnet_6blocks", norm="instance", ngf=8, image_size=32)
    fast = Translator(g, runtime="onnxruntime")
    eager = Translator(g, runtime="torch")
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    assert torch.allclose(fast.run(x), eager.run(x), atol=1e-4)   # batch is dynamic
    cached = list((tmp_path / "cache" / "onnx").glob("*.onnx"))
    assert len(cached) == 1
    # a stale graph in the cache (other weights) is detected and replaced
    other = Generator(arch="resnet_6blocks", norm="instance", ngf=8, image_size=32)
    inference.export_onnx(other, cached[0])
    again = Translator(g, runtime="onnxruntime")
    assert torch.allclose(again.run(x), eager.run(x), atol=1e-4)
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (30, 40, 3), dtype=np.uint8))
    assert np.abs(np.asarray(fast(img), int) - np.asarray(eager(img), int)).max() <= 1
    with pytest.raises(ValueError, match="not available"):
        Translator(g, runtime="tensorrt")


def test_auto_runtime_falls_back_to_torch_when_onnx_export_fails(monkeypatch, tmp_path):
    """A missing ONNX exporter must not cost a user the translation (auto only)."""
    import sys as _sys

    pytest.importorskip("onnxruntime")
    monkeypatch.setitem(_sys.modules, "onnx", None)          # as if `onnx` were not installed
    monkeypatch.setenv("LOOMIS_CACHE", str(tmp_path))         # nothing cached: must export
    g = Generator(arch="unet_32", ngf=8, image_size=32)
    with pytest.warns(UserWarning, match="using torch"):
        tr = Translator(g, runtime="auto")
    assert tr.runtime == "torch"
    assert tr(Image.new("RGB", (40, 40), (200, 10, 10))).size == (40, 40)
    with pytest.raises(Exception):
        Translator(g, runtime="onnxruntime")                  # asked for explicitly: an error


def test_mirror_pass_keeps_the_lines_of_the_image_and_of_its_mirror():
    torch.manual_seed(0)
    g = Generator(arch="unet_32", ngf=8, image_size=32).eval()   # photo → drawing (AtoB)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    both = Translator(g, runtime="torch")                         # drawings: on by default
    single = Translator(g, runtime="torch", mirror=False)
    assert both.mirror and not single.mirror
    with torch.no_grad():
        expected = torch.minimum(g(x), g(x.flip(-1)).flip(-1))
    assert torch.allclose(both.run(x), expected, atol=1e-6)
    assert (both.run(x) <= single.run(x) + 1e-6).all()           # never loses a line
    assert torch.equal(both.run(x, mirror=False), single.run(x))   # chosen per call too
    assert torch.allclose(single.run(x, mirror=True), expected, atol=1e-6)
    # a mirror-symmetric input gives a mirror-symmetric drawing
    sym = torch.cat([x[:, :, :, :16], x[:, :, :, :16].flip(-1)], -1)
    out = both.run(sym)
    assert torch.allclose(out, out.flip(-1), atol=1e-6)


def test_mirror_pass_is_for_drawings_only():
    photo_maker = Generator(arch="unet_32", ngf=8, image_size=32, direction="BtoA")
    assert not Translator(photo_maker, runtime="torch").mirror
    with pytest.raises(ValueError, match="leave mirror unset"):
        Translator(photo_maker, runtime="torch", mirror=True)
    with pytest.raises(ValueError, match="leave mirror unset"):
        Translator(photo_maker, runtime="torch")(Image.new("RGB", (32, 32)), mirror=True)


def test_the_export_cache_keeps_the_most_recent_graphs_within_its_limit(tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    import os
    import time

    from loomis.train import inference

    monkeypatch.setenv("LOOMIS_CACHE", str(tmp_path))
    torch.manual_seed(0)
    g = Generator(arch="unet_32", ngf=8, image_size=32)
    inference.onnx_session(g)                       # exported into the cache
    [graph] = (tmp_path / "onnx").glob("*.onnx")
    size = graph.stat().st_size
    old, recent = tmp_path / "onnx" / "old.onnx", tmp_path / "onnx" / "recent.onnx"
    for age, f in ((200, old), (100, recent)):      # two older graphs of half its size
        f.write_bytes(b"\0" * (size // 2))
        os.utime(f, (time.time() - age, time.time() - age))
    # room for this graph and one half-size graph: using it again evicts the oldest
    monkeypatch.setenv("LOOMIS_CACHE_MAX_MB", str(1.75 * size / 2 ** 20))
    inference.onnx_session(g)
    assert {f.name for f in (tmp_path / "onnx").glob("*.onnx")} == {graph.name, "recent.onnx"}
