"""The app as a user and a Space see it: a launched server called through gradio_client,
the live-frame function, the model registry's Hub/bundled choice, and bad input."""
import io
import os

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"

import socket
import threading
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import huggingface_hub.constants as hub_constants
from loomis.canvas import EmptyCanvasError, canvas_to_drawing
from loomis.nets import Generator
from loomis.registry import DEFAULTS, ENGINES, ModelRegistry, ModelUnavailable, env_var
from loomis.synthetic import render_drawing

ROOT = Path(__file__).resolve().parent.parent
PHOTO = ROOT / "examples" / "photo_1.png"
SKETCH = ROOT / "examples" / "sketch_1.png"
DIRECTION = {"pix2pix-photo2drawing": "AtoB", "pix2pix-drawing2photo": "BtoA",
             "cyclegan-photo2drawing": "AtoB", "cyclegan-drawing2photo": "BtoA"}


def tiny(folder: Path, direction: str, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    Generator(arch="unet_32", ngf=8, image_size=64, direction=direction).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def bundled(tmp_path_factory):
    """Tiny generators in a bundled-checkpoints folder; an empty, offline Hub cache."""
    root = tmp_path_factory.mktemp("checkpoints")
    for name in ENGINES:
        tiny(root / DEFAULTS[name][1], DIRECTION[name])
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LOOMIS_CHECKPOINTS", str(root))
        mp.setattr(hub_constants, "HF_HUB_OFFLINE", True)
        mp.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path_factory.mktemp("empty_hub_cache")))
        yield root


@pytest.fixture(scope="module")
def server(bundled):
    import app
    from gradio_client import Client
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo = app.build_app()
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True)
    client = Client(f"http://127.0.0.1:{port}/", verbose=False)
    yield demo, client
    demo.close()


def call(client, *args, api_name):
    from gradio_client import handle_file
    args = [handle_file(str(a)) if isinstance(a, Path) else a for a in args]
    return Image.open(client.predict(*args, api_name=api_name))


def app_error(client, *args, api_name) -> str:
    from gradio_client.exceptions import AppError
    with pytest.raises(AppError) as info:
        call(client, *args, api_name=api_name)
    return str(info.value)


# -- endpoints ------------------------------------------------------------------------
def test_photo_to_drawing_draws_the_construction_on_paper(server):
    _, client = server
    out = call(client, PHOTO, api_name="/photo_to_drawing")
    assert out.size == Image.open(PHOTO).size
    grey = np.asarray(out.convert("L"))
    assert (grey > 240).mean() > 0.8          # paper
    assert (grey < 120).sum() > 300           # and pencil lines
    overlay = call(client, PHOTO, "Geometric engine", "photo", 3, "omit", True,
                   api_name="/photo_to_drawing")
    assert not np.array_equal(np.asarray(overlay), np.asarray(Image.open(PHOTO).convert("RGB")))


def test_the_real_photo_example_gets_its_construction_on_her_face(server):
    import app
    from loomis.pose import estimate_poses
    (portrait,) = app.real_portraits()      # matplotlib's Grace Hopper, installed with the app
    demo, client = server
    # the page offers it, and serves it when clicked
    examples = {c["props"]["label"]: c["props"]["samples"]
                for c in demo.config["components"] if c.get("type") == "dataset"}
    ((served,),) = examples["A real photo (Grace Hopper, from matplotlib's sample data)"]
    with urllib.request.urlopen(client.src.rstrip("/") + served["url"]) as response:
        assert Image.open(io.BytesIO(response.read())).size == (512, 600)
    out = call(client, Path(portrait), "Geometric engine", "paper", api_name="/photo_to_drawing")
    assert out.size == Image.open(portrait).size == (512, 600)
    ink = np.asarray(out.convert("L")) < 120
    x0, y0, x1, y1 = (round(v) for v in estimate_poses(portrait)[0].box)
    face = ink[y0:y1, x0:x1]
    assert face.mean() > 0.1                  # the construction's lines are on the face
    assert ink.sum() < 2.5 * face.sum()       # and mostly there (the cranium rises above it)


