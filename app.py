"""Loomis in the browser: photo → Loomis construction drawing, sketch → photo, and the models.

``python app.py`` serves it (GRADIO_SERVER_NAME / GRADIO_SERVER_PORT are honoured, as on a
Hugging Face Space). The page is thin on purpose: every picture goes through the same
project code the tests and benchmarks use (:mod:`loomis.pipeline` for every engine, face
by face, :mod:`loomis.registry` for the generators, :mod:`loomis.canvas` for the drawing
canvas). Heavy modules (torch, MediaPipe, ONNX Runtime) are imported on first use, not at
start, so the server answers within seconds; the generators load once, on first request.

Endpoints usable from ``gradio_client``: ``/photo_to_drawing`` (photo → drawing),
``/heads`` (photo → the constructions as JSON) and ``/sketch_to_photo`` (drawing file →
photo); every parameter after the image has a default.
"""
from __future__ import annotations

import dataclasses
import os
import threading
from pathlib import Path

import gradio as gr
from PIL import Image

from loomis import sample_data
from loomis.smoothing import PoseTracker

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE / "examples"
MAX_SIDE = 2048          # larger photos are scaled down first: the lines do not need more
CANVAS = (512, 512)
#: The photo engines in the order of the real-photo table (docs/quality.md): the geometric
#: engine first and the default; CycleGAN named for what it draws.
PHOTO_ENGINES = {"Geometric engine": "geometric", "pix2pix": "pix2pix",
                 "CycleGAN (unpaired, as in the original experiment: rougher lines)": "cyclegan"}
DEFAULT_PHOTO_ENGINE = "Geometric engine"
SKETCH_ENGINES = {"pix2pix": "pix2pix", "CycleGAN": "cyclegan"}
#: The sketch model used when none is chosen: the better of the two shipped in checkpoints/
#: on the real-photo drawing → photo table (docs/quality.md).
DEFAULT_SKETCH_ENGINE = "pix2pix"
BACKGROUNDS = [("paper (construction only)", "paper"), ("faded photo", "faded"),
               ("pencil sketch of the photo", "pencil"), ("photo overlay", "photo")]
HIDDEN = ["dashed", "faint", "omit"]


class PhotoInput(gr.Image):
    """``gr.Image`` that turns an unreadable upload into a message instead of a traceback."""

    @classmethod
    def get_block_name(cls) -> str:   # rendered by the page as a plain Image
        return "image"

    def preprocess(self, payload):
        try:
            return super().preprocess(payload)
        except gr.Error:
            raise
        except Exception as exc:
            raise gr.Error(f"That file is not an image Loomis can read ({type(exc).__name__}). "
                           "Upload a PNG, JPEG or WebP picture.") from None


