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
from loomis.train.nets import Generator
from loomis.registry import DEFAULTS, ENGINES, ModelRegistry, ModelUnavailable, env_var

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


def call(client, *args, api_name, **kwargs):
    from gradio_client import handle_file
    args = [handle_file(str(a)) if isinstance(a, Path) else a for a in args]
    return Image.open(client.predict(*args, api_name=api_name, **kwargs))


def app_error(client, *args, api_name, **kwargs) -> str:
    from gradio_client.exceptions import AppError
    with pytest.raises(AppError) as info:
        call(client, *args, api_name=api_name, **kwargs)
    return str(info.value)


# -- endpoints ------------------------------------------------------------------------
def test_photo_to_drawing_draws_the_construction_on_paper(server):
    _, client = server
    out = call(client, PHOTO, api_name="/photo_to_drawing", whole_photo=True)
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
    portrait = app.real_portraits()[0]      # matplotlib's Grace Hopper, installed with the app
    demo, client = server
    # the page offers it first, and serves it when clicked
    examples = {c["props"]["label"]: c["props"]["samples"]
                for c in demo.config["components"] if c.get("type") == "dataset"}
    (served,) = examples["Examples: real photos, then the project's rendered heads"][0]
    with urllib.request.urlopen(client.src.rstrip("/") + served["url"]) as response:
        assert Image.open(io.BytesIO(response.read())).size == (512, 600)
    out = call(client, Path(portrait), "Geometric engine", "paper", api_name="/photo_to_drawing",
               whole_photo=True)
    assert out.size == Image.open(portrait).size == (512, 600)
    ink = np.asarray(out.convert("L")) < 120
    x0, y0, x1, y1 = (round(v) for v in estimate_poses(portrait)[0].box)
    face = ink[y0:y1, x0:x1]
    assert face.mean() > 0.1                  # the construction's lines are on the face
    assert ink.sum() < 2.5 * face.sum()       # and mostly there (the cranium rises above it)


GEOMETRIC = "Geometric engine"
CYCLEGAN = "CycleGAN (unpaired, as in the original experiment: rougher lines)"
PHOTO_ENGINE_NAMES = [GEOMETRIC, "pix2pix", CYCLEGAN]


def test_the_page_offers_the_engines_by_these_names(server):
    """What an API caller passes as ``engine``: the page's names, the geometric engine first
    and chosen by default; and the heads endpoint beside the drawing one."""
    import app
    demo, client = server
    assert list(app.PHOTO_ENGINES) == PHOTO_ENGINE_NAMES
    assert app.DEFAULT_PHOTO_ENGINE == GEOMETRIC and app.PHOTO_ENGINES[GEOMETRIC] == "geometric"
    radios = [c["props"] for c in demo.config["components"]
              if c.get("type") == "radio" and c["props"].get("label") == "Engine"]
    assert [choice[0] for choice in radios[0]["choices"]] == PHOTO_ENGINE_NAMES
    assert radios[0]["value"] == GEOMETRIC
    api = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert [p["parameter_name"] for p in api["/heads"]["parameters"]] == ["image", "engine"]
    assert api["/heads"]["parameters"][1]["parameter_default"] == GEOMETRIC
    buttons = {c["props"].get("elem_id"): c["props"].get("value")
               for c in demo.config["components"] if c.get("type") == "button"}
    assert buttons["heads-btn"] == "Read the heads"


@pytest.mark.parametrize("engine", ["pix2pix", CYCLEGAN])
def test_photo_to_drawing_through_a_generator_keeps_the_size(server, engine):
    _, client = server
    assert call(client, PHOTO, engine, api_name="/photo_to_drawing",
                whole_photo=True).size == (256, 256)
    raw = call(client, PHOTO, engine, "paper", 0, "dashed", False, False,
               api_name="/photo_to_drawing", whole_photo=True)     # fit off: the generator's own drawing
    assert raw.size == (256, 256)


