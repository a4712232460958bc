"""Fixtures shared across test files: one real MediaPipe estimator and a real photo."""
from __future__ import annotations

import os

import pytest
from PIL import Image

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


@pytest.fixture(scope="session")
def estimator():
    """One photo-mode PoseEstimator for the whole run (its Face Landmarker is slow to build)."""
    from loomis.pose import PoseEstimator

    with PoseEstimator() as est:
        yield est


@pytest.fixture(scope="session")
def astronaut() -> Image.Image:
    """scikit-image's bundled astronaut photo: a real, near-frontal face, available offline."""
    skimage_data = pytest.importorskip("skimage.data")
    return Image.fromarray(skimage_data.astronaut())


@pytest.fixture(scope="session")
def grace_hopper() -> Image.Image:
    """matplotlib's Grace Hopper (512×600): a real, near-frontal face, available offline."""
    from loomis.sample_data import grace_hopper as path

    if path() is None:
        pytest.skip("matplotlib's sample data (grace_hopper.jpg) is not installed")
    return Image.open(path()).convert("RGB")


@pytest.fixture(scope="session")
def two_faces(astronaut, grace_hopper) -> Image.Image:
    """Two real faces of about the same size side by side, 60 px of grey between them:
    the astronaut on the left (x < 400), Grace Hopper on the right (x > 460)."""
    canvas = Image.new("RGB", (860, 470), (128, 128, 128))
    canvas.paste(astronaut.crop((100, 0, 356, 300)).resize((400, 470), Image.LANCZOS), (0, 0))
    canvas.paste(grace_hopper.crop((60, 0, 460, 470)), (460, 0))
    return canvas
