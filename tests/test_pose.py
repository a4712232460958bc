"""Head pose on a real photo (scikit-image's astronaut) and on awkward inputs."""
from __future__ import annotations

import io
import threading

import numpy as np
import pytest
from PIL import Image

from loomis.camera import angles_from_matrix
from loomis.face_reference import load_reference
from loomis.imageio import ImageError
from loomis.pose import METHODS, FacePose, NoFaceError, PoseConfig, PoseEstimator, estimate_poses

pytest.importorskip("skimage.data")  # the astronaut photo (conftest) comes from it


@pytest.fixture(scope="module")
def base(estimator, astronaut) -> FacePose:
    faces = estimator.estimate(astronaut)
    assert len(faces) == 1
    return faces[0]


def _angle_diff(a: float, b: float) -> float:
    return (a - b + 180.0) % 360.0 - 180.0


def test_astronaut_reads_near_frontal(base, astronaut):
    assert abs(base.yaw) < 15 and abs(base.pitch) < 15 and abs(base.roll) < 15
    x0, y0, x1, y1 = base.box
    assert 0 <= x0 < x1 <= astronaut.width and 0 <= y0 < y1 <= astronaut.height
    assert base.landmarks.shape == (468, 2) and base.depth.shape == (468,)
    assert base.fit_error < 0.1          # the rigid reference explains the landmarks
    assert 25 < base.u_pixels < 60       # one third of a face ~93 px wide


def test_pose_and_camera_put_the_reference_on_the_face(base):
    """Drawing through (head, camera) lands where the landmarks are: this is the promise
    the engine relies on."""
    ref = load_reference().head_points(PoseConfig().ball_radius)
    proj = base.camera.project(base.head.to_camera(ref))
    err = np.linalg.norm(proj - base.landmarks, axis=1)
    assert np.median(err) < 0.1 * base.u_pixels
    # the reported angles and the camera-frame pose agree for a near-central face
    assert max(abs(_angle_diff(a, b)) for a, b in
               zip((base.yaw, base.pitch, base.roll), (base.head.yaw, base.head.pitch,
                                                         base.head.roll))) < 25


def test_mirroring_flips_yaw_and_roll(estimator, astronaut, base):
    m = estimator.estimate(astronaut.transpose(Image.Transpose.FLIP_LEFT_RIGHT))[0]
    assert abs(m.yaw + base.yaw) < 3
    assert abs(m.roll + base.roll) < 3
    assert abs(m.pitch - base.pitch) < 3


@pytest.mark.parametrize("theta", [-20, 20, 170, 180])
def test_rotating_the_photo_shifts_roll(estimator, astronaut, base, theta):
    """Upside down too: at 170° MediaPipe finds no face until the picture is turned back,
    at 180° it reads an upright face (roll −5°, pitch −22°) until the face detector's
    scores turn the crop (PoseEstimator._quarter_turns)."""
    rotated = astronaut.rotate(theta, expand=True, resample=Image.Resampling.BICUBIC)
    r = estimator.estimate(rotated)[0]
    assert abs(_angle_diff(r.roll, base.roll + theta)) < 2.5
    assert abs(r.yaw - base.yaw) < 4 and abs(r.pitch - base.pitch) < 4


def test_the_upside_down_check_leaves_an_upright_photo_alone(astronaut, base):
    with PoseEstimator(PoseConfig(upside_down=False)) as est:
        plain = est.estimate(astronaut)[0]
        # and without it a face turned by 180° is misread as upright
        turned = est.estimate(astronaut.rotate(180))[0]
    assert (plain.yaw, plain.pitch, plain.roll) == (base.yaw, base.pitch, base.roll)
    assert abs(_angle_diff(turned.roll, base.roll + 180)) > 90


def test_off_centre_face_keeps_its_apparent_angles(estimator, astronaut, base):
    canvas = Image.new("RGB", (1100, 900), (90, 100, 110))
    canvas.paste(astronaut, (1100 - 512, 900 - 512))
    f = estimator.estimate(canvas)[0]
    assert abs(f.yaw - base.yaw) < 5 and abs(f.pitch - base.pitch) < 5
    assert abs(f.roll - base.roll) < 3
    # the camera-frame pose is turned by the line of sight, and the ball centre projects
    # inside the face box of the big picture
    x, y = f.center
    assert f.box[0] < x < f.box[2] and f.box[1] < y < f.box[3]
    assert abs(f.head.yaw - f.yaw) > 3


def test_several_faces_largest_first(estimator, astronaut):
    canvas = Image.new("RGB", (1024, 512), (255, 255, 255))
    canvas.paste(astronaut.resize((400, 400)), (0, 56))
    canvas.paste(astronaut, (512, 0))
    faces = estimator.estimate(canvas)
    assert len(faces) == 2
    assert faces[0].width > faces[1].width
    assert faces[0].box[0] > 512 > faces[1].box[2]


def test_no_face_gives_empty_list_and_clear_error(estimator):
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 255, (300, 400, 3), dtype=np.uint8)
    result = estimator.analyse(noise)
    assert result.faces == []
    with pytest.raises(NoFaceError, match="no face found in this 400x300 image"):
        result.require()


