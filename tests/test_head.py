"""The Loomis construction: the geometry checks of loomis-geometry.md, and its drawing."""
import math

import numpy as np
import pytest
from PIL import Image

from loomis.camera import Camera, HeadPose
from loomis.draw import DrawStyle, draw_strokes
from loomis.head import (LoomisProportions, StrokeKinds, construction_lines,
                         construction_points)

PROP = LoomisProportions()
D = PROP.side_offset


def ortho(size=400, focal=400.0, depth=12.0):
    return Camera(size, size, focal, orthographic=True, weak_depth=depth)


def persp(size=400):
    return Camera.from_fov(size, size, 30.0)


def by_kind(strokes, kind):
    return [s for s in strokes if s.kind == kind]


def all_points(strokes, kind):
    return np.concatenate([s.points for s in by_kind(strokes, kind)])


def test_side_circles_have_radius_one_unit_and_meet_hairline_and_nose_line():
    assert D == pytest.approx(math.sqrt(PROP.radius ** 2 - 1))
    assert 0.65 < D / PROP.radius < 0.75
    pts = construction_points(PROP)
    # The top and bottom of a side circle lie on the ball, on the hairline and nose line.
    assert np.linalg.norm([D, PROP.hairline_y, 0]) == pytest.approx(PROP.radius)
    assert pts["brow"][2] == pytest.approx(PROP.radius)       # the ball's front touches the brow
    assert pts["nose"][1] == -1 and pts["chin"][1] == -2 and pts["brow"][1] == 0
    assert pts["eye_left"][0] > 0 > pts["eye_right"][0]      # subject's left is +x


@pytest.mark.parametrize("camera", [ortho(), persp()], ids=["weak", "perspective"])
def test_front_view_centre_line_vertical_through_ball_centre_and_brow_horizontal(camera):
    pose = HeadPose(0, 0, 0, scale=1.0, position=(0.0, 0.0, -12.0))
    strokes = construction_lines(pose, camera)
    cx, cy = camera.principal_point          # the ball centre projects here
    centre = all_points(strokes, "center")
    assert np.abs(centre[:, 0] - cx).max() < 1e-9
    assert centre[:, 1].min() < cy < centre[:, 1].max()      # it runs through the centre
    brow = all_points(strokes, "brow")
    assert np.abs(brow[:, 1] - cy).max() < 1e-9
    assert np.ptp(brow[:, 0]) > 50                              # a real segment, not a dot


def test_front_view_side_ellipses_collapse_to_vertical_segments_at_plus_minus_d():
    cam = ortho()
    pose = HeadPose(0, 0, 0, scale=1.0, position=(0.0, 0.0, -12.0))
    sides = by_kind(construction_lines(pose, cam), "side_plane")
    assert len(sides) == 2
    k = cam.focal / cam.weak_depth
    xs = sorted(float(np.mean(s.points[:, 0])) for s in sides)
    assert xs == pytest.approx([200 - k * D, 200 + k * D], abs=1e-9)
    for s in sides:
        assert np.ptp(s.points[:, 0]) < 1e-9                    # no width: a segment
        assert np.ptp(s.points[:, 1]) == pytest.approx(2 * k, rel=1e-3)   # 2u tall


def test_yaw_90_near_side_circle_is_full_circle_of_radius_u_and_centre_line_is_silhouette():
    cam = ortho()
    k = cam.focal / cam.weak_depth
    strokes = construction_lines(HeadPose(90, 0, 0, position=(0.0, 0.0, -12.0)), cam)
    near = [s for s in by_kind(strokes, "side_plane") if s.visible.all()]
    far = [s for s in by_kind(strokes, "side_plane") if not s.visible.any()]
    assert len(near) == 1 and len(far) == 1
    r = np.linalg.norm(near[0].points - [200, 200], axis=1)
    assert r == pytest.approx(np.full(len(r), k), rel=1e-9)
    ball_part = by_kind(strokes, "center")[0]                    # the great circle x = 0
    dist = np.linalg.norm(ball_part.points - [200, 200], axis=1)
    assert dist == pytest.approx(np.full(len(dist), k * PROP.radius), rel=1e-9)
    outline = by_kind(strokes, "ball")[0]
    assert np.linalg.norm(outline.points - [200, 200], axis=1) == pytest.approx(
        np.full(len(outline.points), k * PROP.radius), rel=1e-9)


def _nearest(a, b):
    """For every point of a, the distance to the nearest point of b."""
    return np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)).min(1)


@pytest.mark.parametrize("camera", [ortho(), persp()], ids=["weak", "perspective"])
def test_mirrored_pose_mirrors_the_drawing(camera):
    pose = HeadPose(35, 12, 17, scale=1.1, position=(0.0, 0.4, -13.0))
    a = construction_lines(pose, camera, samples=720)
    b = construction_lines(pose.mirrored(), camera, samples=720)
    cx = camera.principal_point[0]
    for kind in StrokeKinds:
        pa, pb = all_points(a, kind), all_points(b, kind)
        mirrored = pa * [-1, 1] + [2 * cx, 0]
        tol = 0.05 if kind == "ball" else 1e-6     # the outline is sampled from another start
        assert _nearest(mirrored, pb).max() < tol, kind
        va = np.concatenate([s.visible for s in by_kind(a, kind)])
        assert va.mean() == pytest.approx(
            np.concatenate([s.visible for s in by_kind(b, kind)]).mean(), abs=0.01), kind


