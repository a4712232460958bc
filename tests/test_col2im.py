"""Sub-pixel phase convolutions in exported graphs: a U-Net's transposed convolutions
without their column buffer, and the same translation."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from loomis.runtime import col2im
from loomis.train.nets import Generator

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")


def _run(model, x: np.ndarray) -> np.ndarray:
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def _layer(weight, bias, norm, side: tuple[int, int], opset: int = 18):
    """One ConvTranspose (4×4, stride 2, padding 1), optionally followed by a BatchNorm."""
    from onnx import TensorProto, helper, numpy_helper

    inits = [numpy_helper.from_array(weight, "w")]
    inputs = ["x", "w"]
    if bias is not None:
        inits.append(numpy_helper.from_array(bias, "b"))
        inputs.append("b")
    nodes = [helper.make_node("ConvTranspose", inputs, ["t" if norm else "y"], kernel_shape=[4, 4],
                              strides=[2, 2], pads=[1, 1, 1, 1])]
    if norm:
        inits += [numpy_helper.from_array(v, k) for k, v in zip(("g", "beta", "mean", "var"), norm)]
        nodes.append(helper.make_node("BatchNormalization", ["t", "g", "beta", "mean", "var"], ["y"],
                                      epsilon=1e-5))
    graph = helper.make_graph(
        nodes, "up", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", weight.shape[0], *side])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


@pytest.mark.parametrize("with_bias, with_norm", [(False, False), (True, False), (False, True), (True, True)])
def test_a_transposed_convolution_becomes_one_phase_conv_and_col2im_with_the_same_output(with_bias, with_norm):
    rng = np.random.default_rng(0)
    cin, cout, side = 24, 16, (16, 20)                  # not square: rows and columns differ
    w = rng.standard_normal((cin, cout, 4, 4)).astype(np.float32) * 0.1
    b = rng.standard_normal(cout).astype(np.float32) if with_bias else None
    norm = None
    if with_norm:
        norm = tuple(rng.uniform(lo, hi, cout).astype(np.float32)
                     for lo, hi in ((0.5, 1.5), (-0.3, 0.3), (-0.5, 0.5), (0.5, 2.0)))
    x = rng.standard_normal((2, cin, *side)).astype(np.float32)
    expected = torch.nn.functional.conv_transpose2d(torch.from_numpy(x), torch.from_numpy(w),
                                                    None if b is None else torch.from_numpy(b),
                                                    stride=2, padding=1)
    if norm:
        g, beta, mean, var = (torch.from_numpy(v) for v in norm)
        expected = torch.nn.functional.batch_norm(expected, mean, var, g, beta, eps=1e-5)

    fast, n = col2im.phase_convolutions(_layer(w, b, norm, side))
    assert n == 1
    assert [node.op_type for node in fast.graph.node] == ["Conv", "Reshape", "Col2Im"]  # norm folded
    got = _run(fast, x)
    assert got.shape == (2, cout, 2 * side[0], 2 * side[1])
    np.testing.assert_allclose(got, expected.numpy(), atol=1e-5)
    # the replaced weights leave the file: it keeps its size
    assert {i.name for i in fast.graph.initializer}.isdisjoint({"w", "b", "g", "beta", "mean", "var"})


def test_layers_below_the_thresholds_and_older_opsets_are_left_alone():
    rng = np.random.default_rng(1)
    w = rng.standard_normal((16, 16, 4, 4)).astype(np.float32)
    assert col2im.phase_convolutions(_layer(w, None, None, (8, 8)))[1] == 0       # 8 px: border costs
    assert col2im.phase_convolutions(_layer(w, None, None, (8, 8)), min_side=8)[1] == 1
    narrow = rng.standard_normal((16, 3, 4, 4)).astype(np.float32)                 # an image layer
    assert col2im.phase_convolutions(_layer(narrow, None, None, (32, 32)))[1] == 0
    assert col2im.phase_convolutions(_layer(w, None, None, (32, 32), opset=17))[1] == 0  # no Col2Im


def test_unet_decoder_levels_are_rewritten_and_the_generator_still_equals_torch(tmp_path):
    from loomis.train.inference import export_onnx

    torch.manual_seed(0)
    g = Generator(arch="unet_128", ngf=16, image_size=128).eval()
    for m in g.modules():                 # running statistics a trained network would have
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    export_onnx(g, tmp_path / "g.onnx", rewrite=False)
    plain = onnx.load(str(tmp_path / "g.onnx"))
    fast, n = col2im.phase_convolutions(plain)
    # decoder inputs of 1…64 px: 16 and 32 px qualify; the 64 px level makes the 3-channel image
    assert n == 2
    ops = [node.op_type for node in fast.graph.node]
    assert ops.count("Col2Im") == 2
    assert ops.count("ConvTranspose") == [node.op_type for node in plain.graph.node].count("ConvTranspose") - 2
    assert ops.count("BatchNormalization") == [node.op_type for node in plain.graph.node].count("BatchNormalization") - 2
    x = torch.rand(2, 3, 128, 128, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        expected = g(x).numpy()
    np.testing.assert_allclose(_run(fast, x.numpy()), expected, atol=1e-4)
    assert fast.ByteSize() < plain.ByteSize() * 1.01


def test_translator_runs_the_phase_graph_and_falls_back_if_it_ever_disagrees(tmp_path, monkeypatch):
    from onnx import numpy_helper

    from loomis.train.inference import Translator

    torch.manual_seed(0)
    g = Generator(arch="unet_64", ngf=16, image_size=64)
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    eager = Translator(g, runtime="torch")

    def ops_cached(cache):
        return [node.op_type for node in onnx.load(str(next(cache.glob("*.onnx")))).graph.node]

    monkeypatch.setenv("LOOMIS_CACHE", str(tmp_path / "ok"))
    fast = Translator(g, runtime="onnxruntime")
    assert "Col2Im" in ops_cached(tmp_path / "ok" / "onnx")
    assert torch.allclose(fast.run(x), eager.run(x), atol=1e-4)

    real = col2im.phase_convolutions

    def one_phase_off(model, *args, **kwargs):
        bad, n = real(model, *args, **kwargs)
        for init in bad.graph.initializer:
            if init.name.endswith("/weight"):
                w = numpy_helper.to_array(init).copy()
                w[::4] *= 1.01                               # block offset (0, 0): odd rows and columns
                init.CopyFrom(numpy_helper.from_array(w, init.name))
        return bad, n

    monkeypatch.setattr(col2im, "phase_convolutions", one_phase_off)
    monkeypatch.setenv("LOOMIS_CACHE", str(tmp_path / "bad"))
    fast = Translator(g, runtime="onnxruntime")
    assert "Col2Im" not in ops_cached(tmp_path / "bad" / "onnx")
    assert torch.allclose(fast.run(x), eager.run(x), atol=1e-4)


def _conv(weight, bias, pads, side: tuple[int, int], strides=(1, 1)):
    from onnx import TensorProto, helper, numpy_helper

    inits = [numpy_helper.from_array(weight, "w")] + ([numpy_helper.from_array(bias, "b")] if bias is not None else [])
    node = helper.make_node("Conv", ["x", "w"] + (["b"] if bias is not None else []), ["y"],
                            kernel_shape=list(weight.shape[2:]), pads=list(pads), strides=list(strides))
    graph = helper.make_graph(
        [node], "conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", weight.shape[1], *side])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


@pytest.mark.parametrize("kernel, pads, with_bias", [((7, 7), (0, 0, 0, 0), True), ((7, 7), (3, 3, 3, 3), False),
                                                     ((3, 5), (1, 0, 2, 4), True)])
def test_a_convolution_to_an_image_becomes_its_taps_and_col2im_with_the_same_output(kernel, pads, with_bias):
    rng = np.random.default_rng(2)
    cin, cout, side = 8, 3, (20, 24)
    w = rng.standard_normal((cout, cin, *kernel)).astype(np.float32) * 0.1
    b = rng.standard_normal(cout).astype(np.float32) if with_bias else None
    x = rng.standard_normal((2, cin, *side)).astype(np.float32)
    padded = np.pad(x, ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])))   # torch pads evenly only
    expected = torch.nn.functional.conv2d(torch.from_numpy(padded), torch.from_numpy(w),
                                          None if b is None else torch.from_numpy(b)).numpy()
    fast, n = col2im.tap_convolutions(_conv(w, b, pads, side))
    assert n == 1
    assert [node.op_type for node in fast.graph.node] == ["Conv", "Reshape", "Col2Im"] + ["Add"] * with_bias
    np.testing.assert_allclose(_run(fast, x), expected, atol=1e-5)


def test_wide_or_strided_convolutions_keep_their_kernel():
    rng = np.random.default_rng(3)
    wide = rng.standard_normal((8, 8, 7, 7)).astype(np.float32)
    image = rng.standard_normal((3, 8, 7, 7)).astype(np.float32)
    assert col2im.tap_convolutions(_conv(wide, None, (3, 3, 3, 3), (16, 16)))[1] == 0       # 8 channels
    assert col2im.tap_convolutions(_conv(image, None, (3, 3, 3, 3), (16, 16), (2, 2)))[1] == 0
    assert col2im.tap_convolutions(_conv(image[:, :, :1, :1], None, (0, 0, 0, 0), (16, 16)))[1] == 0  # 1×1


def test_resnet_image_layer_is_rewritten_and_the_generator_still_equals_torch(tmp_path):
    from loomis.train.inference import export_onnx

    torch.manual_seed(0)
    g = Generator(arch="resnet_6blocks", norm="instance", ngf=8, image_size=32).eval()
    export_onnx(g, tmp_path / "g.onnx", rewrite=False)
    plain = onnx.load(str(tmp_path / "g.onnx"))
    fast, n = col2im.tap_convolutions(plain)
    assert n == 1                                        # the 7×7 to 3 channels, not the 3→8 stem
    assert [node.op_type for node in fast.graph.node].count("Col2Im") == 1
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        expected = g(x).numpy()
    np.testing.assert_allclose(_run(fast, x.numpy()), expected, atol=1e-4)
