"""Model folders checked before use: sizes in config.json within bounds, weights of the
config's shapes and finite, all refused within a second before any graph is built; a
folder that fails is remembered and the bundled copy serves, with the reason in words on
the Models tab; a mistyped LOOMIS_*_MODEL path stops the app at start-up."""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")        # the tiny model folders are saved by the training kit

import huggingface_hub.constants as hub_constants  # noqa: E402
from safetensors.numpy import load_file, save_file  # noqa: E402

from loomis.generator_config import (LIMITS, MAX_RUN_BYTES, CheckpointError,  # noqa: E402
                                     GeneratorConfig, check_model_folder, run_memory,
                                     weight_shapes)
from loomis.registry import (DEFAULTS, ENGINES, ModelRegistry, ModelSettingError,  # noqa: E402
                             ModelUnavailable, env_var)
from loomis.runtime import GraphTranslator  # noqa: E402
from loomis.train.nets import Generator  # noqa: E402

ENGINE = "pix2pix-photo2drawing"
DIRECTION = {"pix2pix-photo2drawing": "AtoB", "pix2pix-drawing2photo": "BtoA",
             "cyclegan-photo2drawing": "AtoB", "cyclegan-drawing2photo": "BtoA"}
TINY = dict(arch="unet_32", ngf=8, image_size=64)


def tiny(folder: Path, direction: str = "AtoB", seed: int = 0, **config) -> Path:
    torch.manual_seed(seed)
    Generator(**{**TINY, **config}, direction=direction).eval().save_pretrained(folder)
    return folder


def edit_config(folder: Path, **changes) -> Path:
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, **changes}))
    return folder


@pytest.fixture(scope="module")
def bundled_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("checkpoints")
    for name in ENGINES:
        tiny(root / DEFAULTS[name][1], DIRECTION[name])
    return root


