"""Networks: the reference parameter counts, shapes, weight names, init, bad arguments."""
import pytest
import torch

from loomis.train.nets import (Discriminator, Generator, PixelDiscriminator, count_parameters,
                               init_weights, widen)

# (constructor kwargs, parameters of the reference implementation; gan-reference.md)
REFERENCE_COUNTS = [
    (dict(arch="unet_256", norm="batch"), 54_413_955),
    (dict(arch="unet_256", norm="instance"), 54_409_603),
    (dict(arch="unet_128", norm="batch"), 41_828_995),
    (dict(arch="resnet_9blocks", norm="instance"), 11_378_179),
    (dict(arch="resnet_6blocks", norm="instance"), 7_837_699),
]


@pytest.mark.parametrize("kwargs,expected", REFERENCE_COUNTS)
def test_generator_parameter_counts_match_reference(kwargs, expected):
    assert count_parameters(Generator(**kwargs)) == expected


def test_smaller_widths_match_reference_scaling():
    assert round(count_parameters(Generator(arch="unet_256", ngf=32)) / 1e6, 1) == 13.6
    assert round(count_parameters(Generator(arch="resnet_6blocks", norm="instance", ngf=32)) / 1e6, 2) == 1.97


def test_discriminator_parameter_counts_and_patch_size():
    assert count_parameters(Discriminator(in_channels=3)) == 2_765_633
    d6 = Discriminator(in_channels=6)
    assert count_parameters(d6) == 2_768_705
    assert d6(torch.zeros(1, 6, 256, 256)).shape == (1, 1, 30, 30)
    pix = PixelDiscriminator(in_channels=3)
    assert 8_000 < count_parameters(pix) < 9_000
    assert pix(torch.zeros(2, 3, 16, 16)).shape == (2, 1, 16, 16)


@pytest.mark.parametrize("arch,size", [("unet_32", 32), ("unet_64", 64), ("unet_128", 128),
                                       ("resnet_6blocks", 36), ("resnet_9blocks", 64)])
def test_generator_output_shape_and_range(arch, size):
    g = Generator(arch=arch, ngf=8, image_size=size if arch.startswith("unet") else 64).eval()
    x = torch.rand(2, 3, size, size) * 2 - 1
    y = g(x)
    assert y.shape == x.shape
    assert y.abs().max() <= 1.0


def test_channel_counts_other_than_three():
    g = Generator(arch="unet_32", in_channels=1, out_channels=4, ngf=8, image_size=32).eval()
    assert g(torch.zeros(1, 1, 64, 32)).shape == (1, 4, 64, 32)


def test_weight_names_are_flat_and_readable():
    names = list(Generator(arch="unet_256").state_dict())
    assert "net.down.1.conv.weight" in names and "net.up.0.conv.bias" in names
    assert max(n.count(".") for n in names) <= 4
    res = list(Generator(arch="resnet_6blocks", norm="instance").state_dict())
    assert "net.blocks.5.conv2.weight" in res


def test_dropout_only_in_three_intermediate_unet_levels():
    g = Generator(arch="unet_256", dropout=True)
    dropped = [i for i, up in enumerate(g.net.up) if isinstance(up.dropout, torch.nn.Dropout)]
    assert dropped == [4, 5, 6]


@pytest.mark.parametrize("init", ["normal", "xavier", "kaiming", "orthogonal"])
def test_init_weights(init):
    torch.manual_seed(0)
    d = init_weights(Discriminator(3, ndf=16), init, gain=0.02)
    w = d.convs[1].weight.detach()
    assert torch.isfinite(w).all() and w.std() > 0
    assert torch.all(d.convs[0].bias == 0)
    if init == "normal":
        assert abs(float(w.std()) - 0.02) < 0.002
        assert abs(float(d.norms[1].weight.detach().mean()) - 1.0) < 0.01


def test_eval_mode_is_deterministic_and_train_mode_samples_dropout():
    torch.manual_seed(0)
    g = Generator(arch="unet_256", ngf=8, dropout=True)
    x = torch.rand(1, 3, 256, 256) * 2 - 1
    g.eval()
    assert torch.equal(g(x), g(x))  # dropout off, running BatchNorm statistics
    g.set_dropout(True)             # pix2pix's "dropout as noise" at test time
    assert not torch.equal(g(x), g(x))
    g.set_dropout(False)
    assert torch.equal(g(x), g(x))
    # eval uses running stats: a single image's own statistics are not used
    bn = g.net.down[1].norm
    assert not bn.training and bn.track_running_stats


@pytest.mark.parametrize("kwargs,message", [
    (dict(arch="unet_100"), "unknown arch"),
    (dict(arch="vgg"), "unknown arch"),
    (dict(norm="group"), "unknown norm"),
    (dict(ngf=0), "ngf must be a positive integer"),
    (dict(in_channels=-3), "in_channels"),
    (dict(direction="sideways"), "unknown direction"),
    (dict(arch="unet_256", image_size=200), "not a multiple of 256"),
])
def test_bad_generator_arguments_are_clear(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Generator(**kwargs)


def test_bad_inputs_raise_clear_errors():
    g = Generator(arch="unet_64", ngf=8, image_size=64)
    with pytest.raises(ValueError, match="multiples of 64"):
        g(torch.zeros(1, 3, 32, 32))   # smaller than the U-Net's depth allows
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        g(torch.zeros(1, 1, 64, 64))   # wrong channel count
    with pytest.raises(ValueError, match="discriminator expects"):
        Discriminator(6)(torch.zeros(1, 3, 64, 64))
    with pytest.raises(ValueError, match="unknown norm"):
        Discriminator(3, norm="layer")


def _trained_looking(norm: str, arch: str = "unet_64") -> Generator:
    """A generator whose BatchNorm statistics are not the defaults (as after training)."""
    torch.manual_seed(0)
    g = Generator(arch, ngf=8, norm=norm, dropout=True, image_size=64)
    if norm == "batch":
        g.train()
        with torch.no_grad():
            for _ in range(3):
                g(torch.rand(4, 3, 64, 64) * 2 - 1)
    return g.eval()


@pytest.mark.parametrize("norm", ["batch", "instance", "none"])
def test_widened_generator_computes_the_same_drawing(norm):
    g = _trained_looking(norm)
    wide = widen(g, 12, seed=1)
    assert wide.config.ngf == 12 and wide.config.arch == g.config.arch
    assert count_parameters(wide) > 2 * count_parameters(g)
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(wide(x), g(x), atol=1e-5)
    assert widen(g, 8).state_dict().keys() == g.state_dict().keys()


def test_widened_copies_learn_apart():
    """Each new channel starts as a copy of an old one; the random split of the weights
    that read the copies gives them different gradients, so training can use them."""
    wide = widen(_trained_looking("batch"), 12, seed=0).train()
    w = wide.net.down[0].conv.weight                      # level 0: 8 old → 12 channels
    old_rows = w[:8].detach()
    copies = [(j, next(k for k in range(8) if torch.equal(w[j].detach(), old_rows[k])))
              for j in range(8, 12)]
    torch.manual_seed(0)
    wide(torch.rand(2, 3, 64, 64) * 2 - 1).square().mean().backward()
    assert all(not torch.allclose(w.grad[j], w.grad[k]) for j, k in copies)


def test_widen_refuses_what_it_cannot_do():
    with pytest.raises(ValueError, match="U-Net"):
        widen(Generator("resnet_6blocks", ngf=8, norm="instance"), 16)
    with pytest.raises(ValueError, match="wider"):
        widen(Generator("unet_32", ngf=8, image_size=32), 4)
