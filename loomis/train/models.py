"""pix2pix and CycleGAN as training objects: one call of :meth:`step` is one training step.

The contract follows the reference implementation's small model interface (input in,
optimise, losses out by name) with what its users missed added:

* **Exact resume.** :meth:`state_dict` holds networks, optimizers, schedulers, grad
  scalers, the image pools and every random-number generator in play, plus the step and
  epoch counters. Loading it into a fresh object continues the run bit for bit.
* **Explicit train/eval semantics.** ``train()`` samples dropout and normalises with batch
  statistics; ``eval()`` turns dropout off and uses BatchNorm's running statistics.
  pix2pix's "dropout as noise at test time" is :meth:`loomis.train.nets.Generator.set_dropout`.
* **A real WGAN-GP**: the gradient penalty is computed and trained on.
* **DistributedDataParallel** that works with synchronized BatchNorm: each wrapped module
  runs exactly one forward and one backward per step, and the discriminator is called
  unwrapped (and frozen) while the generators train.
"""
from __future__ import annotations

import contextlib
import math
import random
from dataclasses import asdict, dataclass, fields
from typing import Iterator

import numpy as np
import torch
from torch import nn

from loomis.train.losses import (LAMBDA_CYCLE, LAMBDA_GP, LAMBDA_IDENTITY, LAMBDA_L1, GANLoss,
                                 ImagePool)
from loomis.train.losses import gradient_penalty
from loomis.train.nets import (Discriminator, Generator, GeneratorConfig, PixelDiscriminator,
                               init_weights, set_matmul_upsampling)

__all__ = ["Pix2PixConfig", "CycleGANConfig", "Pix2Pix", "CycleGAN", "select_device",
           "LR_POLICIES"]

LR_POLICIES = ("linear", "step", "cosine", "plateau")


def select_device(name: str | torch.device = "auto") -> torch.device:
    """``"auto"`` picks CUDA, then Apple's MPS, then the CPU; an explicit name must exist."""
    if isinstance(name, torch.device):
        return name
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise ValueError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but this torch build sees no CUDA GPU")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device 'mps' was asked for but Apple's MPS backend is not available")
    return dev


#: TrainConfig fields that change speed, not results: a checkpoint resumes under either value.
SAME_MATHS_SETTINGS = ("fused_adam", "matmul_upsampling")


@dataclass
class TrainConfig:
    """Settings shared by both models: generator, discriminator, optimiser and schedule."""

    arch: str = "unet_256"
    ngf: int = 64
    norm: str = "batch"
    dropout: bool = True
    in_channels: int = 3
    out_channels: int = 3
    image_size: int = 256
    direction: str = "AtoB"
    domain_a: str = "photo"
    domain_b: str = "drawing"
    netd: str = "basic"          # basic (70×70 PatchGAN), n_layers, pixel
    ndf: int = 64
    n_layers_d: int = 3
    gan_mode: str = "vanilla"
    lambda_gp: float = LAMBDA_GP
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    lr_policy: str = "linear"
    n_epochs: int = 100          # epochs at the initial learning rate
    n_epochs_decay: int = 100    # epochs of linear decay (policy "linear")
    lr_decay_iters: int = 50     # step policy: multiply by 0.1 every this many epochs
    init: str = "normal"
    init_gain: float = 0.02
    pool_size: int = 0
    seed: int = 0
    amp: bool = False            # mixed precision; only takes effect on CUDA
    # Adam as one fused kernel per optimiser (same algorithm; float ops in another order).
    # At batch 1 the per-parameter Adam update of a 54M-parameter U-Net is a sizeable share
    # of a CPU step (benchmarks/run.py times the plain and fast steps).
    fused_adam: bool = True
    # The U-Net's transposed convolutions at 1–16 px as matmul + col2im on CPU (same sums in
    # another order; see loomis.train.nets.transposed_conv_as_matmul). False: torch's native kernel.
    matmul_upsampling: bool = True

    def __post_init__(self) -> None:
        if self.netd not in ("basic", "n_layers", "pixel"):
            raise ValueError(f"unknown discriminator {self.netd!r}; choose basic, n_layers or pixel")
        if self.lr_policy not in LR_POLICIES:
            raise ValueError(f"unknown lr policy {self.lr_policy!r}; choose one of "
                             f"{', '.join(LR_POLICIES)}")
        if not self.lr > 0:
            raise ValueError(f"learning rate must be positive, got {self.lr}")
        if self.n_epochs < 0 or self.n_epochs_decay < 0:
            raise ValueError("n_epochs and n_epochs_decay must be >= 0")
        GANLoss(self.gan_mode)  # validates the name
        self.generator_config()  # validates arch, norm, sizes, direction

    def generator_config(self, direction: str | None = None) -> GeneratorConfig:
        return GeneratorConfig(self.arch, self.in_channels, self.out_channels, self.ngf,
                               self.norm, self.dropout, self.image_size,
                               direction or self.direction, self.domain_a, self.domain_b)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict):
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown {cls.__name__} settings: {', '.join(unknown)}")
        return cls(**d)