class LoomisApp:
    """The app's shared state: one model registry and two pose estimators (photos, stream),
    created on first use and shared by every request (each is thread-safe)."""

    def __init__(self) -> None:
        from loomis.registry import ModelRegistry
        self.registry = ModelRegistry()
        self._lock = threading.Lock()
        self._photo_estimator = None
        self._stream_estimator = None

    def estimator(self, stream: bool):
        with self._lock:
            if stream and self._stream_estimator is None:
                from loomis.pose import PoseEstimator
                self._stream_estimator = PoseEstimator(static_image_mode=False)
            if not stream and self._photo_estimator is None:
                from loomis.pose import PoseEstimator
                self._photo_estimator = PoseEstimator(static_image_mode=True)
            return self._stream_estimator if stream else self._photo_estimator

    # -- inputs ---------------------------------------------------------------------
    @staticmethod
    def _load(image, what: str) -> tuple[Image.Image, float]:
        """The picture, scaled down to at most MAX_SIDE, and the factor from its pixels
        back to the input's."""
        from loomis.imageio import ImageError, load_image
        if image is None:
            raise gr.Error(f"No {what} yet: upload one (or pick an example) first.")
        try:
            img = load_image(image)
        except ImageError as exc:
            raise gr.Error(f"Cannot use this {what}: {exc}.") from None
        back = 1.0
        if max(img.size) > MAX_SIDE:
            w, h = img.size
            scale = MAX_SIDE / max(w, h)
            img = img.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.LANCZOS)
            gr.Info(f"The {what} is {w}×{h}; it was scaled to {img.size[0]}×{img.size[1]} first.")
            back = w / img.size[0]
        if min(img.size) < 16:
            raise gr.Error(f"The {what} is {img.size[0]}×{img.size[1]} pixels, too small to "
                           "draw from: use one at least 64 pixels on each side.")
        return img, back

    # -- handlers -------------------------------------------------------------------
    def _drawing(self, image, engine: str, **options):
        """The pipeline's :class:`loomis.pipeline.Drawing` of a photo (scaled down when
        large) and the factor back to the photo's pixels; errors as messages."""
        img, back = self._load(image, "photo")
        if engine not in PHOTO_ENGINES:
            raise gr.Error(f"Unknown engine {engine!r}; choose one of {', '.join(PHOTO_ENGINES)}.")
        import loomis
        from loomis.pose import NoFaceError
        from loomis.registry import ModelUnavailable
        try:
            return loomis.photo_to_drawing(img, PHOTO_ENGINES[engine], models=self.registry,
                                           estimator=self.estimator(False), **options), back
        except NoFaceError as exc:
            raise gr.Error(f"No face found: {exc}") from None
        except (ModelUnavailable, ValueError) as exc:
            raise gr.Error(str(exc)) from None

    def photo_to_drawing(self, image, engine: str = DEFAULT_PHOTO_ENGINE, background: str = "paper",
                         line_weight: float = 0, hidden: str = "dashed",
                         features: bool = False, fit: bool = True) -> Image.Image:
        """Photo in, Loomis construction drawing out: every face, each in its own pose.

        Every engine works face by face (loomis.pipeline): the faces the geometric engine
        finds are cut out, a generator draws each, and with ``fit`` (default) the 3D
        construction is fitted to its lines; without it, the raw drawing."""
        style = None
        if line_weight:
            from loomis.engine import GRAPHITE, INK
            style = dataclasses.replace(GRAPHITE if background == "paper" else INK,
                                        width=float(line_weight))
        return self._drawing(image, engine, background=background, style=style, hidden=hidden,
                             features=bool(features), fit=bool(fit))[0].image

    def heads(self, image, engine: str = DEFAULT_PHOTO_ENGINE) -> dict:
        """The constructions an engine draws on a photo, as numbers.

        Returns ``{"engine": name, "heads": [{"box": [x0, y0, x1, y1], "yaw", "pitch",
        "roll", "ball_center": [x, y], "ball_radius": r}, ...]}``, one entry per
        construction drawn (every face found, largest first), in the input photo's pixels
        (x right, y down) and degrees. ``box`` bounds the whole construction (ball, jaw,
        ear). Angles are relative to the line of sight: yaw > 0 the face turned towards
        the picture's right, pitch > 0 tilted up (looking up), roll > 0 turned
        counter-clockwise in the picture. A photo without a face is an error."""
        drawing, back = self._drawing(image, engine, background="paper")
        return {"engine": engine, "heads": [h.scaled(back).to_json() for h in drawing.heads]}

    def sketch_to_photo(self, drawing, model: str = DEFAULT_SKETCH_ENGINE) -> Image.Image:
        """A drawing (file or canvas) in, a photo out."""
        from loomis.canvas import canvas_to_drawing
        from loomis.imageio import ImageError
        if model not in SKETCH_ENGINES:
            raise gr.Error(f"Unknown model {model!r}; choose one of {', '.join(SKETCH_ENGINES)}.")
        if isinstance(drawing, dict):
            try:
                img = canvas_to_drawing(drawing)
            except ImageError as exc:
                raise gr.Error(f"Nothing to turn into a photo: {exc}.") from None
        else:
            img, _ = self._load(drawing, "drawing")
        import loomis
        from loomis.registry import ModelUnavailable
        try:
            return loomis.sketch_to_photo(img, SKETCH_ENGINES[model], models=self.registry)
        except ImageError as exc:   # nothing drawn (a blank canvas or upload)
            raise gr.Error(f"Nothing to turn into a photo: {exc}.") from None
        except ModelUnavailable as exc:
            raise gr.Error(str(exc)) from None

    def live(self, frame, background: str = "photo", features: bool = False, tracker=None):
        """One webcam frame with the construction on it (never raises: a stream goes on).
        ``tracker`` is the browser session's own PoseTracker (its smoothing state)."""
        from loomis.engine import live_frame
        return live_frame(frame, self.estimator(True), tracker=tracker, background=background,
                          features=bool(features))

    def models_report(self) -> str:
        """Markdown for the Models tab: source, config and model-card metrics per engine."""
        parts = []
        for engine in self.registry.engines:
            info = self.registry.info(engine)
            src = info["source"]
            parts += [f"### {engine}", "", f"**Source:** {src.describe()}", ""]
            if info["config"]:
                cfg = info["config"]
                parts += ["**Config:** " + ", ".join(f"`{k}={v}`" for k, v in cfg.items()), ""]
            parts += [info["metrics"] or "_No model-card metrics._", ""]
        return "\n".join(parts)


