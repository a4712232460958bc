"""A drawing's construction as SVG: layers an illustration program can hide, recolour or
trace over, in the photo's pixel coordinates.

Three layers (Inkscape layers, plain groups elsewhere): the visible construction, its
hidden far-side lines (dashed or faint as in the picture), and the face's own features;
under them the surface the picture was drawn on (embedded as an image, optional) or white
paper. Lines are the same polylines, widths and dashes the picture is drawn with, so the
SVG rasterised matches the PNG. Clean lines only: a sketchy style is written clean.
"""
from __future__ import annotations

import base64
import io
from xml.sax.saxutils import quoteattr

import numpy as np

from loomis.draw import dash_pattern, drawn_width, line_thickness, line_unit, visibility_runs
from loomis.engine import feature_style
from loomis.head import Stroke
from loomis.pipeline import Drawing

__all__ = ["drawing_svg"]

_NS = ('xmlns="http://www.w3.org/2000/svg" '
       'xmlns:xlink="http://www.w3.org/1999/xlink" '
       'xmlns:inkscape="http://www.inkscape.org/namespaces/inkscape"')


def drawing_svg(drawing: Drawing, photo: bool | None = None) -> str:
    """``drawing`` as an SVG document. ``photo`` embeds the surface it was drawn on (the
    photo, faded photo or pencil sketch); by default only when that is not blank paper."""
    x0, y0, x1, y1 = drawing.crop
    w, h = x1 - x0, y1 - y0
    style = drawing.style
    unit = line_unit(style, (w, h))
    if photo is None:
        photo = drawing.background != "paper"
    photo = photo and drawing.base is not None
    out = [f'<svg {_NS} width="{w}" height="{h}" viewBox="{x0} {y0} {w} {h}">',
           "<title>Loomis head construction</title>"]
    out.append(_layer("surface", "Photo" if photo else "Paper", [
        _image(drawing, x0, y0, w, h) if photo else
        f'<rect x="{x0}" y="{y0}" width="{w}" height="{h}" fill="{_rgb(style.paper)}"/>']))
    seen, hidden = [], []
    for stroke in drawing.strokes:
        for pts, visible in _pieces(stroke):
            (seen if visible else hidden).append(_polyline(pts, stroke.kind))
    colour = _rgb(style.color)
    width = drawn_width(line_thickness(unit))
    out.append(_layer("visible", "Construction", seen, stroke=colour, width=width,
                      opacity=style.opacity))
    if style.hidden == "dashed":
        dash, gap = dash_pattern(unit)
        step = max(1.0, unit)       # a drawn dash runs between its first and last sample
        dash, gap = dash - step, gap + step
        out.append(_layer("hidden", "Hidden lines", hidden, stroke=colour, width=width,
                          opacity=style.opacity * max(style.hidden_opacity, 0.5),
                          extra=f' stroke-dasharray="{dash:.2f} {gap:.2f}"'))
    else:   # faint, or omitted: an empty layer says so
        out.append(_layer("hidden", "Hidden lines", [] if style.hidden == "omit" else hidden,
                          stroke=colour, width=width,
                          opacity=style.opacity * style.hidden_opacity))
    fstyle = feature_style(style)
    feats = [_polyline(pts, s.kind) for s in drawing.features for pts, vis in _pieces(s) if vis]
    out.append(_layer("features", "Features", feats, stroke=_rgb(fstyle.color), width=width,
                      opacity=fstyle.opacity))
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _pieces(stroke: Stroke) -> list[tuple[np.ndarray, bool]]:
    """A stroke cut where it passes between the seen and the far side."""
    pts = np.asarray(stroke.points, np.float64)
    vis = np.asarray(stroke.visible, bool)
    if len(pts) < 2 or not np.isfinite(pts).all():
        return []
    if stroke.closed:
        pts, vis = np.concatenate([pts, pts[:1]]), np.concatenate([vis, vis[:1]])
    return [(pts[a:b + 1], seen) for a, b, seen in visibility_runs(vis) if b > a]


def _polyline(pts: np.ndarray, kind: str) -> str:
    coords = " ".join(f"{x:.2f},{y:.2f}" for x, y in pts)
    return f'<polyline class={quoteattr(kind)} points="{coords}"/>'


def _layer(ident: str, label: str, items: list[str], stroke: str | None = None,
           width: float = 1.0, opacity: float = 1.0, extra: str = "") -> str:
    attrs = f'id="{ident}" inkscape:groupmode="layer" inkscape:label={quoteattr(label)}'
    if stroke:
        attrs += (f' fill="none" stroke="{stroke}" stroke-width="{width:.2f}"'
                  f' stroke-opacity="{opacity:.3f}" stroke-linecap="round"'
                  f' stroke-linejoin="round"{extra}')
    return "\n".join([f"<g {attrs}>", *items, "</g>"])


def _image(drawing: Drawing, x0: int, y0: int, w: int, h: int) -> str:
    buf = io.BytesIO()
    drawing.base.convert("RGB").save(buf, format="PNG")
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return (f'<image x="{x0}" y="{y0}" width="{w}" height="{h}" '
            f'xlink:href="data:image/png;base64,{data}"/>')


def _rgb(c: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*(int(v) for v in c))