@pytest.mark.parametrize("engine", ["pix2pix", "CycleGAN"])
def test_photo_to_drawing_through_a_generator_keeps_the_size(server, engine):
    _, client = server
    assert call(client, PHOTO, engine, api_name="/photo_to_drawing").size == (256, 256)
    raw = call(client, PHOTO, engine, "paper", 0, "dashed", False, False,
               api_name="/photo_to_drawing")     # fit off: the generator's own drawing
    assert raw.size == (256, 256)


def test_a_generators_lines_become_the_fitted_construction_over_the_photo():
    """What "Fit the 3D construction" does with a generator's drawing: the construction in
    the pose those lines show, inked over the chosen background like the engine's."""
    import app
    from loomis.metrics import line_scores
    from loomis.synthetic import render_photo, scene

    params = scene(1, 3)
    drawn = render_drawing(params)                  # a generator that draws perfectly
    photo = render_photo(params)
    loomis_app = app.LoomisApp()
    out = loomis_app._fitted(drawn, photo, "faded", None, "omit")
    rgb = np.asarray(out).astype(int)
    red = (rgb[..., 0] - rgb[..., 1] > 80)          # the engine's red ink over photos
    lines = Image.fromarray(np.where(red, 0, 255).astype(np.uint8))
    assert out.size == photo.size and line_scores(lines, drawn)["f1"] > 0.8
    on_paper = loomis_app._fitted(drawn, photo, "paper", None, "dashed")
    assert (np.asarray(on_paper.convert("L")) > 240).mean() > 0.8
    # the page says for every engine whether it ticks the fit
    assert set(app.FIT_BY_DEFAULT) == set(app.PHOTO_ENGINES)
    assert app.FIT_BY_DEFAULT["pix2pix"] and not app.FIT_BY_DEFAULT["CycleGAN"]


def test_the_fit_starts_from_the_pose_net_where_one_is_found(bundled, tmp_path, monkeypatch):
    """No pose net anywhere: the app has none to give the fit (which then starts from the
    landmark pose or its grid). A pose net in the checkpoints folder: the app loads it
    once, and the Models tab lists it."""
    import app
    from loomis.pose_net import PoseNet
    from loomis.registry import POSE_NET

    assert app.LoomisApp().pose_net() is None
    root = tmp_path / "with_pose_net"
    PoseNet(32, (4, 8)).save_pretrained(root / POSE_NET)
    monkeypatch.setenv("LOOMIS_CHECKPOINTS", str(root))
    loomis_app = app.LoomisApp()
    net = loomis_app.pose_net()
    assert isinstance(net, PoseNet) and net.config.channels == (4, 8)
    assert loomis_app.pose_net() is net
    assert f"### {POSE_NET}" in loomis_app.models_report()


@pytest.mark.parametrize("model", ["pix2pix", "CycleGAN"])
def test_sketch_to_photo_returns_a_photo_of_the_sketch_size(server, model):
    _, client = server
    assert call(client, SKETCH, model, api_name="/sketch_to_photo").size == Image.open(SKETCH).size


def test_canvas_strokes_on_a_dark_theme_canvas_become_a_photo(server, tmp_path):
    """The page's canvas value: theme-grey composite, white background, one RGBA layer."""
    from gradio_client import handle_file
    demo, client = server
    layer = np.zeros((512, 512, 4), np.uint8)
    layer[200:210, 100:400] = (20, 20, 20, 255)
    Image.fromarray(layer).save(tmp_path / "layer.png")
    Image.new("RGB", (512, 512), "#333333").save(tmp_path / "composite.png")
    Image.new("RGB", (512, 512), "white").save(tmp_path / "bg.png")
    value = {"background": handle_file(str(tmp_path / "bg.png")),
             "layers": [handle_file(str(tmp_path / "layer.png"))],
             "composite": handle_file(str(tmp_path / "composite.png")), "id": None}
    out = Image.open(client.predict(value, "pix2pix", api_name="/canvas_to_photo"))
    assert out.size == (512, 512)
    # what the generator was given: black strokes on white, no theme grey
    drawing = np.asarray(canvas_to_drawing({"background": None, "layers": [layer],
                                            "composite": np.asarray(Image.open(tmp_path / "composite.png"))}))
    assert (drawing[200:210, 100:400] == 20).all() and (drawing[:200] == 255).all()


