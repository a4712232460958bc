"""The procedural head: it renders, it varies, and it sits exactly on the Loomis frame."""
import numpy as np
import pytest

from loomis.camera import Camera, HeadPose
from loomis.head import LoomisProportions, construction_points
from loomis.train.render import Background, HeadIdentity, Lighting, render_head

CAM = Camera.from_fov(128, 128, 30.0)
FLAT = Background("flat", (0.5, 0.6, 0.7))


def project(pose, cam, ident, names):
    pts = construction_points(ident.proportions)
    return {k: cam.project(pose.to_camera(pts[k])) for k in names}


def luminance(img):
    return np.asarray(img, np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)


def test_render_returns_an_rgb_image_and_a_head_mask():
    img, mask = render_head(HeadIdentity(), HeadPose(20, 5, 0, position=(0, 0.3, -11)), CAM,
                            Lighting(), FLAT, return_mask=True)
    assert img.shape == (128, 128, 3) and img.dtype == np.uint8
    assert mask.shape == (128, 128) and mask.dtype == bool
    assert 0.15 < mask.mean() < 0.8
    # Background stays background: the corner has the flat colour (in sRGB).
    assert np.abs(img[2, 2].astype(int) - [128, 153, 179]).max() < 12


@pytest.mark.parametrize("seed", range(6))
def test_construction_points_lie_on_the_rendered_head(seed):
    rng = np.random.default_rng(seed)
    ident = HeadIdentity.sample(rng)
    pose = HeadPose(rng.uniform(-60, 60), rng.uniform(-30, 30), rng.uniform(-20, 20),
                    position=(0, 0.3, -11))
    _, mask = render_head(ident, pose, CAM, Lighting.sample(rng), FLAT, return_mask=True)
    # Chin, brow and nose base are points of the surface (the chin's is on its outline):
    # allow one pixel (0.04 u here).
    near = np.zeros_like(mask)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            near |= np.roll(np.roll(mask, dy, 0), dx, 1)
    for name, (x, y) in project(pose, CAM, ident, ["chin", "nose", "brow", "nose_tip", "mouth",
                                                      "ball_center"]).items():
        assert near[int(round(y)), int(round(x))], f"{name} at ({x:.1f}, {y:.1f}) is off the head"


def test_features_are_where_the_construction_says():
    """Frontal: the eyes are dark (iris and pupil) and the mouth line is dark, compared
    with the skin at the brow point; a profile's nose tip is the face's front edge."""
    cam = Camera.from_fov(192, 192, 30.0)
    ident = HeadIdentity(gaze=(0.0, 0.0))
    pose = HeadPose(0, 0, 0, position=(0, 0.3, -10))
    img = luminance(render_head(ident, pose, cam, Lighting(azimuth=0, elevation=10), FLAT, noise=0))
    pts = project(pose, cam, ident, ["eye_left", "eye_right", "brow", "mouth"])
    bx, by = (int(round(v)) for v in pts["brow"])
    skin = float(np.median(img[by - 1:by + 2, bx - 6:bx + 7]))
    for name in ("eye_left", "eye_right", "mouth"):
        x, y = (int(round(v)) for v in pts[name])
        assert img[y - 1:y + 2, x - 1:x + 2].min() < 0.75 * skin, name
    # Profile facing the image's right: the nose tip is the rightmost head pixel on its row.
    side = HeadPose(90, 0, 0, position=(0, 0.3, -10))
    _, mask = render_head(ident, side, cam, Lighting(), FLAT, return_mask=True, supersample=1)
    x, y = project(side, cam, ident, ["nose_tip"])["nose_tip"]
    row = np.flatnonzero(mask[int(round(y))])
    assert abs(row.max() - x) < 2.5


def test_same_inputs_same_bytes_and_identities_differ():
    rng = np.random.default_rng(7)
    ident, light, bg = HeadIdentity.sample(rng), Lighting.sample(rng), Background.sample(rng)
    pose = HeadPose(-30, 10, 5, position=(0, 0.3, -11))
    a = render_head(ident, pose, CAM, light, bg)
    b = render_head(ident, pose, CAM, light, bg)
    assert a.tobytes() == b.tobytes()
    other = render_head(HeadIdentity.sample(rng), pose, CAM, light, bg)
    assert np.abs(a.astype(int) - other).mean() > 3


def test_sampled_identities_stay_in_human_and_tutorial_ranges():
    rng = np.random.default_rng(0)
    samples = [HeadIdentity.sample(rng) for _ in range(200)]
    ratios = [s.proportions.side_offset / s.proportions.radius for s in samples]
    assert 0.65 <= min(ratios) and max(ratios) <= 0.75
    assert len({s.hair_style for s in samples}) >= 4
    tones = np.array([np.mean(s.skin) for s in samples if not s.mannequin])
    assert tones.min() < 0.35 and tones.max() > 0.75              # dark to light skin
    assert any(s.mannequin for s in samples)


def test_key_light_direction_shows_in_the_shading():
    ident = HeadIdentity(hair_style="none")
    pose = HeadPose(0, 0, 0, position=(0, 0.3, -11))
    left = luminance(render_head(ident, pose, CAM, Lighting(azimuth=-70, elevation=10), FLAT, noise=0))
    right = luminance(render_head(ident, pose, CAM, Lighting(azimuth=70, elevation=10), FLAT, noise=0))
    _, mask = render_head(ident, pose, CAM, return_mask=True)
    half = mask.copy()
    half[:, 64:] = False
    assert left[half].mean() > right[half].mean() + 10              # lit side is brighter


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="hair_style"):
        HeadIdentity(hair_style="mohawk")
    with pytest.raises(ValueError, match="elevation"):
        Lighting(elevation=120)
    with pytest.raises(ValueError, match="in front of the camera"):
        render_head(HeadIdentity(), HeadPose(position=(0, 0, -2)), CAM)
    with pytest.raises(ValueError, match="skin"):
        HeadIdentity(skin=(1.5, 0.2, 0.2))
    with pytest.raises(ValueError, match="radius"):
        HeadIdentity(proportions=LoomisProportions(radius=3.0))
