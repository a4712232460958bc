"""Per-layer timings behind two of the project's speed paths, and the thresholds they use.

    python -m benchmarks.layer_speed [--threads N] [--json FILE]

1. Winograd F(4×4, 3×3) in ONNX Runtime (``loomis.runtime.winograd``) against ORT's direct
   convolution, for one 3×3 convolution at several widths and sides: where the transforms
   cost more than the multiplies they save (the ``min_channels`` threshold).
2. The U-Net's 4×4 stride-2 transposed convolutions as matmul + col2im
   (``loomis.train.nets.transposed_conv_as_matmul``) against torch's native kernel, forward plus
   backward, at every level of unet_256 (the ``MATMUL_UPSAMPLING_MAX_SIDE`` threshold).
3. The same layers in ONNX Runtime as one phase convolution + ``Col2Im``
   (``loomis.runtime.col2im.phase_convolutions``) against its ``ConvTranspose`` (the ``MIN_SIDE``
   and ``MIN_CHANNELS`` thresholds).
4. Convolutions to a few channels in ONNX Runtime as a 1×1 convolution to their taps +
   ``Col2Im`` (``loomis.runtime.col2im.tap_convolutions``) against its ``Conv`` (the
   ``MAX_TAP_CHANNELS`` threshold).

Each pair is timed in alternation (medians); compare ratios, not milliseconds.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]

from benchmarks.run import alternating_medians, resting_session

WINOGRAD_CASES = [(64, 32), (64, 64), (128, 32), (128, 64), (256, 16), (256, 32), (256, 64)]
# unet_256 ngf 64, innermost level first: (input channels, output channels, input side)
UPSAMPLING_CASES = [(512, 512, 1), (1024, 512, 2), (1024, 512, 4), (1024, 512, 8),
                    (1024, 256, 16), (512, 128, 32), (256, 64, 64), (128, 3, 128)]
# (input channels, output channels, kernel side, output side): resnet_9blocks' image layer,
# the shipped CycleGANs' (ngf 16 at 128²), smaller kernels, and one output channel or eight
TAP_CASES = [(64, 3, 7, 256), (16, 3, 7, 128), (64, 3, 3, 256), (64, 3, 5, 256), (64, 1, 7, 256),
             (64, 8, 7, 256)]


def _onnx_layer_row(label: str, node, weight: np.ndarray, x: np.ndarray, opset: int, rewrite,
                    threads: int, repeats: int) -> dict:
    """One ONNX node (input ``x``, weights ``w``) against ``rewrite(model) -> (model, n)``
    of it, timed in turn in ONNX Runtime."""
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph([node], "layer",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x.shape))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(weight, "w")])
    direct = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    fast, n = rewrite(direct)
    assert n == 1, f"{label}: the pass did not rewrite the layer"
    sessions = {"direct": resting_session(direct, threads), "fast": resting_session(fast, threads)}
    outs = {k: s.run(None, {"x": x})[0] for k, s in sessions.items()}
    med = alternating_medians({k: (lambda s=s: s.run(None, {"x": x}))
                               for k, s in sessions.items()}, repeats)
    return {"layer": label, "baseline_ms": med["direct"] * 1e3, "fast_ms": med["fast"] * 1e3,
            "speedup": med["direct"] / med["fast"],
            "max_diff": float(np.abs(outs["direct"] - outs["fast"]).max())}


def winograd_rows(threads: int, repeats: int) -> list[dict]:
    from onnx import helper

    from loomis.runtime.winograd import winograd_convolutions

    rng = np.random.default_rng(0)
    rows = []
    for channels, side in WINOGRAD_CASES:
        w = (rng.standard_normal((channels, channels, 3, 3)) / (3 * channels ** 0.5)).astype(np.float32)
        x = rng.standard_normal((1, channels, side + 2, side + 2)).astype(np.float32)
        rows.append(_onnx_layer_row(
            f"3×3 conv {channels}→{channels} @{side}²", helper.make_node("Conv", ["x", "w"], ["y"]),
            w, x, 17, lambda m: winograd_convolutions(m, min_channels=1), threads, repeats))
    return rows


def phase_rows(threads: int, repeats: int) -> list[dict]:
    from onnx import helper

    from loomis.runtime.col2im import phase_convolutions

    rng = np.random.default_rng(0)
    rows = []
    for cin, cout, side in UPSAMPLING_CASES:
        w = (rng.standard_normal((cin, cout, 4, 4)) * 0.02).astype(np.float32)
        x = rng.standard_normal((1, cin, side, side)).astype(np.float32)
        node = helper.make_node("ConvTranspose", ["x", "w"], ["y"], kernel_shape=[4, 4],
                                strides=[2, 2], pads=[1, 1, 1, 1])
        rows.append(_onnx_layer_row(
            f"transposed conv {cin}→{cout} @{side}²", node, w, x, 18,
            lambda m: phase_convolutions(m, min_side=1, min_channels=1), threads, repeats))
    return rows


def tap_rows(threads: int, repeats: int) -> list[dict]:
    from onnx import helper

    from loomis.runtime.col2im import tap_convolutions

    rng = np.random.default_rng(0)
    rows = []
    for cin, cout, k, side in TAP_CASES:
        w = (rng.standard_normal((cout, cin, k, k)) * 0.02).astype(np.float32)
        x = rng.standard_normal((1, cin, side + k - 1, side + k - 1)).astype(np.float32)  # padded
        rows.append(_onnx_layer_row(
            f"{k}×{k} conv {cin}→{cout} @{side}²", helper.make_node("Conv", ["x", "w"], ["y"]),
            w, x, 18, lambda m: tap_convolutions(m, max_channels=cout), threads, repeats))
    return rows


def upsampling_rows(repeats: int) -> list[dict]:
    from loomis.train.nets import transposed_conv_as_matmul

    rows = []
    for cin, cout, side in UPSAMPLING_CASES:
        x = torch.randn(1, cin, side, side, requires_grad=True)
        w = (torch.randn(cin, cout, 4, 4) * 0.02).requires_grad_()

        def native():
            torch.nn.functional.conv_transpose2d(x, w, stride=2, padding=1).sum().backward()

        def matmul():
            transposed_conv_as_matmul(x, w, None).sum().backward()

        diff = (torch.nn.functional.conv_transpose2d(x, w, stride=2, padding=1)
                - transposed_conv_as_matmul(x, w, None)).abs().max().item()
        med = alternating_medians({"native": native, "matmul": matmul}, repeats)
        rows.append({"layer": f"transposed conv {cin}→{cout} @{side}² (fwd+bwd)",
                     "baseline_ms": med["native"] * 1e3, "fast_ms": med["matmul"] * 1e3,
                     "speedup": med["native"] / med["matmul"], "max_diff": diff})
    return rows


def markdown(rows: list[dict], baseline: str, fast: str) -> str:
    lines = [f"| layer | {baseline} ms | {fast} ms | speed-up | max diff |", "|---|---|---|---|---|"]
    lines += [f"| {r['layer']} | {r['baseline_ms']:.2f} | {r['fast_ms']:.2f} | "
              f"{r['speedup']:.2f}× | {r['max_diff']:.1e} |" for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=torch.get_num_threads(),
                    help="threads for torch and ONNX Runtime (default: torch's)")
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--json", type=Path, help="write the rows here")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    wino = winograd_rows(args.threads, args.repeats)
    print(f"Winograd F(4×4, 3×3) in ONNX Runtime, {args.threads} thread(s)\n")
    print(markdown(wino, "direct", "Winograd"))
    ups = upsampling_rows(args.repeats)
    print(f"\nU-Net transposed convolutions in torch, {args.threads} thread(s)\n")
    print(markdown(ups, "native", "matmul + col2im"))
    phases = phase_rows(args.threads, args.repeats)
    print(f"\nU-Net transposed convolutions in ONNX Runtime, {args.threads} thread(s)\n")
    print(markdown(phases, "ConvTranspose", "phase conv + Col2Im"))
    taps = tap_rows(args.threads, args.repeats)
    print(f"\nConvolutions to a few channels in ONNX Runtime, {args.threads} thread(s)\n")
    print(markdown(taps, "Conv", "1×1 conv to the taps + Col2Im"))
    if args.json:
        args.json.write_text(json.dumps({"threads": args.threads, "winograd": wino,
                                         "upsampling": ups, "phase": phases, "taps": taps},
                                        indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