def test_live_frame_draws_on_faces_and_passes_other_frames_through(server):
    demo, _ = server
    frame = np.asarray(Image.open(PHOTO).convert("RGB"))
    drawn = demo.loomis.live(frame)
    assert drawn.shape == frame.shape and drawn.dtype == np.uint8
    assert (np.abs(drawn.astype(int) - frame).max(-1) > 60).sum() > 200   # red lines
    empty = np.full((240, 320, 3), 128, np.uint8)
    assert np.array_equal(demo.loomis.live(empty), empty)
    assert demo.loomis.live(None) is None


def test_models_tab_says_bundled_and_why(server):
    _, client = server
    report = client.predict(api_name="/models")
    for name in ENGINES:
        assert f"### {name}" in report
    assert report.count("**Source:** bundled copy") == 4 and "HF_HUB_OFFLINE=1" in report
    # no pose net in this folder: listed as unavailable (the fit then searches its grid)
    assert "### posenet-photo\n\n**Source:** unavailable" in report
    assert "arch=unet_32" in report


# -- bad input: a friendly message, and the server keeps answering ---------------------
def _variants(tmp_path: Path) -> dict[str, Path]:
    photo = Image.open(PHOTO).convert("RGB")
    out = {"grey": photo.convert("L"), "rgba": photo.convert("RGBA"), "cmyk": photo.convert("CMYK")}
    paths = {}
    for k, im in out.items():
        paths[k] = tmp_path / f"{k}.{'jpg' if k == 'cmyk' else 'png'}"
        im.save(paths[k])
    sixteen = (np.asarray(photo.convert("L"), np.uint16) * 257)
    paths["16bit"] = tmp_path / "16bit.png"
    Image.fromarray(sixteen).save(paths["16bit"])
    assert Image.open(paths["16bit"]).mode.startswith("I;16") or Image.open(paths["16bit"]).mode == "I"
    return paths


def test_image_modes_all_work(server, tmp_path):
    _, client = server
    for kind, path in _variants(tmp_path).items():
        out = call(client, path, api_name="/photo_to_drawing")
        assert out.size == (256, 256), kind


def test_bad_input_gets_a_message_and_the_server_stays_up(server, tmp_path):
    _, client = server
    (tmp_path / "notes.png").write_text("not a picture")
    assert "not an image" in app_error(client, tmp_path / "notes.png", api_name="/photo_to_drawing")
    assert "No photo yet" in app_error(client, None, api_name="/photo_to_drawing")
    Image.new("RGB", (1, 1), "white").save(tmp_path / "dot.png")
    assert "too small" in app_error(client, tmp_path / "dot.png", api_name="/photo_to_drawing")
    Image.new("RGB", (300, 200), (90, 140, 200)).save(tmp_path / "sky.png")
    assert "No face found" in app_error(client, tmp_path / "sky.png", api_name="/photo_to_drawing")
    Image.new("RGB", (256, 256), "white").save(tmp_path / "blank.png")
    assert "Nothing to turn into a photo" in app_error(client, tmp_path / "blank.png", api_name="/sketch_to_photo")
    assert "No drawing yet" in app_error(client, None, api_name="/sketch_to_photo")
    assert call(client, PHOTO, api_name="/photo_to_drawing").size == (256, 256)


def test_a_10000_pixel_photo_is_scaled_down_and_drawn(server, tmp_path):
    _, client = server
    big = Image.open(PHOTO).convert("RGB").resize((10000, 10000), Image.NEAREST)
    big.save(tmp_path / "big.jpg", quality=80)
    del big
    out = call(client, tmp_path / "big.jpg", api_name="/photo_to_drawing")
    assert out.size == (2048, 2048)


