"""What a generator is, without torch: its config (``config.json``) and the architecture
names and rules shared by the training kit (:mod:`loomis.train.nets`) and the torch-free
runtime (:mod:`loomis.runtime`)."""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = ["GeneratorConfig", "CheckpointError", "read_safetensors", "ARCHS", "NORMS", "RESNET_ARCHS",
           "unet_depth", "min_input_multiple"]

NORMS = ("batch", "instance", "none")
RESNET_ARCHS = {"resnet_6blocks": 6, "resnet_9blocks": 9}
ARCHS = ("unet_32", "unet_64", "unet_128", "unet_256", "unet_512", *RESNET_ARCHS)


class CheckpointError(ValueError):
    """Weights that cannot be loaded into the model they are offered to."""


def read_safetensors(path: str | os.PathLike, load_file) -> dict:
    """``load_file(path)`` (safetensors' torch or numpy loader), after refusing anything
    that is not a safetensors file: weights are never unpickled."""
    from safetensors import SafetensorError

    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(8)
    # A safetensors file starts with the little-endian length of its JSON header; a pickle
    # starts with 0x80 (protocol) or is a zip archive (torch.save) starting with "PK".
    if head[:2] == b"PK" or head[:1] == b"\x80":
        raise CheckpointError(f"{path} is a pickle/torch.save file; Loomis never unpickles "
                              "weights. Convert it to safetensors once, in a trusted session")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path} is not a readable safetensors file: {exc}") from None


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; choose one of {', '.join(choices)}")


def _check_positive(**values: int) -> None:
    for name, v in values.items():
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")


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
