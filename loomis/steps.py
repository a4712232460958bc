"""The construction in the order an artist draws it: a picture per step, and an
animated GIF of them.

Loomis teaches the head as a sequence: the ball, the side plane sliced off it, the centre
line, the brow line, the nose and chin lines, the jaw, the ear, then the features. Each
step here adds its lines to the drawing with the earlier ones kept, paler, so the new
lines stand out; the last step is the finished drawing.
"""
from __future__ import annotations

import dataclasses
import io
from dataclasses import dataclass

from PIL import Image

from loomis.pipeline import Drawing

__all__ = ["STEPS", "Step", "construction_steps", "steps_gif"]

#: (title, stroke kinds it adds) in drawing order; the features step also adds the face's
#: own lines when the drawing has them.
STEPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("The ball", ("ball",)),
    ("The side plane", ("side_plane", "ear_line")),
    ("The centre line", ("center",)),
    ("The brow line and hairline", ("brow", "hairline")),
    ("The nose and chin lines", ("nose", "chin")),
    ("The jaw", ("jaw",)),
    ("The ear", ("ear",)),
    ("The features", ("eye_line", "eye", "mouth")),
)
#: Opacity of the lines drawn in earlier steps.
EARLIER = 0.35


@dataclass(frozen=True)
class Step:
    """One step: its number (from 1), title and picture."""

    number: int
    title: str
    image: Image.Image

    @property
    def caption(self) -> str:
        return f"{self.number}. {self.title}"


def construction_steps(drawing: Drawing) -> list[Step]:
    """The steps of ``drawing``'s construction (see :data:`STEPS`), each framed like
    ``drawing.image``. Raises ValueError for a drawing without a construction (a
    generator's raw lines)."""
    if not drawing.strokes:
        raise ValueError("this drawing has no construction to show step by step: use the "
                         "geometric engine, or a generator with the fit on")
    style = drawing.style
    pale = dataclasses.replace(style, opacity=style.opacity * EARLIER)
    steps, done = [], []
    for number, (title, kinds) in enumerate(STEPS, 1):
        new = [s for s in drawing.strokes if s.kind in kinds]
        last = number == len(STEPS)
        if not new and not last:        # nothing of this step in view
            continue
        if last:        # the finished drawing itself, features and all
            image = drawing.image
        else:
            image = drawing.render(done, [], pale)
            image = _over(drawing, image, new)
        steps.append(Step(len(steps) + 1, title, image))
        done += new
    return steps


def _over(drawing: Drawing, image: Image.Image, strokes) -> Image.Image:
    """``strokes`` drawn in ``drawing``'s style over ``image`` (framed like it)."""
    return dataclasses.replace(drawing, base=image).render(strokes, [])


def steps_gif(steps: list[Step], seconds: float = 1.0, hold: float = 3.0) -> bytes:
    """The steps as a looping animated GIF: ``seconds`` per step, the finished drawing
    held ``hold`` seconds."""
    if not steps:
        raise ValueError("no steps to animate")
    frames = [s.image.convert("RGB") for s in steps]
    durations = [int(seconds * 1000)] * (len(frames) - 1) + [int(hold * 1000)]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:],
                   duration=durations, loop=0, optimize=False)
    return buf.getvalue()
