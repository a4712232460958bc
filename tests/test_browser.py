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
        page = browser.new_context(accept_downloads=True,
                                   viewport={"width": 1280, "height": 1000}).new_page()
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
    w, h = _output_size(page, "drawing-out")
    assert 0 < w <= 256 and 0 < h <= 256             # on paper: cropped to the head
    # the screenshot shows the project's own render: no third-party picture is committed
    shot = Path(os.environ.get("LOOMIS_SCREENSHOT") or tmp_path / "app.png")
    page.screenshot(path=str(shot), full_page=True)
    with Image.open(shot) as png:
        assert png.width == 1280 and png.height > 1000        # the whole page, not a blank



def test_pick_the_real_photo_example_and_get_its_drawing_steps_and_svg(page, tmp_path):
    """The first example is Grace Hopper's real photo: picking it shows her construction,
    the eight steps, and the SVG and GIF downloads; the SVG rasterised by the browser lies
    on the PNG's lines."""
    before = page.locator("#drawing-out img").first.get_attribute("src")   # the last test's
    examples = page.locator(".block", has_text="Examples: real photos").last
    examples.locator("button").first.click()
    page.wait_for_function("() => { const i = document.querySelector('#photo-in img');"
                           " return i && i.complete && i.naturalWidth === 512; }")
    page.wait_for_function("(before) => { const i = document.querySelector('#drawing-out img');"
                           " return i && i.getAttribute('src') !== before; }", arg=before)
    w, h = _output_size(page, "drawing-out")
    assert 150 < w < 512 and 200 < h < 600               # framed on her head
    page.wait_for_function("() => document.querySelectorAll('#steps-out img').length === 8")
    captions = page.locator("#steps-out").inner_text()
    assert "1. The ball" in captions and "8. The features" in captions
    assert "canon" in page.locator("#notes").inner_text()
    with page.expect_download() as svg_download:
        page.locator("#svg-out a").first.click()
    svg = tmp_path / "construction.svg"
    svg_download.value.save_as(svg)
    png = tmp_path / "drawing.png"
    src = page.locator("#drawing-out img").first.get_attribute("src")
    png.write_bytes(page.request.get(src).body())
    assert _svg_on_png_lines(page, svg.read_text(), Image.open(png)) >= 0.98


def _svg_on_png_lines(page, svg: str, png: Image.Image) -> float:
    """The share of ink (in both directions) of the browser's rendering of ``svg`` that
    lies within 1 px of the ink of ``png``, its raster twin."""
    import cv2
    import numpy as np
    w, h = png.size
    tab = page.context.new_page()
    try:
        tab.set_viewport_size({"width": w, "height": h})
        tab.set_content(f"<html><body style='margin:0'>{svg}</body></html>")
        shot = tab.screenshot(clip={"x": 0, "y": 0, "width": w, "height": h})
    finally:
        tab.close()
    import io
    drawn = np.asarray(Image.open(io.BytesIO(shot)).convert("L")) < 200
    ink = np.asarray(png.convert("L")) < 200
    near = lambda mask: cv2.distanceTransform((~mask).astype(np.uint8), cv2.DIST_L2, 3)  # noqa: E731
    return min(float((near(ink)[drawn] <= 1.0).mean()), float((near(drawn)[ink] <= 1.0).mean()))


def test_after_an_error_the_output_keeps_its_label(page):
    page.reload()                               # a fresh page: no photo yet
    page.click("#draw-btn")
    page.locator(".toast-body").first.wait_for(state="visible")
    assert "No photo yet" in page.locator(".toast-body").first.inner_text()
    assert "Loomis drawing" in page.locator("#drawing-out").inner_text()


def test_the_fit_option_shows_only_for_the_learned_engines(page):
    page.get_by_role("tab", name="Photo → Loomis").click()
    assert not page.locator("#fit").is_visible()
    page.get_by_label("pix2pix").first.check()
    page.locator("#fit").wait_for(state="visible")
    page.get_by_label("Geometric engine").first.check()
    page.locator("#fit").wait_for(state="hidden")


def test_draw_on_the_canvas_and_get_a_photo(page):
    page.get_by_role("tab", name="Sketch → Photo").click()
    canvas = page.locator("#canvas canvas").first
    canvas.wait_for(state="visible")
    page.locator("#canvas button[aria-label='Brush']").wait_for(state="visible")
    page.wait_for_timeout(1000)                 # the editor sets its canvas up after showing it
    assert "100%" in page.locator("#canvas").inner_text()     # the canvas opens unscaled
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
