"""Two convolutions that ONNX Runtime runs faster as a ``Conv`` plus a ``Col2Im``: passes
over an exported graph.

ONNX Runtime's ``Conv`` runs direct kernels in a channel-blocked layout (16 channels a
block with AVX-512), which reach 280–320 GFLOP/s on this project's 2-core machine. Two
layers of our generators miss that kernel or waste it, and ``Col2Im`` (opset 18), the
scatter-add that lays columns of values back into an image, lets both use it:

**The U-Net's 4×4 stride-2 transposed convolutions** (:func:`phase_convolutions`). ONNX
Runtime runs ``ConvTranspose`` as one GEMM into a column buffer holding all 16 taps of
every input pixel, then a col2im of that buffer: 190–240 GFLOP/s on unet_256's widest
levels. A stride-2 transposed convolution's output splits into four phases, even or odd
rows by even or odd columns, and each phase is an ordinary 2×2 convolution of the input
with 4 of the 16 taps (Shi et al., "Is the deconvolution layer the same as a
convolutional layer?", 2016). With a 4×4 kernel and one pixel of padding, output row
2m + a reads input rows m − 1 + a and m + a, so all four phases are windows of the same
input padded by one pixel: one ``Conv`` with 4·C_out channels computes them all, on
(H + 1) × (W + 1) positions, and ``Col2Im`` with 2×2 blocks, stride 2 and a one-pixel
crop lays each phase's pixels where they belong. Every product is the transposed
convolution's, plus the border row and column ((H + 1)² / H², 13% at 16 px, 3% at 64 px:
hence :data:`MIN_SIDE`), and there is no column buffer to scatter. An eval-mode
``BatchNormalization`` right after it (a U-Net's norm layer) is folded into the phase
weights: ONNX Runtime fuses it into a ``ConvTranspose`` itself, but not through ``Col2Im``.

**Convolutions to an image** (:func:`tap_convolutions`): the last layer of a ResNet
generator, 7×7 from 64 channels to 3. The blocked kernel pads those 3 output channels to
a block of 16 and runs far below the machine's matrix speed. Turned around, each
of the K×K taps of each output channel is a 1×1 convolution of the input: one ``Conv``
with C_out·K² channels (147 here) computes every tap's product at every input pixel, a
well-shaped matrix product, and ``Col2Im`` with K×K blocks and stride 1 adds each
output pixel's K² products, exactly as a transposed convolution would with the kernel
turned by 180°.

Like :mod:`loomis.runtime.winograd`, these are passes over the exported graph: training, the
saved weights and torch inference are untouched, and
:func:`loomis.train.inference.onnx_session` checks the rewritten graph against torch before
using it. Both need opset 18; an older graph is returned unchanged, because raising its
version could change the meaning of its other operators.
"""
from __future__ import annotations

import copy

import numpy as np

from loomis.runtime.onnx_graph import attributes, plain_layer, tensor_shapes

__all__ = ["MAX_TAP_CHANNELS", "MIN_CHANNELS", "MIN_SIDE", "phase_convolutions", "phase_weights",
           "tap_convolutions", "tap_weights"]

#: Smallest input side rewritten: the phase convolution computes one extra row and column
#: of positions, which below 16 px costs more than the rewrite saves (timed layer by layer
#: and on the whole unet_256; docs/measurements.md, Speed).
MIN_SIDE = 16
#: Fewest output channels rewritten: a U-Net's 3-channel image layer becomes a 12-channel
#: phase convolution, whose channels do not fill a SIMD block, and loses.
MIN_CHANNELS = 16
#: Most output channels a convolution may have for :func:`tap_convolutions`: image layers
#: (1 to 4 channels) win as taps, 8 channels no longer do.
MAX_TAP_CHANNELS = 4
#: ``Col2Im`` first appears in this ONNX opset.
OPSET = 18


def phase_weights(weight: np.ndarray) -> np.ndarray:
    """The ``(4·C_out, C_in, 2, 2)`` weights of the phase convolution equal to a
    ``ConvTranspose`` with ``weight`` of shape ``(C_in, C_out, 4, 4)``, stride 2, padding 1.

    Channel ``4·o + 2·i + j`` is output channel ``o`` at block offset ``(i, j)`` of
    ``Col2Im`` (pixel ``2t − 1 + i`` of the output comes from window ``t``), which holds
    the phase ``(a, b) = (1 − i, 1 − j)``: output pixel ``2m + a`` reads window
    ``m + a``, whose taps ``u = 0, 1`` (input rows ``m − 1 + a + u``) meet kernel row
    ``3 − a − 2u``.
    """
    cin, cout = weight.shape[:2]
    taps = np.array([[3, 1], [2, 0]])                 # taps[a, u]: kernel row of phase a, tap u
    w = weight[:, :, taps[:, None, :, None], taps[None, :, None, :]]  # cin, cout, a, b, u, v
    w = w[:, :, ::-1, ::-1]                           # phase (a, b) -> block offset (1 - a, 1 - b)
    return np.ascontiguousarray(w.transpose(1, 2, 3, 0, 4, 5).reshape(4 * cout, cin, 2, 2))