def test_small_faces_are_found_and_tiny_ones_reported(estimator, astronaut):
    canvas = Image.new("RGB", (1000, 800), (120, 130, 140))
    canvas.paste(astronaut.resize((256, 256)), (600, 200))    # face ~47 px in 1000 px
    faces = estimator.estimate(canvas)
    assert len(faces) == 1 and 35 < faces[0].width < 60
    assert abs(faces[0].yaw) < 15 and abs(faces[0].pitch) < 15

    strict = PoseEstimator(PoseConfig(min_face_px=80))
    try:
        result = strict.analyse(canvas)
    finally:
        strict.close()
    assert result.faces == [] and len(result.too_small) == 1
    with pytest.raises(NoFaceError, match="only 4.* px wide"):
        result.require()


@pytest.mark.parametrize("mode", ["L", "RGBA", "CMYK", "P", "I;16"])
def test_image_modes(estimator, astronaut, base, mode):
    if mode == "I;16":
        img = Image.fromarray((np.asarray(astronaut.convert("L"), np.uint16) * 257))
        assert img.mode.startswith("I;16")
    else:
        img = astronaut.convert(mode)
    f = estimator.estimate(img)[0]
    assert abs(f.yaw - base.yaw) < 5 and abs(f.pitch - base.pitch) < 5
    assert abs(f.roll - base.roll) < 5


def test_numpy_16bit_and_float_arrays(estimator, astronaut):
    a16 = np.asarray(astronaut, np.uint16) * 257
    assert len(estimator.estimate(a16)) == 1
    assert len(estimator.estimate(np.asarray(astronaut, np.float32) / 255.0)) == 1


def test_huge_image_is_downscaled_for_detection(estimator, astronaut, base):
    huge = astronaut.resize((3000, 3000), Image.Resampling.BILINEAR)
    f = estimator.estimate(huge)[0]
    scale = 3000 / 512
    assert abs(f.width - base.width * scale) < 0.1 * base.width * scale
    assert abs(f.u_pixels - base.u_pixels * scale) < 0.15 * base.u_pixels * scale
    assert f.camera.width == 3000


def test_exif_rotated_phone_photo_is_upright(estimator, astronaut, base):
    sideways = astronaut.transpose(Image.Transpose.ROTATE_90)   # stored on its side
    exif = Image.Exif()
    exif[0x0112] = 6                                            # "rotate 90 CW to view"
    buf = io.BytesIO()
    sideways.save(buf, "JPEG", exif=exif, quality=92)
    f = estimator.estimate(buf.getvalue())[0]
    assert abs(_angle_diff(f.roll, base.roll)) < 4


def test_non_images_and_truncated_files_raise_image_error(estimator, astronaut, tmp_path):
    with pytest.raises(ImageError):
        estimator.estimate(b"this is not a picture")
    buf = io.BytesIO()
    astronaut.save(buf, "PNG")
    path = tmp_path / "cut.png"
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(ImageError, match="cut.png"):
        estimator.estimate(path)
    with pytest.raises(ImageError):
        estimator.estimate(np.zeros((10, 10, 7), np.uint8))


def test_video_mode_tracks_the_same_pose(astronaut, base):
    frame = np.asarray(astronaut)
    with PoseEstimator(static_image_mode=False) as video:
        poses = [video.analyse_array(frame).faces[0] for _ in range(3)]
    for p in poses:
        assert abs(p.yaw - base.yaw) < 3 and abs(p.pitch - base.pitch) < 3


def test_one_estimator_shared_between_threads(estimator, astronaut, base):
    out: list[float] = []

    def work():
        for _ in range(3):
            out.append(estimator.estimate(astronaut)[0].yaw)

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(out) == 6 and max(abs(y - base.yaw) for y in out) < 1e-6


@pytest.mark.parametrize("method", ["pnp", "procrustes"])
def test_other_fit_methods_agree_with_the_joint_fit(astronaut, base, method):
    faces = estimate_poses(astronaut, PoseConfig(method=method))
    assert abs(faces[0].yaw - base.yaw) < 5 and abs(faces[0].pitch - base.pitch) < 6


@pytest.mark.parametrize("method", [m for m in METHODS if m != PoseConfig().method])
def test_every_method_reads_the_same_face_close_to_the_default(astronaut, base, method):
    # the landmarker returns 478 points (its irises last); every fit takes the same 468
    face = estimate_poses(astronaut, PoseConfig(method=method))[0]
    assert face.landmarks.shape == base.landmarks.shape == (468, 2)
    assert np.abs(face.landmarks - base.landmarks).mean() < 0.01 * base.width
    for axis in ("yaw", "pitch", "roll"):
        assert abs(getattr(face, axis) - getattr(base, axis)) < 3.0, axis