def test_empty_and_dark_canvases_are_refused_with_a_message(server, tmp_path):
    from gradio_client import handle_file
    demo, client = server
    Image.new("RGB", (512, 512), "#333333").save(tmp_path / "dark.png")
    Image.new("RGBA", (512, 512), (0, 0, 0, 0)).save(tmp_path / "clear.png")
    dark = {"background": handle_file(str(tmp_path / "dark.png")), "layers": [handle_file(str(tmp_path / "clear.png"))],
            "composite": handle_file(str(tmp_path / "dark.png")), "id": None}
    from gradio_client.exceptions import AppError
    with pytest.raises(AppError, match="canvas is empty"):
        client.predict(dark, api_name="/canvas_to_photo")
    for value in (None, {"background": None, "layers": None, "composite": None}):
        with pytest.raises(EmptyCanvasError, match="canvas is empty"):
            canvas_to_drawing(value)
    assert call(client, SKETCH, api_name="/sketch_to_photo").size == (256, 256)


# -- registry ---------------------------------------------------------------------------
def populate_hub_cache(cache: Path, hub_id: str, folder: Path, commit: str) -> None:
    repo = cache / ("models--" + hub_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)           # no trailing newline
    snap = repo / "snapshots" / commit
    snap.mkdir(parents=True)
    for f in ("config.json", "model.safetensors", "README.md"):
        (snap / f).write_bytes((folder / f).read_bytes())


def test_offline_start_with_an_empty_cache_uses_bundled_weights_and_says_so(bundled):
    reg = ModelRegistry()
    src = reg.resolve("pix2pix-photo2drawing")
    assert src.kind == "bundled" and src.folder == bundled / "pix2pix-photo2drawing"
    assert "HF_HUB_OFFLINE=1" in src.describe() and "loomis-art/pix2pix-photo2drawing" in src.describe()
    assert reg.translator("pix2pix-photo2drawing")(PHOTO).size == (256, 256)


def test_a_populated_hub_cache_is_preferred_to_the_bundled_copy(bundled, tmp_path, monkeypatch):
    cache = tmp_path / "hub"
    hub_model = tiny(tmp_path / "hub_model", "AtoB", seed=7)
    card = "---\nlicense: mit\n---\n# x\n\n## Evaluation\n\n| method | F1 |\n|---|---|\n| x | 0.5 |\n\n## Limitations\n"
    (hub_model / "README.md").write_text(card)
    commit = "0123456789abcdef0123456789abcdef01234567"
    populate_hub_cache(cache, "loomis-art/pix2pix-photo2drawing", hub_model, commit)
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(cache))
    reg = ModelRegistry()
    info = reg.info("pix2pix-photo2drawing")
    assert info["source"].kind == "hub" and info["source"].commit == commit
    assert "local Hub cache (offline)" in info["source"].describe()  # `bundled` is offline
    assert info["metrics"].startswith("| method | F1 |") and "Limitations" not in info["metrics"]
    hub_out = reg.translator("pix2pix-photo2drawing")(PHOTO)
    assert reg.resolve("pix2pix-drawing2photo").kind == "bundled"   # not cached: bundled
    from loomis.inference import Translator   # the cached weights (seed 7) ran, not the bundled (seed 0)
    expected = Translator(Generator.from_pretrained(str(hub_model)))(PHOTO)
    assert np.array_equal(np.asarray(hub_out), np.asarray(expected))


def test_environment_overrides_and_unavailable_engines(bundled, tmp_path, monkeypatch):
    own = tiny(tmp_path / "mine", "AtoB", seed=3)
    monkeypatch.setenv(env_var("cyclegan-photo2drawing"), str(own))
    monkeypatch.setenv(env_var("pix2pix-photo2drawing"), "someone/other-model@v2")
    monkeypatch.setenv("LOOMIS_CHECKPOINTS", str(tmp_path / "nothing_here"))
    reg = ModelRegistry()
    assert reg.resolve("cyclegan-photo2drawing").kind == "local"
    src = reg.resolve("pix2pix-photo2drawing")
    assert (src.kind, src.hub_id, src.revision) == ("unavailable", "someone/other-model", "v2")
    with pytest.raises(ModelUnavailable, match="not available.*someone/other-model.*no bundled copy"):
        reg.translator("pix2pix-photo2drawing")


def test_each_engine_loads_once_under_concurrent_requests(bundled):
    reg = ModelRegistry()
    got = []
    threads = [threading.Thread(target=lambda: got.append(reg.translator("cyclegan-drawing2photo")))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 4 and all(t is got[0] for t in got)
