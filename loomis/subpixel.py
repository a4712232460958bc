"""Sub-pixel (phase) convolutions for the 4×4 stride-2 transposed convolutions of an
exported ONNX graph.

Why: a U-Net generator spends most of its time in its decoder's transposed convolutions,
and ONNX Runtime runs ``ConvTranspose`` as one GEMM into a column buffer holding all 16
taps of every input pixel, then a scatter-add (col2im) of that buffer into the output:
on this project's 2-core machine that reached 190–240 GFLOP/s on unet_256's widest
levels, where its ``Conv`` (direct kernels in a channel-blocked layout) reaches 280–320.

A stride-2 transposed convolution's output splits into four phases, even or odd rows by
even or odd columns, and each phase is an ordinary 2×2 convolution of the input with 4 of
the 16 taps (Shi et al., "Is the deconvolution layer the same as a convolutional layer?",
2016). With a 4×4 kernel and one pixel of padding, output row 2m + a reads input rows
m − 1 + a and m + a, so all four phases are windows of the same input padded by one pixel:
one ``Conv`` with 4·C_out channels computes them all, on (H + 1) × (W + 1) positions, and
ONNX's ``Col2Im`` (opset 18) with 2×2 blocks, stride 2 and a one-pixel crop lays each
phase's pixels where they belong. Every product is the same as the transposed
convolution's, plus the border row and column ((H + 1)² / H², 13% at 16 px, 3% at 64 px:
hence :data:`MIN_SIDE`), and there is no column buffer to scatter.

An eval-mode ``BatchNormalization`` right after the transposed convolution (a U-Net's
norm layer) is folded into the phase weights: ONNX Runtime fuses it into a
``ConvTranspose`` itself, but not through ``Col2Im``.

Like :mod:`loomis.winograd`, this is a pass over the exported graph: training, the saved
weights and torch inference are untouched, and :func:`loomis.inference.onnx_session`
checks the rewritten graph against torch before using it.
"""
from __future__ import annotations

import copy

import numpy as np

__all__ = ["MIN_CHANNELS", "MIN_SIDE", "phase_convolutions", "phase_weights"]

#: Smallest input side rewritten. The phase convolution computes one extra row and column
#: of positions: 27% more arithmetic at 8 px, where it lost to ``ConvTranspose`` (0.78× on
#: unet_256's 1024→512 level, ``benchmarks/layer_speed.py``). From 16 px it wins: alone,
#: 1.0× at 16 px, 1.1× at 32 and 1.2× at 64 px; in the whole unet_256 graph, where the
#: folded norm also counts, 1.12× from 16 px against 1.09× from 32 px.
MIN_SIDE = 16
#: Fewest output channels rewritten: the 3-channel image layer of a U-Net loses with a
#: 12-channel phase convolution (0.86×), whose channels do not fill a SIMD block.
MIN_CHANNELS = 16
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


def _attributes(node) -> dict:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _candidate(node, weights: dict, min_channels: int) -> bool:
    """What the node itself says: a float32 ``ConvTranspose`` with a constant 4×4 kernel
    (and bias), stride 2, padding 1, no groups, dilation or output padding."""
    if node.op_type != "ConvTranspose" or len(node.input) < 2 or node.input[1] not in weights:
        return False
    if len(node.input) > 2 and node.input[2] and node.input[2] not in weights:
        return False
    attrs = _attributes(node)
    w = weights[node.input[1]]
    return (len(w.dims) == 4 and list(w.dims[2:]) == [4, 4] and w.data_type == 1  # float32
            and w.dims[1] >= min_channels
            and attrs.get("group", 1) == 1
            and list(attrs.get("strides", [1, 1])) == [2, 2]
            and list(attrs.get("pads", [0, 0, 0, 0])) == [1, 1, 1, 1]
            and all(d == 1 for d in attrs.get("dilations", [1, 1]))
            and not any(attrs.get("output_padding", []))
            and "output_shape" not in attrs
            and attrs.get("auto_pad", b"NOTSET") in (b"NOTSET", "NOTSET"))


def _foldable_norm(node, consumers: dict, weights: dict, outputs: set):
    """The eval ``BatchNormalization`` that alone reads ``node``'s output, with constant
    parameters, or None."""
    readers = consumers.get(node.output[0], [])
    if len(readers) != 1 or node.output[0] in outputs:
        return None
    bn = readers[0]
    if (bn.op_type != "BatchNormalization" or bn.input[0] != node.output[0] or len(bn.output) != 1
            or _attributes(bn).get("training_mode", 0)
            or not all(name in weights for name in bn.input[1:5])):
        return None
    return bn


