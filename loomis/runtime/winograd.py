"""Winograd F(4×4, 3×3) for the 3×3 convolutions of an exported ONNX graph.

Why: the CycleGAN generator (resnet_9blocks) spends most of its time in the eighteen 3×3,
stride-1 convolutions of its residual blocks, and those are compute-bound: torch eager
and ONNX Runtime both run them near the machine's matmul limit, so no scheduling trick
makes them faster. Fewer multiplies can. Winograd's minimal filtering (Lavin & Gray,
"Fast Algorithms for Convolutional Neural Networks", 2016) computes each 4×4 output tile
from a 6×6 input tile with 36 multiplies per channel pair instead of 144, so the block
convolutions do a quarter of the arithmetic. The result equals direct convolution up to
float32 rounding (about 1e-5 through a whole generator; :func:`loomis.train.inference.onnx_session`
checks every graph against torch before using it).

The rewrite is a pass over the ONNX graph, not a change to the network, so training, the
saved weights and torch inference are untouched. Each eligible ``Conv`` becomes standard
ONNX operators that ONNX Runtime runs well on a CPU:

* input transform Bᵀ·d·B of every 6×6 tile (stride 4): one grouped ``Conv`` whose fixed
  weights are the transform, then a ``Transpose`` of contiguous rows;
* 36 matrix products U[ξ] · V[ξ] (K×C by C×tiles): one batched ``MatMul``;
* output transform Aᵀ·M·A: one ``MatMul`` by the 16×36 transform, then ``DepthToSpace``
  to interleave the 4×4 output tiles.

The transformed weights U = G·g·Gᵀ are built in the graph from the original weights, so
the file keeps its size and ONNX Runtime folds U into a constant once, when the session
is created.
"""
from __future__ import annotations

import copy

import numpy as np

from loomis.runtime.onnx_graph import plain_layer, tensor_shapes

__all__ = ["TILE", "winograd_convolutions"]

#: Output tile side m of F(m×m, 3×3); the input tile is m + 2.
TILE = 4

# F(4, 3) from the interpolation points 0, ±1, ±2 and ∞ (Lavin & Gray, section 4.2).
_BT = np.array([[4, 0, -5, 0, 1, 0],
                [0, -4, -4, 1, 1, 0],
                [0, 4, -4, -1, 1, 0],
                [0, -2, -1, 2, 1, 0],
                [0, 2, -1, -2, 1, 0],
                [0, 4, 0, -5, 0, 1]], dtype=np.float64)
_G = np.array([[1 / 4, 0, 0],
               [-1 / 6, -1 / 6, -1 / 6],
               [-1 / 6, 1 / 6, -1 / 6],
               [1 / 24, 1 / 12, 1 / 6],
               [1 / 24, -1 / 12, 1 / 6],
               [0, 0, 1]], dtype=np.float64)
_AT = np.array([[1, 1, 1, 1, 1, 0],
                [0, 1, -1, 2, -2, 0],
                [0, 1, 1, 4, 4, 0],
                [0, 1, -1, 8, -8, 1]], dtype=np.float64)


def _candidate(node, weights: dict, min_channels: int) -> bool:
    """What the node itself says: a 3×3, stride-1, unpadded, ungrouped float32 ``Conv``
    with constant weights (and bias) and at least ``min_channels`` in and out."""
    layer = plain_layer(node, weights, "Conv")
    if layer is None:
        return False
    attrs, (cout, cin, kh, kw) = layer
    return ((kh, kw) == (3, 3)
            and all(s == 1 for s in attrs.get("strides", [1, 1]))
            and all(p == 0 for p in attrs.get("pads", [0, 0, 0, 0]))
            and min(cout, cin) >= min_channels)


def _tiles_evenly(shape: tuple[int, ...] | None) -> bool:
    """A 4-D input whose output sides (input − 2) are multiples of :data:`TILE`."""
    return (shape is not None and len(shape) == 4
            and (shape[2] - 2) % TILE == 0 and (shape[3] - 2) % TILE == 0)


