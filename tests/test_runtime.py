"""The product's generators run without torch: the ONNX graph built from a model folder
computes what the torch generator computes, refuses weights that are not its own, and the
app's whole photo → drawing → photo path runs with torch absent."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")        # the comparison needs the training kit

from loomis.train.nets import Generator, init_weights  # noqa: E402
from loomis.generator_config import CheckpointError  # noqa: E402
from loomis.runtime import GraphTranslator, cache_dir  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CHECKPOINTS = ROOT / "checkpoints"


def _saved(tmp_path, **config) -> tuple[Generator, Path]:
    torch.manual_seed(0)
    gen = init_weights(Generator(**config))
    for m in gen.modules():          # running statistics unlike a fresh layer's
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    folder = tmp_path / "model"
    gen.eval().save_pretrained(folder)
    return gen, folder


@pytest.mark.parametrize("config", [
    dict(arch="unet_256", ngf=8, norm="batch", dropout=True),
    dict(arch="unet_64", ngf=8, norm="instance", image_size=64),
    dict(arch="unet_32", ngf=8, norm="none", image_size=32),
    dict(arch="resnet_6blocks", ngf=8, norm="instance", image_size=64),
    dict(arch="resnet_9blocks", ngf=8, norm="batch", image_size=64),
], ids=lambda c: f"{c['arch']}-{c['norm']}")
def test_the_graph_computes_what_the_torch_generator_computes(tmp_path, monkeypatch, config):
    monkeypatch.setenv("LOOMIS_CACHE", str(tmp_path / "cache"))
    gen, folder = _saved(tmp_path, **config)
    s = gen.config.image_size
    x = torch.rand(2, 3, s, s, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        expected = gen(x).numpy()
    got = GraphTranslator.from_folder(folder).run(x.numpy(), mirror=False)
    assert np.abs(got - expected).max() < 1e-4
    assert len(list(cache_dir().glob("*.onnx"))) == 1        # built once, then kept


@pytest.mark.parametrize("name", sorted(p.name for p in CHECKPOINTS.iterdir()
                                        if (p / "config.json").is_file()
                                        and "arch" in (p / "config.json").read_text()))
def test_the_shipped_generators_translate_as_with_torch(name, astronaut):
    from loomis.train.inference import Translator

    folder = CHECKPOINTS / name
    graph, eager = GraphTranslator.from_folder(folder), Translator.from_pretrained(folder,
                                                                                 runtime="torch")
    a, b = (np.asarray(t(astronaut), dtype=np.int16) for t in (graph, eager))
    assert a.shape == b.shape == (*astronaut.size[::-1], 3)
    assert np.abs(a - b).max() <= 2            # within rounding of the last grey level


def test_weights_of_another_architecture_are_refused(tmp_path):
    _, folder = _saved(tmp_path, arch="unet_64", ngf=8, image_size=64)
    config = (folder / "config.json").read_text()
    (folder / "config.json").write_text(config.replace("unet_64", "unet_128")
                                        .replace('"image_size": 64', '"image_size": 128'))
    with pytest.raises(CheckpointError, match="another architecture"):
        GraphTranslator.from_folder(folder)


def test_a_pickle_is_never_opened(tmp_path):
    _, folder = _saved(tmp_path, arch="unet_32", ngf=8, image_size=32)
    torch.save({"x": torch.zeros(1)}, folder / "model.safetensors")
    with pytest.raises(CheckpointError, match="never unpickles"):
        GraphTranslator.from_folder(folder)


def test_the_app_path_runs_with_torch_absent(tmp_path):
    """photo → drawing (pix2pix, fitted) → photo through the registry, in a process where
    importing torch fails: what an install of requirements.txt alone runs."""
    script = '''
import sys

class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is not installed")

sys.meta_path.insert(0, NoTorch())
from skimage import data
from loomis.pipeline import photo_to_drawing, sketch_to_photo
from loomis.registry import ModelRegistry

models = ModelRegistry()
drawing = photo_to_drawing(data.astronaut(), "pix2pix-photo2drawing",
                           translator=models.translator("pix2pix-photo2drawing"))
photo = sketch_to_photo(drawing.image, models.translator("pix2pix-drawing2photo"))
print(len(drawing.heads), photo.size, "torch" in sys.modules)
'''
    env = {**__import__("os").environ, "LOOMIS_CACHE": str(tmp_path / "cache"),
           "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split()[-4:] == ["1", "(512,", "512)", "False"]
