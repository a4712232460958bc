"""Rendered training pairs: a photo-like head and its Loomis drawing, at any pose.

Why: a hundred hand-made photo/drawing pairs cannot cover the poses a head takes, so a
model trained on them gets the angle wrong. Here one random :class:`SceneParams` (pose,
identity, lighting, camera, background, drawing style) gives both images of a pair from
the same 3D head and the same camera, so the construction lies exactly on the face, in
any number. Everything is drawn from a seeded generator: the same ``(seed, index)``
always gives the same bytes, which is what makes a dataset reproducible and a training
run resumable without writing files first (:class:`SyntheticPairs`).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch
from PIL import Image

from loomis.camera import Camera, HeadPose
from loomis.draw import DrawStyle, draw_strokes
from loomis.head import construction_lines
from loomis.imageio import to_tensor
from loomis.train.render import Background, HeadIdentity, Lighting, render_head

__all__ = ["SceneParams", "PoseRangeError", "POSE_RANGE", "MIN_SIZE", "MAX_SIZE", "scene",
           "render_pair", "render_photo", "render_drawing", "SyntheticPairs", "check_size"]

#: Supported head rotation, degrees: (low, high) per angle. Beyond this the Loomis
#: construction still projects, but the renderer's neck and shoulders do not hold up.
POSE_RANGE = {"yaw": (-90.0, 90.0), "pitch": (-45.0, 45.0), "roll": (-30.0, 30.0)}
MIN_SIZE, MAX_SIZE = 32, 2048


class PoseRangeError(ValueError):
    """A pose outside :data:`POSE_RANGE`."""


def check_size(size: int) -> int:
    """Validate an output size in pixels (square images)."""
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)):
        raise ValueError(f"image size must be a whole number of pixels, got {size!r}")
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise ValueError(f"image size must be between {MIN_SIZE} and {MAX_SIZE} pixels, got {size}")
    return int(size)


def check_pose(pose: HeadPose) -> None:
    for name, value in (("yaw", pose.yaw), ("pitch", pose.pitch), ("roll", pose.roll)):
        lo, hi = POSE_RANGE[name]
        if not (math.isfinite(value) and lo <= value <= hi):
            raise PoseRangeError(f"{name} {value:g}° is outside the supported range "
                                 f"[{lo:g}, {hi:g}]° (supported: yaw ±90, pitch ±45, roll ±30)")


@dataclass(frozen=True)
class SceneParams:
    """Everything that decides one rendered pair (sizes excepted: any size renders it).

    ``fov`` is the camera's horizontal field of view in degrees; the pose's position
    (ball centre in the camera frame) sets the framing and distance. ``sketchy``,
    ``hidden`` and ``draw_seed`` choose the drawing's style.
    """

    pose: HeadPose
    identity: HeadIdentity
    lighting: Lighting
    background: Background
    fov: float = 30.0
    sketchy: bool = False
    hidden: str = "omit"
    draw_seed: int = 0

    def __post_init__(self) -> None:
        check_pose(self.pose)
        if not 5.0 <= self.fov <= 90.0:
            raise ValueError(f"field of view must be in [5, 90] degrees, got {self.fov}")
        DrawStyle(hidden=self.hidden)      # validates the hidden-line mode

    @classmethod
    def sample(cls, rng: np.random.Generator) -> "SceneParams":
        """Random pose within :data:`POSE_RANGE`, identity, light, framing and style."""
        u = rng.uniform
        yaw = float(np.clip(rng.normal(0, 40), *POSE_RANGE["yaw"]))
        pitch = float(np.clip(rng.normal(0, 16), -40, 40))
        roll = float(np.clip(rng.normal(0, 9), -25, 25))
        fov = float(u(18, 45))
        # Distance so the head (about 3.6 units, crown to chin) fills 42-68% of the frame.
        fill = u(0.42, 0.68)
        dist = 3.6 / (2 * math.tan(math.radians(fov) / 2) * fill)
        half = dist * math.tan(math.radians(fov) / 2)
        x = u(-0.08, 0.08) * half
        y = 0.35 + u(-0.06, 0.06) * half           # lift the ball so the face is centred
        pose = HeadPose(yaw, pitch, roll, 1.0, (float(x), float(y), float(-dist)))
        return cls(pose=pose, identity=HeadIdentity.sample(rng), lighting=Lighting.sample(rng),
                   background=Background.sample(rng), fov=fov,
                   sketchy=bool(rng.random() < 0.5),
                   hidden=str(rng.choice(["omit", "faint"], p=[0.6, 0.4])),
                   draw_seed=int(rng.integers(2 ** 31)))

    def with_new_appearance(self, rng: np.random.Generator) -> "SceneParams":
        """The same drawing, another photo: colours, hair, face shape details, light and
        background drawn afresh; pose, proportions, camera and drawing style kept.

        Why: a Loomis construction fixes where the head is and how it turns, not who it
        is or how it is lit. Re-rendering one drawing's scene this way measures how much
        of a photo the drawing cannot decide (benchmarks/quality.py's reference rows).
        """
        identity = replace(HeadIdentity.sample(rng), proportions=self.identity.proportions)
        return replace(self, identity=identity, lighting=Lighting.sample(rng),
                       background=Background.sample(rng))

    def camera(self, size: int) -> Camera:
        return Camera.from_fov(size, size, self.fov)

    def to_dict(self) -> dict:
        """Plain JSON-able values (for metadata.jsonl)."""
        d = asdict(self)
        d["pose"]["position"] = list(self.pose.position)
        return d


def render_photo(params: SceneParams, size: int = 256) -> Image.Image:
    """The photo-like render of a scene, ``size``² RGB.

    Supersampled 1.5x: indistinguishable from 2x after downsampling, and 25% faster.
    """
    size = check_size(size)
    return Image.fromarray(render_head(params.identity, params.pose, params.camera(size),
                                       params.lighting, params.background, supersample=1.5))


def render_drawing(params: SceneParams, size: int = 256) -> Image.Image:
    """The scene's Loomis construction on white paper, ``size``² RGB."""
    size = check_size(size)
    strokes = construction_lines(params.pose, params.camera(size), params.identity.proportions)
    style = DrawStyle(sketchy=params.sketchy, hidden=params.hidden, seed=params.draw_seed)
    return draw_strokes(strokes, (size, size), style)


def render_pair(params: SceneParams, size: int = 256) -> tuple[Image.Image, Image.Image]:
    """``(photo, drawing)`` as RGB images of ``size``², the drawing on white paper, both
    through the same camera so the construction lies on the rendered head."""
    return render_photo(params, size), render_drawing(params, size)


def scene(seed: int, index: int, stream: int = 0) -> SceneParams:
    """The scene of item ``index`` of ``seed``'s stream ``stream`` (independent of any other
    item). Stream 0 is the paired data; other streams give heads unrelated to it."""
    if stream == 0:
        return SceneParams.sample(np.random.default_rng([int(seed), int(index)]))
    return SceneParams.sample(np.random.default_rng([int(seed), int(index), int(stream)]))


class SyntheticPairs(torch.utils.data.Dataset):
    """Pairs rendered on the fly: item ``i`` is ``(photo, drawing)`` tensors ``(3, S, S)``
    in [-1, 1], the same bytes for the same ``(seed, i)`` in any process or order.

    ``direction="BtoA"`` swaps them (drawing first), as a sketch → photo model wants.
    """

    def __init__(self, n: int, size: int = 256, seed: int = 0, direction: str = "AtoB") -> None:
        if n < 1:
            raise ValueError(f"a synthetic dataset needs at least one item, got n={n}")
        if direction not in ("AtoB", "BtoA"):
            raise ValueError(f"direction must be 'AtoB' or 'BtoA', got {direction!r}")
        self.n, self.size, self.seed, self.direction = int(n), check_size(size), int(seed), direction
        self.description = f"{n} synthetic Loomis pairs at {size}px (seed {seed})"

    def __len__(self) -> int:
        return self.n

    def params(self, index: int) -> SceneParams:
        if not 0 <= index < self.n:
            raise IndexError(f"index {index} out of range for {self.n} items")
        return scene(self.seed, index)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        photo, drawing = render_pair(self.params(index), self.size)
        a, b = to_tensor(photo)[0], to_tensor(drawing)[0]
        return (a, b) if self.direction == "AtoB" else (b, a)
