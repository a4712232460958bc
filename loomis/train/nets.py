"""The networks of pix2pix and CycleGAN: U-Net and ResNet generators, PatchGAN discriminators.

Architectures, defaults and parameter counts match the papers' reference implementation
(see ``tests/test_nets.py`` for the table). Two things differ on purpose:

* Weight names are flat and readable (``down.3.conv.weight``, ``blocks.4.conv1.weight``)
  instead of nested ``model.model.1.model.3…`` sequentials.
* Layers with ``norm="none"`` carry a bias (the reference drops the bias whenever the norm
  is not instance norm, leaving un-normalised convolutions without one).

:class:`Generator` is a Hugging Face Hub model: ``save_pretrained`` writes ``config.json``
(everything needed to rebuild it) and ``model.safetensors``; ``from_pretrained`` takes a
Hub id or a local folder and loads *strictly* and *only* from safetensors, never pickle.
"""
from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path

import torch
from huggingface_hub import PyTorchModelHubMixin, hf_hub_download
from torch import nn

from loomis.files import new_file_mode
from loomis.generator_config import (ARCHS, NORMS, RESNET_ARCHS, CheckpointError, GeneratorConfig,
                                     _check_choice, _check_positive, min_input_multiple,
                                     read_safetensors, unet_depth)

__all__ = [
    "GeneratorConfig", "Generator", "Discriminator", "PixelDiscriminator", "init_weights",
    "CheckpointError", "load_weights", "count_parameters", "NORMS", "ARCHS",
    "transposed_conv_as_matmul", "set_matmul_upsampling", "widen",
]

INITS = ("normal", "xavier", "kaiming", "orthogonal")
WEIGHTS_NAME = "model.safetensors"


def _norm_layer(norm: str, channels: int) -> nn.Module:
    if norm == "batch":
        return nn.BatchNorm2d(channels, affine=True, track_running_stats=True)
    if norm == "instance":  # as in the papers: no affine weights, no running statistics
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    return nn.Identity()


# ---------------------------------------------------------------------------- U-Net


class _Down(nn.Module):
    """Conv 4×4 stride 2, then norm (not on the outermost or innermost level).

    As in the reference, the conv has no bias under BatchNorm even on the two levels that
    skip the norm.
    """

    def __init__(self, cin: int, cout: int, norm: str, use_norm: bool) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 4, 2, 1, bias=norm != "batch")
        self.norm = _norm_layer(norm, cout) if use_norm else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.conv(x))


#: Inputs up to this side run the U-Net's transposed convolutions as a matmul (CPU only).
MATMUL_UPSAMPLING_MAX_SIDE = 16


def transposed_conv_as_matmul(x: torch.Tensor, weight: torch.Tensor,
                              bias: torch.Tensor | None) -> torch.Tensor:
    """``conv_transpose2d(x, weight, bias, stride=2, padding=1)`` for a 4×4 kernel, as one
    matmul (every input pixel's 4×4 patch of every output channel) and a col2im (``fold``)
    that adds the overlapping patches: the same sums in another order.

    Why: on a CPU, torch's native transposed convolution re-lays out the whole weight on
    every call. At the U-Net's inner levels (1–16 px, 4–8 M weights) that costs more than
    the arithmetic, and this form is faster there, forward plus backward; at 32 and 64 px it
    is slower (docs/layer_speed.json; ``benchmarks/run.py`` times the whole training step).
    """
    n, cin, h, w = x.shape
    cout = weight.shape[1]
    cols = weight.reshape(cin, cout * 16).t() @ x.reshape(n, cin, h * w)   # n, cout·16, h·w
    y = nn.functional.fold(cols, (2 * h, 2 * w), kernel_size=4, stride=2, padding=1)
    return y if bias is None else y + bias.view(1, -1, 1, 1)


class _Up(nn.Module):
    """ReLU, ConvTranspose 4×4 stride 2, norm, optional dropout (or Tanh on the outermost).

    ``matmul_max_side``: on a CPU, inputs up to this side use :func:`transposed_conv_as_matmul`
    (0 turns it off; ONNX export always writes the native operator).
    """

    def __init__(self, cin: int, cout: int, norm: str, outermost: bool, dropout: bool) -> None:
        super().__init__()
        self.conv = nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=outermost or norm != "batch")
        self.norm = nn.Identity() if outermost else _norm_layer(norm, cout)
        self.dropout = nn.Dropout(0.5) if dropout else nn.Identity()
        self.outermost = outermost
        self.matmul_max_side = MATMUL_UPSAMPLING_MAX_SIDE

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(x)
        if (max(x.shape[-2:]) <= self.matmul_max_side and x.device.type == "cpu"
                and not torch.onnx.is_in_onnx_export()):
            y = transposed_conv_as_matmul(x, self.conv.weight, self.conv.bias)
        else:
            y = self.conv(x)
        y = self.norm(y)
        return torch.tanh(y) if self.outermost else self.dropout(y)


