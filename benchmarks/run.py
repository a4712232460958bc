"""One command that measures Loomis's speed on the machine it runs on.

    python -m benchmarks.run [--quick] [--json FILE] [--runs N]

Prints a markdown table: the float32 matmul limit of this machine (the fastest of numpy's,
torch's and ONNX Runtime's) and its memory bandwidth; generator latency, achieved GFLOP/s,
its share of that limit and of the generator's roofline, through torch eager and every
faster runtime the project uses (and, for shipped photo → drawing generators, the app's mirror pass:
the image and its mirror as one batch of two); the geometric engine at 640×480, one
training step of pix2pix and CycleGAN (with its GFLOP/s, forward and backward counted
by torch's FlopCounterMode), synthetic pair rendering, and the app's round trip per
endpoint. Timings are medians of repeated runs; compare ratios taken in the same run
(this machine is noisy).
``--quick`` shrinks sizes and repeats so CI can check that every section still runs (no
timing is asserted).
``--runs N`` repeats the whole benchmark N times and reports, per measurement, the median
over the runs with the range of every speed-up: one run's ratio can be off by a third here.
A share of the matmul limit is taken against the limit timed among the row's own
contenders (the machine's speed drifts by up to 1.5× between sections); the matmul
section's own figure heads the table.

Achieved GFLOP/s counts the multiply-adds of direct convolution. Where a graph does less
arithmetic for the same result (Winograd 3×3 convolutions in ONNX Runtime), that effective
rate can exceed the matmul limit: read it as speed, not as hardware utilisation.

The matmul limit alone overstates what a network can reach at batch 1: a layer with
millions of weights over a few pixels waits on memory, not on arithmetic. So the matmul
section also measures memory read bandwidth, and each generator gets a roofline: the sum
over its convolutions of the slower of arithmetic at the matmul limit and memory traffic
(weights, input, output) at that bandwidth. "% of roofline" is how close a runtime comes
to what this machine allows for that network (above 100% only with fewer multiplies).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import statistics
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]

import numpy as np  # noqa: E402
import torch  # noqa: E402


def median_time(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    """Median wall time of ``fn`` in seconds, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def alternating_medians(fns: dict[str, Callable[[], object]], repeats: int,
                        warmup: int = 1) -> dict[str, float]:
    """Median wall time of each of ``fns`` in seconds, timed in alternation (A B A B …)
    after ``warmup`` untimed rounds. On a shared or throttling machine the speed drifts
    by tens of percent within a minute; timing the contenders back to back in every round
    puts the same drift on both sides of a ratio."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for i in range(warmup + repeats):
        for name, fn in fns.items():
            t = time.perf_counter()
            fn()
            if i >= warmup:
                times[name].append(time.perf_counter() - t)
    return {name: statistics.median(ts) for name, ts in times.items()}


def conv_layers(model: torch.nn.Module, x: torch.Tensor) -> list[tuple[int, int]]:
    """``(flops, bytes)`` of each convolution in one forward pass (what dominates): flops
    of direct convolution (2 per multiply-add), and the float32 bytes it must move at
    least once, its weights plus its input and output. Those two give each layer's
    roofline time, ``max(flops / matmul limit, bytes / memory bandwidth)``."""
    layers = []

    def hook(mod, inp, out):
        k = mod.kernel_size[0] * mod.kernel_size[1]
        if isinstance(mod, torch.nn.ConvTranspose2d):
            macs = inp[0].numel() * mod.out_channels // mod.groups * k
        else:
            macs = out.numel() * mod.in_channels // mod.groups * k
        tensors = [inp[0], out] + [p for p in mod.parameters(recurse=False)]
        layers.append((2 * macs, sum(4 * t.numel() for t in tensors)))

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    return layers


def roofline_seconds(layers: list[tuple[int, int]], gflops: float, gbps: float) -> float:
    """The least time the machine allows for these layers run one after another: each is
    bound by its arithmetic at the matmul limit or by its memory traffic at the measured
    bandwidth, whichever is slower. At batch 1 a U-Net's inner levels (4–8 M weights over
    1–16 px) are memory-bound, so the bound lies above the pure-arithmetic time (unet_256
    here: 46.4 against 42.6 ms, docs/speed.json)."""
    return sum(max(f / (gflops * 1e9), b / (gbps * 1e9)) for f, b in layers)


# ------------------------------------------------------------------------------ sections


def bench_matmul(quick: bool) -> list[dict]:
    """The two hardware limits: float32 matmul GFLOP/s and memory read bandwidth. The
    bandwidth is read from a buffer larger than the largest generator's weights (218 MB
    for unet_256), so that caches help it no more than they help a forward pass."""
    fns, n = matmul_contenders(quick)
    flops = 2 * n ** 3
    med = alternating_medians(fns, 3 if quick else 7)
    buf = torch.ones((4 if quick else 64) * 2 ** 20)  # 16 or 256 MB
    t_read = median_time(lambda: buf.sum(), 3 if quick else 9)
    rows = [{"what": f"float32 matmul {n}² ({name})", "ms": t * 1e3, "gflops": flops / t / 1e9}
            for name, t in med.items()]
    return rows + [{"what": f"memory read, {buf.numel() * 4 >> 20} MB (torch sum)",
                    "ms": t_read * 1e3, "gbps": buf.numel() * 4 / t_read / 1e9}]


def matmul_contenders(quick: bool) -> tuple[dict[str, Callable[[], object]], int]:
    """The float32 square matmul of every library the project computes with (numpy, torch
    and, when installed, ONNX Runtime), and its side (2048, 512 quick).

    ONNX Runtime runs the project's generators, so its own GEMM (MLAS) belongs here: it
    shows what that runtime's kernels can reach on this machine, and it may be the
    fastest of the three."""
    n = 512 if quick else 2048
    a = np.random.rand(n, n).astype(np.float32)
    b = np.random.rand(n, n).astype(np.float32)
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    fns: dict[str, Callable[[], object]] = {"numpy": lambda: a @ b, "torch": lambda: ta @ tb}
    from loomis.train.inference import available_runtimes

    if "onnxruntime" in available_runtimes():
        sess = _matmul_session(n)
        fns["onnxruntime"] = lambda: sess.run(None, {"a": a, "b": b})
    return fns, n


def resting_session(model, threads: int):
    """An ONNX Runtime session of ``model`` on ``threads`` threads that do not spin between
    calls: a spinning pool would slow whatever is timed next in the same process."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def _matmul_session(n: int):
    """ONNX Runtime running one ``n``×``n`` float32 MatMul on this process's thread count,
    resting between calls beside the torch and numpy matmuls timed with it."""
    from onnx import TensorProto, helper

    spec = [helper.make_tensor_value_info(name, TensorProto.FLOAT, [n, n]) for name in "ab"]
    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "matmul", spec,
                              [helper.make_tensor_value_info("c", TensorProto.FLOAT, [n, n])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return resting_session(model, torch.get_num_threads())


def interleaved_limit(quick: bool) -> tuple[Callable[[], object], int]:
    """The fastest library's matmul, to be timed among a network's contenders: this
    machine's speed drifts by up to 1.5× between sections, so a share of the limit is fair
    only against a limit measured in the same moments."""
    fns, n = matmul_contenders(quick)
    fastest = min(fns, key=lambda name: median_time(fns[name], 2))
    return fns[fastest], 2 * n ** 3


def _generators(quick: bool):
    """``(label, how to build it)``; each contender process builds its own copy."""
    size = 64 if quick else 256
    yield "unet_256 ngf64", {"arch": "unet_256" if not quick else "unet_64", "image_size": size}
    yield "resnet_9blocks ngf64", {"arch": "resnet_9blocks", "norm": "instance", "image_size": size}
    from loomis.registry import generator_folders
    for folder in generator_folders(ROOT / "checkpoints"):
        yield f"shipped {folder.name}", {"folder": str(folder)}


def _build_generator(source: dict):
    from loomis.train.nets import Generator

    if "folder" in source:
        return Generator.from_pretrained(source["folder"]).eval()
    torch.manual_seed(0)  # the same weights in every process (and one cached ONNX export)
    return Generator(**source).eval()


def make_inference(source: dict, runtime: str, mirror: bool = False) -> Callable[[], object]:
    """One forward pass of a generator at batch 1: ``runtime`` "torch eager" (torch's own
    kernels), "torch eager, matmul upsampling" (the project's eager path) or an
    ONNX-style runtime through ``Translator.run`` (with the app's mirror pass if asked)."""
    from loomis.train import inference
    from loomis.train.nets import set_matmul_upsampling

    g = _build_generator(source)
    size = g.config.image_size
    x = torch.rand(1, g.config.in_channels, size, size,
                   generator=torch.Generator().manual_seed(0)) * 2 - 1
    if runtime.startswith("torch eager"):
        set_matmul_upsampling(g, runtime.endswith("matmul upsampling"))

        def forward():
            with torch.no_grad():
                return g(x)
        return forward
    tr = inference.Translator(g, runtime=runtime)
    return lambda: tr.run(x, mirror=mirror)


def bench_generators(quick: bool) -> list[dict]:
    """Each generator through plain torch eager (torch's own kernels: the baseline every
    speed-up is against), the project's eager path where it differs (U-Nets: matmul
    upsampling), and every faster runtime installed, each in a process of its own: in one
    process torch's and ONNX Runtime's thread pools spin after their calls and slow
    whichever runs next."""
    from functools import partial

    from loomis.train import inference
    from loomis.train.nets import set_matmul_upsampling

    rows = []
    limit_fn, limit_flops = interleaved_limit(quick)
    runtimes = [r for r in inference.available_runtimes() if r != "torch"]
    for label, source in _generators(quick):
        plain = _build_generator(source)
        set_matmul_upsampling(plain, False)
        size = plain.config.image_size
        name = f"{label} @{size}²"
        x = torch.rand(1, plain.config.in_channels, size, size) * 2 - 1
        layers = conv_layers(plain, x)  # every conv module runs here (the matmul path skips hooks)
        flops = sum(f for f, _ in layers)
        makers = {"torch eager": partial(make_inference, source, "torch eager")}
        if plain.config.arch.startswith("unet"):
            makers["torch eager, matmul upsampling"] = partial(
                make_inference, source, "torch eager, matmul upsampling")
        for runtime in runtimes:
            makers[runtime] = partial(make_inference, source, runtime)
        # what the app runs for a drawing: the image and its mirror, one batch of two
        if name.startswith("shipped") and plain.config.target_domain == "drawing" and runtimes:
            makers[f"{runtimes[0]} + mirror pass"] = partial(make_inference, source, runtimes[0],
                                                             mirror=True)
        med = ProcessContenders(makers).alternating_medians(2 if quick else 9,
                                                            reference=limit_fn)
        limit = limit_flops / med.pop("reference") / 1e9
        t = med["torch eager"][0]
        for runtime, (t_rt, _) in med.items():
            work = 2 if runtime.endswith("mirror pass") else 1
            row = {"what": f"{name} {runtime}", "ms": t_rt * 1e3,
                   "gflops": work * flops / t_rt / 1e9, "limit_gflops": limit}
            if work == 1:   # roofline and speed-up compare one pass with one pass
                row["layers"] = layers
                if runtime != "torch eager":
                    row["speedup"] = t / t_rt
            rows.append(row)
    return rows


def bench_training(quick: bool) -> list[dict]:
    """Training steps. pix2pix's plain step (per-parameter Adam, torch's native transposed
    convolutions, glibc's own malloc thresholds), its fast step (fused Adam, matmul
    upsampling at 1–16 px, freed memory kept: ``loomis.train.memory``, what the training scripts
    run) and the fast step without the memory setting each run in a process of their own,
    as a training job would (the allocator setting is process-wide, and in one shared
    process each model's allocations change the others' page faults), and are timed in
    alternation so that their ratios are fair on a noisy machine."""
    from functools import partial

    from loomis.train.models import CycleGAN, CycleGANConfig, Pix2Pix, Pix2PixConfig

    size = 64 if quick else 256
    arch = "unet_64" if quick else "unet_256"
    repeats = 2 if quick else 7
    a, b = torch.rand(1, 3, size, size) * 2 - 1, torch.rand(1, 3, size, size) * 2 - 1
    flops = step_flops(lambda: Pix2Pix(Pix2PixConfig(arch=arch, image_size=size,
                                                     fused_adam=False, matmul_upsampling=False),
                                       device="cpu").step(a, b))

    def step(fast: bool, retain_memory: bool):
        return partial(make_step, {"arch": arch, "image_size": size, "fused_adam": fast,
                                   "matmul_upsampling": fast}, retain_memory)

    limit_fn, limit_flops = interleaved_limit(quick)
    med = ProcessContenders({"plain": step(False, False), "fast, glibc": step(True, False),
                             "fast": step(True, True)}).alternating_medians(repeats,
                                                                            reference=limit_fn)
    limit = limit_flops / med.pop("reference") / 1e9
    plain = med["plain"][0]
    label = f"pix2pix step ({arch} + PatchGAN, batch 1, {size}²)"
    whats = {"plain": f"{label}, plain eager",
             "fast, glibc": f"{label}, fused Adam + matmul upsampling, glibc's own malloc thresholds",
             "fast": f"{label}, fast (fused Adam, matmul upsampling, freed memory kept)"}
    rows = []
    for name, (t, faults) in med.items():
        row = {"what": whats[name], "ms": t * 1e3, "per_s": 1 / t, "gflops": flops / t / 1e9,
               "page_faults": faults, "limit_gflops": limit}
        rows.append(row if name == "plain" else row | {"speedup": plain / t})
    cyc = CycleGAN(CycleGANConfig(image_size=size), device="cpu")
    flops = step_flops(lambda: cyc.step(a, b))
    med = alternating_medians({"step": lambda: cyc.step(a, b), "limit": limit_fn}, repeats)
    t = med["step"]
    rows.append({"what": f"CycleGAN step (resnet_9blocks ×2 + PatchGAN ×2, batch 1, {size}²)",
                 "ms": t * 1e3, "per_s": 1 / t, "gflops": flops / t / 1e9,
                 "limit_gflops": limit_flops / med["limit"] / 1e9})
    return rows


def make_step(config: dict, retain_memory: bool) -> Callable[[], object]:
    """One pix2pix training step on a fixed batch; ``retain_memory`` first applies
    :func:`loomis.train.memory.retain_freed_memory` to this process, as the training scripts do."""
    from loomis.train.memory import retain_freed_memory
    from loomis.train.models import Pix2Pix, Pix2PixConfig

    if retain_memory:
        retain_freed_memory()
    model = Pix2Pix(Pix2PixConfig(**config), device="cpu")
    size = model.config.image_size
    gen = torch.Generator().manual_seed(0)
    a, b = (torch.rand(1, 3, size, size, generator=gen) * 2 - 1 for _ in range(2))
    return lambda: model.step(a, b)


def _contender_worker(conn, make: Callable[[], Callable[[], object]], threads: int) -> None:
    """A spawned process: builds its contender with ``make()``, then runs it on request and
    answers with the call's wall time and page faults, measured here (no pipe latency)."""
    from loomis.train.memory import page_faults

    torch.set_num_threads(threads)
    fn = make()
    conn.send("ready")
    while conn.recv():
        faults, t = page_faults(), time.perf_counter()
        fn()
        conn.send((time.perf_counter() - t, page_faults() - faults))


class ProcessContenders:
    """One process per contender (``{name: a picklable factory of the call to time}``),
    called in turn: each runs as it would alone (a training job, an app with one runtime),
    with its own allocator settings and thread pools, while the machine's drift falls on
    both sides of a ratio."""

    def __init__(self, makers: dict[str, Callable[[], Callable[[], object]]]) -> None:
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        self.conns, self.procs = {}, []
        for name, make in makers.items():
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_contender_worker, daemon=True,
                               args=(child, make, torch.get_num_threads()))
            proc.start()
            child.close()  # a worker that dies then closes its pipe: recv() raises EOFError
            self.conns[name], self.procs = parent, self.procs + [proc]
        for name, conn in self.conns.items():
            try:
                conn.recv()
            except EOFError:
                raise RuntimeError(f"the {name!r} contender failed to start (its error is "
                                   "above)") from None

    def alternating_medians(self, repeats: int, warmup: int = 2,
                            reference: Callable[[], object] | None = None) -> dict:
        """``{name: (median seconds, median page faults)}`` per call, after ``warmup``
        untimed rounds, and ``"reference"``: the median seconds of ``reference`` (the
        matmul limit), timed here once a round; the workers are closed afterwards."""
        results: dict = {name: [] for name in self.conns}
        ref_times = []
        try:
            for i in range(warmup + repeats):
                if reference is not None:
                    time.sleep(0.05)  # as before every contender's call
                    t = time.perf_counter()
                    reference()
                    ref_times.append(time.perf_counter() - t)
                for name, conn in self.conns.items():
                    time.sleep(0.05)  # let the other processes' threads stop spinning
                    conn.send(True)
                    seconds, faults = conn.recv()
                    if i >= warmup:
                        results[name].append((seconds, faults))
        finally:
            for conn in self.conns.values():
                try:
                    conn.send(False)
                except OSError:  # that worker has died already
                    pass
            for proc in self.procs:
                proc.join(timeout=30)
        out = {name: (statistics.median(s for s, _ in r), statistics.median(f for _, f in r))
               for name, r in results.items()}
        if ref_times:
            out["reference"] = statistics.median(ref_times[warmup:])
        return out


