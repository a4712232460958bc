"""Fixtures shared across test files: one real MediaPipe estimator and a real photo."""
from __future__ import annotations

import os

import pytest
from PIL import Image

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


@pytest.fixture(scope="session")
def estimator():
    """One photo-mode PoseEstimator for the whole run (its FaceMesh is slow to build)."""
    from loomis.pose import PoseEstimator

    with PoseEstimator() as est:
        yield est


@pytest.fixture(scope="session")
def astronaut() -> Image.Image:
    """scikit-image's bundled astronaut photo: a real, near-frontal face, available offline."""
    skimage_data = pytest.importorskip("skimage.data")
    return Image.fromarray(skimage_data.astronaut())
