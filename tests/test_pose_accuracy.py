"""benchmarks/pose_accuracy.py on a user's labelled photos: the path the issue's held-out
real-photo check runs. Per-photo results, missed photos with their reasons, and the
summary per range of yaw."""
import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from loomis import sample_data
from loomis.pose import PoseConfig

pytestmark = pytest.mark.slow      # python -m pytest -m slow (.ci/run runs both)

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "pose_accuracy.py"


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), "--methods", "pnp", "--rerender", "0",
                           *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def labelled_run(tmp_path_factory):
    skimage_data = pytest.importorskip("skimage.data")
    folder = tmp_path_factory.mktemp("labelled")
    face = Image.fromarray(skimage_data.astronaut())
    face.save(folder / "upright.jpg")
    face.rotate(20, resample=Image.Resampling.BICUBIC).save(folder / "turned.png")
    Image.new("RGB", (320, 240), "white").save(folder / "blank.png")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    # Labels as a dataset in radians with the opposite roll sign would give them.
    rows = [("upright.jpg", 0.0, 0.0, 0.0), ("turned.png", 0.0, 0.0, -0.349066),
            ("blank.png", 0.6, 0.0, 0.0), ("broken.jpg", 0.0, 0.0, 0.0),
            ("absent.jpg", 0.0, 0.0, 0.0)]
    labels = folder / "labels.csv"
    with open(labels, "w", newline="") as fh:
        csv.writer(fh).writerows([("filename", "yaw", "pitch", "roll"), *rows])
    out, predictions = folder / "result.json", folder / "predictions.csv"
    proc = _run("--labels", str(labels), "--radians", "--negate", "roll",
                "--predictions", str(predictions), "--save", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(predictions, newline="") as fh:
        return json.loads(out.read_text())["pnp"]["labelled"], list(csv.DictReader(fh))


def test_labelled_photos_give_per_photo_estimates_and_errors(labelled_run):
    summary, rows = labelled_run
    by_name = {Path(r["image"]).name: r for r in rows}
    assert set(by_name) == {"upright.jpg", "turned.png", "blank.png", "broken.jpg", "absent.jpg"}
    upright, turned = by_name["upright.jpg"], by_name["turned.png"]
    assert upright["status"] == turned["status"] == "ok"
    # the labels were converted: radians to degrees, roll's sign flipped
    assert float(turned["label_roll"]) == pytest.approx(20.0, abs=0.01)
    # rotating the photo by 20° turns the estimated roll by 20°
    turn = float(turned["estimate_roll"]) - float(upright["estimate_roll"])
    assert turn == pytest.approx(20, abs=1.5)
    for r in (upright, turned):
        for axis in ("yaw", "pitch", "roll"):
            err = abs(float(r[f"estimate_{axis}"]) - float(r[f"label_{axis}"]))
            assert float(r[f"error_{axis}"]) == pytest.approx(err, abs=0.01)
    assert summary["n"] == 2
    assert summary["mae_roll"] == pytest.approx(
        (float(upright["error_roll"]) + float(turned["error_roll"])) / 2, abs=0.01)


def test_photos_without_a_usable_face_are_counted_missed_with_the_reason(labelled_run):
    summary, rows = labelled_run
    status = {Path(r["image"]).name: r["status"] for r in rows}
    assert status["blank.png"] == "no face"
    assert status["broken.jpg"].startswith("unreadable")
    assert status["absent.jpg"].startswith("unreadable") and "not a file" in status["absent.jpg"]
    assert summary["missed"] == 3
    assert {Path(p).name for p in summary["not_found"]} == {"blank.png", "broken.jpg", "absent.jpg"}
    # the summary per |yaw| range: the blank photo's label (34°) lands in 30-60
    assert summary["by_yaw"]["|yaw| 0-30"]["n"] == 2
    assert summary["by_yaw"]["|yaw| 30-60"] == {"n": 0, "missed": 1}
    assert summary["by_yaw"]["|yaw| 0-60"]["missed"] == 3


@pytest.mark.parametrize("header, message", [
    ("filename,yaw,pitch\n", "missing: roll"),
    ("file,yaw,pitch,roll\n", "missing: filename"),
    ("filename,yaw,pitch,roll\na.jpg,ten,0,0\n", "line 2"),
])
def test_a_malformed_labels_file_stops_with_what_to_fix(tmp_path, header, message):
    labels = tmp_path / "labels.csv"
    labels.write_text(header)
    proc = _run("--labels", str(labels))
    assert proc.returncode != 0
    assert message in proc.stderr and "Traceback" not in proc.stderr


def test_the_joint_fit_reads_pitch_that_2d_landmarks_squeeze(tmp_path):
    """The astronaut's face re-rendered at 40 known poses (|yaw| ≤ 60°, |pitch| ≤ 30°),
    and centred at 10 poses through each of four lenses (5° to 70°): the landmarks' 2D
    positions alone ("pnp") read pitch 0.77 of the truth over the wide range and about a
    degree low on centred faces; with their depth as well (the "joint" fit, the webcam's)
    the estimate follows the true pitch, and yaw and roll stay the 2D fit's."""
    pytest.importorskip("skimage.data")
    out, figure = tmp_path / "result.json", tmp_path / "estimates.png"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--methods", "joint,pnp",
                           "--rerender", "40", "--lens", "10", "--save", str(out),
                           "--plot", str(figure)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    sets = [("rerender", result["joint"]["rerender"], result["pnp"]["rerender"])]
    sets += [(lens, joint, result["pnp"]["lens"][lens])
             for lens, joint in result["joint"]["lens"].items()]
    assert [name for name, *_ in sets] == ["rerender", "5°", "20°", "50°", "70°"]
    for name, joint, pnp in sets:
        # the re-rendered face is a bare mask: at 50-60° of yaw a few are not found
        assert joint["n"] == pnp["n"] >= (36 if name == "rerender" else 10), name
        assert joint["slope_pitch"] - pnp["slope_pitch"] > 0.1, name
        assert abs(joint["mae_yaw"] - pnp["mae_yaw"]) < 0.3, name
        assert abs(joint["mae_roll"] - pnp["mae_roll"]) < 0.3, name
    rerender, lenses = sets[0], sets[1:]
    assert rerender[1]["mae_pitch"] < rerender[2]["mae_pitch"] - 1.0     # 1.8 against 3.6
    # centred faces: the 2D fit reads pitch about a degree low (-1.0 to -1.3 over 10
    # poses per lens); the joint fit's offset is within 1.5° and no squeeze is left
    for name, joint, pnp in lenses:
        assert joint["mae_pitch"] < pnp["mae_pitch"] + 0.3, name
        assert pnp["bias_pitch"] < -0.5 and abs(joint["bias_pitch"]) < 1.5, name
        assert 0.9 < joint["slope_pitch"] < 1.15, name
    # the figure: a row of yaw, pitch and roll panels for each of the two sets
    with Image.open(figure) as png:
        assert png.format == "PNG"
        assert png.height / png.width == pytest.approx(2 * 3.2 / 10.5, rel=0.02)
    # the label-free checks on both real photos hold for the joint fit too
    photos = result["joint"]["symmetry"]
    assert set(photos) == {"astronaut", "grace_hopper"}
    for name, sym in photos.items():
        assert all(abs(a) < 10 for a in sym["estimate"]), name      # both near-frontal
        assert abs(sym["mirror_yaw_sum"]) < 3 and abs(sym["mirror_roll_sum"]) < 2, name
        assert abs(sym["mirror_pitch_diff"]) < 2, name
        # roll follows a turn of the photo to within 0.22° and 0.31° at most (joint fit)
        assert sym["rotation_roll_error_max_abs"] < 1.5, name
        assert sym["rotation_roll_error_mean_abs"] < 0.8, name
        assert sym["rotation_yaw_change_mean_abs"] < 1.5, name
        assert sym["rotation_pitch_change_mean_abs"] < 2.0, name
        # turned by 100-260°, the faces read the right way up (9 of 9 each; few with
        # PoseConfig.upside_down off)
        assert sym["upside_down_turns"] == 9, name
        assert sym["upside_down_read_within_5"] >= 8, name


def test_a_scanned_real_face_reads_within_the_goal_at_known_poses(tmp_path):
    """Gradio's 3D scan of a real face, the one geometry and skin independent of both the
    reference and the procedural heads, rendered at 16 known poses (|yaw| ≤ 60°) bare
    and over a procedural head: every face is found and the default fit stays within the
    issue's 5° per axis (on 200 poses the default reads 3.5 / 3.8 / 0.9° bare, yaw / pitch /
    roll: docs/pose.md)."""
    from benchmarks import pose_accuracy

    if pose_accuracy._face_scan() is None:
        pytest.skip("this Gradio leaves its sample face scan out")
    head, faces, normals, _ = pose_accuracy._face_scan()
    # the scan's frame is the reference's: brow point 1.4 u in front of the ball centre,
    # chin about 2.1 u below it, the face turned towards +z
    profile = head[np.abs(head[:, 0]) < 0.06]
    brow = profile[np.argmin(np.abs(profile[:, 1]))]
    assert brow[2] == pytest.approx(1.4, abs=0.05)
    assert profile[:, 1].min() == pytest.approx(-2.1, abs=0.1)
    assert normals[head[:, 2] > 1.2, 2].mean() > 0.5

    out = tmp_path / "result.json"
    default = PoseConfig().method
    proc = subprocess.run([sys.executable, str(SCRIPT), "--methods", default, "--rerender", "0",
                           "--scan", "16", "--scan-headed", "8", "--save", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())[default]
    for name, n in (("scan", 16), ("scan_headed", 8)):
        within = result[name]["by_yaw"]["|yaw| 0-60"]
        assert result[name]["n"] + result[name]["missed"] == n, name
        assert result[name]["missed"] == 0, name
        assert within["mae_yaw"] < 5 and within["mae_pitch"] < 5 and within["mae_roll"] < 5, name
        assert result[name]["slope_yaw"] > 0.8, name


@pytest.mark.parametrize("which", ["scan", "turns"])
def test_the_engine_sheets_show_its_drawing_with_true_and_read_angles(which):
    """The README's figures: the scanned face at known poses, and Grace Hopper's
    portrait upright and upside down."""
    from benchmarks import contact_sheet, pose_accuracy

    if which == "scan":
        if pose_accuracy._face_scan() is None:
            pytest.skip("this Gradio leaves its sample face scan out")
        sheet = np.asarray(contact_sheet.scan_sheet(n=2, size=120, cols=2))
    else:
        if sample_data.grace_hopper() is None:
            pytest.skip("this matplotlib leaves its Grace Hopper portrait out")
        sheet = np.asarray(contact_sheet.turns_sheet(turns=(0, 180), size=120, cols=2))
    assert sheet.shape == (30 + 120, 2 * 120 + 6, 3)
    for tile in (sheet[30:, :120], sheet[30:, 126:]):
        red = (tile[..., 0] > 150) & (tile[..., 1] < 90) & (tile[..., 2] < 90)
        assert 0.02 < red.mean() < 0.4          # the construction's ink over the face
    caption = sheet[:30, :120]
    assert (caption < 100).any() and ((caption[..., 0] > 150) & (caption[..., 1] < 90)).any()