def phase_convolutions(model, min_side: int = MIN_SIDE, min_channels: int = MIN_CHANNELS):
    """Return ``(model, n)``: a copy of the ONNX ``model`` whose 4×4, stride-2, padding-1
    float32 transposed convolutions with at least ``min_channels`` output channels, on
    inputs at least ``min_side`` pixels high and wide, run as one phase ``Conv`` and a
    ``Col2Im``; ``n`` is how many were rewritten.

    Needs opset 18 (``Col2Im``): a graph of an older opset is returned unchanged, because
    raising its version could change the meaning of its other operators. Needs
    onnxruntime (the input shapes are found by running the graph).
    """
    from onnx import helper, numpy_helper

    from .winograd import tensor_shapes

    model = copy.deepcopy(model)
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    weights = {init.name: init for init in model.graph.initializer}
    for n in model.graph.node:   # torch's exporter names shared constants through Identity
        if n.op_type == "Identity" and n.input[0] in weights:
            weights[n.output[0]] = weights[n.input[0]]
    candidates = [n for n in model.graph.node if _candidate(n, weights, min_channels)]
    if opset < OPSET or not candidates:
        return model, 0
    shapes = tensor_shapes(model, [n.input[0] for n in candidates])
    rewrite = {n.output[0] for n in candidates
               if len(shapes.get(n.input[0], ())) == 4 and min(shapes[n.input[0]][2:]) >= min_side}
    consumers: dict[str, list] = {}
    for n in model.graph.node:
        for name in n.input:
            consumers.setdefault(name, []).append(n)
    outputs = {o.name for o in model.graph.output}
    folded, nodes, added, used, done = set(), [], [], set(), 0

    for node in model.graph.node:
        if id(node) in folded:
            continue
        if node.output[0] not in rewrite:
            nodes.append(node)
            used.update(node.input)
            continue
        done += 1
        p = f"phase{done}/"
        w = numpy_helper.to_array(weights[node.input[1]]).astype(np.float64)
        cout = w.shape[1]
        has_bias = len(node.input) > 2 and bool(node.input[2])
        bias = (numpy_helper.to_array(weights[node.input[2]]).astype(np.float64) if has_bias
                else np.zeros(cout))
        out = node.output[0]
        bn = _foldable_norm(node, consumers, weights, outputs)
        if bn is not None:   # y = (x - mean) / sqrt(var + eps) * gamma + beta, per channel
            gamma, beta, mean, var = (numpy_helper.to_array(weights[name]).astype(np.float64)
                                      for name in bn.input[1:5])
            scale = gamma / np.sqrt(var + _attributes(bn).get("epsilon", 1e-5))
            w, bias, has_bias = w * scale[None, :, None, None], (bias - mean) * scale + beta, True
            folded.add(id(bn))
            out = bn.output[0]
        h, wd = shapes[node.input[0]][2:]

        def const(name: str, value: np.ndarray) -> str:
            added.append(numpy_helper.from_array(value, p + name))
            return p + name

        conv_in = [node.input[0], const("weight", phase_weights(w).astype(np.float32))]
        if has_bias:
            conv_in.append(const("bias", np.repeat(bias, 4).astype(np.float32)))
        i64 = lambda *v: np.array(v, np.int64)  # noqa: E731
        nodes += [
            helper.make_node("Conv", conv_in, [p + "phases"], kernel_shape=[2, 2], pads=[1, 1, 1, 1]),
            helper.make_node("Reshape", [p + "phases", const("columns_shape", i64(0, 4 * cout, -1))],
                             [p + "columns"]),
            helper.make_node("Col2Im", [p + "columns", const("image", i64(2 * h, 2 * wd)),
                                        const("block", i64(2, 2))], [out],
                             strides=[2, 2], pads=[1, 1, 1, 1]),
        ]

    del model.graph.node[:]
    model.graph.node.extend(nodes)
    # the replaced weights and folded norms' parameters are no longer read by any node
    keep = [i for i in model.graph.initializer if i.name in used or i.name in outputs]
    del model.graph.initializer[:]
    model.graph.initializer.extend(keep + added)
    return model, done
