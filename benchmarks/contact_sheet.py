"""Contact sheet of random synthetic pairs: photo | drawing | drawing over the photo.

    python -m benchmarks.contact_sheet [--out docs/contact_sheet.png] [--n 16] [--size 192] [--seed 0]
    python -m benchmarks.contact_sheet --pose-convention docs/pose_convention.png
    python -m benchmarks.contact_sheet --scan docs/scan_constructions.jpg
    python -m benchmarks.contact_sheet --turns docs/turned_constructions.jpg
    python -m benchmarks.contact_sheet --steps docs/steps.png

Made for the README and for looking: are the heads recognisable, do the lines sit on them?
``--pose-convention`` instead draws the yaw/pitch/roll sign convention with the
construction itself (rows: yaw, pitch, roll; columns: negative, zero, positive).
``--scan`` draws what the geometric engine makes of a real person's 3D scan at known
poses (benchmarks/pose_accuracy.py's ``--scan`` set): each tile is the engine's drawing
(:func:`loomis.pipeline.photo_to_drawing`) cropped to the face, with the true and the
estimated yaw / pitch / roll. ``--turns`` draws the engine on matplotlib's Grace Hopper
portrait turned in its plane by 0-330°: the roll read should be the upright photo's plus
the turn, upside down too. ``--steps`` draws Grace Hopper's construction step by step
(:mod:`loomis.steps`), her photo first.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image


from PIL import ImageDraw

from loomis.camera import Camera, HeadPose
from loomis.draw import DrawStyle, draw_strokes
from loomis.train.render import Background, HeadIdentity, Lighting, render_head
from loomis.head import construction_lines
from loomis.train.synthetic import render_pair, scene


def sheet(n: int, size: int, seed: int, cols: int = 4) -> Image.Image:
    tiles = []
    for i in range(n):
        params = scene(seed, i)
        photo, drawing = render_pair(params, size)
        strokes = construction_lines(params.pose, params.camera(size), params.identity.proportions)
        overlay = draw_strokes(strokes, photo, DrawStyle(color=(255, 40, 30), hidden="omit"))
        tiles.append(np.concatenate([np.asarray(photo), np.asarray(drawing), np.asarray(overlay)], 1))
    gap = 6
    h, w = tiles[0].shape[:2]
    rows = (n + cols - 1) // cols
    out = np.full((rows * (h + gap) - gap, cols * (w + gap) - gap, 3), 255, np.uint8)
    for i, t in enumerate(tiles):
        r, c = divmod(i, cols)
        out[r * (h + gap): r * (h + gap) + h, c * (w + gap): c * (w + gap) + w] = t
    return Image.fromarray(out)


def pose_convention(size: int = 220) -> Image.Image:
    """Rows yaw, pitch, roll at -35/0/+35 degrees: the rendered head with its construction
    (in red, far side faint), each labelled with its angle and what the sign means."""
    cam = Camera.from_fov(size, size, 30.0)
    ident = HeadIdentity(hair_style="short")
    light = Lighting(azimuth=20, elevation=30, softness=0.6)
    bg = Background("flat", (0.93, 0.93, 0.91))
    rows = [("yaw", "+ turns the face to the image's right"),
            ("pitch", "+ tilts the face up (chin forward)"),
            ("roll", "+ rotates the head counter-clockwise")]
    label_h, gap = 22, 8
    out = Image.new("RGB", (3 * size + 2 * gap, 3 * (size + label_h) + 2 * gap + 30), "white")
    draw = ImageDraw.Draw(out)
    draw.text((6, 8), "Pose convention (loomis.camera): R = Rz(roll) Rx(-pitch) Ry(yaw); "
                      "angles in degrees", fill=(0, 0, 0))
    for r, (name, meaning) in enumerate(rows):
        for c, value in enumerate((-35.0, 0.0, 35.0)):
            angles = {"yaw": 0.0, "pitch": 0.0, "roll": 0.0, name: value}
            pose = HeadPose(angles["yaw"], angles["pitch"], angles["roll"], position=(0, 0.35, -11.5))
            photo = Image.fromarray(render_head(ident, pose, cam, light, bg, noise=0))
            strokes = construction_lines(pose, cam, ident.proportions)
            tile = draw_strokes(strokes, photo, DrawStyle(color=(200, 30, 20), hidden="faint",
                                                          hidden_opacity=0.35))
            x, y = c * (size + gap), 30 + r * (size + label_h + gap)
            out.paste(tile, (x, y + label_h))
            text = f"{name} {value:+.0f}" + (f":  {meaning}" if c == 2 else "")
            draw.text((x + 4, y + 5), text if c == 2 else f"{name} {value:+.0f}", fill=(0, 0, 0))
    return out


def _engine_sheet(photos, captions, size: int, cols: int, est) -> Image.Image:
    """Tiles of the engine's drawing of each photo, cropped to the head, under two caption
    lines: ``captions(i, face)`` gives the black line and the red one."""
    from loomis.pipeline import photo_to_drawing

    label_h, gap = 30, 6
    photos = list(photos)
    rows = (len(photos) + cols - 1) // cols
    out = Image.new("RGB", (cols * (size + gap) - gap, rows * (size + label_h + gap) - gap),
                    "white")
    draw = ImageDraw.Draw(out)
    for i, photo in enumerate(photos):
        face = est.estimate(photo)[0]
        drawing = photo_to_drawing(photo, background="photo", estimator=est,
                                   own_proportions=False).image
        # the construction spans 1.4 u above the ball centre to the chin 2.1 u below the
        # brow: a square of 4.2 u around its middle (0.45 u below the centre, turned with
        # the head's roll), kept inside the picture
        u, roll = face.u_pixels, np.radians(face.roll)
        half = min(2.1 * u, min(drawing.size) / 2)
        cx, cy = face.center
        mx, my = cx + 0.45 * u * np.sin(roll), cy + 0.45 * u * np.cos(roll)
        x0 = min(max(mx - half, 0), drawing.width - 2 * half)
        y0 = min(max(my - half, 0), drawing.height - 2 * half)
        tile = drawing.crop((round(x0), round(y0), round(x0 + 2 * half),
                             round(y0 + 2 * half))).resize((size, size), Image.LANCZOS)
        r, c = divmod(i, cols)
        x, y = c * (size + gap), r * (size + label_h + gap)
        black, red = captions(i, face)
        draw.text((x + 2, y + 2), black, fill=(0, 0, 0))
        draw.text((x + 2, y + 15), red, fill=(200, 30, 20))
        out.paste(tile, (x, y + label_h))
    return out


def _angles(values) -> str:
    return " ".join(f"{a:+.0f}" for a in values)


def scan_sheet(n: int = 12, size: int = 200, seed: int = 3, cols: int = 6) -> Image.Image:
    """The engine on the scanned face (see the module docstring), n poses of one seed."""
    from benchmarks import pose_accuracy    # its scan set

    from loomis.pose import PoseEstimator

    samples = pose_accuracy.scan_set(n, seed=seed, size=1024)    # faces ~60 px a unit
    if samples is None:
        raise SystemExit("Gradio's sample face scan is not installed (loomis.sample_data)")
    photos, truths = zip(*samples)
    with PoseEstimator() as est:
        return _engine_sheet(photos, lambda i, face: (
            "true  " + _angles(truths[i]),
            "read  " + _angles((face.yaw, face.pitch, face.roll))), size, cols, est)


def turns_sheet(turns=range(0, 360, 30), size: int = 200, cols: int = 6) -> Image.Image:
    """The engine on Grace Hopper's portrait turned in its plane (see the module
    docstring): the read roll should be the upright photo's plus the turn."""
    from loomis import sample_data
    from loomis.pose import PoseEstimator

    if (path := sample_data.grace_hopper()) is None:
        raise SystemExit("matplotlib's Grace Hopper portrait is not installed")
    with Image.open(path) as im:
        photo = im.convert("RGB")
    turns = list(turns)
    photos = [photo.rotate(t, expand=True, resample=Image.Resampling.BICUBIC,
                           fillcolor=(255, 255, 255)) for t in turns]
    with PoseEstimator() as est:
        upright = est.estimate(photo)[0].roll
        expected = [(upright + t + 180.0) % 360.0 - 180.0 for t in turns]
        return _engine_sheet(photos, lambda i, face: (
            f"turned {turns[i]:+d}: roll should be {expected[i]:+.0f}",
            f"read {face.roll:+.0f}"), size, cols, est)


