"""The generators at run time, without torch: a model folder's ``config.json`` and
``model.safetensors`` built into an ONNX graph and run by ONNX Runtime.

Why: the app only ever runs the trained generators forward, and torch (with what it
pulls in) is most of an install's size. The graph written here computes what
:class:`loomis.train.nets.Generator` computes in eval mode (BatchNorm folded into the
convolution before it, dropout off), node for node; ``tests/test_runtime.py`` checks it
against torch for every architecture and the shipped generators. The speed passes of
:mod:`loomis.runtime.winograd` and :mod:`loomis.runtime.col2im` then rewrite it, as they do torch's
export, and the result is cached per set of weights (``$LOOMIS_CACHE/onnx``).

:class:`GraphTranslator` is the product's translator: any image in, the generator's
translation out at the input's size (:func:`translate` is the one path, shared with the
training kit's torch :class:`loomis.train.inference.Translator`).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from loomis.files import atomic_write, cache_root
from loomis.generator_config import (RESNET_ARCHS, CheckpointError, GeneratorConfig,
                                     _first_line, check_model_folder, read_safetensors,
                                     unet_depth)
from loomis.imageio import ImageLike, load_image

__all__ = ["GraphTranslator", "generator_graph", "read_weights", "check_finite", "translate",
           "pad_to_square", "mirror_setting", "mirror_union", "cache_dir", "prune_cache",
           "GRAPH_VERSION"]

WEIGHTS_NAME = "model.safetensors"
#: Bumped when the graph built for the same weights changes, so caches rebuild.
GRAPH_VERSION = 1
#: The export cache keeps the most recently used graphs up to this size
#: (``$LOOMIS_CACHE_MAX_MB`` overrides it).
CACHE_MAX_MB = 2048
_EPS = 1e-5                       # BatchNorm2d's and InstanceNorm2d's default


def cache_dir() -> Path:
    """Where built graphs are kept (``$LOOMIS_CACHE/onnx``, default ``~/.cache/loomis/onnx``)."""
    return cache_root() / "onnx"


def prune_cache(used: Path) -> None:
    """Mark ``used`` as just used and delete the least recently used graphs until the
    cache fits its limit (``used`` itself is always kept)."""
    folder = cache_dir()
    if used.parent != folder:
        return
    os.utime(used)
    limit = float(os.environ.get("LOOMIS_CACHE_MAX_MB") or CACHE_MAX_MB) * 2 ** 20
    files = []
    for f in folder.glob("*.onnx"):
        try:
            st = f.stat()
        except FileNotFoundError:  # another process pruned it meanwhile
            continue
        files.append((st.st_mtime, st.st_size, f))
    total = 0
    for _, size, f in sorted(files, key=lambda t: t[0], reverse=True):
        total += size
        if total > limit and f != used:
            f.unlink(missing_ok=True)


# --------------------------------------------------------------------------- weights

def read_weights(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """A safetensors file as float32 numpy arrays. Anything else (a pickle, say) is refused
    before it is parsed: weights are never unpickled."""
    from safetensors.numpy import load_file

    tensors = read_safetensors(path, load_file)
    return {k: v.astype(np.float32) for k, v in tensors.items()
            if not k.endswith("num_batches_tracked")}


def check_finite(path: str | os.PathLike) -> None:
    """Refuse weights holding NaN or infinite values (a training run that diverged, or a
    damaged file): such a generator draws noise or a flat colour without any error. Reads
    one tensor at a time."""
    from safetensors import SafetensorError, safe_open

    bad = []
    try:
        with safe_open(str(path), framework="numpy") as f:
            for key in f.keys():
                a = f.get_tensor(key)
                if a.dtype.kind == "f" and not np.isfinite(a).all():
                    bad.append(key)
    except (SafetensorError, OSError, ValueError, TypeError) as exc:
        raise CheckpointError(f"{path} is not a readable safetensors file (damaged, or saved "
                              f"in a format Loomis does not read: {_first_line(exc)})") from None
    if bad:
        which = ", ".join(bad[:3]) + (" …" if len(bad) > 3 else "")
        raise CheckpointError(f"the weights in {Path(path).parent} hold NaN or infinite values "
                              f"({len(bad)} tensor{'s' if len(bad) > 1 else ''}: {which}): the "
                              "training diverged or the file is damaged; use another checkpoint")


# --------------------------------------------------------------------------- the graph

class _Graph:
    """Nodes and initializers of one generator graph, named in order."""

    def __init__(self, config: GeneratorConfig, weights: dict[str, np.ndarray]) -> None:
        self.config, self.weights = config, weights
        self.used: set[str] = set()
        self.nodes: list = []
        self.inits: list = []
        self._n = 0

    def _name(self, what: str) -> str:
        self._n += 1
        return f"{what}_{self._n}"

    def weight(self, key: str) -> np.ndarray:
        if key not in self.weights:
            raise CheckpointError(f"the weights have no {key!r}: saved for another "
                                  f"architecture than {self.config.arch}?")
        self.used.add(key)
        return self.weights[key]

    def const(self, array: np.ndarray, what: str) -> str:
        from onnx import numpy_helper

        name = self._name(what)
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def op(self, op_type: str, inputs: list[str], **attrs) -> str:
        from onnx import helper

        out = self._name(op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], **attrs))
        return out

    def conv(self, x: str, key: str, norm: str | None, *, transposed: bool = False,
             bias: bool, **attrs) -> str:
        """A (transposed) convolution ``key`` followed by the norm layer ``norm`` (a key
        prefix, or None): BatchNorm folds into the weights, instance norm is a node."""
        w = self.weight(f"{key}.weight")
        b = self.weight(f"{key}.bias") if bias else np.zeros(w.shape[1 if transposed else 0],
                                                             np.float32)
        kind = self.config.norm if norm else "none"
        if kind == "batch":
            scale = self.weight(f"{norm}.weight") / np.sqrt(self.weight(f"{norm}.running_var") + _EPS)
            shift = self.weight(f"{norm}.bias") - self.weight(f"{norm}.running_mean") * scale
            w = w * (scale[None, :, None, None] if transposed else scale[:, None, None, None])
            b = b * scale + shift
        y = self.op("ConvTranspose" if transposed else "Conv",
                    [x, self.const(w, "w"), self.const(b.astype(np.float32), "b")],
                    kernel_shape=list(w.shape[2:]), **attrs)
        if kind == "instance":
            ch = w.shape[1 if transposed else 0]
            y = self.op("InstanceNormalization", [y, self.const(np.ones(ch, np.float32), "s"),
                                                  self.const(np.zeros(ch, np.float32), "z")],
                        epsilon=_EPS)
        return y

    def reflect(self, x: str, p: int) -> str:
        pads = np.array([0, 0, p, p, 0, 0, p, p], dtype=np.int64)
        return self.op("Pad", [x, self.const(pads, "pads")], mode="reflect")


def generator_graph(config: GeneratorConfig, weights: dict[str, np.ndarray]):
    """The generator of ``config`` with ``weights`` (its state dict, float32 numpy) as an
    ONNX model: input ``input`` (N, C, S, S) in [-1, 1] at the training size, output
    ``output``. Every weight must be used: a file saved for another architecture fails."""
    from onnx import TensorProto, helper

    g = _Graph(config, weights)
    c = config
    h = "input"
    norm_on = c.norm != "batch"                  # convolutions carry a bias unless BatchNorm
    if c.arch.startswith("unet_"):
        depth = unet_depth(c.arch)
        skips = []
        for i in range(depth):
            h = g.conv(h, f"net.down.{i}.conv", f"net.down.{i}.norm" if 0 < i < depth - 1 else None,
                       bias=norm_on, strides=[2, 2], pads=[1, 1, 1, 1])
            if i < depth - 1:
                h = g.op("LeakyRelu", [h], alpha=0.2)
                skips.append(h)
        for i in range(depth - 1, -1, -1):
            h = g.conv(g.op("Relu", [h]), f"net.up.{i}.conv", None if i == 0 else f"net.up.{i}.norm",
                       transposed=True, bias=i == 0 or norm_on, strides=[2, 2], pads=[1, 1, 1, 1])
            h = g.op("Tanh", [h]) if i == 0 else g.op("Concat", [skips[i - 1], h], axis=1)
    else:
        h = g.op("Relu", [g.conv(g.reflect(h, 3), "net.stem", "net.stem_norm", bias=norm_on)])
        for k in (1, 2):
            h = g.op("Relu", [g.conv(h, f"net.down{k}", f"net.down{k}_norm", bias=norm_on,
                                     strides=[2, 2], pads=[1, 1, 1, 1])])
        for j in range(RESNET_ARCHS[c.arch]):
            b = f"net.blocks.{j}"
            r = g.op("Relu", [g.conv(g.reflect(h, 1), f"{b}.conv1", f"{b}.norm1", bias=norm_on)])
            h = g.op("Add", [h, g.conv(g.reflect(r, 1), f"{b}.conv2", f"{b}.norm2", bias=norm_on)])
        for k in (1, 2):
            h = g.op("Relu", [g.conv(h, f"net.up{k}", f"net.up{k}_norm", transposed=True,
                                     bias=norm_on, strides=[2, 2], pads=[1, 1, 1, 1],
                                     output_padding=[1, 1])])
        h = g.op("Tanh", [g.conv(g.reflect(h, 3), "net.head", None, bias=True)])
    unused = sorted(set(weights) - g.used)
    if unused:
        raise CheckpointError(f"the weights hold {len(unused)} tensors {c.arch} does not use "
                              f"({', '.join(unused[:4])}…): saved for another architecture?")
    g.nodes.append(helper.make_node("Identity", [h], ["output"]))
    s = c.image_size
    graph = helper.make_graph(
        g.nodes, f"loomis_{c.arch}",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", c.in_channels, s, s])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", c.out_channels, s, s])],
        g.inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)],
                             producer_name="loomis.runtime")


def fast_graph(model):
    """The speed passes (Winograd 3×3 convolutions, phase and tap convolutions with
    ``Col2Im``): the same function, fewer multiplies on a CPU."""
    from loomis.runtime.col2im import phase_convolutions, tap_convolutions
    from loomis.runtime.winograd import winograd_convolutions

    for rewrite_pass in (winograd_convolutions, phase_convolutions, tap_convolutions):
        model, _ = rewrite_pass(model)
    return model


def _session(path: Path):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


# --------------------------------------------------------------------------- images

def pad_to_square(img: Image.Image, fill: tuple[int, int, int] | None) -> tuple[Image.Image, tuple[int, int, int, int]]:
    """Centre ``img`` on a square canvas; ``fill=None`` replicates the edge pixels (photos),
    a colour pads with it (white for drawings). Returns the canvas and the content box."""
    w, h = img.size
    side = max(w, h)
    left, top = (side - w) // 2, (side - h) // 2
    box = (left, top, left + w, top + h)
    if w == h:
        return img, box
    if fill is None:
        arr = np.asarray(img)
        pad = ((top, side - h - top), (left, side - w - left), (0, 0))
        return Image.fromarray(np.pad(arr, pad, mode="edge")), box
    canvas = Image.new("RGB", (side, side), fill)
    canvas.paste(img, (left, top))
    return canvas, box


def translate(image: ImageLike, config: GeneratorConfig,
              run: Callable[[np.ndarray], np.ndarray], keep_size: bool = True) -> Image.Image:
    """The one inference path: load → pad to a square → the training size → ``run``
    (``(1, C, S, S)`` float32 in [-1, 1], both ways) → back to the input's size."""
    img = load_image(image)
    size = config.image_size
    fill = (255, 255, 255) if config.source_domain == "drawing" else None  # paper is white
    square, box = pad_to_square(img, fill)
    x = np.asarray(square.resize((size, size), Image.BICUBIC), dtype=np.float32)
    x = (x / 127.5 - 1.0).transpose(2, 0, 1)[None]
    y = np.asarray(run(np.ascontiguousarray(x)))[0]
    out = Image.fromarray(((np.clip(y, -1, 1) + 1.0) * 127.5 + 0.5).astype(np.uint8).transpose(1, 2, 0))
    if not keep_size:
        return out
    side = square.size[0]
    return out.resize((side, side), Image.BICUBIC).crop(box)