@pytest.fixture()
def bundled(bundled_root, tmp_path, monkeypatch) -> Path:
    """Tiny bundled generators, an offline empty Hub cache, an empty graph cache, and no
    LOOMIS_*_MODEL setting from the environment the tests run in."""
    monkeypatch.setenv("LOOMIS_CHECKPOINTS", str(bundled_root))
    monkeypatch.setenv("LOOMIS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "empty_hub_cache"))
    for name in ENGINES:
        monkeypatch.delenv(env_var(name), raising=False)
    return bundled_root


@pytest.fixture()
def graph_cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("LOOMIS_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "onnx"


# -- what a config's weights look like ------------------------------------------------------
@pytest.mark.parametrize("config", [
    dict(arch="unet_32", norm="batch"), dict(arch="unet_64", norm="instance", image_size=64),
    dict(arch="unet_32", norm="none", in_channels=1, out_channels=3),
    dict(arch="resnet_6blocks", norm="instance", image_size=64),
    dict(arch="resnet_9blocks", norm="batch", image_size=64, out_channels=1),
    dict(arch="resnet_6blocks", norm="none", image_size=64, in_channels=4),
], ids=lambda c: f"{c['arch']}-{c['norm']}")
def test_weight_shapes_are_what_the_training_kit_saves(config):
    config = {"ngf": 8, "image_size": 32, **config}
    saved = {k: tuple(v.shape) for k, v in Generator(**config).state_dict().items()}
    assert weight_shapes(GeneratorConfig(**config)) == saved


def test_the_papers_generators_fit_the_memory_bound():
    """unet_256 and resnet_9blocks with ngf 64 at 256 px (the papers') are served, and a
    512-px CycleGAN; a 1024-px ResNet of the same width is not."""
    for config in (dict(arch="unet_256", ngf=64), dict(arch="resnet_9blocks", ngf=64),
                   dict(arch="resnet_9blocks", ngf=64, image_size=512)):
        assert run_memory(GeneratorConfig(**config)) <= MAX_RUN_BYTES
    assert run_memory(GeneratorConfig(arch="resnet_9blocks", ngf=64, image_size=1024)) > MAX_RUN_BYTES


# -- absurd folders refused at once -------------------------------------------------------
ABSURD = {
    "image_size 65536": ({"image_size": 65536}, "image_size is 65536; it must be between 16 and 1024"),
    "ngf 4096": ({"ngf": 4096}, "ngf is 4096; it must be between 1 and 128"),
    "in_channels 100": ({"in_channels": 100}, "in_channels is 100; it must be between 1 and 4"),
    "image_size 0": ({"image_size": 0}, "image_size must be a positive integer, got 0"),
    "ngf as text": ({"ngf": "64"}, "ngf must be a positive integer, got '64'"),
    "ngf as float": ({"ngf": 64.0}, "ngf must be a positive integer, got 64.0"),
    "arch as number": ({"arch": 5}, "arch must be a string, got 5"),
    "dropout as text": ({"dropout": "yes"}, "dropout must be true or false"),
    "unknown arch": ({"arch": "vit_huge"}, "unknown arch 'vit_huge'"),
    "unknown field": ({"layers": 1000}, "unknown field layers"),
    "too much memory": ({"arch": "resnet_9blocks", "ngf": 128, "image_size": 1024, "norm": "instance"},
                        "needs about 3.2 GB to run, more than the 1.0 GB"),
    "weights of another width": ({"ngf": 16}, "do not fit its config.json"),
    "weights of another depth": ({"arch": "unet_64"}, "do not fit its config.json"),
}


@pytest.mark.parametrize("kind", list(ABSURD))
def test_absurd_configs_are_refused_within_a_second_before_any_graph(kind, tmp_path, graph_cache):
    changes, message = ABSURD[kind]
    folder = edit_config(tiny(tmp_path / "model"), **changes)
    start = time.perf_counter()
    with pytest.raises(CheckpointError, match=message.replace("(", r"\(").replace(".", r"\.")) as info:
        GraphTranslator.from_folder(folder)
    assert time.perf_counter() - start < 1.0
    assert "config.json" in str(info.value)             # says which file is wrong
    assert not graph_cache.exists() or not list(graph_cache.iterdir())   # nothing built


def test_field_bounds_are_explained():
    for name, (lo, hi, why) in LIMITS.items():
        with pytest.raises(ValueError, match=f"{name} is {hi + 1}; it must be between {lo} and {hi} "):
            GeneratorConfig(**{**TINY, "arch": "resnet_6blocks", name: hi + 1})
        assert why


def test_a_weight_of_another_shape_is_named(tmp_path):
    folder = tiny(tmp_path / "model")
    weights = load_file(folder / "model.safetensors")
    weights["net.down.0.conv.weight"] = np.zeros((8, 3, 3, 3), np.float32)
    save_file(weights, folder / "model.safetensors")
    with pytest.raises(CheckpointError, match=r"net\.down\.0\.conv\.weight is \(8, 3, 3, 3\), not \(8, 3, 4, 4\)"):
        check_model_folder(folder)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_nan_or_infinite_weights_are_refused(value, tmp_path, graph_cache):
    folder = tiny(tmp_path / "model")
    weights = load_file(folder / "model.safetensors")
    weights["net.up.0.conv.weight"][0, 0, 0, 0] = value
    save_file(weights, folder / "model.safetensors")
    start = time.perf_counter()
    with pytest.raises(CheckpointError, match=r"NaN or infinite values \(1 tensor: net\.up\.0\.conv\.weight\)"):
        GraphTranslator.from_folder(folder)
    assert time.perf_counter() - start < 1.0
    assert not graph_cache.exists() or not list(graph_cache.iterdir())


@pytest.mark.parametrize("text,message", [
    ("{not json", r"config\.json is not valid JSON \(line 1\)"),
    ("[1, 2]", "a JSON object is needed"),
    ("", "not valid JSON"),
])
def test_a_config_that_is_not_one_is_refused(text, message, tmp_path):
    folder = tiny(tmp_path / "model")
    (folder / "config.json").write_text(text)
    with pytest.raises(CheckpointError, match=message):
        GraphTranslator.from_folder(folder)


# -- the registry: remembered failures, the bundled copy, words on the Models tab ----------
def _no_raw_exception(sentence: str) -> None:
    assert sentence and not any(word in sentence for word in
                                ("Error:", "Traceback", "Exception", "errno", "LocalEntryNotFound"))


def test_an_absurd_local_folder_gives_way_to_the_bundled_copy(bundled, tmp_path, monkeypatch):
    own = edit_config(tiny(tmp_path / "mine", seed=3), ngf=4096)
    monkeypatch.setenv(env_var(ENGINE), str(own))
    start = time.perf_counter()
    reg = ModelRegistry()
    source = reg.resolve(ENGINE)
    assert source.kind == "bundled" and source.folder == bundled / ENGINE
    assert reg.translator(ENGINE)(np.full((40, 40, 3), 200, np.uint8)).size == (40, 40)
    assert time.perf_counter() - start < 5.0
    info = reg.info(ENGINE)
    assert info["source"] is source and info["config"]["ngf"] == 8     # the copy serving
    problem = info["problem"]
    assert f"set by {env_var(ENGINE)} is not used" in problem and "ngf is 4096" in problem
    assert problem.endswith("The bundled copy serves instead.")
    _no_raw_exception(problem)
    assert "ngf is 4096" in source.describe() and source.describe().startswith("bundled copy")


def test_a_folder_that_fails_to_load_is_remembered_and_the_bundled_copy_serves(
        bundled, tmp_path, monkeypatch):
    """NaN weights pass the checks that read no weights, and fail the load: the loader
    runs once for them, once for the bundled copy, and never again."""
    own = tiny(tmp_path / "mine", seed=3)
    weights = load_file(own / "model.safetensors")
    weights["net.down.0.conv.weight"][:] = np.nan
    save_file(weights, own / "model.safetensors")
    monkeypatch.setenv(env_var(ENGINE), str(own))
    loaded = []
    real = GraphTranslator.from_folder.__func__

    def counting(cls, folder, mirror=None):
        loaded.append(Path(folder))
        return real(cls, folder, mirror)

    monkeypatch.setattr(GraphTranslator, "from_folder", classmethod(counting))
    reg = ModelRegistry()
    assert reg.resolve(ENGINE).kind == "local"             # fine as far as a header tells
    first = reg.translator(ENGINE)
    assert loaded == [own, bundled / ENGINE]
    for _ in range(3):
        assert reg.translator(ENGINE) is first
    assert loaded == [own, bundled / ENGINE]
    info = reg.info(ENGINE)
    assert info["source"].kind == "bundled" and "NaN or infinite" in info["problem"]
    _no_raw_exception(info["problem"])


def test_when_no_copy_can_load_the_failure_is_remembered(bundled, tmp_path, monkeypatch):
    root = tmp_path / "checkpoints"
    shutil.copytree(bundled, root)
    broken = root / ENGINE
    weights = load_file(broken / "model.safetensors")
    weights["net.up.0.conv.bias"][:] = np.inf
    save_file(weights, broken / "model.safetensors")
    monkeypatch.setenv("LOOMIS_CHECKPOINTS", str(root))
    loaded = []
    real = GraphTranslator.from_folder.__func__
    monkeypatch.setattr(GraphTranslator, "from_folder",
                        classmethod(lambda cls, f, mirror=None: (loaded.append(f), real(cls, f, mirror))[1]))
    reg = ModelRegistry()
    for _ in range(3):
        with pytest.raises(ModelUnavailable, match="not available.*could not be loaded.*NaN or infinite"):
            reg.translator(ENGINE)
    assert len(loaded) == 1
    info = reg.info(ENGINE)
    assert info["source"].kind == "unavailable" and info["problem"].startswith("No copy can serve")
    assert reg.translator("pix2pix-drawing2photo") is not None        # the others still serve


def test_an_invalid_config_never_breaks_the_models_tab(bundled, tmp_path, monkeypatch):
    own = tiny(tmp_path / "mine")
    (own / "config.json").write_text("{broken")
    monkeypatch.setenv(env_var(ENGINE), str(own))
    root = tmp_path / "checkpoints"
    shutil.copytree(bundled, root)
    (root / "cyclegan-photo2drawing" / "config.json").write_text("[not, json")
    monkeypatch.setenv("LOOMIS_CHECKPOINTS", str(root))
    reg = ModelRegistry()
    info = reg.info(ENGINE)                     # the folder asked for is broken: bundled
    assert set(info) >= {"engine", "source", "config", "metrics", "problem"}
    assert info["source"].kind == "bundled" and "config.json is not valid JSON (line 1)" in info["problem"]
    _no_raw_exception(info["problem"])
    cyc = reg.info("cyclegan-photo2drawing")    # the bundled copy itself is broken
    assert cyc["source"].kind == "unavailable" and cyc["config"] is None
    assert "not valid JSON" in cyc["problem"] and cyc["source"].describe().startswith("unavailable")
    with pytest.raises(ModelUnavailable, match="not valid JSON"):
        reg.translator("cyclegan-photo2drawing")
    from loomis.registry import generator_folders
    assert root / "cyclegan-photo2drawing" not in generator_folders(root)


def test_the_offline_default_is_no_problem(bundled):
    info = ModelRegistry().info(ENGINE)
    assert info["source"].kind == "bundled" and info["problem"] is None
    assert "HF_HUB_OFFLINE=1" in info["source"].describe()


# -- settings: a mistyped path is an error at start-up -----------------------------------
@pytest.mark.parametrize("value", ["/no/such/models/pix2pix", "~/no-such-model-folder",
                                   "./models/pix2pix", "models\\pix2pix", "a/b/c", "justaname",
                                   "models/pix2pix"])
def test_a_mistyped_model_path_stops_the_start(value, bundled, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()              # so "models/pix2pix" is a path, not a Hub id
    monkeypatch.setenv(env_var(ENGINE), value)
    with pytest.raises(ModelSettingError, match=f"{env_var(ENGINE)}=.*names no existing folder"):
        ModelRegistry()
    monkeypatch.delenv(env_var(ENGINE))
    assert ModelRegistry().resolve(ENGINE).kind == "bundled"


def test_a_file_instead_of_a_folder_stops_the_start(bundled, tmp_path, monkeypatch):
    (tmp_path / "model.safetensors").write_bytes(b"x")
    monkeypatch.setenv(env_var(ENGINE), str(tmp_path / "model.safetensors"))
    with pytest.raises(ModelSettingError, match="is a file; it must name a model folder"):
        ModelRegistry()


def test_hub_ids_and_existing_folders_are_accepted_settings(bundled, tmp_path, monkeypatch):
    monkeypatch.setenv(env_var(ENGINE), "someone/other-model@v2")
    monkeypatch.setenv(env_var("cyclegan-photo2drawing"), str(tiny(tmp_path / "mine")))
    reg = ModelRegistry()
    assert reg.resolve(ENGINE).wanted == "Hub `someone/other-model`"
    assert reg.resolve(ENGINE).problem is None          # offline: not a broken copy
    assert reg.resolve("cyclegan-photo2drawing").kind == "local"


def test_an_unreachable_hub_is_said_in_words(bundled, monkeypatch):
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hub_constants, "ENDPOINT", "http://127.0.0.1:9")    # nothing listens
    source = ModelRegistry().resolve(ENGINE)
    assert source.kind == "bundled"
    assert source.fallback_reason == "the Hub could not be reached and no copy of it is cached"
    _no_raw_exception(source.describe())


def test_a_safetensors_header_whose_length_starts_with_0x80_is_not_taken_for_a_pickle(tmp_path, graph_cache):
    """The header's length is little-endian: its first byte is 0x80 for one length in 256."""
    folder = tiny(tmp_path / "model")
    weights = load_file(folder / "model.safetensors")
    for pad in range(256):
        save_file(weights, folder / "model.safetensors", metadata={"pad": "x" * pad})
        if (folder / "model.safetensors").read_bytes()[0] == 0x80:
            break
    assert (folder / "model.safetensors").read_bytes()[0] == 0x80
    assert check_model_folder(folder).ngf == 8
    assert GraphTranslator.from_folder(folder).config.ngf == 8