def step_flops(step: Callable[[], object]) -> int:
    """Floating-point operations of one training step (forward and backward convolutions
    and matmuls, as torch's FlopCounterMode counts them), so that a step's speed can be
    read against the matmul limit like a generator's. Runs the step once."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops()


def bench_engine(quick: bool) -> list[dict]:
    from skimage import data as skdata
    from PIL import Image
    from loomis.engine import live_frame
    from loomis.pipeline import photo_to_drawing
    from loomis.pose import PoseEstimator

    photo = np.asarray(Image.fromarray(skdata.astronaut()).resize((640, 480)))
    repeats = 5 if quick else 30
    with PoseEstimator(static_image_mode=False) as stream:
        t_live = median_time(lambda: live_frame(photo, stream), repeats, warmup=2)
    with PoseEstimator() as still:
        t_photo = median_time(lambda: photo_to_drawing(photo, estimator=still, background="faded",
                                                          own_proportions=False), repeats, warmup=2)
    # the construction fit the app runs on a generator's drawing (a target drawing here)
    from loomis.construction_fit import fit_construction
    from loomis.train.synthetic import render_drawing, scene

    from loomis.train.pose_net import PoseNet
    from loomis.registry import POSE_NET, checkpoints_dir
    from loomis.train.synthetic import render_photo

    params = scene(1, 0)
    drawing, photo256 = render_drawing(params, 256), render_photo(params, 256)
    t_fit = median_time(lambda: fit_construction(drawing), 1 if quick else 5, warmup=0)
    rows = []
    if (checkpoints_dir() / POSE_NET).is_dir():   # a hinted fit, as the pipeline runs one
        net = PoseNet.from_pretrained(checkpoints_dir() / POSE_NET)
        t_hint = median_time(lambda: fit_construction(drawing, pose_hint=net.predict(photo256)),
                             2 if quick else 10, warmup=1)
        rows = [{"what": "construction fit from the pose net's hint (pose net + Nelder–Mead)",
                 "ms": t_hint * 1e3, "per_s": 1 / t_hint}]
    return [{"what": "geometric engine, webcam stream (detect + pose + draw), 640×480",
             "ms": t_live * 1e3, "per_s": 1 / t_live},
            {"what": "geometric engine, single photo (detect + pose + draw), 640×480",
             "ms": t_photo * 1e3, "per_s": 1 / t_photo},
            {"what": "construction fit to a 256² drawing (grid + Nelder–Mead, 6 parameters)",
             "ms": t_fit * 1e3, "per_s": 1 / t_fit}, *rows]


def bench_render(quick: bool) -> list[dict]:
    from loomis.train import synthetic

    size = 64 if quick else 256
    n = 4 if quick else 30
    params = [synthetic.SceneParams.sample(np.random.default_rng(i)) for i in range(n)]
    synthetic.render_pair(params[0], size)
    t = time.perf_counter()
    for p in params:
        synthetic.render_pair(p, size)
    dt = (time.perf_counter() - t) / n
    return [{"what": f"synthetic photo+drawing pair {size}²", "ms": dt * 1e3, "per_s": 1 / dt}]


@contextlib.contextmanager
def served_app(timeout: float = 180.0, log: Path | None = None):
    """``python app.py`` in a process of its own, as a Space runs it: yields a
    gradio_client ``Client`` as soon as the page answers, the seconds that took, and the
    server's process. ``log`` keeps what the server prints."""
    import socket
    import subprocess

    from gradio_client import Client

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "GRADIO_SERVER_NAME": "127.0.0.1",
           "GRADIO_SERVER_PORT": str(port)}
    start = time.monotonic()
    out = open(log, "w") if log is not None else subprocess.DEVNULL
    server = subprocess.Popen([sys.executable, str(ROOT / "app.py")], env=env, cwd=ROOT,
                              stdout=out, stderr=subprocess.STDOUT)
    try:
        while True:
            try:
                client = Client(f"http://127.0.0.1:{port}/", verbose=False)
                break
            except Exception:
                if server.poll() is not None or time.monotonic() - start > timeout:
                    raise RuntimeError("python app.py did not start serving") from None
                time.sleep(0.25)
        yield client, time.monotonic() - start, server
    finally:
        server.terminate()
        server.wait(timeout=30)
        if log is not None:
            out.close()