@pytest.mark.parametrize("method", ["matrix", "joint"])
def test_mirror_averaging_makes_a_mirrored_photo_read_as_the_mirrored_pose(
        astronaut, base, method):
    # averaged with its mirror image's, a reading flips yaw and roll exactly and keeps
    # pitch, and stays close to the plain reading
    config = PoseConfig(mirror_average=True, method=method)
    with PoseEstimator(config) as est:
        face = est.estimate(astronaut)[0]
        flipped = est.estimate(astronaut.transpose(Image.Transpose.FLIP_LEFT_RIGHT))[0]
    assert abs(face.yaw + flipped.yaw) < 0.5 and abs(face.roll + flipped.roll) < 0.5
    assert abs(face.pitch - flipped.pitch) < 0.5
    assert abs(face.yaw - base.yaw) < 2.5 and abs(face.pitch - base.pitch) < 2.0
    assert face.fit_error < 1.5 * base.fit_error


def test_joint_fit_recovers_a_known_pose_from_landmarks_and_depth():
    """Exact landmarks and MediaPipe-style depth (along the line of sight to the face, in
    pixels at its scale) of a turned, off-centre head: the joint fit finds the pose from a
    start 8° and 1.5 u away when all three angles are free, and from a start 8° off in
    pitch alone in its default mode (the pitch settled, the 2D fit's yaw and roll kept)."""
    from loomis.camera import Camera, rotation_matrix
    from loomis.camera import ray_rotation
    from loomis.pose import _fit_joint

    ref = load_reference().head_points(PoseConfig().ball_radius)
    idx = load_reference().fit_indices()
    camera = Camera(640, 480, 460.0)
    pos = np.array([2.5, 1.5, -14.0])
    ray = ray_rotation(pos)
    rot = ray @ rotation_matrix(35.0, -20.0, 10.0)       # relative to the line of sight
    a = ref @ rot.T
    uv = camera.project(a + pos)
    centre = (a + pos)[idx].mean(0)
    depth = camera.focal / -centre[2] * (a @ (-centre / np.linalg.norm(centre)))
    pts = np.column_stack([uv, depth])
    near = pos + np.array([1.0, -0.5, 1.0])
    for start, pitch_only in (((ray @ rotation_matrix(29.0, -14.0, 5.0), near), False),
                              ((ray @ rotation_matrix(35.0, -12.0, 10.0), pos), True)):
        got_rot, got_pos = _fit_joint(pts, ref, idx, camera, *start, depth_weight=1.0,
                                      pitch_only=pitch_only)
        assert np.allclose(got_rot, rot, atol=1e-6) and np.allclose(got_pos, pos, atol=1e-5)


def test_head_rotation_matches_reported_convention(base):
    yaw, pitch, roll = angles_from_matrix(base.head.rotation)
    assert (yaw, pitch, roll) == pytest.approx((base.head.yaw, base.head.pitch,
                                                 base.head.roll), abs=1e-6)


def test_fit_leaves_out_the_sliding_face_outline():
    """The face oval sits on the silhouette, not on the skin, so the fit skips it; the
    rest of the rigid landmarks (brows, nose, cheekbones, forehead) are used."""
    from loomis.face_reference import contour_indices

    ref = load_reference()
    used = ref.fit_indices()
    outline = set(contour_indices().tolist())
    assert not outline & set(used.tolist())
    assert set(used.tolist()) < set(np.flatnonzero(ref.rigid).tolist())
    assert len(used) > 200
    for landmark in (1, 2, 6, 168, 105, 334):           # nose tip/base, nasion, brows
        assert landmark in used
    assert np.array_equal(ref.fit_indices(contour=True), np.flatnonzero(ref.rigid))


def test_the_pitch_step_leaves_out_landmarks_turned_away_from_the_camera(estimator):
    """``skip_hidden``: facing the camera every fitted landmark is used; turned by 60°
    the far cheek and temple are left out, and only they."""
    from loomis.camera import rotation_matrix
    from loomis.face_reference import outward_normals

    ref = estimator._ref
    normals = outward_normals(ref)
    assert normals[1, 2] > 0.9                           # the nose tip looks forward
    assert normals[234, 0] < -0.5 < 0.5 < normals[454, 0]  # the cheeks look sideways
    rigid, pos = estimator._rigid, np.array([0.0, 0.0, -40.0])
    assert np.array_equal(estimator._facing(np.eye(3), pos), rigid)
    for yaw in (60.0, -60.0):
        kept = estimator._facing(rotation_matrix(yaw, 0.0, 0.0), pos)
        dropped = np.setdiff1d(rigid, kept)
        assert 0.1 * len(rigid) < len(dropped) < 0.5 * len(rigid)
        # the far side only: turned towards the image's right, the face's right half
        # (x > 0, on the image's right when it faces the camera) turns away
        assert set(np.sign(ref[dropped, 0])) == {np.sign(yaw)}


def test_config_is_validated():
    with pytest.raises(ValueError, match="method"):
        PoseConfig(method="guess")
    with pytest.raises(ValueError, match="depth_weight"):
        PoseConfig(depth_weight=-1.0)
    with pytest.raises(ValueError, match="max_faces"):
        PoseConfig(max_faces=0)