@dataclass
class Pix2PixConfig(TrainConfig):
    """pix2pix defaults (Isola et al. 2017): U-Net 256, BatchNorm, dropout, vanilla GAN, L1×100."""

    lambda_l1: float = LAMBDA_L1
    # Extra L1 weight on the target's ink (pixels darker than mid-gray). Line drawings are
    # ~3% ink, so where a line's position is still uncertain the plain L1 (a per-pixel
    # median) is minimised by white paper, and a young generator collapses to a blank page
    # that the discriminator then beats outright. Weighting ink by 1 + w (the class balance
    # of edge-detection losses such as HED) moves that break-even from p(ink) > 1/2 to
    # p(ink) > 1/(2 + w). 0 is the paper's plain L1.
    l1_ink_weight: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.l1_ink_weight < 0:
            raise ValueError(f"l1_ink_weight must be >= 0, got {self.l1_ink_weight}")


@dataclass
class CycleGANConfig(TrainConfig):
    """CycleGAN defaults (Zhu et al. 2017): ResNet 9 blocks, InstanceNorm, LSGAN, cycle ×10."""

    arch: str = "resnet_9blocks"
    norm: str = "instance"
    dropout: bool = False
    gan_mode: str = "lsgan"
    pool_size: int = 50
    lambda_a: float = LAMBDA_CYCLE
    lambda_b: float = LAMBDA_CYCLE
    lambda_identity: float = LAMBDA_IDENTITY

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.lambda_identity > 0 and self.in_channels != self.out_channels:
            raise ValueError("the identity loss needs in_channels == out_channels; "
                             "set lambda_identity=0 for different channel counts")


# ---------------------------------------------------------------------------- helpers


def _make_discriminator(cfg: TrainConfig, in_channels: int) -> nn.Module:
    if cfg.netd == "pixel":
        return PixelDiscriminator(in_channels, cfg.ndf, cfg.norm)
    return Discriminator(in_channels, cfg.ndf, 3 if cfg.netd == "basic" else cfg.n_layers_d, cfg.norm)


def _make_scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig):
    if cfg.lr_policy == "linear":
        # constant for n_epochs, then linear decay over n_epochs_decay (the reference's rule)
        def rule(epoch: int) -> float:
            return 1.0 - max(0, epoch + 1 - cfg.n_epochs) / float(cfg.n_epochs_decay + 1)
        return torch.optim.lr_scheduler.LambdaLR(opt, rule)
    if cfg.lr_policy == "step":
        return torch.optim.lr_scheduler.StepLR(opt, step_size=cfg.lr_decay_iters, gamma=0.1)
    if cfg.lr_policy == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, cfg.n_epochs), eta_min=0)
    return torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=0.2,
                                                      threshold=0.01, patience=5)


def _set_requires_grad(nets: Iterator[nn.Module] | list[nn.Module], flag: bool) -> None:
    for net in nets:
        for p in net.parameters():
            p.requires_grad_(flag)