def first_answer(client, photo: Path) -> float:
    """Seconds for the first drawing a freshly started app makes (a visitor's first click)."""
    from gradio_client import handle_file

    t = time.monotonic()
    client.predict(handle_file(str(photo)), api_name="/photo_to_drawing")
    return time.monotonic() - t


def bench_app(quick: bool) -> list[dict]:
    """Round trips through the app as users run it (``python app.py`` in a process of its
    own, called with gradio_client): start-up, the first answer, then medians."""
    from gradio_client import handle_file

    from loomis.sample_data import grace_hopper

    examples = ROOT / "examples"
    photo = next(iter(sorted(examples.glob("photo*.png"))), None)
    sketch = next(iter(sorted(examples.glob("sketch*.png"))), None)
    with served_app() as (client, started, _):
        rows = [{"what": "app start-up until the page answers", "ms": started * 1e3}]
        first = grace_hopper() or photo
        rows.append({"what": "app's first drawing after start-up (a real photo)",
                     "ms": first_answer(client, first) * 1e3})
        for endpoint, path in (("/photo_to_drawing", photo), ("/sketch_to_photo", sketch)):
            if path is None:
                raise FileNotFoundError(f"no example image for {endpoint} in examples/")
            t = median_time(lambda: client.predict(handle_file(str(path)), api_name=endpoint),
                            2 if quick else 7)
            rows.append({"what": f"app round trip {endpoint} (gradio_client)", "ms": t * 1e3})
        return rows


