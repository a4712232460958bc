"""The page in a real browser: headless Chromium (Debian's) driven by Playwright's Python API.

A user uploads a photo and gets a drawing, draws strokes on the canvas with the mouse and
gets a photo. The page's screenshot goes to a temporary folder, or to
``$LOOMIS_SCREENSHOT`` when set (``LOOMIS_SCREENSHOT=docs/app_screenshot.png pytest -m slow
tests/test_browser.py`` refreshes the README's); no test writes into tracked files. Needs
/usr/bin/chromium (apt-get install chromium); Playwright's own browser download is never
used.
"""
import os

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"

import math
import shutil
import socket
from pathlib import Path

import pytest
from PIL import Image
import torch

import huggingface_hub.constants as hub_constants
from loomis.train.nets import Generator
from loomis.registry import DEFAULTS, ENGINES

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                reason="Chromium is not installed (apt-get install -y chromium)")]
sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the Python package)")


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    root = tmp_path_factory.mktemp("checkpoints")
    for name in ENGINES:
        torch.manual_seed(0)
        Generator(arch="unet_32", ngf=8, image_size=64,
                  direction="AtoB" if "photo2drawing" in name else "BtoA").save_pretrained(root / DEFAULTS[name][1])
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LOOMIS_CHECKPOINTS", str(root))
        mp.setattr(hub_constants, "HF_HUB_OFFLINE", True)
        mp.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path_factory.mktemp("hub")))
        import app
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        demo = app.build_app()
        demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True)
        yield f"http://127.0.0.1:{port}/"
        demo.close()


@pytest.fixture(scope="module")
def page(url):
    with sync_api.sync_playwright() as pw:
        # Playwright starts Chromium with a fresh, empty temporary profile (its own
        # --user-data-dir); passing one in args is refused by it
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.set_default_timeout(20_000)
        page.goto(url)
        yield page
        browser.close()


def _output_size(page, elem_id: str) -> tuple[int, int]:
    img = page.locator(f"#{elem_id} img").first
    img.wait_for(state="visible")
    page.wait_for_function(f"() => {{ const i = document.querySelector('#{elem_id} img');"
                           " return i && i.complete && i.naturalWidth > 0; }")
    return tuple(img.evaluate("i => [i.naturalWidth, i.naturalHeight]"))


def test_upload_a_photo_and_get_a_drawing(page, tmp_path):
    page.locator("#photo-in input[type=file]").set_input_files(str(ROOT / "examples" / "photo_2.png"))
    page.locator("#photo-in img").first.wait_for(state="visible")
    page.click("#draw-btn")
    assert _output_size(page, "drawing-out") == (256, 256)
    # the screenshot shows the project's own render: no third-party picture is committed
    shot = Path(os.environ.get("LOOMIS_SCREENSHOT") or tmp_path / "app.png")
    page.screenshot(path=str(shot), full_page=True)
    with Image.open(shot) as png:
        assert png.width == 1280 and png.height > 1000        # the whole page, not a blank



def test_pick_the_real_photo_example_and_get_its_drawing(page):
    examples = page.locator(".block", has_text="A real photo (Grace Hopper").last
    examples.locator("button").first.click()
    page.wait_for_function("() => { const i = document.querySelector('#photo-in img');"
                           " return i && i.complete && i.naturalWidth === 512; }")
    page.click("#draw-btn")
    page.wait_for_function("() => { const i = document.querySelector('#drawing-out img');"
                           " return i && i.complete && i.naturalWidth === 512; }")
    assert _output_size(page, "drawing-out") == (512, 600)


def test_draw_on_the_canvas_and_get_a_photo(page):
    page.get_by_role("tab", name="Sketch → Photo").click()
    canvas = page.locator("#canvas canvas").first
    canvas.wait_for(state="visible")
    page.locator("#canvas button[aria-label='Brush']").wait_for(state="visible")
    page.wait_for_timeout(1000)                 # the editor sets its canvas up after showing it
    box = canvas.bounding_box()
    cx, cy, r = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2, min(box["width"], box["height"]) / 4
    # strokes start inside the paper (the editor's area around it does not take strokes)
    page.mouse.move(cx - r, cy)
    page.mouse.down()
    for k in range(1, 25):                      # a rough circle: the Loomis ball
        a = 2 * math.pi * k / 24
        page.mouse.move(cx - r * math.cos(a), cy + r * math.sin(a), steps=2)
    page.mouse.up()
    page.mouse.move(cx - r, cy)
    page.mouse.down()
    page.mouse.move(cx + r, cy, steps=8)        # the brow line
    page.mouse.up()
    page.click("#canvas-btn")
    w, h = _output_size(page, "photo-out")
    assert w > 0 and h > 0 and w == h