def set_matmul_upsampling(net: nn.Module, enabled: bool) -> None:
    """Turn :func:`transposed_conv_as_matmul` on (the default) or off in every U-Net up step
    of ``net``; off gives torch's native kernel, the plain path the benchmark compares with."""
    for module in net.modules():
        if isinstance(module, _Up):
            module.matmul_max_side = MATMUL_UPSAMPLING_MAX_SIDE if enabled else 0


class UNet(nn.Module):
    """U-Net of the pix2pix paper with ``depth`` down steps.

    Down step ``i`` has ``ngf·min(2^i, 8)`` channels. Every skip connection carries the
    LeakyReLU'd activation, exactly what the reference computes (its in-place LeakyReLU
    rewrites the tensor that is later concatenated). Dropout sits in the up steps of the
    intermediate ``8·ngf`` levels (levels 4 … depth−2), three of them for ``unet_256``.
    """

    def __init__(self, in_channels: int, out_channels: int, ngf: int, norm: str,
                 dropout: bool, depth: int) -> None:
        super().__init__()
        chans = [ngf * min(2 ** i, 8) for i in range(depth)]
        self.down = nn.ModuleList()
        self.up = nn.ModuleList()
        for i in range(depth):
            cin = in_channels if i == 0 else chans[i - 1]
            self.down.append(_Down(cin, chans[i], norm, use_norm=0 < i < depth - 1))
        for i in range(depth):  # up[i] mirrors down[i]; its input is concatenated except innermost
            cin = chans[i] if i == depth - 1 else 2 * chans[i]
            cout = out_channels if i == 0 else chans[i - 1]
            self.up.append(_Up(cin, cout, norm, outermost=i == 0,
                               dropout=dropout and 4 <= i <= depth - 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        h = x
        last = len(self.down) - 1
        for i, down in enumerate(self.down):
            h = down(h)
            if i < last:
                h = nn.functional.leaky_relu(h, 0.2)
                skips.append(h)
        for i in range(last, -1, -1):
            h = self.up[i](h)
            if i > 0:
                h = torch.cat([skips[i - 1], h], dim=1)
        return h


# ---------------------------------------------------------------------------- ResNet


class _ResBlock(nn.Module):
    def __init__(self, channels: int, norm: str, dropout: bool) -> None:
        super().__init__()
        bias = norm != "batch"
        self.conv1 = nn.Conv2d(channels, channels, 3, bias=bias)
        self.norm1 = _norm_layer(norm, channels)
        self.dropout = nn.Dropout(0.5) if dropout else nn.Identity()
        self.conv2 = nn.Conv2d(channels, channels, 3, bias=bias)
        self.norm2 = _norm_layer(norm, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad = nn.functional.pad
        h = torch.relu(self.norm1(self.conv1(pad(x, (1, 1, 1, 1), mode="reflect"))))
        h = self.norm2(self.conv2(pad(self.dropout(h), (1, 1, 1, 1), mode="reflect")))
        return x + h


class ResNet(nn.Module):
    """Johnson et al.'s generator as used by CycleGAN: 2 downsamples, residual blocks, 2 upsamples."""

    def __init__(self, in_channels: int, out_channels: int, ngf: int, norm: str,
                 dropout: bool, n_blocks: int) -> None:
        super().__init__()
        bias = norm != "batch"
        self.stem = nn.Conv2d(in_channels, ngf, 7, bias=bias)
        self.stem_norm = _norm_layer(norm, ngf)
        self.down1 = nn.Conv2d(ngf, ngf * 2, 3, 2, 1, bias=bias)
        self.down1_norm = _norm_layer(norm, ngf * 2)
        self.down2 = nn.Conv2d(ngf * 2, ngf * 4, 3, 2, 1, bias=bias)
        self.down2_norm = _norm_layer(norm, ngf * 4)
        self.blocks = nn.ModuleList(_ResBlock(ngf * 4, norm, dropout) for _ in range(n_blocks))
        self.up1 = nn.ConvTranspose2d(ngf * 4, ngf * 2, 3, 2, 1, output_padding=1, bias=bias)
        self.up1_norm = _norm_layer(norm, ngf * 2)
        self.up2 = nn.ConvTranspose2d(ngf * 2, ngf, 3, 2, 1, output_padding=1, bias=bias)
        self.up2_norm = _norm_layer(norm, ngf)
        self.head = nn.Conv2d(ngf, out_channels, 7)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad = nn.functional.pad
        h = torch.relu(self.stem_norm(self.stem(pad(x, (3, 3, 3, 3), mode="reflect"))))
        h = torch.relu(self.down1_norm(self.down1(h)))
        h = torch.relu(self.down2_norm(self.down2(h)))
        for block in self.blocks:
            h = block(h)
        h = torch.relu(self.up1_norm(self.up1(h)))
        h = torch.relu(self.up2_norm(self.up2(h)))
        return torch.tanh(self.head(pad(h, (3, 3, 3, 3), mode="reflect")))


# ---------------------------------------------------------------------------- Generator


class Generator(nn.Module, PyTorchModelHubMixin, library_name="loomis",
                tags=["image-to-image", "pix2pix", "cyclegan", "loomis"],
                repo_url="https://github.com/loomis-art/loomis", license="mit"):
    """An image-to-image generator (U-Net or ResNet) that travels with its config.

    Input and output are ``(N, C, H, W)`` tensors in [-1, 1]; ``H`` and ``W`` must be
    multiples of :func:`min_input_multiple` (``loomis.train.inference`` resizes any image for
    you). Call ``.eval()`` for inference: dropout off, BatchNorm uses its running
    statistics. ``from_pretrained`` returns the model in eval mode.
    """

    def __init__(self, arch: str = "unet_256", in_channels: int = 3, out_channels: int = 3,
                 ngf: int = 64, norm: str = "batch", dropout: bool = False,
                 image_size: int = 256, direction: str = "AtoB", domain_a: str = "photo",
                 domain_b: str = "drawing") -> None:
        super().__init__()
        self.config = GeneratorConfig(arch, in_channels, out_channels, ngf, norm, dropout,
                                      image_size, direction, domain_a, domain_b)
        c = self.config
        if c.arch.startswith("unet_"):
            self.net = UNet(c.in_channels, c.out_channels, c.ngf, c.norm, c.dropout,
                            unet_depth(c.arch))
        else:
            self.net = ResNet(c.in_channels, c.out_channels, c.ngf, c.norm, c.dropout,
                              RESNET_ARCHS[c.arch])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.config
        if x.dim() != 4 or x.shape[1] != c.in_channels:
            raise ValueError(f"{c.arch} expects a (N, {c.in_channels}, H, W) tensor, "
                             f"got shape {tuple(x.shape)}")
        m = min_input_multiple(c.arch)
        if x.shape[2] % m or x.shape[3] % m or min(x.shape[2:]) < m:
            raise ValueError(f"{c.arch} needs height and width that are multiples of {m} "
                             f"(at least {m}); got {x.shape[2]}x{x.shape[3]}. Resize the "
                             f"image, or use loomis.train.inference.Translator, which does")
        return self.net(x)

    def set_dropout(self, active: bool) -> "Generator":
        """Keep dropout sampling in eval mode (pix2pix's "dropout as noise at test time")."""
        for m in self.modules():
            if isinstance(m, nn.Dropout):
                m.train(active)
        return self

    # -- Hub: strict, safetensors only ------------------------------------------------
    def _save_pretrained(self, save_directory: Path) -> None:
        super()._save_pretrained(save_directory)
        readable_weights(save_directory)

    @classmethod
    def _from_pretrained(cls, *, model_id: str, revision: str | None, cache_dir, force_download: bool,
                         local_files_only: bool, token, map_location: str = "cpu",
                         strict: bool = True, **model_kwargs) -> "Generator":
        model = cls(**model_kwargs)
        weights = weights_file(model_id, revision=revision, cache_dir=cache_dir,
                               force_download=force_download, token=token,
                               local_files_only=local_files_only)
        load_weights(model, weights, strict=strict)
        return model.to(map_location).eval()


def readable_weights(folder: str | os.PathLike) -> None:
    """Give a saved folder's weights the mode any new file gets (safetensors writes 0600)."""
    path = Path(folder) / WEIGHTS_NAME
    if path.is_file():
        os.chmod(path, new_file_mode())


def weights_file(model_id: str, **hub_kwargs) -> Path:
    """The ``model.safetensors`` of a local folder or a Hub model (downloaded or cached);
    never a pickled ``.bin``/``.pt``."""
    if os.path.isdir(model_id):
        weights = Path(model_id) / WEIGHTS_NAME
        if not weights.is_file():
            raise CheckpointError(
                f"{model_id} has no {WEIGHTS_NAME}; Loomis loads safetensors weights only "
                "(pickled .bin/.pt/.pth files are never opened)")
        return weights
    return Path(hf_hub_download(repo_id=model_id, filename=WEIGHTS_NAME, **hub_kwargs))


def load_weights(model: nn.Module, path: str | os.PathLike, strict: bool = True) -> nn.Module:
    """Load a safetensors file into ``model``, naming every missing, unexpected or misshapen key.

    Tensors are cast to the model's dtype, so half-precision files load into float models.
    Anything that is not a safetensors file (a pickle, say) is refused before it is parsed.
    """
    from safetensors.torch import load_file

    path = Path(path)
    tensors = read_safetensors(path, load_file)
    own = model.state_dict()
    missing = sorted(set(own) - set(tensors))
    unexpected = sorted(set(tensors) - set(own))
    misshapen = [f"{k}: file {tuple(tensors[k].shape)} vs model {tuple(own[k].shape)}"
                 for k in sorted(set(own) & set(tensors)) if tensors[k].shape != own[k].shape]
    if misshapen or (strict and (missing or unexpected)):
        parts = []
        if missing:
            parts.append(f"missing keys {_short(missing)}")
        if unexpected:
            parts.append(f"unexpected keys {_short(unexpected)}")
        if misshapen:
            parts.append(f"shape mismatches {_short(misshapen)}")
        raise CheckpointError(f"{path} does not fit this model ({'; '.join(parts)}). Was it "
                              "saved for another architecture? Load it with the config.json "
                              "it was saved with (Generator.from_pretrained(folder))")
    with torch.no_grad():
        for k, v in tensors.items():
            if k in own:
                own[k].copy_(v)
    return model


def _short(items: list[str], n: int = 6) -> str:
    more = f" … and {len(items) - n} more" if len(items) > n else ""
    return ", ".join(items[:n]) + more


# ---------------------------------------------------------------------------- Discriminators


class Discriminator(nn.Module):
    """PatchGAN: a grid of real/fake logits, one per overlapping patch.

    ``n_layers=3`` is the 70×70 PatchGAN of the papers (256² input → 30×30 logits).
    No sigmoid: the GAN losses take logits.
    """

    def __init__(self, in_channels: int = 3, ndf: int = 64, n_layers: int = 3,
                 norm: str = "batch") -> None:
        super().__init__()
        _check_choice("norm", norm, NORMS)
        _check_positive(in_channels=in_channels, ndf=ndf, n_layers=n_layers)
        self.in_channels = in_channels
        bias = norm != "batch"
        self.convs = nn.ModuleList([nn.Conv2d(in_channels, ndf, 4, 2, 1)])
        self.norms = nn.ModuleList([nn.Identity()])
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2 ** n, 8)
            stride = 2 if n < n_layers else 1
            self.convs.append(nn.Conv2d(ndf * prev, ndf * mult, 4, stride, 1, bias=bias))
            self.norms.append(_norm_layer(norm, ndf * mult))
        self.head = nn.Conv2d(ndf * mult, 1, 4, 1, 1)
        # smallest input that still yields a 1×1 map: stride-2 layers halve, the last two shrink by 1
        self.min_size = 2 ** n_layers * 2 + 2 ** n_layers

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"discriminator expects (N, {self.in_channels}, H, W), "
                             f"got {tuple(x.shape)}")
        h = x
        for conv, norm in zip(self.convs, self.norms):
            h = nn.functional.leaky_relu(norm(conv(h)), 0.2)
        return self.head(h)


class PixelDiscriminator(nn.Module):
    """1×1 PatchGAN ("PixelGAN"): judges every pixel's colour on its own."""

    def __init__(self, in_channels: int = 3, ndf: int = 64, norm: str = "batch") -> None:
        super().__init__()
        _check_choice("norm", norm, NORMS)
        _check_positive(in_channels=in_channels, ndf=ndf)
        self.in_channels = in_channels
        bias = norm != "batch"
        self.conv1 = nn.Conv2d(in_channels, ndf, 1)
        self.conv2 = nn.Conv2d(ndf, ndf * 2, 1, bias=bias)
        self.norm2 = _norm_layer(norm, ndf * 2)
        self.head = nn.Conv2d(ndf * 2, 1, 1, bias=bias)
        self.min_size = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"discriminator expects (N, {self.in_channels}, H, W), "
                             f"got {tuple(x.shape)}")
        h = nn.functional.leaky_relu(self.conv1(x), 0.2)
        h = nn.functional.leaky_relu(self.norm2(self.conv2(h)), 0.2)
        return self.head(h)