SECTIONS = {"matmul": bench_matmul, "generators": bench_generators, "training": bench_training,
            "engine": bench_engine, "render": bench_render, "app": bench_app}


def markdown(rows: list[dict]) -> str:
    cols = [("ms", "median ms", ".1f"), ("gflops", "GFLOP/s", ".1f"), ("gbps", "GB/s", ".1f"),
            ("of_limit", "% of matmul limit", ".0f"), ("roofline_ms", "roofline ms", ".1f"),
            ("of_roofline", "% of roofline", ".0f"), ("per_s", "per second", ".1f"),
            ("page_faults", "page faults", ".0f"), ("speedup", "speed-up vs eager", ".2f")]
    lines = ["| measurement | " + " | ".join(c[1] for c in cols) + " |",
             "|---|" + "---:|" * len(cols)]
    for r in rows:
        cells = [format(r[key], fmt) if key in r else "" for key, _, fmt in cols]
        if "speedup" in r:
            cells[-1] += "×"
            if "speedup_range" in r:
                lo, hi = r["speedup_range"]
                cells[-1] += f" ({lo:.2f}–{hi:.2f})"
        lines.append(f"| {r['what']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run_sections(names: list[str], quick: bool) -> tuple[list[dict], list[str], float | None]:
    """One pass over the sections: rows, the sections that failed, the matmul limit."""
    rows, failed = [], []
    for name in names:
        try:
            rows += [{"section": name, **r} for r in SECTIONS[name](quick)]
        except Exception as exc:  # report every section, then fail at the end
            failed.append(name)
            rows.append({"section": name, "what": f"{name}: FAILED ({type(exc).__name__}: {exc})"})
    # the hardware limit is the fastest library's matmul: which one differs between
    # machines (numpy's OpenBLAS, torch's MKL/oneDNN build, ONNX Runtime's MLAS)
    limit = max((r["gflops"] for r in rows if r["section"] == "matmul" and "gflops" in r),
                default=None)
    bandwidth = next((r["gbps"] for r in rows if "gbps" in r), None)
    for r in rows:
        layers = r.pop("layers", None)
        own = r.get("limit_gflops") or limit  # a limit timed among the row's contenders
        if own and "gflops" in r:
            r["of_limit"] = 100 * r["gflops"] / own
        if own and bandwidth and layers:
            r["roofline_ms"] = 1e3 * roofline_seconds(layers, own, bandwidth)
            r["of_roofline"] = 100 * r["roofline_ms"] / r["ms"]
    return rows, failed, limit


NUMBERS = ("ms", "gflops", "gbps", "of_limit", "roofline_ms", "of_roofline", "per_s", "speedup",
           "page_faults", "limit_gflops")


def median_rows(runs: list[list[dict]]) -> list[dict]:
    """The rows of several runs merged by measurement: each number the median over the runs
    that measured it, and ``speedup_range`` (min, max) and ``speedup_runs`` (every run's, in
    order) beside a median speed-up."""
    merged: dict[str, dict] = {}
    for rows in runs:
        for r in rows:
            merged.setdefault(r["what"], {"row": r, "values": {}})
            for key in NUMBERS:
                if key in r:
                    merged[r["what"]]["values"].setdefault(key, []).append(r[key])
    out = []
    for entry in merged.values():
        row = {k: v for k, v in entry["row"].items() if k not in NUMBERS}
        for key, values in entry["values"].items():
            row[key] = statistics.median(values)
        if "speedup" in entry["values"]:
            row["speedup_range"] = (min(entry["values"]["speedup"]), max(entry["values"]["speedup"]))
            row["speedup_runs"] = entry["values"]["speedup"]
        row["runs"] = max((len(v) for v in entry["values"].values()), default=0)
        out.append(row)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, few repeats (CI)")
    ap.add_argument("--json", type=Path, help="also write the rows as JSON here")
    ap.add_argument("--only", nargs="+", choices=list(SECTIONS), help="run only these sections")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    ap.add_argument("--runs", type=int, default=1,
                    help="repeat everything this many times and report medians (default 1)")
    args = ap.parse_args(argv)
    if args.runs < 1:
        ap.error(f"--runs must be at least 1, got {args.runs}")
    if args.threads:
        torch.set_num_threads(args.threads)
    passes = [run_sections(list(args.only or SECTIONS), args.quick) for _ in range(args.runs)]
    rows = passes[0][0] if args.runs == 1 else median_rows([p[0] for p in passes])
    failed = sorted({name for p in passes for name in p[1]})
    limits = [p[2] for p in passes if p[2]]
    limit = statistics.median(limits) if limits else None
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs"
          + (f"; matmul limit {limit:.0f} GFLOP/s (the fastest of numpy, torch and "
             "ONNX Runtime)" if limit else "")
          + (f"; medians of {args.runs} runs" if args.runs > 1 else ""))
    print(markdown(rows))
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "failed": failed, "matmul_limit_gflops": limit,
                                         "matmul_limit_per_run": limits, "runs": args.runs,
                                         "threads": torch.get_num_threads()}, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
