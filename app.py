"""Loomis in the browser: photo → Loomis construction drawing (also step by step and as
SVG), sketch → photo, and the models.

``python app.py`` serves it (GRADIO_SERVER_NAME / GRADIO_SERVER_PORT are honoured, as on a
Hugging Face Space), with its named endpoints also served as MCP tools. The page is thin
on purpose: every picture goes through the public API (:mod:`loomis`, then
:mod:`loomis.pipeline`), and the steps and SVG come from :mod:`loomis.steps` and
:mod:`loomis.svg`. Heavy modules are imported on first use; the face model is loaded in
the background at start, so the first answer comes quickly.

Endpoints usable from ``gradio_client`` and MCP: ``/photo_to_drawing``, ``/heads``,
``/steps``, ``/svg``, ``/sketch_to_photo`` and ``/canvas_to_photo``; every parameter after
the image has a default.
"""
from __future__ import annotations

import collections
import dataclasses
import logging
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

import gradio as gr
from PIL import Image

from loomis import sample_data
from loomis.smoothing import PoseTracker

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE / "examples"
MAX_SIDE = 2048          # larger photos are scaled down first: the lines do not need more
MIN_SIDE = 16            # smaller pictures hold no face to draw
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
#: Drawings kept per server so that the steps and the SVG of the drawing just made are
#: not drawn again.
KEEP_DRAWINGS = 16
#: Files the app writes (steps, SVG) and uploads are deleted after this many seconds.
FILE_LIFETIME = 3600
#: Every endpoint that draws or translates shares these workers: the worst request
#: (a 2048-px photo through a generator) times this many fits a 16 GB Space with room.
WORKERS = 2
WORK = {"concurrency_limit": WORKERS, "concurrency_id": "work"}
#: Requests waiting beyond this many are told the app is busy, rather than piling up.
MAX_QUEUE = 64
#: The largest upload accepted.
MAX_UPLOAD = "20mb"


LOG = logging.getLogger("loomis.app")


def user_error(message: str) -> gr.Error:
    """An error the user can act on: shown for a while, logged as one line (a fault of
    the app's own is logged with its traceback, by Gradio)."""
    LOG.warning("refused: %s", message)
    return gr.Error(message, duration=12, print_exception=False)


class PhotoInput(gr.Image):
    """``gr.Image`` that hands an upload's file to :func:`loomis.imageio.load_image`
    undecoded, so the input guard sees its size before any pixel is decoded."""

    @classmethod
    def get_block_name(cls) -> str:   # rendered by the page as a plain Image
        return "image"

    def preprocess(self, payload):
        if payload is None or not (payload.url or "").startswith("data:"):
            return None if payload is None else payload.path
        try:                          # a webcam shot or a data URL: Gradio decodes it
            return super().preprocess(payload)
        except gr.Error:
            raise
        except Exception:
            raise user_error("That picture could not be read. Upload a PNG, JPEG or WebP "
                             "picture.") from None


class CanvasInput(gr.Sketchpad):
    """``gr.Sketchpad`` whose pictures reach :mod:`loomis.canvas` undecoded (upload paths
    or the browser's bytes), so the input guard sees them before any pixel is decoded."""

    @classmethod
    def get_block_name(cls) -> str:
        return "imageeditor"

    def preprocess(self, payload):
        if payload is None:
            return None
        data = payload
        if payload.id is not None:
            data = self.blob_storage.pop(payload.id, None) or payload
        raw = lambda part: getattr(part, "path", part)  # noqa: E731  (FileData → its path)
        return {"background": raw(data.background), "layers": [raw(x) for x in (data.layers or [])],
                "composite": raw(data.composite)}