def winograd_convolutions(model, min_channels: int = 128):
    """Return ``(model, n)``: a copy of the ONNX ``model`` whose 3×3, stride-1, unpadded,
    ungrouped float32 convolutions with at least ``min_channels`` input and output channels
    (and output sides a multiple of :data:`TILE`) run as Winograd F(4×4, 3×3); ``n`` is
    how many were rewritten.

    Below 128 channels the tile transforms cost more than the multiplies they save
    (docs/layer_speed.json), so narrow convolutions keep ONNX Runtime's kernel.
    Needs onnxruntime (the input shapes are found by running the graph).
    """
    from onnx import helper, numpy_helper

    model = copy.deepcopy(model)
    weights = {init.name: init for init in model.graph.initializer}
    candidates = [n for n in model.graph.node if _candidate(n, weights, min_channels)]
    if not candidates:  # e.g. a U-Net (4×4 kernels): no need to run the graph
        return model, 0
    shapes = tensor_shapes(model, [n.input[0] for n in candidates])
    rewrite = {n.output[0] for n in candidates if _tiles_evenly(shapes.get(n.input[0]))}
    a, m = _BT.shape[0], TILE
    nodes, added, done = [], [], 0

    for node in model.graph.node:
        if node.output[0] not in rewrite:
            nodes.append(node)
            continue
        done += 1
        p = f"winograd{done}/"
        k, c = (int(d) for d in weights[node.input[1]].dims[:2])
        t1, t2 = (shapes[node.input[0]][2] - 2) // m, (shapes[node.input[0]][3] - 2) // m

        def const(name: str, value: np.ndarray) -> str:
            added.append(numpy_helper.from_array(np.ascontiguousarray(value), p + name))
            return p + name

        def op(kind: str, inputs: list[str], out: str | None, **attrs) -> str:
            """Append a node; ``out=None`` writes the replaced convolution's own output."""
            nodes.append(helper.make_node(kind, inputs, [p + out if out else node.output[0]], **attrs))
            return nodes[-1].output[0]

        i64 = lambda *v: np.array(v, np.int64)  # noqa: E731
        # Input transform: output channel c·36 + ξ of a grouped conv is (Bᵀ d B)[ξ] of channel c.
        b_taps = np.kron(_BT, _BT).reshape(a * a, 1, a, a).astype(np.float32)
        b_weight = op("Tile", [const("b_taps", b_taps), const("b_repeat", i64(c, 1, 1, 1))], "b_weight")
        v = op("Conv", [node.input[0], b_weight], "tiles", group=c, strides=[m, m])
        v = op("Reshape", [v, const("v_shape", i64(-1, c, a * a, t1 * t2))], "v_rows")
        v = op("Transpose", [v], "v", perm=[2, 0, 1, 3])                      # 36, N, C, tiles
        # Filter transform U = G g Gᵀ, from the graph's own weights (folded once by ORT).
        u = op("MatMul", [const("g", _G.astype(np.float32)), node.input[1]], "u_half")
        u = op("MatMul", [u, const("gt", _G.T.astype(np.float32))], "u_full")  # K, C, 6, 6
        u = op("Reshape", [u, const("u_shape", i64(k, c, a * a))], "u_rows")
        u = op("Transpose", [u], "u_xi", perm=[2, 0, 1])                     # 36, K, C
        u = op("Reshape", [u, const("u_batched", i64(a * a, 1, k, c))], "u")
        mm = op("MatMul", [u, v], "products")                                # 36, N, K, tiles
        # Output transform Aᵀ M A for every tile, then interleave the 4×4 tiles.
        mm = op("Reshape", [mm, const("m_shape", i64(a * a, -1))], "products_flat")
        y = op("MatMul", [const("a_taps", np.kron(_AT, _AT).astype(np.float32)), mm], "y_flat")
        y = op("Reshape", [y, const("y_shape", i64(m * m, -1, k, t1 * t2))], "y_tiles")
        y = op("Transpose", [y], "y_order", perm=[1, 2, 0, 3])               # N, K, 16, tiles
        y = op("Reshape", [y, const("y_depth_shape", i64(-1, k * m * m, t1, t2))], "y_depth")
        if len(node.input) > 2 and node.input[2]:
            y = op("DepthToSpace", [y], "y", blocksize=m, mode="CRD")
            bias = numpy_helper.to_array(weights[node.input[2]]).reshape(k, 1, 1)
            op("Add", [y, const("bias", bias.astype(np.float32))], None)
        else:
            op("DepthToSpace", [y], None, blocksize=m, mode="CRD")

    del model.graph.node[:]
    model.graph.node.extend(nodes)
    model.graph.initializer.extend(added)
    return model, done