def rng_state() -> dict:
    """Every global random-number generator a training step draws from."""
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
             "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class _CriticPair(nn.Module):
    """One forward judging real and fake (and the gradient penalty), so DDP sees one call."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, real: torch.Tensor, fake: torch.Tensor, gp_weight: float = 0.0):
        gp = gradient_penalty(self.net, real, fake, gp_weight) if gp_weight > 0 else None
        return self.net(real), self.net(fake), gp


class _GANModel:
    """What pix2pix and CycleGAN share: device, AMP, optimisers, schedules, state, modes."""

    generators: dict[str, Generator]
    discriminators: dict[str, nn.Module]

    def __init__(self, config: TrainConfig, device: str | torch.device = "auto") -> None:
        self.config = config
        self.device = select_device(device)
        self.amp = bool(config.amp and self.device.type == "cuda")
        self.step_count = 0
        self.epoch = 0
        self.criterion_gan = GANLoss(config.gan_mode)

    # subclasses call this once their networks exist
    def _setup_optim(self) -> None:
        cfg = self.config
        for net in self.networks.values():
            init_weights(net, cfg.init, cfg.init_gain)
            net.to(self.device)
            set_matmul_upsampling(net, cfg.matmul_upsampling)
        betas = (cfg.beta1, cfg.beta2)
        g_params = [p for g in self.generators.values() for p in g.parameters()]
        d_params = [p for d in self.discriminators.values() for p in d.parameters()]
        fused = True if cfg.fused_adam and self.device.type in ("cpu", "cuda") else None
        self.opt_g = torch.optim.Adam(g_params, lr=cfg.lr, betas=betas, fused=fused)
        self.opt_d = torch.optim.Adam(d_params, lr=cfg.lr, betas=betas, fused=fused)
        self.optimizers = {"G": self.opt_g, "D": self.opt_d}
        self.schedulers = {k: _make_scheduler(o, cfg) for k, o in self.optimizers.items()}
        self.scalers = {k: torch.amp.GradScaler("cuda", enabled=self.amp) for k in self.optimizers}

    @property
    def networks(self) -> dict[str, nn.Module]:
        return {**{f"G_{k}": v for k, v in self.generators.items()},
                **{f"D_{k}": v for k, v in self.discriminators.items()}}

    def _autocast(self):
        if self.amp:
            return torch.autocast(device_type="cuda", dtype=torch.float16)
        return contextlib.nullcontext()

    def _backward_step(self, name: str, loss: torch.Tensor) -> None:
        scaler = self.scalers[name]
        scaler.scale(loss).backward()
        scaler.step(self.optimizers[name])
        scaler.update()

    def _orient(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Move a batch to the device and order it source, target by the configured direction."""
        expect_a = self.config.in_channels if self.config.direction == "AtoB" else self.config.out_channels
        for name, t, c in (("A", a, expect_a), ("B", b, None)):
            if t.dim() != 4:
                raise ValueError(f"batch {name} must be (N, C, H, W), got {tuple(t.shape)}")
            if c is not None and t.shape[1] != c:
                raise ValueError(f"batch {name} has {t.shape[1]} channels, the model expects {c}")
        a, b = a.to(self.device, non_blocking=True), b.to(self.device, non_blocking=True)
        return (a, b) if self.config.direction == "AtoB" else (b, a)

    @property
    def lr(self) -> float:
        return self.opt_g.param_groups[0]["lr"]

    def end_epoch(self, metric: float | None = None) -> float:
        """Advance the learning-rate schedules by one epoch; returns the new learning rate.

        The ``plateau`` policy needs ``metric``, a validation number where lower is better
        (e.g. :meth:`validate`'s L1).
        """
        for sched in self.schedulers.values():
            if isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau):
                if metric is None or not math.isfinite(metric):
                    raise ValueError("lr policy 'plateau' needs a finite validation metric "
                                     "each epoch: call end_epoch(metric)")
                sched.step(metric)
            else:
                sched.step()
        self.epoch += 1
        return self.lr

    def train(self) -> "_GANModel":
        for net in self.networks.values():
            net.train()
        return self

    def eval(self) -> "_GANModel":
        for net in self.networks.values():
            net.eval()
        return self

    def distribute(self, sync_batchnorm: bool = False) -> None:
        """Wrap the networks for DistributedDataParallel (call after init_process_group)."""
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [self.device.index] if self.device.type == "cuda" else None
        if sync_batchnorm:
            for group in (self.generators, self.discriminators):
                for k in list(group):
                    group[k] = nn.SyncBatchNorm.convert_sync_batchnorm(group[k])
            self._rebind()
        self._wrap = lambda m: DDP(m, device_ids=ids)
        self._build_runners()

    def _rebind(self) -> None:
        """Subclasses refresh their attribute aliases after networks are replaced."""

    def _build_runners(self) -> None:
        raise NotImplementedError

    # -- state --------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "config": self.config.to_dict(),
            "step": self.step_count,
            "epoch": self.epoch,
            "networks": {k: v.state_dict() for k, v in self.networks.items()},
            "optimizers": {k: v.state_dict() for k, v in self.optimizers.items()},
            "schedulers": {k: v.state_dict() for k, v in self.schedulers.items()},
            "scalers": {k: v.state_dict() for k, v in self.scalers.items()},
            "pools": {k: v.state_dict() for k, v in self.pools.items()},
            "rng": rng_state(),
        }

    def load_state_dict(self, state: dict) -> None:
        # Settings added since the checkpoint was written take their defaults; the speed-only
        # settings compute the same maths, so a run may resume with them changed.
        saved = type(self.config).from_dict(state["config"]).to_dict()
        mine = self.config.to_dict()
        diff = {k: (saved[k], mine[k]) for k in mine
                if saved[k] != mine[k] and k not in SAME_MATHS_SETTINGS}
        if diff:
            raise ValueError(f"checkpoint was trained with other settings: {diff} "
                             "(checkpoint value, this model's value)")
        for k, net in self.networks.items():
            net.load_state_dict(state["networks"][k])
        for k, opt in self.optimizers.items():
            opt.load_state_dict(state["optimizers"][k])
        for k, s in self.schedulers.items():
            s.load_state_dict(state["schedulers"][k])
        for k, s in self.scalers.items():
            if state["scalers"][k]:
                s.load_state_dict(state["scalers"][k])
        for k, p in self.pools.items():
            p.load_state_dict(state["pools"][k])
        self.step_count = int(state["step"])
        self.epoch = int(state["epoch"])
        set_rng_state(state["rng"])