def heads(client, *args) -> dict:
    from gradio_client import handle_file
    args = [handle_file(str(a)) if isinstance(a, Path) else a for a in args]
    return client.predict(*args, api_name="/heads")


def test_heads_reads_her_construction_as_numbers(server):
    """``/heads``: the construction the page draws, as JSON: one head for Grace Hopper,
    its box around her face and inside the photo, the angles of a portrait."""
    import app
    from loomis.pose import estimate_poses
    portrait = app.real_portraits()[0]
    _, client = server
    data = heads(client, Path(portrait))               # the engine has a default
    assert data["engine"] == GEOMETRIC and len(data["heads"]) == 1
    (head,) = data["heads"]
    assert set(head) == {"box", "yaw", "pitch", "roll", "ball_center", "ball_radius", "proportions"}
    assert head["proportions"]["notes"] and head["proportions"]["measured"]
    assert len(head["box"]) == 4 and len(head["ball_center"]) == 2
    assert all(isinstance(v, float) for v in [*head["box"], *head["ball_center"], head["yaw"],
                                              head["pitch"], head["roll"], head["ball_radius"]])
    x0, y0, x1, y1 = head["box"]
    assert 0 <= x0 < x1 <= 512 and 0 <= y0 < y1 <= 600
    # around her face: the landmarks' box in the middle of it, and about as wide
    fx0, fy0, fx1, fy1 = estimate_poses(portrait)[0].box
    assert x0 < (fx0 + fx1) / 2 < x1 and y0 < (fy0 + fy1) / 2 < y1
    assert 0.9 < (x1 - x0) / (fx1 - fx0) < 1.3
    assert x0 < head["ball_center"][0] < x1 and y0 < head["ball_center"][1] < y1
    assert 0.3 < 2 * head["ball_radius"] / max(x1 - x0, y1 - y0) <= 1.0
    assert all(abs(head[a]) < 20 for a in ("yaw", "pitch", "roll"))
    # and the page drew that construction: its lines fill the box
    out = call(client, Path(portrait), GEOMETRIC, api_name="/photo_to_drawing", whole_photo=True)
    ink = np.asarray(out.convert("L")) < 120
    ys, xs = np.nonzero(ink)
    assert abs(xs.min() - x0) < 8 and abs(xs.max() - x1) < 8
    assert abs(ys.min() - y0) < 8 and abs(ys.max() - y1) < 8


def test_heads_of_a_photo_without_a_face_is_a_message(server, tmp_path):
    from gradio_client.exceptions import AppError
    _, client = server
    Image.new("RGB", (320, 240), "white").save(tmp_path / "blank.png")
    for engine in PHOTO_ENGINE_NAMES:
        with pytest.raises(AppError, match="No face found"):
            heads(client, tmp_path / "blank.png", engine)
    # the old name of the CycleGAN engine: the message lists today's names
    with pytest.raises(AppError, match="'CycleGAN'.*not in the list of choices.*original experiment"):
        heads(client, PHOTO, "CycleGAN")
    assert len(heads(client, PHOTO)["heads"]) == 1    # and the server answers on


@pytest.mark.parametrize("engine,fit", [(GEOMETRIC, True), ("pix2pix", True), ("pix2pix", False),
                                        (CYCLEGAN, True), (CYCLEGAN, False)])
