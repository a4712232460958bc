"""A small CNN that reads a head's yaw, pitch and roll from a photo, trained on the
project's synthetic renders: a pose reader for the whole range of turns the renders cover,
profiles included, where a landmark model finds no face.

The app does not use it: :mod:`loomis.pipeline` draws only faces the landmark model finds
and starts the construction fit from their landmark pose, which on real photos is the
better reading (this net has seen rendered heads only). It stays in the training kit, and
``benchmarks/quality.py`` measures it on the rendered heads. Small: 0.5 M parameters, 1 MB
in float16; trained by ``train/pose_net.py``.

The path is the generators' own: ``load_image`` → square (edge-padded, as
:class:`~loomis.train.inference.Translator` pads photos) → ``image_size`` → ``to_tensor`` →
network; :meth:`PoseNet.predict` also reads the mirrored photo and averages the two
(yaw and roll change sign in a mirror): 2.2 / 1.6 / 0.7 degrees off instead of 2.7 / 1.7 /
0.9 on the validation scenes, and left and right turns read alike. Weights travel as a
Hub model folder (``config.json`` + ``model.safetensors``), loaded strictly like the
generators (``PoseNet.from_pretrained``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from huggingface_hub import PyTorchModelHubMixin
from PIL import Image
from torch import nn

from loomis.imageio import ImageLike, load_image, to_tensor
from loomis.runtime import pad_to_square
from loomis.train.nets import load_weights, readable_weights, weights_file

__all__ = ["PoseNetConfig", "PoseNet", "MIRROR_SIGNS"]

#: yaw, pitch and roll of a mirrored photo are (-yaw, pitch, -roll)
MIRROR_SIGNS = (-1.0, 1.0, -1.0)


@dataclass(frozen=True)
class PoseNetConfig:
    """Everything needed to rebuild a :class:`PoseNet`; written to its ``config.json``.

    ``channels`` are the widths of the stride-2 stages (each halves the image), so
    ``image_size`` must be divisible by ``2 ** len(channels)``. ``scale`` is the size in
    degrees of one output unit per angle (the spread of the synthetic poses), so the
    network regresses numbers near [-1, 1].
    """

    image_size: int = 128
    channels: tuple[int, ...] = (16, 32, 48, 64, 96, 128)
    scale: tuple[float, float, float] = (90.0, 40.0, 25.0)

    def __post_init__(self) -> None:
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        object.__setattr__(self, "scale", tuple(float(s) for s in self.scale))
        if not self.channels or min(self.channels) < 1:
            raise ValueError(f"channels must be positive widths, got {self.channels}")
        if len(self.scale) != 3 or min(self.scale) <= 0:
            raise ValueError(f"scale must be three positive numbers of degrees, got {self.scale}")
        step = 2 ** len(self.channels)
        if self.image_size < step or self.image_size % step:
            raise ValueError(f"image_size {self.image_size} must be a multiple of {step} "
                             f"for {len(self.channels)} stride-2 stages")


def _stage(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, 2, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(True),
        nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(True))


class PoseNet(nn.Module, PyTorchModelHubMixin, library_name="loomis",
              tags=["head-pose-estimation", "loomis"],
              repo_url="https://github.com/loomis-art/loomis", license="mit"):
    """Photo tensor ``(N, 3, S, S)`` in [-1, 1] → ``(N, 3)`` yaw, pitch, roll in degrees,
    in the convention of :class:`loomis.camera.HeadPose` (camera frame)."""

    def __init__(self, image_size: int = 128,
                 channels: tuple[int, ...] | list[int] = PoseNetConfig.channels,
                 scale: tuple[float, float, float] | list[float] = PoseNetConfig.scale) -> None:
        super().__init__()
        self.config = PoseNetConfig(image_size, tuple(channels), tuple(scale))
        widths = (3,) + self.config.channels
        self.features = nn.Sequential(*(_stage(a, b) for a, b in zip(widths, widths[1:])))
        self.head = nn.Linear(widths[-1], 3)
        self.register_buffer("scale", torch.tensor(self.config.scale), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.config.image_size
        if x.dim() != 4 or tuple(x.shape[1:]) != (3, s, s):
            raise ValueError(f"PoseNet expects a (N, 3, {s}, {s}) tensor, got {tuple(x.shape)}; "
                             "PoseNet.predict takes an image of any size")
        return self.head(self.features(x).mean((2, 3))) * self.scale

    def image_tensor(self, image: ImageLike) -> torch.Tensor:
        """A photo as the network's input: square (edge-padded), resized, in [-1, 1]."""
        square, _ = pad_to_square(load_image(image), None)
        s = self.config.image_size
        return to_tensor(square.resize((s, s), Image.BICUBIC))

    @torch.no_grad()
    def predict(self, image: ImageLike, mirror: bool = True) -> tuple[float, float, float]:
        """(yaw, pitch, roll) in degrees of the head in ``image`` (a photo of one head),
        averaged with the mirrored photo's reading when ``mirror``."""
        was_training = self.training
        self.eval()
        x = self.image_tensor(image).to(self.scale.device)
        if mirror:
            both = self(torch.cat([x, x.flip(3)]))
            out = (both[0] + both[1] * both.new_tensor(MIRROR_SIGNS)) / 2
        else:
            out = self(x)[0]
        self.train(was_training)
        return tuple(float(v) for v in out.cpu())

    # -- Hub: strict, safetensors only (as loomis.train.nets.Generator) ---------------------
    def _save_pretrained(self, save_directory: Path) -> None:
        super()._save_pretrained(save_directory)
        readable_weights(save_directory)

    @classmethod
    def _from_pretrained(cls, *, model_id: str, revision: str | None, cache_dir,
                         force_download: bool, local_files_only: bool, token,
                         map_location: str = "cpu", strict: bool = True,
                         **model_kwargs) -> "PoseNet":
        model = cls(**model_kwargs)
        weights = weights_file(model_id, revision=revision, cache_dir=cache_dir,
                               force_download=force_download, token=token,
                               local_files_only=local_files_only)
        load_weights(model, weights, strict=strict)
        return model.to(map_location).float().eval()