@pytest.mark.parametrize("theta", [30.0, -55.0])
def test_roll_rotates_the_whole_drawing(theta):
    cam = persp()
    base = HeadPose(25, -15, 0, position=(0.0, 0.0, -12.0))
    a = construction_lines(base, cam, samples=720)
    b = construction_lines(HeadPose(25, -15, theta, position=(0.0, 0.0, -12.0)), cam, samples=720)
    c, s = math.cos(math.radians(theta)), math.sin(math.radians(theta))
    # Counter-clockwise on screen, with the image's y axis pointing down.
    rot = np.array([[c, s], [-s, c]])
    for kind in StrokeKinds:
        pa = (all_points(a, kind) - 200) @ rot.T + 200
        tol = 0.05 if kind == "ball" else 1e-6
        assert _nearest(pa, all_points(b, kind)).max() < tol, kind


def test_lines_on_the_far_side_are_flagged_hidden():
    strokes = construction_lines(HeadPose(0, 0, 0), persp())
    brow = by_kind(strokes, "brow")[0]
    assert brow.visible.any() and not brow.visible.all()        # back half of the equator
    assert all(s.visible.all() for s in by_kind(strokes, "eye"))
    assert by_kind(strokes, "ball")[0].visible.all()


def test_bad_input_is_rejected_with_a_message():
    with pytest.raises(ValueError, match="in front of the camera"):
        construction_lines(HeadPose(position=(0, 0, -2.0)), persp())
    with pytest.raises(ValueError, match="unknown stroke kinds"):
        construction_lines(HeadPose(), persp(), kinds=["nose", "halo"])
    with pytest.raises(ValueError, match="radius"):
        LoomisProportions(radius=0.9)
    only = construction_lines(HeadPose(), persp(), kinds=["nose", "chin"])
    assert {s.kind for s in only} == {"nose", "chin"}


# ----------------------------------------------------------------------------- drawing

def _ink(img, paper=255):
    return (np.asarray(img.convert("L")).astype(int) < paper - 40)


def test_drawing_puts_dark_lines_on_white_paper_where_the_strokes_are():
    cam = persp(256)
    strokes = construction_lines(HeadPose(20, 10, 0), cam)
    img = draw_strokes(strokes, (256, 256), DrawStyle(hidden="omit"))
    assert img.size == (256, 256) and img.mode == "RGB"
    arr = np.asarray(img)
    assert (arr[0, 0] == 255).all()                             # untouched paper
    ink = _ink(img)
    assert 0.01 < ink.mean() < 0.2
    # Every visible stroke point has ink within 1.5 px.
    ys, xs = np.nonzero(ink)
    inked = np.stack([xs, ys], 1).astype(float)
    pts = np.concatenate([s.points[s.visible] for s in strokes])
    pts = pts[(pts >= 2).all(1) & (pts < 254).all(1)]
    assert _nearest(pts[::7], inked).max() < 1.5


def test_hidden_modes_and_overlay_on_a_photo():
    cam = persp(256)
    strokes = construction_lines(HeadPose(40, 0, 0), cam)
    counts = {m: _ink(draw_strokes(strokes, (256, 256), DrawStyle(hidden=m)), 255).sum()
              for m in ("omit", "dashed")}
    faint = np.asarray(draw_strokes(strokes, (256, 256), DrawStyle(hidden="faint")).convert("L"))
    assert counts["omit"] < counts["dashed"]
    assert ((faint > 120) & (faint < 230)).sum() > 200          # light grey far-side lines
    photo = Image.new("RGB", (256, 256), (90, 140, 200))
    before = photo.tobytes()
    out = draw_strokes(strokes, photo, DrawStyle(color=(255, 0, 0)))
    assert photo.tobytes() == before                            # the photo is not modified
    arr = np.asarray(out).astype(int)
    assert ((arr[..., 0] > 200) & (arr[..., 2] < 120)).sum() > 300   # red ink on blue


def test_sketchy_style_is_seeded_and_stays_on_the_construction():
    cam = persp(256)
    strokes = construction_lines(HeadPose(-30, 15, 5), cam)
    a = draw_strokes(strokes, (256, 256), DrawStyle(sketchy=True, seed=3, hidden="omit"))
    b = draw_strokes(strokes, (256, 256), DrawStyle(sketchy=True, seed=3, hidden="omit"))
    c = draw_strokes(strokes, (256, 256), DrawStyle(sketchy=True, seed=4, hidden="omit"))
    clean = draw_strokes(strokes, (256, 256), DrawStyle(hidden="omit"))
    assert a.tobytes() == b.tobytes() and a.tobytes() != c.tobytes()
    assert a.tobytes() != clean.tobytes()
    ys, xs = np.nonzero(_ink(a))
    cy, cx = np.nonzero(_ink(clean))
    d = _nearest(np.stack([xs, ys], 1)[::5].astype(float), np.stack([cx, cy], 1).astype(float))
    assert np.percentile(d, 95) < 5.0                            # wobble, not a new drawing
    assert d.max() > 1.0                                         # ... but it does wobble


def test_draw_style_rejects_bad_values():
    with pytest.raises(ValueError, match="hidden"):
        DrawStyle(hidden="dotted")
    with pytest.raises(ValueError, match="width"):
        DrawStyle(width=-1)
    with pytest.raises(ValueError, match="color"):
        DrawStyle(color=(0, 0, 300))
    with pytest.raises(ValueError, match="canvas"):
        draw_strokes([], "big")