# ---------------------------------------------------------------------------- pix2pix


def ink_weighted_l1(pred: torch.Tensor, target: torch.Tensor, ink_weight: float) -> torch.Tensor:
    """Mean L1 with the target's ink pixels (channel mean < 0, i.e. darker than mid-gray in
    [-1, 1]) weighted ``1 + ink_weight``; plain mean L1 when ``ink_weight`` is 0."""
    err = (pred - target).abs()
    if ink_weight == 0:
        return err.mean()
    ink = (target.mean(1, keepdim=True) < 0).to(err.dtype)
    return (err * (1 + ink_weight * ink)).mean()


class Pix2Pix(_GANModel):
    """Conditional GAN with an L1 term: G maps source → target, D judges (source, image) pairs."""

    def __init__(self, config: Pix2PixConfig | None = None, device: str | torch.device = "auto") -> None:
        config = config or Pix2PixConfig()
        super().__init__(config, device)
        torch.manual_seed(config.seed)
        self.netG = Generator(**asdict(config.generator_config()))
        self.netD = _make_discriminator(config, config.in_channels + config.out_channels)
        self.generators = {"": self.netG}
        self.discriminators = {"": self.netD}
        self.pools = {"AB": ImagePool(config.pool_size, seed=config.seed)}
        self._setup_optim()
        self._wrap = lambda m: m
        self._build_runners()
        self.loss_names = ["D_real", "D_fake", "G_GAN", "G_L1"] + (
            ["D_GP"] if config.gan_mode == "wgangp" else [])
        self.train()

    @property
    def networks(self) -> dict[str, nn.Module]:
        return {"G": self.netG, "D": self.netD}

    def _rebind(self) -> None:
        self.netG, self.netD = self.generators[""], self.discriminators[""]

    def _build_runners(self) -> None:
        self._run_g = self._wrap(self.netG)
        self._run_d = self._wrap(_CriticPair(self.netD))

    def step(self, a: torch.Tensor, b: torch.Tensor) -> dict[str, float]:
        """One training step on a batch of domain-A and domain-B images in [-1, 1]:
        update D on (real, fake) pairs, then G on the GAN and L1 losses."""
        cfg = self.config
        real_a, real_b = self._orient(a, b)
        with self._autocast():
            fake_b = self._run_g(real_a)

        _set_requires_grad([self.netD], True)
        self.opt_d.zero_grad(set_to_none=True)
        fake_ab = self.pools["AB"].query(torch.cat([real_a, fake_b], 1).detach())
        real_ab = torch.cat([real_a, real_b], 1)
        gp_weight = cfg.lambda_gp if cfg.gan_mode == "wgangp" else 0.0
        with self._autocast():
            pred_real, pred_fake, gp = self._run_d(real_ab, fake_ab, gp_weight)
            loss_d_real = self.criterion_gan(pred_real, True)
            loss_d_fake = self.criterion_gan(pred_fake, False)
            loss_d = 0.5 * (loss_d_real + loss_d_fake) + (gp if gp is not None else 0.0)
        self._backward_step("D", loss_d)

        _set_requires_grad([self.netD], False)
        self.opt_g.zero_grad(set_to_none=True)
        with self._autocast():
            loss_g_gan = self.criterion_gan(self.netD(torch.cat([real_a, fake_b], 1)), True)
            loss_g_l1 = ink_weighted_l1(fake_b.float(), real_b.float(), cfg.l1_ink_weight) * cfg.lambda_l1
            loss_g = loss_g_gan + loss_g_l1
        self._backward_step("G", loss_g)
        _set_requires_grad([self.netD], True)

        self.step_count += 1
        self.fake = fake_b.detach()
        losses = {"D_real": loss_d_real, "D_fake": loss_d_fake, "G_GAN": loss_g_gan, "G_L1": loss_g_l1}
        if gp is not None:
            losses["D_GP"] = gp
        return {k: float(v.detach()) for k, v in losses.items()}

    @torch.no_grad()
    def validate(self, a: torch.Tensor, b: torch.Tensor) -> float:
        """Mean L1 between G(source) and target in eval mode (lower is better)."""
        was_training = self.netG.training
        self.netG.eval()
        src, tgt = self._orient(a, b)
        err = float(nn.functional.l1_loss(self.netG(src).float(), tgt.float()))
        self.netG.train(was_training)
        return err