class _Graph:
    """What a pass's rewrite of one node needs: the graph's constants by name, the shapes
    of the rewritten nodes' inputs, who reads what, and where new constants go."""

    def __init__(self, model, weights: dict, inputs: list[str]) -> None:
        self.weights = weights
        self.shapes = tensor_shapes(model, inputs)
        self.readers: dict[str, list] = {}
        for n in model.graph.node:
            for name in n.input:
                self.readers.setdefault(name, []).append(n)
        self.outputs = {o.name for o in model.graph.output}
        self.added: list = []
        self.absorbed: set[int] = set()   # ids of nodes folded into a rewritten one

    def array(self, name: str) -> np.ndarray:
        from onnx import numpy_helper

        return numpy_helper.to_array(self.weights[name]).astype(np.float64)

    def const(self, name: str, value: np.ndarray) -> str:
        from onnx import numpy_helper

        self.added.append(numpy_helper.from_array(value, name))
        return name

    def foldable_norm(self, node):
        """The eval ``BatchNormalization`` that alone reads ``node``'s output, with constant
        parameters, or None."""
        readers = self.readers.get(node.output[0], [])
        if len(readers) != 1 or node.output[0] in self.outputs:
            return None
        bn = readers[0]
        if (bn.op_type != "BatchNormalization" or bn.input[0] != node.output[0]
                or len(bn.output) != 1 or attributes(bn).get("training_mode", 0)
                or not all(name in self.weights for name in bn.input[1:5])):
            return None
        return bn


def _rewrite(model, name: str, eligible, expand):
    """Return ``(model, n)``: a copy of ``model`` in which every node that ``eligible(node,
    weights)`` accepts and ``expand(node, graph, prefix)`` turns into a list of new nodes
    (None: leave it) is replaced by them; ``n`` counts the replaced nodes. Constants no
    node reads any more (replaced weights, folded norms) leave the file."""
    model = copy.deepcopy(model)
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    weights = {init.name: init for init in model.graph.initializer}
    for n in model.graph.node:   # torch's exporter names shared constants through Identity
        if n.op_type == "Identity" and n.input[0] in weights:
            weights[n.output[0]] = weights[n.input[0]]
    candidates = [n for n in model.graph.node if eligible(n, weights)]
    if opset < OPSET or not candidates:
        return model, 0
    graph = _Graph(model, weights, [n.input[0] for n in candidates])
    chosen = {id(n) for n in candidates}
    nodes, used, done = [], set(), 0
    for node in model.graph.node:
        if id(node) in graph.absorbed:
            continue
        new = expand(node, graph, f"{name}{done + 1}/") if id(node) in chosen else None
        if new is None:
            nodes.append(node)
            used.update(node.input)
            continue
        done += 1
        nodes += new
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    keep = [i for i in model.graph.initializer if i.name in used or i.name in graph.outputs]
    del model.graph.initializer[:]
    model.graph.initializer.extend(keep + graph.added)
    return model, done


def _i64(*values: int) -> np.ndarray:
    return np.array(values, np.int64)