class LoomisApp:
    """The app's shared state: one model registry, two pose estimators (photos, stream)
    and the last drawings made, created on first use and shared by every request."""

    def __init__(self) -> None:
        from loomis.registry import ModelRegistry
        self.registry = ModelRegistry()
        self._lock = threading.Lock()
        self._photo_estimator = None
        self._stream_estimator = None
        self._drawings: collections.OrderedDict = collections.OrderedDict()
        self._files = Path(tempfile.mkdtemp(prefix="loomis-app-"))
        self._pruned = 0.0

    def estimator(self, stream: bool):
        with self._lock:
            if stream and self._stream_estimator is None:
                from loomis.pose import PoseEstimator
                self._stream_estimator = PoseEstimator(static_image_mode=False)
            if not stream and self._photo_estimator is None:
                from loomis.pose import PoseEstimator
                self._photo_estimator = PoseEstimator(static_image_mode=True)
            return self._stream_estimator if stream else self._photo_estimator

    def warm_up(self) -> None:
        """Load the face model and read one face, so the first visitor does not wait."""
        portraits = real_portraits()
        if portraits:
            try:
                self._drawing(portraits[0], DEFAULT_PHOTO_ENGINE)
            except gr.Error:
                pass

    # -- inputs ---------------------------------------------------------------------
    @staticmethod
    def _load(image, what: str) -> tuple[Image.Image, float]:
        """The picture, scaled down to at most MAX_SIDE, and the factor from its pixels
        back to the input's."""
        from loomis.imageio import ImageError, load_image_with_size
        if image is None:
            raise user_error(f"No {what} yet: upload one (or pick an example) first.")
        try:
            img, (w, h) = load_image_with_size(image, max_side=MAX_SIDE, min_size=MIN_SIDE)
        except ImageError as exc:
            raise user_error(f"Cannot use this {what}: {exc}") from None
        if img.size != (w, h):
            gr.Info(f"The {what} is {w}×{h}; it was scaled to {img.size[0]}×{img.size[1]} first.")
        return img, w / img.size[0]

    # -- the drawing ------------------------------------------------------------------
    def _drawing(self, image, engine: str, background: str = "paper", line_weight: float = 0,
                 hidden: str = "dashed", features: bool = False, fit: bool = True,
                 own_proportions: bool = True, whole_photo: bool = False):
        """The pipeline's :class:`loomis.pipeline.Drawing` of a photo (scaled down when
        large) and the factor back to the photo's pixels; the last few are kept, so the
        steps and SVG of the drawing just shown are not drawn again. Errors as messages."""
        if engine not in PHOTO_ENGINES:
            raise user_error(f"Unknown engine {engine!r}; choose one of {', '.join(PHOTO_ENGINES)}.")
        if not isinstance(line_weight, (int, float)) or not 0 <= line_weight <= 20:
            raise user_error("The line weight must be a number from 0 (automatic) to 20 pixels.")
        options = dict(background=background, hidden=hidden, features=bool(features),
                       fit=bool(fit), own_proportions=bool(own_proportions),
                       framing="photo" if whole_photo else "auto")
        key = None
        if isinstance(image, str) and os.path.isfile(image):
            st = os.stat(image)
            key = (image, st.st_size, st.st_mtime_ns, engine, float(line_weight),
                   *sorted(options.items()))
            with self._lock:
                if key in self._drawings:
                    self._drawings.move_to_end(key)
                    return self._drawings[key]
        img, back = self._load(image, "photo")
        import loomis
        from loomis.engine import GRAPHITE, INK
        from loomis.pose import NoFaceError
        from loomis.registry import ModelUnavailable
        style = None
        if line_weight:
            style = dataclasses.replace(GRAPHITE if background == "paper" else INK,
                                        width=float(line_weight))
        try:
            made = loomis.photo_to_drawing(img, PHOTO_ENGINES[engine], models=self.registry,
                                           estimator=self.estimator(False), style=style,
                                           **options), back
        except NoFaceError as exc:
            raise user_error(f"No face found: {exc}") from None
        except (ModelUnavailable, ValueError) as exc:
            raise user_error(str(exc)) from None
        if key is not None:
            with self._lock:
                self._drawings[key] = made
                while len(self._drawings) > KEEP_DRAWINGS:
                    self._drawings.popitem(last=False)
        return made

    def _file(self, name: str, data: bytes | str | Image.Image) -> str:
        """``data`` (bytes, text, or a picture as PNG) written to a fresh folder as
        ``name``, the name a download gets. Pictures leave as files rather than images:
        Gradio copies a file into its cache under a new name and renames it into place,
        while it rewrites an image's cache file in place, and two visitors sent the
        same picture at once could be served the half-written file."""
        self._prune()
        folder = Path(tempfile.mkdtemp(dir=self._files))
        path = folder / name
        if isinstance(data, Image.Image):
            data.save(path, format="PNG")
        else:
            path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
        return str(path)

    def _prune(self, every: float = 60.0) -> None:
        """Delete the files this app wrote more than FILE_LIFETIME seconds ago (Gradio
        serves its own copies), looking at most once a minute."""
        now = time.time()
        with self._lock:
            if now - self._pruned < every:
                return
            self._pruned = now
        for folder in self._files.iterdir():
            try:
                if now - folder.stat().st_mtime > FILE_LIFETIME:
                    shutil.rmtree(folder, ignore_errors=True)
            except OSError:
                pass

    def _steps(self, steps) -> list[tuple[str, str]]:
        return [(self._file(f"step-{s.number}.png", s.image), s.caption) for s in steps]

    # -- endpoints --------------------------------------------------------------------
    def photo_to_drawing(self, image, engine: str = DEFAULT_PHOTO_ENGINE, background: str = "paper",
                         line_weight: float = 0, hidden: str = "dashed", features: bool = False,
                         fit: bool = True, own_proportions: bool = True,
                         whole_photo: bool = False) -> str:
        """Draw the Andrew Loomis head construction (ball, side plane, centre, brow, nose and
        chin lines, jaw, ear) of every face in a portrait photo, each in its own pose.

        Args:
            image: the portrait photo (PNG, JPEG or WebP) with one or more faces.
            engine: "Geometric engine" (reads each face's pose and draws the 3D construction;
                the default and most accurate), "pix2pix" or the CycleGAN engine (learned
                models; the construction is fitted to their lines).
            background: "paper" (the construction alone), "faded", "pencil" or "photo".
            line_weight: line width in pixels; 0 picks one from the face's size.
            hidden: how the far side's lines are drawn: "dashed", "faint" or "omit".
            features: also sketch the face's own eyes, brows, nose, mouth and jaw.
            fit: learned engines only: fit the 3D construction to the model's lines (off:
                the model's raw drawing).
            own_proportions: the construction follows this face's thirds and width (off:
                Loomis's canonical proportions).
            whole_photo: on paper, keep the photo's whole frame instead of cropping to the heads.

        Returns:
            The construction drawing as a PNG image.
        """
        drawing = self._drawing(image, engine, background, line_weight, hidden, features, fit,
                                own_proportions, whole_photo)[0]
        return self._file("loomis-drawing.png", drawing.image)

    def heads(self, image, engine: str = DEFAULT_PHOTO_ENGINE) -> dict:
        """Read the head constructions of a portrait photo as numbers: where each head is,
        how it is turned, and how its proportions depart from Loomis's canon.

        Args:
            image: the portrait photo with one or more faces.
            engine: "Geometric engine" (default), "pix2pix" or the CycleGAN engine.

        Returns:
            One entry per head, largest first: box [x0, y0, x1, y1] and ball_center in the photo's pixels (x right, y down), ball_radius, yaw / pitch / roll in degrees relative to the line of sight (yaw > 0 turned to the picture's right, pitch > 0 tilted up, roll > 0 counter-clockwise), and proportions: the middle third, lower third and width as ratios to Loomis's canon, with notes.
        """
        drawing, back = self._drawing(image, engine, whole_photo=True)
        return {"engine": engine, "heads": [h.scaled(back).to_json() for h in drawing.heads]}

    def steps(self, image, engine: str = DEFAULT_PHOTO_ENGINE, background: str = "paper",
              features: bool = True, own_proportions: bool = True):
        """Draw a portrait's Loomis head construction step by step, in the order an artist
        draws it: the ball, the side plane, the centre line, the brow line, the nose and
        chin lines, the jaw, the ear, then the features.

        Args:
            image: the portrait photo with one or more faces.
            engine: "Geometric engine" (default), "pix2pix" or the CycleGAN engine.
            background: "paper" (default), "faded", "pencil" or "photo".
            features: end with the face's own features (default on).
            own_proportions: follow this face's proportions (off: Loomis's canon).

        Returns:
            The steps as captioned images, and the same as an animated GIF file.
        """
        from loomis.steps import construction_steps, steps_gif
        drawing, _ = self._drawing(image, engine, background, features=features,
                                   own_proportions=own_proportions)
        try:
            steps = construction_steps(drawing)
        except ValueError as exc:
            raise user_error(str(exc)) from None
        return self._steps(steps), self._file("loomis-steps.gif", steps_gif(steps))

    def svg(self, image, engine: str = DEFAULT_PHOTO_ENGINE, background: str = "paper",
            features: bool = False, own_proportions: bool = True, whole_photo: bool = False,
            embed_photo: bool = True) -> str:
        """A portrait's Loomis head construction as an SVG file with layers: visible lines,
        hidden lines and features, over the photo (embedded) or white paper, in the
        photo's pixel coordinates.

        Args:
            image: the portrait photo with one or more faces.
            engine: "Geometric engine" (default), "pix2pix" or the CycleGAN engine.
            background: "paper" (default), "faded", "pencil" or "photo".
            features: add the face's own features as a layer.
            own_proportions: follow this face's proportions (off: Loomis's canon).
            whole_photo: on paper, keep the photo's whole frame instead of cropping to the heads.
            embed_photo: embed the surface drawn on (the photo, faded or pencil) when it
                is not blank paper.

        Returns:
            The path of the SVG file.
        """
        from loomis.svg import drawing_svg
        drawing, _ = self._drawing(image, engine, background, features=features,
                                   own_proportions=own_proportions, whole_photo=whole_photo)
        if not drawing.strokes:
            raise user_error("This drawing has no construction to write as vectors: use the "
                             "geometric engine, or a learned one with the fit on.")
        return self._file("loomis-construction.svg",
                          drawing_svg(drawing, photo=None if embed_photo else False))

    def page(self, image, engine: str = DEFAULT_PHOTO_ENGINE, background: str = "paper",
             line_weight: float = 0, hidden: str = "dashed", features: bool = False,
             fit: bool = True, own_proportions: bool = True, whole_photo: bool = False):
        """Everything the Photo tab shows for one photo: the drawing, how each face
        departs from the canon, the steps with their GIF, and the SVG."""
        from loomis.steps import construction_steps, steps_gif
        from loomis.svg import drawing_svg
        drawing, _ = self._drawing(image, engine, background, line_weight, hidden, features,
                                   fit, own_proportions, whole_photo)
        notes = proportion_notes(drawing.heads, own_proportions)
        picture = self._file("loomis-drawing.png", drawing.image)
        if not drawing.strokes:        # a learned model's raw lines: no construction
            return picture, notes, [], None, None
        steps = construction_steps(drawing)
        return (picture, notes, self._steps(steps),
                self._file("loomis-steps.gif", steps_gif(steps)),
                self._file("loomis-construction.svg", drawing_svg(drawing)))

    def sketch_to_photo(self, drawing, model: str = DEFAULT_SKETCH_ENGINE) -> str:
        """Turn a drawing of a head (a Loomis construction, a sketch, or a scan or phone
        photo of one; dark lines on light paper) into a photo of a head.

        Args:
            drawing: the drawing (PNG, JPEG or WebP).
            model: "pix2pix" (default) or "CycleGAN".

        Returns:
            The made photo, the size of the drawing.
        """
        from loomis.canvas import canvas_to_drawing
        from loomis.imageio import ImageError
        if model not in SKETCH_ENGINES:
            raise user_error(f"Unknown model {model!r}; choose one of {', '.join(SKETCH_ENGINES)}.")
        if isinstance(drawing, dict):
            try:
                img = canvas_to_drawing(drawing, max_side=MAX_SIDE)
            except ImageError as exc:
                raise user_error(f"Nothing to turn into a photo: {exc}.") from None
        else:
            img, _ = self._load(drawing, "drawing")
        import loomis
        from loomis.registry import ModelUnavailable
        try:
            made = loomis.sketch_to_photo(img, SKETCH_ENGINES[model], models=self.registry)
        except ImageError as exc:   # nothing drawn (a blank canvas or upload)
            raise user_error(f"Nothing to turn into a photo: {exc}.") from None
        except ModelUnavailable as exc:
            raise user_error(str(exc)) from None
        return self._file("loomis-photo.png", made)

    def live(self, frame, background: str = "photo", features: bool = False, tracker=None):
        """One webcam frame with the construction on it (never raises: a stream goes on).
        ``tracker`` is the browser session's own PoseTracker (its smoothing state)."""
        from loomis.engine import live_frame
        return live_frame(frame, self.estimator(True), tracker=tracker, background=background,
                          features=bool(features))

    def models_report(self) -> str:
        """Markdown for the Models tab: a line per engine, the details folded."""
        from loomis.registry import card_summary
        parts = []
        for engine in self.registry.engines:
            info = self.registry.info(engine)
            summary = card_summary(info)
            parts += [f"### {engine}", "", summary["line"], ""]
            if summary.get("problem"):
                parts += [f"⚠️ {summary['problem']}", ""]
            details = []
            if info.get("config"):
                details.append("**Config:** " + ", ".join(f"`{k}={v}`" for k, v in info["config"].items()))
            if info.get("metrics"):
                details.append(info["metrics"])
            if details:
                parts += ["<details><summary>Config and measured figures</summary>", "",
                          *details, "", "</details>", ""]
        return "\n".join(parts)


