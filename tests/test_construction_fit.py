"""Fitting the 3D construction to a drawing: the pose comes back from a drawing made at a
known pose, mirrors and scales as the drawing does, and bad input gets a clear error."""
import math
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image, ImageOps

from loomis.camera import Camera, HeadPose
from loomis.construction_fit import EmptyDrawingError, FitConfig, fit_construction, nelder_mead
from loomis.head import ConstructionModel, construction_lines
from loomis.train.metrics import line_scores
from loomis.train.synthetic import render_drawing, scene

# Scenes of the training seed (1) the tests see: clean lines ("sketchy" off) at a
# three-quarter turn tilted down, a near-frontal head tilted up and rolled, a profile.
POSES = [(20.0, -15.0, 5.0), (-8.0, 18.0, -12.0), (75.0, 5.0, 0.0)]


def drawing_at(yaw: float, pitch: float, roll: float, fov: float = 30.0) -> tuple:
    """A clean construction drawing of scene(1, 0)'s framing at the given angles."""
    s = scene(1, 0)
    pose = replace(s.pose, yaw=yaw, pitch=pitch, roll=roll)
    params = replace(s, pose=pose, sketchy=False, hidden="omit", fov=fov)
    return render_drawing(params), params


@pytest.mark.parametrize("angles", POSES)
def test_fit_recovers_the_pose_a_drawing_was_made_in(angles):
    drawing, params = drawing_at(*angles)
    fit = fit_construction(drawing)
    found = np.array([fit.pose.yaw, fit.pose.pitch, fit.pose.roll])
    # the scene's own proportions differ from the fit's default ones: a few degrees
    assert np.abs(found - np.array(angles)).max() < 4.0, found
    assert line_scores(fit.draw(), drawing)["f1"] > 0.8
    assert fit.camera.width == fit.camera.height == 256 and 0 < fit.cost < 3


def test_a_mirrored_drawing_fits_the_mirrored_pose():
    drawing, _ = drawing_at(*POSES[0])
    a = fit_construction(drawing)
    b = fit_construction(ImageOps.mirror(drawing))
    assert abs(a.pose.yaw + b.pose.yaw) < 2.5 and abs(a.pose.roll + b.pose.roll) < 2.5
    assert abs(a.pose.pitch - b.pose.pitch) < 2.5


def test_a_larger_non_square_drawing_is_fitted_at_its_own_size():
    drawing, _ = drawing_at(*POSES[0])
    wide = Image.new("RGB", (768, 512), "white")
    wide.paste(drawing.resize((512, 512), Image.BICUBIC), (128, 0))
    fit = fit_construction(wide)
    assert (fit.camera.width, fit.camera.height) == (768, 512)
    out = fit.draw()
    assert out.size == (768, 512)
    # the redrawn construction lies on the drawing's lines (tolerance scaled with the size)
    assert line_scores(out, wide, tolerance=4.0)["f1"] > 0.75


def test_fitted_lines_can_go_over_a_photo():
    drawing, _ = drawing_at(*POSES[1])
    photo = Image.new("RGB", drawing.size, (90, 140, 200))
    out = fit_construction(drawing).draw(canvas=photo)
    assert out.size == photo.size
    changed = (np.asarray(out) != np.asarray(photo)).any(-1)
    assert 0.01 < changed.mean() < 0.3


def test_an_empty_or_unreadable_drawing_is_refused_with_a_reason():
    with pytest.raises(EmptyDrawingError, match="line pixels"):
        fit_construction(Image.new("RGB", (256, 256), "white"))
    with pytest.raises(ValueError, match="work_size"):
        FitConfig(work_size=16)
    with pytest.raises(ValueError, match="starts"):
        FitConfig(starts=0)


def test_nelder_mead_finds_the_minimum_of_a_curved_valley():
    def rosenbrock(x):
        return float((1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2)

    x, value, evals = nelder_mead(rosenbrock, np.array([-1.2, 1.0]), np.array([0.5, 0.5]),
                                  max_evals=2000, xtol=1e-6, ftol=1e-12)
    assert np.allclose(x, [1.0, 1.0], atol=1e-3) and value < 1e-6 and evals <= 2000


def test_visible_segments_are_the_visible_parts_of_the_strokes():
    """The fit's fast projection draws exactly the strokes construction_lines returns."""
    camera = Camera.from_fov(256, 256, 30.0)
    pose = HeadPose(35.0, -10.0, 8.0, 1.0, (0.2, 0.3, -9.0))
    segments = ConstructionModel(samples=48).visible_segments(pose, camera)
    expected = []
    for s in construction_lines(pose, camera, samples=48):
        pts, vis = s.points, s.visible
        if s.closed:
            pts, vis = np.vstack([pts, pts[:1]]), np.concatenate([vis, vis[:1]])
        keep = vis[:-1] & vis[1:]
        expected += [seg for seg in np.stack([pts[:-1], pts[1:]], 1)[keep]]
    key = lambda a: sorted(map(tuple, np.round(a.reshape(len(a), 4), 6)))  # noqa: E731
    assert key(segments) == key(np.array(expected))
    assert math.isclose(len(segments), len(expected))


def test_a_drawing_in_an_off_centre_crop_camera_is_fitted_in_that_camera():
    """A face cut out of a larger photo: the crop's camera (principal point off the
    crop's centre) is handed in, so a pose measured in the photo carries over; started
    off the truth, the fit lands on it and redraws the lines where they are."""
    from loomis.draw import DrawStyle, draw_strokes

    cam = Camera(200, 200, 380.0, cx=40.0, cy=80.0)      # the photo's centre: up and left
    truth = HeadPose(15.0, -8.0, 4.0, 1.0, (1.6, -0.9, -14.0))
    drawing = draw_strokes(construction_lines(truth, cam), Image.new("RGB", (200, 200), "white"),
                           DrawStyle(hidden="omit"))
    off = HeadPose(20.0, -4.0, 1.0, 1.0, (1.75, -0.8, -14.8))
    fit = fit_construction(drawing, camera=cam, start=off)
    assert fit.camera is cam
    found = np.array([fit.pose.yaw, fit.pose.pitch, fit.pose.roll])
    assert np.abs(found - [15.0, -8.0, 4.0]).max() < 3.0, found
    assert np.abs(np.subtract(fit.pose.position, truth.position)).max() < 0.3
    assert line_scores(fit.draw(), drawing)["f1"] > 0.9
    with pytest.raises(ValueError, match="camera is 200x200"):
        fit_construction(drawing.resize((100, 100)), camera=cam, start=off)