def phase_convolutions(model, min_side: int = MIN_SIDE, min_channels: int = MIN_CHANNELS):
    """Return ``(model, n)``: a copy of the ONNX ``model`` whose 4×4, stride-2, padding-1
    float32 transposed convolutions with at least ``min_channels`` output channels, on
    inputs at least ``min_side`` pixels high and wide, run as one phase ``Conv`` and a
    ``Col2Im``; ``n`` is how many were rewritten.

    Needs opset 18 (see the module's docstring) and onnxruntime (the input shapes are
    found by running the graph).
    """
    from onnx import helper

    def eligible(node, weights) -> bool:
        layer = plain_layer(node, weights, "ConvTranspose")
        if layer is None:
            return False
        attrs, (_, cout, kh, kw) = layer
        return (cout >= min_channels and (kh, kw) == (4, 4)
                and list(attrs.get("strides", [1, 1])) == [2, 2]
                and list(attrs.get("pads", [0, 0, 0, 0])) == [1, 1, 1, 1])

    def expand(node, graph: _Graph, p: str):
        shape = graph.shapes.get(node.input[0], ())
        if len(shape) != 4 or min(shape[2:]) < min_side:
            return None
        w = graph.array(node.input[1])
        cout = w.shape[1]
        has_bias = len(node.input) > 2 and bool(node.input[2])
        bias = graph.array(node.input[2]) if has_bias else np.zeros(cout)
        out = node.output[0]
        bn = graph.foldable_norm(node)
        if bn is not None:   # y = (x - mean) / sqrt(var + eps) * gamma + beta, per channel
            gamma, beta, mean, var = (graph.array(name) for name in bn.input[1:5])
            scale = gamma / np.sqrt(var + attributes(bn).get("epsilon", 1e-5))
            w, bias, has_bias = w * scale[None, :, None, None], (bias - mean) * scale + beta, True
            graph.absorbed.add(id(bn))
            out = bn.output[0]
        conv_in = [node.input[0], graph.const(p + "weight", phase_weights(w).astype(np.float32))]
        if has_bias:
            conv_in.append(graph.const(p + "bias", np.repeat(bias, 4).astype(np.float32)))
        h, wd = shape[2:]
        return [
            helper.make_node("Conv", conv_in, [p + "phases"], kernel_shape=[2, 2], pads=[1, 1, 1, 1]),
            helper.make_node("Reshape", [p + "phases", graph.const(p + "columns_shape", _i64(0, 4 * cout, -1))],
                             [p + "columns"]),
            helper.make_node("Col2Im", [p + "columns", graph.const(p + "image", _i64(2 * h, 2 * wd)),
                                        graph.const(p + "block", _i64(2, 2))], [out],
                             strides=[2, 2], pads=[1, 1, 1, 1]),
        ]

    return _rewrite(model, "phase", eligible, expand)


def tap_weights(weight: np.ndarray) -> np.ndarray:
    """The ``(C_out·K·L, C_in, 1, 1)`` weights of the 1×1 convolution to the taps of a
    ``Conv`` with ``weight`` of shape ``(C_out, C_in, K, L)``.

    ``Col2Im`` with K×L blocks, stride 1 and padding K − 1 − p adds offset ``i`` of the
    block at input pixel ``b`` into output pixel ``b − (K − 1 − p) + i``, so output pixel
    ``o`` gathers input pixel ``o − p + (K − 1 − i)`` from offset ``i``: channel
    ``o·K·L + i·L + j`` must hold tap ``(K − 1 − i, L − 1 − j)``, the kernel turned by 180°.
    """
    cout, cin, k, l = weight.shape
    w = weight[:, :, ::-1, ::-1].transpose(0, 2, 3, 1)
    return np.ascontiguousarray(w.reshape(cout * k * l, cin, 1, 1))


def tap_convolutions(model, max_channels: int = MAX_TAP_CHANNELS):
    """Return ``(model, n)``: a copy of the ONNX ``model`` whose stride-1 float32
    convolutions with at most ``max_channels`` output channels and a kernel larger than
    1×1 run as a 1×1 ``Conv`` to every tap's product and a ``Col2Im`` that adds them;
    ``n`` is how many were rewritten.

    Needs opset 18 and onnxruntime, like :func:`phase_convolutions`.
    """
    from onnx import helper

    def eligible(node, weights) -> bool:
        layer = plain_layer(node, weights, "Conv")
        if layer is None:
            return False
        attrs, (cout, _, kh, kw) = layer
        return (cout <= max_channels and kh * kw > 1
                and all(s == 1 for s in attrs.get("strides", [1, 1])))

    def expand(node, graph: _Graph, p: str):
        shape = graph.shapes.get(node.input[0], ())
        if len(shape) != 4:
            return None
        w = graph.array(node.input[1])
        cout, _, k, l = w.shape
        top, left, bottom, right = attributes(node).get("pads", [0, 0, 0, 0])
        if max(top, bottom) > k - 1 or max(left, right) > l - 1:
            return None   # padding wider than the kernel: outputs that see no input at all
        out = node.output[0]
        has_bias = len(node.input) > 2 and bool(node.input[2])
        image = _i64(shape[2] + top + bottom - k + 1, shape[3] + left + right - l + 1)
        nodes = [
            helper.make_node("Conv", [node.input[0], graph.const(p + "weight", tap_weights(w).astype(np.float32))],
                             [p + "taps"], kernel_shape=[1, 1]),
            helper.make_node("Reshape", [p + "taps", graph.const(p + "columns_shape", _i64(0, cout * k * l, -1))],
                             [p + "columns"]),
            helper.make_node("Col2Im", [p + "columns", graph.const(p + "image", image),
                                        graph.const(p + "block", _i64(k, l))],
                             [p + "sum" if has_bias else out],
                             pads=[k - 1 - top, l - 1 - left, k - 1 - bottom, l - 1 - right]),
        ]
        if has_bias:
            bias = graph.array(node.input[2]).reshape(cout, 1, 1).astype(np.float32)
            nodes.append(helper.make_node("Add", [p + "sum", graph.const(p + "bias", bias)], [out]))
        return nodes

    return _rewrite(model, "taps", eligible, expand)