def steps_sheet(size: int = 200, cols: int = 9) -> Image.Image:
    """Grace Hopper's photo, then her construction step by step, each captioned."""
    import loomis
    from loomis import sample_data

    if (path := sample_data.grace_hopper()) is None:
        raise SystemExit("matplotlib's Grace Hopper portrait is not installed")
    with Image.open(path) as im:
        photo = im.convert("RGB")
    drawing = loomis.photo_to_drawing(photo, features=True, framing="heads")
    x0, y0, x1, y1 = drawing.crop
    tiles = [(photo.crop((x0, y0, x1, y1)), "the photo")]
    tiles += [(step.image, step.caption) for step in loomis.construction_steps(drawing)]
    w = size
    h = round(size * (y1 - y0) / (x1 - x0))
    rows = -(-len(tiles) // cols)
    out = Image.new("RGB", (cols * w, rows * (h + 22)), "white")
    pen = ImageDraw.Draw(out)
    for i, (img, caption) in enumerate(tiles):
        x, y = (i % cols) * w, (i // cols) * (h + 22)
        out.paste(img.resize((w, h), Image.LANCZOS), (x, y))
        pen.text((x + 6, y + h + 4), caption, fill=(40, 40, 48))
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="docs/contact_sheet.png")
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--size", type=int, default=192)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cols", type=int, default=4)
    ap.add_argument("--pose-convention", metavar="OUT", help="draw the pose sign convention instead")
    ap.add_argument("--scan", metavar="OUT", help="draw the engine on the scanned face instead")
    ap.add_argument("--turns", metavar="OUT",
                    help="draw the engine on a real portrait turned in 30° steps instead")
    ap.add_argument("--steps", metavar="OUT",
                    help="draw a real portrait's construction step by step instead")
    args = ap.parse_args(argv)
    if args.pose_convention:
        args.out = args.pose_convention
        img = pose_convention()
    elif args.scan:
        args.out = args.scan
        img = scan_sheet()
    elif args.turns:
        args.out = args.turns
        img = turns_sheet()
    elif args.steps:
        args.out = args.steps
        img = steps_sheet()
    else:
        img = sheet(args.n, args.size, args.seed, args.cols)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    img.save(args.out, optimize=True)
    print(f"wrote {args.out} ({img.size[0]}x{img.size[1]})")


if __name__ == "__main__":
    main()
