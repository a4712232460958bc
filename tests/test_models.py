"""pix2pix and CycleGAN training objects: learning, schedules, exact resume."""
import pytest
import torch
import torch.nn.functional as F

from loomis.train.checkpoint import hash_weights, load_state, save_state
from loomis.train.models import CycleGAN, CycleGANConfig, Pix2Pix, Pix2PixConfig, select_device

TINY_P2P = dict(arch="unet_32", ngf=16, ndf=8, image_size=32)
TINY_CYC = dict(arch="resnet_6blocks", ngf=8, ndf=8, image_size=32, pool_size=4)


def smooth_pairs(n=4, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    a = F.interpolate(torch.rand(n, 3, 4, 4, generator=g) * 2 - 1, size=size, mode="bilinear",
                      align_corners=False)
    b = torch.flip(a, [-1]).roll(1, dims=1)  # a fixed geometric + colour mapping
    return a, b


def test_pix2pix_overfits_a_handful_of_pairs():
    a, b = smooth_pairs()
    model = Pix2Pix(Pix2PixConfig(**TINY_P2P, dropout=False), device="cpu")
    first = model.step(a, b)["G_L1"]
    for _ in range(150):
        last = model.step(a, b)["G_L1"]
    assert last < first / 4
    assert model.validate(a, b) < first / 100 / 4  # eval-mode L1 (unweighted) too


def test_cyclegan_cycle_loss_falls():
    a, b = smooth_pairs()
    model = CycleGAN(CycleGANConfig(**TINY_CYC, lr=1e-3), device="cpu")
    first = model.step(a, b)
    for _ in range(60):
        last = model.step(a, b)
    assert last["cycle_A"] < first["cycle_A"] / 2.5
    assert last["cycle_B"] < first["cycle_B"] / 2.5
    assert set(last) == set(model.loss_names)


def test_wgangp_step_reports_a_real_penalty():
    a, b = smooth_pairs(2)
    model = Pix2Pix(Pix2PixConfig(**TINY_P2P, gan_mode="wgangp", norm="instance"), device="cpu")
    losses = model.step(a, b)
    assert losses["D_GP"] > 0


def _run(model_cls, cfg, a, b, steps, state=None, epoch_every=3):
    model = model_cls(cfg, device="cpu")
    if state is not None:
        model.load_state_dict(state)
    history = []
    for _ in range(steps):
        history.append(model.step(a, b))
        if model.step_count % epoch_every == 0:
            model.end_epoch(model.validate(a, b))
    return model, history


@pytest.mark.parametrize("model_cls,cfg", [
    (Pix2Pix, Pix2PixConfig(**TINY_P2P, dropout=True, n_epochs=1, n_epochs_decay=3)),
    (CycleGAN, CycleGANConfig(**TINY_CYC, lr_policy="plateau")),
])
def test_resume_continues_exactly(tmp_path, model_cls, cfg):
    a, b = smooth_pairs(2)
    full, full_hist = _run(model_cls, cfg, a, b, steps=7)
    first, first_hist = _run(model_cls, cfg, a, b, steps=4)
    path = save_state(tmp_path / "last.safetensors", first.state_dict())
    del first
    torch.manual_seed(12345)  # disturb the global RNG: the checkpoint must restore it
    resumed, rest_hist = _run(model_cls, cfg, a, b, steps=3, state=load_state(path))
    assert first_hist + rest_hist == full_hist  # bit-identical losses
    for name, net in full.networks.items():
        for (k, v), (_, w) in zip(net.state_dict().items(), resumed.networks[name].state_dict().items()):
            assert torch.equal(v, w), f"{name}.{k} differs after resume"
    assert resumed.step_count == 7 and resumed.epoch == full.epoch
    assert resumed.lr == full.lr


def test_weight_hash_follows_the_weights_not_the_object():
    """The ONNX cache and the training records key on this digest: equal weights in two
    modules give one digest, a single changed number gives another."""
    torch.manual_seed(0)
    a = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    b = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    b.load_state_dict(a.state_dict())
    assert hash_weights(a).hexdigest() == hash_weights(b).hexdigest()
    with torch.no_grad():
        b[0].weight[0, 0, 0, 0] += 1e-6
    assert hash_weights(a).hexdigest() != hash_weights(b).hexdigest()


def test_resume_refuses_other_settings():
    a = Pix2Pix(Pix2PixConfig(**TINY_P2P), device="cpu")
    b = Pix2Pix(Pix2PixConfig(**{**TINY_P2P, "ngf": 8}), device="cpu")
    with pytest.raises(ValueError, match="ngf"):
        b.load_state_dict(a.state_dict())


def test_resume_accepts_older_checkpoints_and_other_speed_paths():
    """A checkpoint written before a setting existed resumes with that setting's default, and
    the same-maths speed paths (fused Adam, matmul upsampling) may differ."""
    old = Pix2Pix(Pix2PixConfig(**TINY_P2P, fused_adam=False), device="cpu").state_dict()
    del old["config"]["matmul_upsampling"]                  # as written before it was added
    new = Pix2Pix(Pix2PixConfig(**TINY_P2P, matmul_upsampling=False), device="cpu")
    new.load_state_dict(old)
    old["config"]["lr"] = 1e-3                              # a real difference still counts
    with pytest.raises(ValueError, match="lr"):
        new.load_state_dict(old)


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step()`")
@pytest.mark.parametrize("policy,expected", [
    ("linear", [1.0, 1.0, 0.75, 0.5, 0.25]),   # 2 constant epochs, then 3 decaying
    ("step", [1.0, 1.0, 0.1, 0.1, 0.01]),
    ("cosine", None),
])
def test_learning_rate_policies(policy, expected):
    cfg = Pix2PixConfig(**TINY_P2P, lr_policy=policy, n_epochs=2, n_epochs_decay=3, lr_decay_iters=2)
    model = Pix2Pix(cfg, device="cpu")
    lrs = [model.lr / cfg.lr]
    for _ in range(4):
        lrs.append(model.end_epoch() / cfg.lr)
    if expected is None:  # cosine over n_epochs=2: down to 0 at epoch 2, then back up
        assert lrs[1] == pytest.approx(0.5) and lrs[2] == pytest.approx(0.0, abs=1e-9)
    else:
        assert lrs == pytest.approx(expected)


def test_plateau_policy_is_driven_by_the_validation_number():
    cfg = Pix2PixConfig(**TINY_P2P, lr_policy="plateau")
    model = Pix2Pix(cfg, device="cpu")
    with pytest.raises(ValueError, match="validation metric"):
        model.end_epoch()
    for _ in range(7):
        model.end_epoch(1.0)  # no improvement: patience 5, then ×0.2
    assert model.lr == pytest.approx(cfg.lr * 0.2)


def test_train_and_eval_modes():
    model = Pix2Pix(Pix2PixConfig(**TINY_P2P, dropout=True), device="cpu")
    model.eval()
    assert not model.netG.training and not model.netD.training
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model.netG(x), model.netG(x))
    model.train()
    assert model.netG.training


def test_direction_b_to_a_swaps_source_and_target():
    a, b = smooth_pairs(2)
    model = Pix2Pix(Pix2PixConfig(**TINY_P2P, direction="BtoA"), device="cpu")
    model.step(a, b)
    assert model.netG.config.direction == "BtoA"
    with torch.no_grad():
        err_ba = model.validate(a, b)
        model.netG.eval()
        direct = float(F.l1_loss(model.netG(b), a))
    assert err_ba == pytest.approx(direct)


def test_device_selection_and_bad_input():
    assert select_device("cpu").type == "cpu"
    assert select_device("auto").type in ("cpu", "cuda", "mps")
    with pytest.raises(ValueError, match="unknown device"):
        select_device("tpu9")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA"):
            select_device("cuda")
    with pytest.raises(ValueError, match="unknown lr policy"):
        Pix2PixConfig(lr_policy="exp")
    with pytest.raises(ValueError, match="identity loss"):
        CycleGANConfig(in_channels=1)
    model = Pix2Pix(Pix2PixConfig(**TINY_P2P), device="cpu")
    with pytest.raises(ValueError, match="channels"):
        model.step(torch.zeros(1, 1, 32, 32), torch.zeros(1, 3, 32, 32))


def test_fast_step_gives_the_plain_steps_losses():
    """The fast path (fused Adam, matmul upsampling) computes the same maths as the plain one."""
    a, b = smooth_pairs(2)
    runs = {}
    for fast in (False, True):
        model = Pix2Pix(Pix2PixConfig(**TINY_P2P, dropout=False, fused_adam=fast,
                                      matmul_upsampling=fast), device="cpu")
        ups = [m for m in model.netG.modules() if hasattr(m, "matmul_max_side")]
        assert ups and all(bool(m.matmul_max_side) == fast for m in ups)
        runs[fast] = [model.step(a, b) for _ in range(5)]
    for plain, fast in zip(runs[False], runs[True]):
        for k in plain:
            assert fast[k] == pytest.approx(plain[k], rel=1e-3, abs=1e-5), k


@pytest.mark.parametrize("side", [1, 2, 5, 16])
def test_transposed_conv_as_matmul_equals_the_native_kernel_with_its_gradients(side):
    from loomis.train.nets import transposed_conv_as_matmul

    torch.manual_seed(side)
    x = torch.randn(2, 24, side, side + 1, requires_grad=True)
    w = torch.randn(24, 7, 4, 4, requires_grad=True)
    bias = torch.randn(7, requires_grad=True)
    grad = torch.randn(2, 7, 2 * side, 2 * side + 2)
    native = F.conv_transpose2d(x, w, bias, stride=2, padding=1)
    native_grads = torch.autograd.grad(native, (x, w, bias), grad)
    fast = transposed_conv_as_matmul(x, w, bias)
    fast_grads = torch.autograd.grad(fast, (x, w, bias), grad)
    torch.testing.assert_close(fast, native, rtol=1e-5, atol=1e-5)
    for got, want in zip(fast_grads, native_grads):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-4)


def test_ink_weighted_l1_prefers_a_broad_line_to_a_blank_page():
    """Why l1_ink_weight exists: a young generator unsure of a line's position within ±1 px
    draws it 3 px wide. Plain L1 scores that worse than a blank page (two wrong pixels per
    column against one); weighting the target's ink by 1 + 4 turns that around."""
    from loomis.train.models import ink_weighted_l1

    target = torch.ones(1, 3, 32, 32)
    target[..., 16, :] = -1  # one dark line on white
    blank = torch.ones_like(target)
    broad = torch.ones_like(target)
    broad[..., 15:18, :] = -1
    assert torch.equal(ink_weighted_l1(broad, target, 0.0), F.l1_loss(broad, target))
    assert F.l1_loss(blank, target) < F.l1_loss(broad, target)
    assert ink_weighted_l1(broad, target, 4.0) < ink_weighted_l1(blank, target, 4.0)
    # the weight applies to the target's ink only: 32 ink pixels × 3 channels, error 2, weight 5
    assert ink_weighted_l1(blank, target, 4.0).item() == pytest.approx(32 * 3 * 2 * 5 / target.numel())
    with pytest.raises(ValueError, match="l1_ink_weight"):
        Pix2PixConfig(l1_ink_weight=-1)