# ---------------------------------------------------------------------------- init & utils


def init_weights(net: nn.Module, init: str = "normal", gain: float = 0.02) -> nn.Module:
    """The papers' initialisation: conv weights N(0, gain) (or xavier/kaiming/orthogonal),
    biases 0, BatchNorm weights N(1, gain)."""
    _check_choice("init", init, INITS)
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            if init == "normal":
                nn.init.normal_(m.weight, 0.0, gain)
            elif init == "xavier":
                nn.init.xavier_normal_(m.weight, gain=gain)
            elif init == "kaiming":
                nn.init.kaiming_normal_(m.weight, a=0, mode="fan_in")
            else:
                nn.init.orthogonal_(m.weight, gain=gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, gain)
            nn.init.zeros_(m.bias)
    return net


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def config_dict(gen: Generator) -> dict:
    """The generator's config as a plain dict (what ``config.json`` holds)."""
    return asdict(gen.config)


# ---------------------------------------------------------------------------- widening


def widen(gen: Generator, ngf: int, seed: int = 0) -> Generator:
    """A U-Net generator with ``ngf`` filters that computes exactly what ``gen`` computes.

    Why: a small generator that has stopped improving (its training F1 equals its
    validation F1: it underfits) can keep everything it learned and go on training with
    more capacity, instead of starting a wider one from scratch. This is Net2WiderNet
    (Chen, Goodfellow & Shlens, 2016): every new channel copies an old one (its incoming
    weights, BatchNorm parameters and running statistics), and each layer that reads the
    copies splits the old outgoing weight between them. The split is random per weight
    (positive shares that sum to one), so the output is unchanged (up to float rounding)
    while the copies receive different gradients and can grow apart; equal shares would
    keep them identical forever. Returned in eval mode, like ``from_pretrained``.
    """
    c = gen.config
    if not c.arch.startswith("unet_"):
        raise ValueError(f"widen supports U-Net generators; this one is {c.arch}")
    if ngf < c.ngf:
        raise ValueError(f"widen makes a generator wider: ngf {ngf} < its ngf {c.ngf}")
    wide = Generator(**{**asdict(c), "ngf": ngf})
    rng = torch.Generator().manual_seed(seed)
    old_net, new_net = gen.net, wide.net
    depth = len(old_net.down)
    old_ch = [layer.conv.out_channels for layer in old_net.down]
    new_ch = [layer.conv.out_channels for layer in new_net.down]
    # g[i][j]: the old channel that new channel j of level i copies (the first ones keep
    # their place, the rest copy randomly chosen ones)
    g = [torch.cat([torch.arange(o), torch.randint(0, o, (n - o,), generator=rng)])
         for o, n in zip(old_ch, new_ch)]

    def split(w: torch.Tensor, src: torch.Tensor, dim: int) -> torch.Tensor:
        """Gather ``w`` along its input dimension ``dim`` and share each old weight
        randomly among the copies of its input channel."""
        w = w.index_select(dim, src)
        share = torch.rand(w.shape, generator=rng) + 0.5
        total = torch.zeros_like(w).index_add_(dim, src, share)[(slice(None),) * dim + (src,)]
        return w * share / total

    def copy_norm(old: nn.Module, new: nn.Module, rows: torch.Tensor) -> None:
        # same layer type on both sides, so parameters and buffers pair up in order
        for t, target in zip([*old.parameters(), *old.buffers()],
                             [*new.parameters(), *new.buffers()], strict=True):
            target.copy_(t[rows] if t.dim() else t)

    with torch.no_grad():
        for i in range(depth):
            old, new = old_net.down[i], new_net.down[i]
            w = old.conv.weight[g[i]]                            # out channels: copies
            new.conv.weight.copy_(w if i == 0 else split(w, g[i - 1], 1))
            if old.conv.bias is not None:
                new.conv.bias.copy_(old.conv.bias[g[i]])
            copy_norm(old.norm, new.norm, g[i])
        for i in range(depth):
            old, new = old_net.up[i], new_net.up[i]
            # input: the innermost code alone, else [skip of level i, output of up[i+1]],
            # both laid out as level i's channels
            src = g[i] if i == depth - 1 else torch.cat([g[i], g[i] + old_ch[i]])
            rows = torch.arange(c.out_channels) if i == 0 else g[i - 1]
            w = split(old.conv.weight, src, 0)[:, rows]          # (in, out, 4, 4)
            new.conv.weight.copy_(w)
            if old.conv.bias is not None:
                new.conv.bias.copy_(old.conv.bias[rows])
            copy_norm(old.norm, new.norm, rows)
    return wide.eval()
