"""Sample files that installed packages ship, found by path without importing them.

Why: the project commits only its own renders, yet a real face is the best test of the
pose engine and the best example in the app. Two packages the project installs anyway
ship one: matplotlib a public-domain portrait of Grace Hopper, Gradio a coloured 3D scan
of a face (a sample asset for its Model3D component). Finding them by path keeps
matplotlib and Gradio out of the import (the app starts faster, the benchmark does not
pull in Gradio), and a package that leaves its sample data out simply yields ``None``.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

__all__ = ["package_file", "grace_hopper", "face_scan"]


def package_file(package: str, *parts: str) -> Path | None:
    """``parts`` joined under an installed package's folder, or None if either is absent."""
    spec = importlib.util.find_spec(package)
    for root in (spec.submodule_search_locations or []) if spec else []:
        path = Path(root).joinpath(*parts)
        if path.is_file():
            return path
    return None


def grace_hopper() -> Path | None:
    """matplotlib's public-domain portrait of Grace Hopper (JPEG, 512×600)."""
    return package_file("matplotlib", "mpl-data", "sample_data", "grace_hopper.jpg")


def astronaut() -> Path | None:
    """scikit-image's public-domain portrait of astronaut Eileen Collins (PNG, 512×512),
    where scikit-image is installed (the development install has it)."""
    return package_file("skimage", "data", "astronaut.png")


def face_scan() -> Path | None:
    """Gradio's 3D scan of a face: a Wavefront OBJ of 845 vertices with per-vertex
    colours, in millimetres, the face looking down -z."""
    return package_file("gradio", "media_assets", "models3d", "face.obj")
