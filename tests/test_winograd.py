"""Winograd F(4×4, 3×3) in exported graphs: the same translation, fewer multiplies."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from loomis.runtime import winograd
from loomis.train.nets import Generator

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")


def test_transform_matrices_compute_a_3_tap_correlation():
    """Aᵀ[(G g) ⊙ (Bᵀ d)] is the 4 outputs of correlating 6 samples with 3 taps, exactly."""
    rng = np.random.default_rng(0)
    for _ in range(20):
        d, g = rng.standard_normal(6), rng.standard_normal(3)
        fast = winograd._AT @ ((winograd._G @ g) * (winograd._BT @ d))
        direct = np.array([d[i:i + 3] @ g for i in range(winograd.TILE)])
        np.testing.assert_allclose(fast, direct, atol=1e-12)


def _export(g: Generator, path) -> "onnx.ModelProto":
    from loomis.train.inference import export_onnx

    export_onnx(g, path, rewrite=False)
    return onnx.load(str(path))


def _run(model, x: np.ndarray) -> np.ndarray:
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def test_resnet_block_convolutions_are_rewritten_and_equal_torch(tmp_path):
    torch.manual_seed(0)
    g = Generator(arch="resnet_6blocks", norm="instance", ngf=32, image_size=32).eval()
    plain = _export(g, tmp_path / "g.onnx")
    fast, n = winograd.winograd_convolutions(plain)
    assert n == 12                                         # the two 3×3 convs of 6 blocks, 128 ch
    ops = [node.op_type for node in fast.graph.node]
    assert ops.count("Conv") == 4 + 12                     # stem, 2 downs, head + 12 transforms
    assert ops.count("DepthToSpace") == 12
    x = (torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1)
    with torch.no_grad():
        expected = g(x).numpy()
    np.testing.assert_allclose(_run(fast, x.numpy()), expected, atol=1e-4)       # batch of 2
    np.testing.assert_allclose(_run(fast, x[:1].numpy()), expected[:1], atol=1e-4)
    # U = G g Gᵀ is built from the stored weights in the graph: the file does not grow 4×
    assert fast.ByteSize() < plain.ByteSize() * 1.05


def test_narrow_and_strided_convolutions_are_left_alone(tmp_path):
    narrow = Generator(arch="resnet_6blocks", norm="instance", ngf=8, image_size=32).eval()
    assert winograd.winograd_convolutions(_export(narrow, tmp_path / "n.onnx"))[1] == 0
    unet = Generator(arch="unet_32", ngf=64, image_size=32).eval()   # 4×4 stride-2 only
    assert winograd.winograd_convolutions(_export(unet, tmp_path / "u.onnx"))[1] == 0


def test_translator_runs_the_winograd_graph(tmp_path, monkeypatch):
    from loomis.train.inference import Translator

    monkeypatch.setenv("LOOMIS_CACHE", str(tmp_path / "cache"))
    torch.manual_seed(0)
    g = Generator(arch="resnet_6blocks", norm="instance", ngf=32, image_size=32)
    fast, eager = Translator(g, runtime="onnxruntime"), Translator(g, runtime="torch")
    cached = next((tmp_path / "cache" / "onnx").glob("*.onnx"))
    assert any(node.op_type == "DepthToSpace" for node in onnx.load(str(cached)).graph.node)
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    assert torch.allclose(fast.run(x), eager.run(x), atol=1e-4)


def test_a_graph_that_misses_the_tolerance_falls_back_to_direct_convolution(tmp_path, monkeypatch):
    """If a Winograd graph ever disagreed with torch, the user still gets the right answer."""
    from onnx import numpy_helper

    from loomis.train.inference import Translator

    real = winograd.winograd_convolutions

    def one_tap_off(model, min_channels=128):
        fast, n = real(model, min_channels)
        for init in fast.graph.initializer:
            if init.name.endswith("/a_taps"):
                taps = numpy_helper.to_array(init).copy()
                taps[5, 7] += 0.01                          # one output pixel of each tile
                init.CopyFrom(numpy_helper.from_array(taps, init.name))
        return fast, n

    monkeypatch.setattr(winograd, "winograd_convolutions", one_tap_off)
    monkeypatch.setenv("LOOMIS_CACHE", str(tmp_path / "cache"))
    torch.manual_seed(0)
    g = Generator(arch="resnet_6blocks", norm="instance", ngf=32, image_size=32)
    fast, eager = Translator(g, runtime="onnxruntime"), Translator(g, runtime="torch")
    cached = next((tmp_path / "cache" / "onnx").glob("*.onnx"))
    assert not any(node.op_type == "DepthToSpace" for node in onnx.load(str(cached)).graph.node)
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    assert torch.allclose(fast.run(x), eager.run(x), atol=1e-4)
