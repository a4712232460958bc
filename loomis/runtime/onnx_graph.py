"""What the ONNX graph passes (:mod:`loomis.runtime.winograd`, :mod:`loomis.runtime.col2im`) read from an
exported graph: tensor shapes, node attributes, and whether a convolution is a plain one
with constant weights that a pass may rewrite."""
from __future__ import annotations

import copy

import numpy as np

__all__ = ["attributes", "plain_layer", "tensor_shapes"]


def tensor_shapes(model, names: list[str]) -> dict[str, tuple[int, ...]]:
    """Shapes of the tensors ``names``, found by running the graph once on a zero batch of 1.

    The exporter computes reflection-padding amounts inside the graph, which ONNX's static
    shape inference cannot follow; running it is exact and takes one forward pass.
    """
    import onnxruntime as ort
    from onnx import helper

    probe = copy.deepcopy(model)
    names = list(dict.fromkeys(names))
    if not names or len(probe.graph.input) != 1:
        return {}
    del probe.graph.output[:]
    probe.graph.output.extend(helper.make_empty_tensor_value_info(name) for name in names)
    source = probe.graph.input[0]
    dims = [d.dim_value or 1 for d in source.type.tensor_type.shape.dim]
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.log_severity_level = 3
    sess = ort.InferenceSession(probe.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    outs = sess.run(None, {source.name: np.zeros(dims, np.float32)})
    return {name: tuple(out.shape) for name, out in zip(names, outs)}


def attributes(node) -> dict:
    """A node's attributes by name, as Python values."""
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def plain_layer(node, weights: dict, op_type: str) -> tuple[dict, list[int]] | None:
    """``(attributes, weight shape)`` of ``node`` if it is an ``op_type`` with float32
    constant 4-D weights (and bias), no groups, dilation, output padding or automatic
    padding; else None."""
    if node.op_type != op_type or len(node.input) < 2 or node.input[1] not in weights:
        return None
    if len(node.input) > 2 and node.input[2] and node.input[2] not in weights:
        return None
    attrs, w = attributes(node), weights[node.input[1]]
    plain = (len(w.dims) == 4 and w.data_type == 1   # float32
             and attrs.get("group", 1) == 1
             and all(d == 1 for d in attrs.get("dilations", [1, 1]))
             and not any(attrs.get("output_padding", []))
             and "output_shape" not in attrs
             and attrs.get("auto_pad", b"NOTSET") in (b"NOTSET", "NOTSET"))
    return (attrs, list(w.dims)) if plain else None