def real_portraits() -> list[str]:
    """Real portrait photos for the examples, from packages the app installs anyway:
    matplotlib's public-domain Grace Hopper (loomis.sample_data: found by path, never
    committed here; the project's own examples are all its own renders). Empty where a
    package leaves its sample data out."""
    path = sample_data.grace_hopper()
    return [str(path)] if path else []


def build_app() -> gr.Blocks:
    """The whole page; launch it with ``.launch()`` (``python app.py`` does)."""
    app = LoomisApp()
    photos = sorted(str(p) for p in EXAMPLES.glob("photo_*.png") if "_loomis" not in p.name)
    sketches = sorted(str(p) for p in EXAMPLES.glob("sketch_*.png"))
    portraits = real_portraits()
    with gr.Blocks(title="Loomis") as demo:
        gr.Markdown("# Loomis\nA portrait photo → its Andrew Loomis head construction; "
                    "a construction sketch → a photo.")
        with gr.Tab("Photo → Loomis"):
            with gr.Row():
                with gr.Column():
                    photo = PhotoInput(sources=["upload", "webcam"], type="filepath",
                                       image_mode=None, label="Photo", elem_id="photo-in")
                    engine = gr.Radio(list(PHOTO_ENGINES), value=DEFAULT_PHOTO_ENGINE, label="Engine")
                    with gr.Accordion("Options", open=True):
                        background = gr.Dropdown(BACKGROUNDS, value="paper", label="Background")
                        weight = gr.Slider(0, 8, value=0, step=0.5, label="Line weight (0 = automatic)")
                        hidden = gr.Radio(HIDDEN, value="dashed", label="Hidden lines")
                        features = gr.Checkbox(False, label="Draw the face's features (eyes, brows, nose, mouth, jaw)")
                        fit = gr.Checkbox(True, label="Fit the 3D construction to the generator's lines",
                                          info="Generators only; off: the generator's raw "
                                          "drawing of each face. The pose starts from the "
                                          "face's landmarks, the place and size come from "
                                          "the lines.")
                    draw_btn = gr.Button("Draw the construction", variant="primary", elem_id="draw-btn")
                drawing = gr.Image(type="pil", format="png", label="Loomis drawing",
                                   buttons=["download"], interactive=False, elem_id="drawing-out")
            gr.Examples([[p] for p in photos], inputs=[photo], cache_examples=False, label="Rendered heads")
            if portraits:
                gr.Examples([[p] for p in portraits], inputs=[photo], cache_examples=False,
                            label="A real photo (Grace Hopper, from matplotlib's sample data)")
            draw_btn.click(app.photo_to_drawing, [photo, engine, background, weight, hidden, features, fit],
                           drawing, api_name="photo_to_drawing", concurrency_limit=2)
            with gr.Accordion("The heads as numbers (pose, place, size)", open=False):
                heads_btn = gr.Button("Read the heads", elem_id="heads-btn")
                heads_out = gr.JSON(label="Heads", elem_id="heads-out")
            heads_btn.click(app.heads, [photo, engine], heads_out, api_name="heads",
                            concurrency_limit=2)
            with gr.Accordion("Live webcam (geometric engine)", open=False):
                with gr.Row():
                    cam = gr.Image(sources=["webcam"], streaming=True, type="numpy", label="Webcam")
                    live_out = gr.Image(type="numpy", label="Live construction")
                live_bg = gr.Dropdown(BACKGROUNDS, value="photo", label="Background")
                live_features = gr.Checkbox(False, label="Features")
                tracker = gr.State(PoseTracker())     # copied per browser session
                cam.stream(app.live, [cam, live_bg, live_features, tracker], live_out,
                           stream_every=0.1,
                           time_limit=120, api_visibility="private", concurrency_limit=1)
        with gr.Tab("Sketch → Photo"):
            with gr.Row():
                with gr.Column():
                    pad = gr.Sketchpad(value=Image.new("RGB", CANVAS, "white"), type="numpy",
                                       image_mode="RGBA", canvas_size=CANVAS, fixed_canvas=True,
                                       brush=gr.Brush(default_size=3, colors=["#202020", "#606060", "#a0a0a0"],
                                                      default_color="#202020", color_mode="defaults"),
                                       eraser=gr.Eraser(default_size=20), layers=False, format="png",
                                       label="Draw a head (black on white)", elem_id="canvas")
                    model = gr.Radio(list(SKETCH_ENGINES), value=DEFAULT_SKETCH_ENGINE, label="Model (drawing → photo)")
                    canvas_btn = gr.Button("Photo from the canvas", variant="primary", elem_id="canvas-btn")
                    upload = PhotoInput(sources=["upload"], type="filepath", image_mode=None,
                                        label="…or upload a drawing", elem_id="sketch-in")
                    upload_btn = gr.Button("Photo from the upload", elem_id="upload-btn")
                photo_out = gr.Image(type="pil", format="png", label="Photo", buttons=["download"],
                                     interactive=False, elem_id="photo-out")
            gr.Examples([[p] for p in sketches], inputs=[upload], cache_examples=False, label="Sketches")
            canvas_btn.click(app.sketch_to_photo, [pad, model], photo_out, api_name="canvas_to_photo",
                             concurrency_limit=2)
            upload_btn.click(app.sketch_to_photo, [upload, model], photo_out, api_name="sketch_to_photo",
                             concurrency_limit=2)
        with gr.Tab("Models") as models_tab:
            report = gr.Markdown("Open this tab to see which generator each engine uses.")
            refresh = gr.Button("Refresh")
            models_tab.select(app.models_report, None, report, api_name="models")
            refresh.click(app.models_report, None, report, api_visibility="private")
    demo.loomis = app   # the shared state, for tests and scripts
    return demo


if __name__ == "__main__":
    from loomis.landmarker import LandmarkerModelError, model_path

    try:        # found (or fetched) before the page opens, not on the first request
        model_path()
    except LandmarkerModelError as exc:
        raise SystemExit(f"error: {exc}") from None
    build_app().launch(server_name=os.environ.get("GRADIO_SERVER_NAME"),
                       server_port=int(os.environ["GRADIO_SERVER_PORT"]) if os.environ.get("GRADIO_SERVER_PORT") else None)
