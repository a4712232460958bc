"""GAN losses, the gradient penalty and the image pool."""
import pytest
import torch

from loomis.train.losses import GANLoss, ImagePool, gradient_penalty
from loomis.train.nets import Discriminator


def test_gan_losses_against_their_definitions():
    pred = torch.tensor([[0.5, -1.0]])
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    assert torch.isclose(GANLoss("vanilla")(pred, True), bce(pred, torch.ones_like(pred)))
    assert torch.isclose(GANLoss("lsgan")(pred, False), (pred ** 2).mean())
    assert torch.isclose(GANLoss("wgangp")(pred, True), -pred.mean())
    with pytest.raises(ValueError, match="unknown gan loss"):
        GANLoss("hinge-ish")


def test_gradient_penalty_is_nonzero_and_trains_the_critic():
    torch.manual_seed(0)
    critic = Discriminator(3, ndf=8, norm="none")
    real, fake = torch.randn(2, 3, 32, 32), torch.randn(2, 3, 32, 32)
    gp = gradient_penalty(critic, real, fake, weight=10.0)
    assert gp.item() > 0
    gp.backward()
    # every weight shapes the input gradient (a bias added at the output does not)
    grads = [p.grad for n, p in critic.named_parameters() if n.endswith("weight")]
    assert all(g is not None for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0


def test_gradient_penalty_is_zero_for_a_unit_slope_critic():
    # D(x) = sum(x) / sqrt(numel): gradient norm exactly 1 everywhere
    class Unit(torch.nn.Module):
        def forward(self, x):
            return x.flatten(1).sum(1) / x[0].numel() ** 0.5

    gp = gradient_penalty(Unit(), torch.randn(3, 3, 8, 8), torch.randn(3, 3, 8, 8))
    assert gp.item() == pytest.approx(0.0, abs=1e-8)


def test_image_pool_fills_then_swaps_half_the_time():
    pool = ImagePool(size=4, seed=0)
    first = torch.arange(4.0).view(4, 1, 1, 1)
    assert torch.equal(pool.query(first), first)        # filling: returned as given
    assert len(pool.images) == 4
    swapped = 0
    for i in range(200):
        new = torch.full((1, 1, 1, 1), 100.0 + i)
        out = pool.query(new)
        swapped += int(out.item() != new.item())
        assert len(pool.images) == 4
    assert 70 < swapped < 130                           # about half
    assert torch.equal(ImagePool(0).query(first), first)  # size 0: disabled


def test_image_pool_state_round_trip_repeats_choices():
    a = ImagePool(size=2, seed=3)
    a.query(torch.randn(2, 3, 4, 4))
    b = ImagePool(size=2, seed=99)
    b.load_state_dict(a.state_dict())
    x = torch.randn(5, 3, 4, 4)
    assert torch.equal(a.query(x), b.query(x))
