"""What a generator is, without torch: its config (``config.json``) and the architecture
names and rules shared by the training kit (:mod:`loomis.train.nets`) and the torch-free
runtime (:mod:`loomis.runtime`).

A model folder comes from a user or the Hub, so nothing in it is trusted for sizes:
:data:`LIMITS` bounds every size a config may give, :func:`weight_shapes` says what the
weights of a config must look like, and :func:`check_model_folder` compares the two and
estimates the memory a run needs, reading only the config and the weights' header, before
any graph is built or memory allocated.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = ["GeneratorConfig", "CheckpointError", "read_safetensors", "ARCHS", "NORMS", "RESNET_ARCHS",
           "unet_depth", "min_input_multiple", "LIMITS", "weight_shapes", "run_memory",
           "MAX_RUN_BYTES", "read_config", "check_model_folder"]

NORMS = ("batch", "instance", "none")
RESNET_ARCHS = {"resnet_6blocks": 6, "resnet_9blocks": 9}
ARCHS = ("unet_32", "unet_64", "unet_128", "unet_256", "unet_512", *RESNET_ARCHS)


#: The sizes a config may give, each with why: ``(lowest, highest, reason)``.
LIMITS: dict[str, tuple[int, int, str]] = {
    "image_size": (16, 1024, "four times the papers' 256; every picture is resized to it"),
    "ngf": (1, 128, "twice the papers' 64, whose unet_256 already has 54 million weights"),
    "in_channels": (1, 4, "grey, RGB or RGBA pictures"),
    "out_channels": (1, 4, "grey, RGB or RGBA pictures"),
}
#: The most memory one served generator may need for its weights and one mirrored pass
#: (two pictures): four generators serving two requests each stay within half a 16 GB Space.
MAX_RUN_BYTES = 2 ** 30
#: A config.json is a few hundred bytes; anything much larger is not one.
_MAX_CONFIG_BYTES = 64 * 1024


class CheckpointError(ValueError):
    """Weights that cannot be loaded into the model they are offered to."""


def _refuse_pickle(path: Path) -> None:
    with open(path, "rb") as f:
        head = f.read(9)
    # A safetensors file starts with the little-endian length of its JSON header, then the
    # header's "{" (that length's first byte may well be 0x80); a pickle starts with 0x80
    # (protocol) or is a zip archive (torch.save) starting with "PK".
    if head[8:9] == b"{" and 0 < int.from_bytes(head[:8], "little") < path.stat().st_size:
        return
    if head[:2] == b"PK" or head[:1] == b"\x80":
        raise CheckpointError(f"{path} is a pickle/torch.save file; Loomis never unpickles "
                              "weights. Convert it to safetensors once, in a trusted session")


def read_safetensors(path: str | os.PathLike, load_file) -> dict:
    """``load_file(path)`` (safetensors' torch or numpy loader), after refusing anything
    that is not a safetensors file: weights are never unpickled."""
    from safetensors import SafetensorError

    path = Path(path)
    _refuse_pickle(path)
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, TypeError) as exc:
        raise CheckpointError(f"{path} is not a readable safetensors file (damaged, or saved "
                              f"in a format Loomis does not read: {_first_line(exc)})") from None


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:200] if lines else type(exc).__name__


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; choose one of {', '.join(choices)}")


def _check_positive(**values: int) -> None:
    for name, v in values.items():
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")


def _check_limits(**values: int) -> None:
    for name, v in values.items():
        lo, hi, why = LIMITS[name]
        if not lo <= v <= hi:
            raise ValueError(f"{name} is {v}; it must be between {lo} and {hi} ({why})")


def _check_types(config: "GeneratorConfig") -> None:
    for name in ("arch", "norm", "direction", "domain_a", "domain_b"):
        if not isinstance(getattr(config, name), str):
            raise ValueError(f"{name} must be a string, got {getattr(config, name)!r}")
    if not isinstance(config.dropout, bool):
        raise ValueError(f"dropout must be true or false, got {config.dropout!r}")


def unet_depth(arch: str) -> int:
    """Number of stride-2 down steps of ``unet_N`` (log2 N); the input must be a multiple of N."""
    size = int(arch.split("_")[1])
    depth = int(round(math.log2(size)))
    if 2 ** depth != size or depth < 5:
        raise ValueError(f"{arch}: U-Net size must be a power of two >= 32")
    return depth


def min_input_multiple(arch: str) -> int:
    """Image sides must be a multiple of this for ``arch`` (the network's total stride)."""
    return 2 ** unet_depth(arch) if arch.startswith("unet_") else 4


@dataclass(frozen=True)
class GeneratorConfig:
    """Everything needed to rebuild a generator; written to the model's ``config.json``.

    ``image_size`` is the training resolution (inference resizes to it), ``direction`` and
    the domain names say what the generator translates from and to.
    """

    arch: str = "unet_256"
    in_channels: int = 3
    out_channels: int = 3
    ngf: int = 64
    norm: str = "batch"
    dropout: bool = False
    image_size: int = 256
    direction: Literal["AtoB", "BtoA"] = "AtoB"
    domain_a: str = "photo"
    domain_b: str = "drawing"

    def __post_init__(self) -> None:
        _check_types(self)
        if not self.arch.startswith("unet_"):
            _check_choice("arch", self.arch, ARCHS)
        else:
            try:
                unet_depth(self.arch)
            except (ValueError, IndexError):
                raise ValueError(f"unknown arch {self.arch!r}; choose one of {', '.join(ARCHS)} "
                                 "(or unet_N for another power of two N >= 32)") from None
        _check_choice("norm", self.norm, NORMS)
        _check_choice("direction", self.direction, ("AtoB", "BtoA"))
        _check_positive(in_channels=self.in_channels, out_channels=self.out_channels,
                        ngf=self.ngf, image_size=self.image_size)
        _check_limits(in_channels=self.in_channels, out_channels=self.out_channels,
                      ngf=self.ngf, image_size=self.image_size)
        m = min_input_multiple(self.arch)
        if self.image_size % m:
            raise ValueError(f"image_size {self.image_size} is not a multiple of {m}, "
                             f"which {self.arch} needs")

    @property
    def source_domain(self) -> str:
        return self.domain_a if self.direction == "AtoB" else self.domain_b

    @property
    def target_domain(self) -> str:
        return self.domain_b if self.direction == "AtoB" else self.domain_a


# --------------------------------------------------------------------------- checks before use

def _norm_shapes(prefix: str, channels: int, norm: str) -> dict[str, tuple[int, ...]]:
    if norm != "batch":             # instance norm has no weights, "none" no layer
        return {}
    out: dict[str, tuple[int, ...]] = {f"{prefix}.{k}": (channels,)
                                       for k in ("weight", "bias", "running_mean", "running_var")}
    out[f"{prefix}.num_batches_tracked"] = ()
    return out


def _conv_shapes(prefix: str, shape: tuple[int, int, int, int], bias: bool,
                 transposed: bool = False) -> dict[str, tuple[int, ...]]:
    out: dict[str, tuple[int, ...]] = {f"{prefix}.weight": shape}
    if bias:
        out[f"{prefix}.bias"] = (shape[1] if transposed else shape[0],)
    return out


def weight_shapes(config: GeneratorConfig) -> dict[str, tuple[int, ...]]:
    """The name and shape of every tensor in the weights of ``config``'s generator (as
    :class:`loomis.train.nets.Generator` saves them), computed from the config alone."""
    c, out = config, {}
    unbiased = c.norm == "batch"                    # convolutions before BatchNorm have no bias
    if c.arch.startswith("unet_"):
        depth = unet_depth(c.arch)
        chans = [c.ngf * min(2 ** i, 8) for i in range(depth)]
        for i in range(depth):
            cin = c.in_channels if i == 0 else chans[i - 1]
            out.update(_conv_shapes(f"net.down.{i}.conv", (chans[i], cin, 4, 4), not unbiased))
            if 0 < i < depth - 1:
                out.update(_norm_shapes(f"net.down.{i}.norm", chans[i], c.norm))
        for i in range(depth):
            cin = chans[i] if i == depth - 1 else 2 * chans[i]
            cout = c.out_channels if i == 0 else chans[i - 1]
            out.update(_conv_shapes(f"net.up.{i}.conv", (cin, cout, 4, 4), i == 0 or not unbiased,
                                    transposed=True))
            if i > 0:
                out.update(_norm_shapes(f"net.up.{i}.norm", cout, c.norm))
        return out
    g = c.ngf
    out.update(_conv_shapes("net.stem", (g, c.in_channels, 7, 7), not unbiased))
    out.update(_norm_shapes("net.stem_norm", g, c.norm))
    for k, (cin, cout) in ((1, (g, 2 * g)), (2, (2 * g, 4 * g))):
        out.update(_conv_shapes(f"net.down{k}", (cout, cin, 3, 3), not unbiased))
        out.update(_norm_shapes(f"net.down{k}_norm", cout, c.norm))
    for j in range(RESNET_ARCHS[c.arch]):
        for n in (1, 2):
            out.update(_conv_shapes(f"net.blocks.{j}.conv{n}", (4 * g, 4 * g, 3, 3), not unbiased))
            out.update(_norm_shapes(f"net.blocks.{j}.norm{n}", 4 * g, c.norm))
    for k, (cin, cout) in ((1, (4 * g, 2 * g)), (2, (2 * g, g))):
        out.update(_conv_shapes(f"net.up{k}", (cin, cout, 3, 3), not unbiased, transposed=True))
        out.update(_norm_shapes(f"net.up{k}_norm", cout, c.norm))
    out.update(_conv_shapes("net.head", (c.out_channels, g, 7, 7), True))
    return out


def _peak_activations(config: GeneratorConfig) -> int:
    """About how many numbers one pass at the training size holds at once: the largest
    layer output three times (its input, itself and the next one), plus a U-Net's skip
    connections, which stay alive until the way up uses them."""
    c, s = config, config.image_size
    if c.arch.startswith("unet_"):
        depth = unet_depth(c.arch)
        chans = [c.ngf * min(2 ** i, 8) for i in range(depth)]
        skips = sum(chans[i] * (s >> (i + 1)) ** 2 for i in range(depth - 1))
        largest = max([c.out_channels * s * s]
                      + [2 * chans[i - 1] * (s >> i) ** 2 for i in range(1, depth)])
        return skips + 3 * largest
    return 3 * max(c.in_channels, c.ngf) * (s + 6) ** 2       # the padded full-size layers


def run_memory(config: GeneratorConfig) -> int:
    """Bytes a served generator needs, about: its float32 weights and one mirrored pass
    (two pictures) at its training size."""
    weights = sum(math.prod(shape) for shape in weight_shapes(config).values())
    return 4 * weights + 4 * 2 * _peak_activations(config)


def read_config(folder: str | os.PathLike) -> GeneratorConfig:
    """``folder/config.json`` as a :class:`GeneratorConfig`, every field checked (type and
    :data:`LIMITS`); raises :class:`CheckpointError` naming the field otherwise."""
    path = Path(folder) / "config.json"
    try:
        if path.stat().st_size > _MAX_CONFIG_BYTES:
            raise CheckpointError(f"{path} is {path.stat().st_size:,} bytes: not a generator "
                                  "config (those are a few hundred bytes)")
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{folder} has no config.json") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        where = f" (line {exc.lineno})" if isinstance(exc, json.JSONDecodeError) else ""
        raise CheckpointError(f"{path} is not valid JSON{where}") from None
    except OSError as exc:
        raise CheckpointError(f"{path} could not be read ({exc.strerror or 'I/O error'})") from None
    if not isinstance(raw, dict):
        raise CheckpointError(f"{path} is not a generator config (a JSON object is needed)")
    unknown = sorted(set(raw) - set(GeneratorConfig.__dataclass_fields__))
    if unknown:
        raise CheckpointError(f"{path} is not a generator config: unknown field "
                              f"{', '.join(map(str, unknown))}")
    try:
        return GeneratorConfig(**raw)
    except ValueError as exc:
        raise CheckpointError(f"{path}: {exc}") from None


def check_model_folder(folder: str | os.PathLike) -> GeneratorConfig:
    """Everything about a model folder that can be known without reading its weights: the
    config's fields, the weights file being safetensors whose every tensor has the shape
    the config implies, and the memory a run needs within :data:`MAX_RUN_BYTES`. Reads the
    config and the weights' header only; raises :class:`CheckpointError` with the reason."""
    from safetensors import SafetensorError, safe_open

    folder = Path(folder)
    config = read_config(folder)
    weights = folder / "model.safetensors"
    if not weights.is_file():
        raise CheckpointError(f"{folder} has no model.safetensors; Loomis loads safetensors "
                              "weights only (pickled .bin/.pt/.pth files are never opened)")
    need = run_memory(config)
    if need > MAX_RUN_BYTES:
        raise CheckpointError(
            f"{folder / 'config.json'}: a {config.arch} generator with ngf={config.ngf} at "
            f"image_size={config.image_size} needs about {need / 2 ** 30:.1f} GB to run, more "
            f"than the {MAX_RUN_BYTES / 2 ** 30:.1f} GB a served generator may use")
    _refuse_pickle(weights)
    try:
        with safe_open(str(weights), framework="numpy") as f:
            found = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{weights} is not a readable safetensors file (damaged, or "
                              f"saved in a format Loomis does not read: {_first_line(exc)})") from None
    expected = weight_shapes(config)
    optional = {k for k in expected if k.endswith("num_batches_tracked")}
    missing = sorted(set(expected) - set(found) - optional)
    unexpected = sorted(set(found) - set(expected))
    wrong = [f"{k} is {found[k]}, not {expected[k]}" for k in sorted(set(found) & set(expected))
             if found[k] != expected[k] and k not in optional]
    if missing or unexpected or wrong:
        parts = ([f"{len(wrong)} tensors of other shapes ({'; '.join(wrong[:2])})"] if wrong else []) \
            + ([f"no {', '.join(missing[:3])}" + (" …" if len(missing) > 3 else "")] if missing else []) \
            + ([f"{len(unexpected)} tensors it does not use ({', '.join(unexpected[:3])})"]
               if unexpected else [])
        raise CheckpointError(
            f"the weights in {folder} do not fit its config.json ({config.arch}, ngf="
            f"{config.ngf}, {config.in_channels}→{config.out_channels} channels): "
            f"{'; '.join(parts)}. Saved for another architecture, or config.json edited?")
    return config