# ---------------------------------------------------------------------------- CycleGAN


class _GeneratorPair(nn.Module):
    """All generator passes of one CycleGAN step in one forward (one DDP call)."""

    def __init__(self, g_a: Generator, g_b: Generator, identity: bool) -> None:
        super().__init__()
        self.g_a, self.g_b, self.identity = g_a, g_b, identity

    def forward(self, real_a: torch.Tensor, real_b: torch.Tensor) -> dict[str, torch.Tensor]:
        out = {"fake_B": self.g_a(real_a), "fake_A": self.g_b(real_b)}
        out["rec_A"] = self.g_b(out["fake_B"])
        out["rec_B"] = self.g_a(out["fake_A"])
        if self.identity:
            out["idt_A"] = self.g_a(real_b)
            out["idt_B"] = self.g_b(real_a)
        return out


class CycleGAN(_GANModel):
    """Two generators (G_A: A→B, G_B: B→A) and two discriminators, trained on unpaired images."""

    def __init__(self, config: CycleGANConfig | None = None, device: str | torch.device = "auto") -> None:
        config = config or CycleGANConfig()
        super().__init__(config, device)
        torch.manual_seed(config.seed)
        self.netG_A = Generator(**asdict(config.generator_config("AtoB")))
        self.netG_B = Generator(**{**asdict(config.generator_config("BtoA")),
                                   "in_channels": config.out_channels,
                                   "out_channels": config.in_channels})
        self.netD_A = _make_discriminator(config, config.out_channels)  # judges domain B
        self.netD_B = _make_discriminator(config, config.in_channels)   # judges domain A
        self.generators = {"A": self.netG_A, "B": self.netG_B}
        self.discriminators = {"A": self.netD_A, "B": self.netD_B}
        self.pools = {"fake_B": ImagePool(config.pool_size, seed=config.seed),
                      "fake_A": ImagePool(config.pool_size, seed=config.seed + 1)}
        self._setup_optim()
        self._wrap = lambda m: m
        self._build_runners()
        self.loss_names = ["D_A", "G_A", "cycle_A", "idt_A", "D_B", "G_B", "cycle_B", "idt_B"]
        self.train()

    def _rebind(self) -> None:
        self.netG_A, self.netG_B = self.generators["A"], self.generators["B"]
        self.netD_A, self.netD_B = self.discriminators["A"], self.discriminators["B"]

    def _build_runners(self) -> None:
        self._run_g = self._wrap(_GeneratorPair(self.netG_A, self.netG_B,
                                                self.config.lambda_identity > 0))
        self._run_d_a = self._wrap(_CriticPair(self.netD_A))
        self._run_d_b = self._wrap(_CriticPair(self.netD_B))

    def _orient(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # CycleGAN learns both directions at once; "direction" only says which is G_A.
        for name, t in (("A", a), ("B", b)):
            if t.dim() != 4:
                raise ValueError(f"batch {name} must be (N, C, H, W), got {tuple(t.shape)}")
        if a.shape[1] != self.config.in_channels or b.shape[1] != self.config.out_channels:
            raise ValueError(f"batches have {a.shape[1]} and {b.shape[1]} channels; the model "
                             f"expects {self.config.in_channels} (A) and {self.config.out_channels} (B)")
        return a.to(self.device), b.to(self.device)

    def step(self, a: torch.Tensor, b: torch.Tensor) -> dict[str, float]:
        """One step on unpaired batches: generators first (GAN + cycle + identity), then
        both discriminators on pooled fakes."""
        cfg = self.config
        real_a, real_b = self._orient(a, b)
        lam_idt = cfg.lambda_identity

        _set_requires_grad([self.netD_A, self.netD_B], False)
        self.opt_g.zero_grad(set_to_none=True)
        with self._autocast():
            out = self._run_g(real_a, real_b)
            l1 = nn.functional.l1_loss
            loss = {
                "G_A": self.criterion_gan(self.netD_A(out["fake_B"]), True),
                "G_B": self.criterion_gan(self.netD_B(out["fake_A"]), True),
                "cycle_A": l1(out["rec_A"].float(), real_a.float()) * cfg.lambda_a,
                "cycle_B": l1(out["rec_B"].float(), real_b.float()) * cfg.lambda_b,
            }
            zero = real_a.new_zeros(())
            loss["idt_A"] = (l1(out["idt_A"].float(), real_b.float()) * cfg.lambda_b * lam_idt
                             if lam_idt > 0 else zero)
            loss["idt_B"] = (l1(out["idt_B"].float(), real_a.float()) * cfg.lambda_a * lam_idt
                             if lam_idt > 0 else zero)
            loss_g = sum(loss.values())
        self._backward_step("G", loss_g)

        _set_requires_grad([self.netD_A, self.netD_B], True)
        self.opt_d.zero_grad(set_to_none=True)
        gp_weight = cfg.lambda_gp if cfg.gan_mode == "wgangp" else 0.0
        loss_d = 0.0
        for key, run, real, fake in (("D_A", self._run_d_a, real_b, "fake_B"),
                                     ("D_B", self._run_d_b, real_a, "fake_A")):
            pooled = self.pools[fake].query(out[fake].detach())
            with self._autocast():
                pred_real, pred_fake, gp = run(real, pooled, gp_weight)
                d = 0.5 * (self.criterion_gan(pred_real, True) + self.criterion_gan(pred_fake, False))
                if gp is not None:
                    d = d + gp
            loss[key] = d
            loss_d = loss_d + d
        self._backward_step("D", loss_d)

        self.step_count += 1
        self.fake = {"B": out["fake_B"].detach(), "A": out["fake_A"].detach()}
        return {k: float(loss[k].detach()) for k in self.loss_names}

    @torch.no_grad()
    def validate(self, a: torch.Tensor, b: torch.Tensor) -> float:
        """Mean cycle-reconstruction L1 of both domains in eval mode (needs no pairs)."""
        was = self.netG_A.training
        self.netG_A.eval(), self.netG_B.eval()
        real_a, real_b = self._orient(a, b)
        err = 0.5 * (float(nn.functional.l1_loss(self.netG_B(self.netG_A(real_a)), real_a))
                     + float(nn.functional.l1_loss(self.netG_A(self.netG_B(real_b)), real_b)))
        self.netG_A.train(was), self.netG_B.train(was)
        return err