def test_every_engine_draws_on_both_of_two_faces(server, two_faces, tmp_path, engine, fit):
    """Two people side by side: each engine draws on both faces (face by face), and
    ``/heads`` says so, one head on each."""
    _, client = server
    two_faces.save(tmp_path / "two.png")
    data = heads(client, tmp_path / "two.png", engine)
    assert data["engine"] == engine and len(data["heads"]) == 2
    left, right = sorted(data["heads"], key=lambda h: h["ball_center"][0])
    assert left["ball_center"][0] < 400 < 460 < right["ball_center"][0]
    out = call(client, tmp_path / "two.png", engine, "paper", 0, "dashed", False, fit,
               api_name="/photo_to_drawing", whole_photo=True)
    assert out.size == two_faces.size
    grey = np.asarray(out.convert("L"))
    for face in (left, right):
        x0, y0, x1, y1 = (int(round(v)) for v in face["box"])
        drawn = grey[max(0, y0):y1, max(0, x0):x1] < 200
        assert drawn.mean() > 0.02, face         # lines (or the raw drawing) on this face
    assert (grey > 240).mean() > 0.3             # on paper


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
    demo, _ = server
    report = demo.loomis.models_report()
    for name in ENGINES:
        assert f"### {name}" in report
    assert report.count("**Source:** bundled copy") == 4 and "HF_HUB_OFFLINE=1" in report
    # the generators only: the app fits to the landmark pose, it loads no pose net
    assert report.count("### ") == 4 and "posenet" not in report
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
        out = call(client, path, api_name="/photo_to_drawing", whole_photo=True)
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
    assert call(client, PHOTO, api_name="/photo_to_drawing", whole_photo=True).size == (256, 256)


def test_a_10000_pixel_photo_is_scaled_down_and_drawn(server, tmp_path):
    _, client = server
    big = Image.open(PHOTO).convert("RGB").resize((10000, 10000), Image.NEAREST)
    big.save(tmp_path / "big.jpg", quality=80)
    del big
    out = call(client, tmp_path / "big.jpg", api_name="/photo_to_drawing", whole_photo=True)
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
        client.predict(dark, "pix2pix", api_name="/canvas_to_photo")   # undocumented: no defaults
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
    # the cached weights (seed 7) ran, not the bundled (seed 0)
    from loomis.train.inference import Translator
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


def test_heads_of_a_photo_scaled_down_first_are_in_the_photos_own_pixels(server, tmp_path):
    """A 3072-px phone-sized photo is drawn at 2048 px, but ``/heads`` answers in the
    pixels of the photo sent: the same head as on the original, times the size ratio."""
    import app
    portrait = app.real_portraits()[0]
    _, client = server
    small = Image.open(portrait).convert("RGB")
    k = 3072 / small.width
    small.resize((3072, round(small.height * k)), Image.BICUBIC).save(tmp_path / "big.jpg",
                                                                       quality=92)
    (head,) = heads(client, Path(portrait))["heads"]
    (big,) = heads(client, tmp_path / "big.jpg")["heads"]
    width = head["box"][2] - head["box"][0]
    np.testing.assert_allclose(big["box"], np.multiply(head["box"], k), atol=0.03 * width * k)
    np.testing.assert_allclose(big["ball_center"], np.multiply(head["ball_center"], k),
                               atol=0.03 * width * k)
    assert abs(big["ball_radius"] / (head["ball_radius"] * k) - 1) < 0.05
    assert abs(big["yaw"] - head["yaw"]) < 3 and abs(big["roll"] - head["roll"]) < 3


# -- the construction step by step, as SVG, framed, and over MCP ------------------------
def test_on_paper_the_drawing_is_framed_on_the_heads_unless_the_whole_photo_is_kept(server, tmp_path):
    from loomis.sample_data import grace_hopper
    _, client = server
    wide = Image.new("RGB", (1600, 900), (200, 200, 200))
    wide.paste(Image.open(grace_hopper()).convert("RGB"), (1000, 250))
    wide.save(tmp_path / "wide.png")
    framed = call(client, tmp_path / "wide.png", api_name="/photo_to_drawing")
    whole = call(client, tmp_path / "wide.png", api_name="/photo_to_drawing", whole_photo=True)
    assert whole.size == (1600, 900)
    assert framed.size[0] < 400 and framed.size[1] < 450        # the head, not the page
    ink = lambda im: int((np.asarray(im.convert("L")) < 128).sum())  # noqa: E731
    assert ink(framed) == pytest.approx(ink(whole), rel=0.03)


