"""Inference: any image in, the generator's translation out, at the input's own size.

The one path every caller uses (the app, ``train/evaluate.py``, the benchmarks):
``load_image`` → pad to a square and resize to the generator's training resolution →
network → crop the padding → resize back. A generator only ever sees the resolution it
was trained at, which is what the reference implementation's users had to arrange by hand.
"""
from __future__ import annotations

import threading
from pathlib import Path

import torch
from PIL import Image

from .imageio import ImageLike, load_image, to_image, to_tensor
from .nets import Generator

__all__ = ["Translator", "pad_to_square"]


def pad_to_square(img: Image.Image, fill: tuple[int, int, int] | None) -> tuple[Image.Image, tuple[int, int, int, int]]:
    """Centre ``img`` on a square canvas; ``fill=None`` replicates the edge pixels (photos),
    a colour pads with it (white for drawings). Returns the canvas and the content box."""
    import numpy as np

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


class Translator:
    """Wraps a :class:`~loomis.nets.Generator` for single-image inference.

    Safe to share between threads: the network runs in eval mode under ``no_grad`` and
    holds no per-call state. ``sample_dropout=True`` (pix2pix's test-time noise) switches
    dropout on for that call under a lock.
    """

    def __init__(self, generator: Generator, device: str | torch.device = "cpu") -> None:
        self.generator = generator.to(device).eval()
        self.device = torch.device(device)
        self.config = generator.config
        self._lock = threading.Lock()

    @classmethod
    def from_pretrained(cls, model_id: str | Path, device: str = "cpu", **hub_kwargs) -> "Translator":
        """Load from a Hub id or a local folder (strict, safetensors only)."""
        return cls(Generator.from_pretrained(str(model_id), **hub_kwargs), device)

    def _pad_fill(self) -> tuple[int, int, int] | None:
        # drawings live on white paper; photos are padded by replicating their edges
        return (255, 255, 255) if self.config.source_domain == "drawing" else None

    def __call__(self, image: ImageLike, *, keep_size: bool = True,
                 sample_dropout: bool = False) -> Image.Image:
        img = load_image(image)
        size = self.config.image_size
        square, box = pad_to_square(img, self._pad_fill())
        x = to_tensor(square.resize((size, size), Image.BICUBIC)).to(self.device)
        y = self.run(x, sample_dropout=sample_dropout)
        out = to_image(y)
        if not keep_size:
            return out
        side = square.size[0]
        out = out.resize((side, side), Image.BICUBIC)
        return out.crop(box)

    @torch.no_grad()
    def run(self, x: torch.Tensor, *, sample_dropout: bool = False) -> torch.Tensor:
        """Tensor in, tensor out (``(N, C, S, S)`` in [-1, 1] at the training size)."""
        if not sample_dropout:
            return self.generator(x)
        with self._lock:
            self.generator.set_dropout(True)
            try:
                return self.generator(x)
            finally:
                self.generator.set_dropout(False)
