"""GAN objectives, the gradient penalty, and the image pool of the papers.

Weights default to the papers': L1 100 (pix2pix), cycle 10 and 10, identity 0.5 of the
cycle weight (CycleGAN). Discriminators output logits; no sigmoid anywhere.
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["GANLoss", "gradient_penalty", "ImagePool", "GAN_MODES"]

GAN_MODES = ("vanilla", "lsgan", "wgangp")

#: Papers' defaults, named once.
LAMBDA_L1 = 100.0
LAMBDA_CYCLE = 10.0
LAMBDA_IDENTITY = 0.5
LAMBDA_GP = 10.0


class GANLoss(nn.Module):
    """Adversarial loss against a real/fake label.

    ``vanilla`` is binary cross-entropy on logits (pix2pix), ``lsgan`` mean squared error
    (CycleGAN), ``wgangp`` the Wasserstein critic loss (pair it with
    :func:`gradient_penalty`, which the discriminator step adds).
    """

    def __init__(self, mode: str = "vanilla", real_label: float = 1.0, fake_label: float = 0.0):
        super().__init__()
        if mode not in GAN_MODES:
            raise ValueError(f"unknown gan loss {mode!r}; choose one of {', '.join(GAN_MODES)}")
        self.mode = mode
        self.real_label = real_label
        self.fake_label = fake_label

    def forward(self, prediction: torch.Tensor, target_is_real: bool) -> torch.Tensor:
        prediction = prediction.float()
        if self.mode == "wgangp":
            return -prediction.mean() if target_is_real else prediction.mean()
        target = torch.full_like(prediction, self.real_label if target_is_real else self.fake_label)
        if self.mode == "lsgan":
            return nn.functional.mse_loss(prediction, target)
        return nn.functional.binary_cross_entropy_with_logits(prediction, target)


def gradient_penalty(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor,
                     weight: float = LAMBDA_GP, constant: float = 1.0,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """WGAN-GP (Gulrajani et al. 2017): ``weight · E[(‖∇D(x̂)‖₂ − constant)²]``.

    ``x̂`` mixes real and fake with one uniform weight per sample. The graph is kept
    (``create_graph``) so the penalty trains the critic.
    """
    fake = fake.detach()
    alpha = torch.rand(real.shape[0], 1, 1, 1, device=real.device, dtype=real.dtype,
                       generator=generator)
    mixed = (alpha * real.detach() + (1 - alpha) * fake).requires_grad_(True)
    with torch.autocast(device_type=real.device.type, enabled=False):
        out = critic(mixed.float())
        grad, = torch.autograd.grad(out.sum(), mixed, create_graph=True)
    norms = grad.flatten(1).norm(2, dim=1)
    return weight * ((norms - constant) ** 2).mean()


class ImagePool:
    """A buffer of past generated images (Shrivastava et al.), fed to the discriminator.

    Until ``size`` images are stored every image is stored and returned. Once full, each
    query image has a 50% chance of being swapped for a random stored one (which it then
    replaces), else it is returned as is. ``size=0`` disables the pool. The pool draws
    from its own seeded generator and its contents are part of :meth:`state_dict`, so a
    resumed run makes the same choices.
    """

    def __init__(self, size: int = 50, seed: int = 0) -> None:
        if size < 0:
            raise ValueError(f"pool size must be >= 0, got {size}")
        self.size = size
        self.images: list[torch.Tensor] = []
        self.rng = torch.Generator().manual_seed(seed)

    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return images
        out = []
        for image in images.detach():
            image = image.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif torch.rand((), generator=self.rng).item() > 0.5:
                idx = int(torch.randint(0, self.size, (), generator=self.rng))
                stored = self.images[idx]
                self.images[idx] = image.clone()
                out.append(stored.to(image.device))
            else:
                out.append(image)
        return torch.cat(out, 0)

    def state_dict(self) -> dict:
        return {"size": self.size, "rng": self.rng.get_state(),
                "images": [im.cpu() for im in self.images]}

    def load_state_dict(self, state: dict) -> None:
        self.size = int(state["size"])
        self.rng.set_state(state["rng"])
        self.images = [im.clone() for im in state["images"]]