def mirror_setting(config: GeneratorConfig, mirror: bool | None, default: bool) -> bool:
    """Whether to run the mirror pass: ``mirror``, else ``default``; only for drawings."""
    if mirror and config.target_domain != "drawing":
        raise ValueError("mirror=True keeps the lines of two drawings; this generator makes "
                         f"{config.target_domain}s: leave mirror unset")
    return default if mirror is None else mirror


def mirror_union(run: Callable[[np.ndarray], np.ndarray], x: np.ndarray) -> np.ndarray:
    """Translate ``x`` and its mirror image in one batch, mirror the second back and keep
    every line either drew (the darker value): see :class:`GraphTranslator`."""
    n = x.shape[0]
    y = run(np.concatenate([x, x[..., ::-1]]))
    return np.minimum(y[:n], y[n:, ..., ::-1])


# --------------------------------------------------------------------------- the translator

class GraphTranslator:
    """A generator from a model folder, run by ONNX Runtime, torch nowhere.

    ``mirror`` (drawings only; default on for them): also translate the mirror image,
    mirror its drawing back and keep every line either pass drew. A head's construction
    mirrors with the head, but a generator is not exactly mirror-symmetric, and each
    pass misses lines the other finds. Thread-safe: ONNX Runtime sessions are.
    """

    runtime = "onnxruntime"

    def __init__(self, config: GeneratorConfig, session, mirror: bool | None = None) -> None:
        self.config = config
        self._session = session
        self._input = session.get_inputs()[0].name
        self.mirror = mirror_setting(config, mirror, config.target_domain == "drawing")

    @classmethod
    def from_folder(cls, folder: str | os.PathLike, mirror: bool | None = None) -> "GraphTranslator":
        """Load ``folder``'s config.json and model.safetensors (a built graph is cached).

        The folder is checked first (:func:`~loomis.generator_config.check_model_folder`:
        sizes within bounds, weights of the config's shapes, memory within bounds; then the
        weights finite), so a bad folder is a :class:`CheckpointError` before any graph is
        built or memory allocated for it."""
        folder = Path(folder)
        config = check_model_folder(folder)
        weights_path = folder / WEIGHTS_NAME
        check_finite(weights_path)
        digest = hashlib.sha256(json.dumps(config.__dict__, sort_keys=True).encode())
        digest.update(f"graph {GRAPH_VERSION}".encode())
        with open(weights_path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        path = cache_dir() / f"g{digest.hexdigest()[:20]}.onnx"
        if not path.is_file():
            import onnx

            model = fast_graph(generator_graph(config, read_weights(weights_path)))
            atomic_write(path, lambda tmp: onnx.save(model, tmp))
        prune_cache(path)
        return cls(config, _session(path), mirror=mirror)

    def run(self, x: np.ndarray, *, mirror: bool | None = None) -> np.ndarray:
        """``(N, C, S, S)`` float32 in [-1, 1] at the training size, in and out."""
        def forward(a: np.ndarray) -> np.ndarray:
            return self._session.run(None, {self._input: a})[0]
        use = mirror_setting(self.config, mirror, self.mirror)
        return mirror_union(forward, x) if use else forward(x)

    def __call__(self, image: ImageLike, *, keep_size: bool = True,
                 mirror: bool | None = None) -> Image.Image:
        return translate(image, self.config, lambda x: self.run(x, mirror=mirror), keep_size)