def test_steps_and_svg_endpoints(server):
    import xml.etree.ElementTree as ET
    from gradio_client import handle_file
    _, client = server
    gallery, gif = client.predict(handle_file(str(PHOTO)), api_name="/steps")
    captions = [item["caption"] for item in gallery]
    assert captions[0] == "1. The ball" and captions[-1].endswith("The features")
    assert len(captions) == 8
    animated = Image.open(gif)
    assert animated.format == "GIF" and animated.n_frames == 8
    svg = Path(client.predict(handle_file(str(PHOTO)), api_name="/svg"))
    assert svg.suffix == ".svg"
    root = ET.fromstring(svg.read_text())
    layers = [g.get("id") for g in root.iter("{http://www.w3.org/2000/svg}g")]
    assert layers == ["surface", "visible", "hidden", "features"]


def test_the_page_shows_options_only_where_they_apply(server):
    demo, _ = server
    props = {c["props"].get("elem_id"): c["props"] for c in demo.config["components"]}
    assert props["fit"]["visible"] is False             # the geometric engine is the default
    assert props["whole-photo"]["visible"] is True       # paper is the default background
    assert props["own-proportions"]["value"] is True


def test_the_endpoints_are_mcp_tools_a_model_can_call(bundled):
    """``python app.py`` serves the named endpoints over MCP: listed with descriptions, and
    called with a photo as a data URL."""
    import asyncio
    import base64

    import app
    from mcp import ClientSession
    from mcp.client.streamable_http import streamablehttp_client
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo = app.build_app(warm=False)
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port,
                quiet=True, mcp_server=True)
    photo = "data:image/png;base64," + base64.b64encode(PHOTO.read_bytes()).decode()

    async def session():
        async with streamablehttp_client(f"http://127.0.0.1:{port}/gradio_api/mcp/") as (r, w, _):
            async with ClientSession(r, w) as mcp:
                await mcp.initialize()
                tools = {t.name: t for t in (await mcp.list_tools()).tools}
                heads = await mcp.call_tool("heads", {"image": photo})
                return tools, heads

    try:
        tools, heads = asyncio.run(session())
    finally:
        demo.close()
    assert {"photo_to_drawing", "heads", "steps", "svg", "sketch_to_photo"} <= set(tools)
    assert "Loomis head construction" in tools["photo_to_drawing"].description
    assert "portrait photo" in tools["heads"].inputSchema["properties"]["image"]["description"]
    assert not heads.isError
    text = heads.content[0].text
    assert "'yaw'" in text and "'proportions'" in text


@pytest.mark.slow
def test_a_freshly_started_app_answers_its_first_photo_within_3_s():
    """``python app.py`` as a Space starts it: once the page answers, the first real photo
    is drawn within 3 s (the face model loads in the background at start)."""
    from benchmarks.run import first_answer, served_app
    from loomis.sample_data import grace_hopper
    photo = grace_hopper() or PHOTO
    with served_app() as (client, _, _):
        assert first_answer(client, photo) <= 3.0


def test_a_users_mistake_is_logged_as_one_line(server, caplog):
    import gradio as gr
    demo, _ = server
    with caplog.at_level("WARNING", logger="loomis.app"), pytest.raises(gr.Error):
        demo.loomis.photo_to_drawing(None)
    (record,) = [r for r in caplog.records if r.name == "loomis.app"]
    assert record.getMessage().startswith("refused: No photo yet") and record.exc_info is None


def test_the_files_the_app_writes_are_deleted_after_their_lifetime(server, monkeypatch):
    import time

    import app
    demo, _ = server
    old = Path(demo.loomis._file("old.svg", "<svg/>"))
    past = time.time() - app.FILE_LIFETIME - 10
    os.utime(old.parent, (past, past))
    monkeypatch.setattr(demo.loomis, "_pruned", 0.0)
    new = Path(demo.loomis._file("new.svg", "<svg/>"))
    assert not old.exists() and new.read_text() == "<svg/>"