def proportion_notes(heads, own_proportions: bool) -> str:
    """How each drawn face departs from Loomis's canon, as a short markdown list."""
    if not heads:
        return ""
    if not own_proportions:
        return "Drawn with Loomis's canonical proportions for every face."
    lines = ["**This face against Loomis's canon**" if len(heads) == 1 else
             "**These faces against Loomis's canon** (largest first)"]
    for i, head in enumerate(heads, 1):
        who = "" if len(heads) == 1 else f"face {i}: "
        lines.append(f"- {who}" + "; ".join(head.proportions.notes()))
    return "\n".join(lines)


def real_portraits() -> list[str]:
    """Real portrait photos for the examples, from packages the app installs anyway:
    matplotlib's public-domain Grace Hopper (loomis.sample_data: found by path, never
    committed here), and scikit-image's astronaut where it is installed. Empty where the
    packages leave their sample data out."""
    found = [sample_data.grace_hopper(), sample_data.astronaut()]
    return [str(p) for p in found if p]


def build_app(warm: bool = True) -> gr.Blocks:
    """The whole page; launch it with ``.launch()`` (``python app.py`` does). ``warm``
    loads the face model in the background at once."""
    app = LoomisApp()
    if warm:
        threading.Thread(target=app.warm_up, daemon=True).start()
    photos = sorted(str(p) for p in EXAMPLES.glob("photo_*.png") if "_loomis" not in p.name)
    sketches = sorted(str(p) for p in EXAMPLES.glob("sketch_*.png"))
    portraits = real_portraits()
    geometric = DEFAULT_PHOTO_ENGINE
    with gr.Blocks(title="Loomis", delete_cache=(FILE_LIFETIME, FILE_LIFETIME)) as demo:
        gr.Markdown("# Loomis\nA portrait photo → its Andrew Loomis head construction; "
                    "a construction sketch → a photo.")
        with gr.Tab("Photo → Loomis"):
            with gr.Row():
                with gr.Column():
                    photo = PhotoInput(sources=["upload", "webcam"], type="filepath",
                                       image_mode=None, label="Photo", elem_id="photo-in")
                    engine = gr.Radio(list(PHOTO_ENGINES), value=geometric, label="Engine")
                    with gr.Accordion("Options", open=True):
                        background = gr.Dropdown(BACKGROUNDS, value="paper", label="Background")
                        whole = gr.Checkbox(False, label="Keep the whole photo",
                                            info="Off: the paper is cropped to the heads.",
                                            elem_id="whole-photo")
                        own = gr.Checkbox(True, label="Follow this face's proportions",
                                          info="Off: Loomis's canonical thirds and width.",
                                          elem_id="own-proportions")
                        features = gr.Checkbox(False, label="Draw the face's features (eyes, brows, nose, mouth, jaw)")
                        hidden = gr.Radio(HIDDEN, value="dashed", label="Lines on the far side")
                        weight = gr.Slider(0, 8, value=0, step=0.5, label="Line weight (0 = automatic)")
                        fit = gr.Checkbox(True, visible=False, elem_id="fit",
                                          label="Fit the construction to the model's lines",
                                          info="Off: the model's own drawing of each face.")
                    draw_btn = gr.Button("Draw the construction", variant="primary", elem_id="draw-btn")
                with gr.Column():
                    drawing = gr.Image(type="pil", format="png", label="Loomis drawing",
                                       buttons=["download"], interactive=False, elem_id="drawing-out")
                    notes = gr.Markdown(elem_id="notes")
                    with gr.Row():
                        svg_file = gr.File(label="SVG (layers: visible, hidden, features)",
                                           elem_id="svg-out", interactive=False)
                        gif_file = gr.File(label="Steps as an animated GIF", elem_id="gif-out",
                                           interactive=False)
            gallery = gr.Gallery(label="The construction step by step", columns=4,
                                 height="auto", object_fit="contain", elem_id="steps-out",
                                 format="png", render=False)
            page_inputs = [photo, engine, background, weight, hidden, features, fit, own, whole]
            page_outputs = [drawing, notes, gallery, gif_file, svg_file]
            examples = [[p] for p in portraits + photos]
            gr.Examples(examples, inputs=[photo], outputs=page_outputs, fn=app.page,
                        cache_examples=True, cache_mode="lazy",
                        label="Examples: real photos, then the project's rendered heads")
            with gr.Accordion("Step by step", open=True):
                gallery.render()
            engine.change(lambda e: gr.update(visible=e != geometric), engine, fit,
                          api_visibility="private", queue=False)
            background.change(lambda b: gr.update(visible=b == "paper"), background, whole,
                              api_visibility="private", queue=False)
            draw_btn.click(app.page, page_inputs, page_outputs, api_visibility="private",
                           **WORK)
            with gr.Accordion("The heads as numbers (pose, place, size, proportions)", open=False):
                heads_btn = gr.Button("Read the heads", elem_id="heads-btn")
                heads_out = gr.JSON(label="Heads", elem_id="heads-out")
            heads_btn.click(app.heads, [photo, engine], heads_out, api_name="heads",
                            **WORK)
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
            # the named endpoints (API and MCP), each a plain function of a photo
            api_photo = PhotoInput(type="filepath", image_mode=None, visible=False)
            gr.Button(visible=False).click(
                app.photo_to_drawing, [api_photo, engine, background, weight, hidden, features,
                                       fit, own, whole],
                gr.Image(type="pil", format="png", visible=False), api_name="photo_to_drawing",
                **WORK)
            gr.Button(visible=False).click(
                app.steps, [api_photo, engine, background, features, own],
                [gr.Gallery(visible=False, format="png"), gr.File(visible=False)],
                api_name="steps", **WORK)
            gr.Button(visible=False).click(
                app.svg, [api_photo, engine, background, features, own, whole,
                          gr.Checkbox(True, visible=False)],
                gr.File(visible=False), api_name="svg", **WORK)
        with gr.Tab("Sketch → Photo"):
            with gr.Row():
                with gr.Column():
                    pad = CanvasInput(value=Image.new("RGB", CANVAS, "white"), type="numpy",
                                       image_mode="RGBA", canvas_size=CANVAS, fixed_canvas=True,
                                       height=CANVAS[1] + 168, width=CANVAS[0] + 64,
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
            gr.Examples([[p] for p in sketches], inputs=[upload], outputs=[photo_out],
                        fn=app.sketch_to_photo, cache_examples=True, cache_mode="lazy",
                        label="Sketches")
            canvas_btn.click(app.sketch_to_photo, [pad, model], photo_out, api_name="canvas_to_photo",
                             api_visibility="undocumented", **WORK)
            upload_btn.click(app.sketch_to_photo, [upload, model], photo_out, api_name="sketch_to_photo",
                             **WORK)
        with gr.Tab("Models") as models_tab:
            report = gr.Markdown("Open this tab to see which model each engine uses.")
            refresh = gr.Button("Refresh")
            models_tab.select(app.models_report, None, report, api_name="models",
                              api_visibility="private")
            refresh.click(app.models_report, None, report, api_visibility="private")
    demo.queue(max_size=MAX_QUEUE, default_concurrency_limit=WORKERS)
    demo.loomis = app   # the shared state, for tests and scripts
    return demo


if __name__ == "__main__":
    from loomis.landmarker import LandmarkerModelError, model_path
    from loomis.registry import ModelSettingError

    try:        # found (or fetched) before the page opens, not on the first request
        model_path()
        demo = build_app()      # a mistyped LOOMIS_*_MODEL setting stops here
    except (LandmarkerModelError, ModelSettingError) as exc:
        raise SystemExit(f"error: {exc}") from None
    demo.launch(max_file_size=MAX_UPLOAD, server_name=os.environ.get("GRADIO_SERVER_NAME"),
                       server_port=int(os.environ["GRADIO_SERVER_PORT"]) if os.environ.get("GRADIO_SERVER_PORT") else None,
                       mcp_server=True)
