"""Generators as Hub models: save/load round trip, strict loading, no pickle, offline cache."""
import json
import os

import pytest
import torch
from safetensors.torch import save_file

from loomis.train.nets import CheckpointError, Generator, load_weights

TINY = dict(arch="unet_32", ngf=8, image_size=64, direction="BtoA", domain_a="photo",
            domain_b="drawing", dropout=True)


@pytest.fixture()
def saved(tmp_path):
    torch.manual_seed(0)
    g = Generator(**TINY)
    g.save_pretrained(tmp_path / "model")
    return g.eval(), tmp_path / "model"


def test_round_trip_is_bit_identical_and_config_rebuilds_it(saved):
    g, folder = saved
    assert sorted(os.listdir(folder)) == ["README.md", "config.json", "model.safetensors"]
    config = json.loads((folder / "config.json").read_text())
    assert config == {"arch": "unet_32", "in_channels": 3, "out_channels": 3, "ngf": 8,
                      "norm": "batch", "dropout": True, "image_size": 64, "direction": "BtoA",
                      "domain_a": "photo", "domain_b": "drawing"}
    loaded = Generator.from_pretrained(str(folder))  # no architecture flags repeated
    assert not loaded.training
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        assert torch.equal(g(x), loaded(x))
    assert loaded.config == g.config


def test_mismatched_checkpoint_is_rejected_naming_the_keys(saved, tmp_path):
    _, folder = saved
    other = Generator(arch="unet_64", ngf=8, image_size=64)
    with pytest.raises(CheckpointError, match=r"missing keys net\.down\.4\.norm\.bias.*net\.down\.5\.conv\.weight"):
        load_weights(other, folder / "model.safetensors")
    wide = Generator(arch="unet_32", ngf=16, image_size=64)
    with pytest.raises(CheckpointError, match=r"shape mismatches net\.down\.0\.conv\.weight"):
        load_weights(wide, folder / "model.safetensors")
    # a config.json that lies about the architecture is caught too
    (folder / "config.json").write_text(json.dumps({**TINY, "ngf": 16}))
    with pytest.raises(CheckpointError, match="does not fit this model"):
        Generator.from_pretrained(str(folder))


def test_pickle_weights_are_refused(saved, tmp_path):
    g, folder = saved
    torch.save(g.state_dict(), folder / "model.safetensors")  # a pickle in disguise
    with pytest.raises(CheckpointError, match="never unpickles"):
        Generator.from_pretrained(str(folder))
    only_bin = tmp_path / "bin_only"
    only_bin.mkdir()
    (only_bin / "config.json").write_text((folder / "config.json").read_text())
    torch.save(g.state_dict(), only_bin / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="safetensors weights only"):
        Generator.from_pretrained(str(only_bin))
    (folder / "model.safetensors").write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        load_weights(g, folder / "model.safetensors")


def test_half_precision_weights_load_into_a_float_model(saved, tmp_path):
    g, folder = saved
    half = {k: (v.half() if v.is_floating_point() else v) for k, v in g.state_dict().items()}
    save_file(half, folder / "model.safetensors")
    loaded = Generator.from_pretrained(str(folder))
    assert loaded.net.down[0].conv.weight.dtype == torch.float32
    w = g.net.down[0].conv.weight
    assert torch.allclose(loaded.net.down[0].conv.weight, w, atol=1e-3)


def test_from_hub_id_through_the_offline_cache(saved, tmp_path, monkeypatch):
    """The real huggingface_hub download code, reading a pre-populated cache offline."""
    import huggingface_hub.constants as hc

    g, folder = saved
    cache = tmp_path / "hub"
    commit = "0123456789abcdef0123456789abcdef01234567"
    snap = cache / "models--loomis--tiny" / "snapshots" / commit
    snap.mkdir(parents=True)
    for name in ("config.json", "model.safetensors", "README.md"):
        (snap / name).write_bytes((folder / name).read_bytes())
    refs = cache / "models--loomis--tiny" / "refs"
    refs.mkdir()
    (refs / "main").write_text(commit)  # no trailing newline
    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", True)
    loaded = Generator.from_pretrained("loomis/tiny", cache_dir=str(cache))
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(g(x), loaded(x))
    with pytest.raises(OSError):
        Generator.from_pretrained("loomis/not-there", cache_dir=str(cache))
