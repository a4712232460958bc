"""Image-translation metrics: line precision/recall/F1 for drawings; L1, PSNR, SSIM for photos.

All functions take images as numpy arrays (``H×W`` or ``H×W×C``, uint8 or float in [0, 1]),
PIL images, or torch tensors in the networks' [-1, 1] range (``C×H×W``); see :func:`as_float`.

Line metrics compare *line pixels*: dark pixels after binarisation (gray < ``threshold``).
A predicted line pixel is correct when a target line pixel lies within ``tolerance``
pixels (Euclidean), and a target line pixel is found when a predicted one lies within it.
So a drawing scored against itself gets F1 = 1, against a blank page 0, and against a copy
shifted by one pixel still 1 at the default 2-pixel tolerance.
"""
from __future__ import annotations

import math

import numpy as np

from loomis.imageio import as_float, binarize

__all__ = ["as_float", "binarize", "line_scores", "l1", "psnr", "ssim", "image_metrics",
           "DRAWING_METRICS", "PHOTO_METRICS", "mean_metrics"]

DRAWING_METRICS = ("precision", "recall", "f1")
PHOTO_METRICS = ("l1", "psnr", "ssim")


def _dilate(mask: np.ndarray, radius: float) -> np.ndarray:
    """Every pixel within ``radius`` (Euclidean) of a True pixel."""
    r = int(math.floor(radius))
    out = mask.copy()
    h, w = mask.shape
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            if (dy or dx) and dy * dy + dx * dx <= radius * radius:
                ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
                xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
                out[yd, xd] |= mask[ys, xs]
    return out


def line_scores(pred, target, tolerance: float = 2.0, threshold: float = 0.5) -> dict[str, float]:
    """Line precision, recall and F1 of ``pred`` against ``target`` within ``tolerance`` px.

    Conventions for empty drawings: with no predicted lines precision is 1 (nothing wrong
    was drawn), with no target lines recall is 1 (nothing to find); F1 is then 0 unless
    both are empty (a blank page matching a blank page scores 1).
    """
    p, t = binarize(pred, threshold), binarize(target, threshold)
    if p.shape != t.shape:
        raise ValueError(f"images differ in size: {p.shape} vs {t.shape}")
    n_p, n_t = int(p.sum()), int(t.sum())
    if n_p == 0 and n_t == 0:
        return {"precision": 1.0, "recall": 1.0, "f1": 1.0}
    precision = float((p & _dilate(t, tolerance)).sum() / n_p) if n_p else 1.0
    recall = float((t & _dilate(p, tolerance)).sum() / n_t) if n_t else 1.0
    if n_p == 0 or n_t == 0:
        f1 = 0.0
    else:
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def _pair(a, b) -> tuple[np.ndarray, np.ndarray]:
    x, y = as_float(a), as_float(b)
    if x.shape != y.shape:
        raise ValueError(f"images differ in shape: {x.shape} vs {y.shape}")
    return x, y


def l1(pred, target) -> float:
    """Mean absolute difference on the [0, 1] scale."""
    x, y = _pair(pred, target)
    return float(np.abs(x - y).mean())


def psnr(pred, target, max_psnr: float = 100.0) -> float:
    """Peak signal-to-noise ratio in dB (peak 1.0); identical images get ``max_psnr``."""
    x, y = _pair(pred, target)
    mse = float(((x - y) ** 2).mean())
    return max_psnr if mse <= 10 ** (-max_psnr / 10) else 10.0 * math.log10(1.0 / mse)


def _gaussian_window(sigma: float = 1.5, truncate: float = 3.5):
    import torch

    radius = int(truncate * sigma + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    g = torch.exp(-(x ** 2) / (2 * sigma ** 2))
    return g / g.sum()


def ssim(pred, target, sigma: float = 1.5) -> float:
    """Structural similarity (Wang et al. 2004) with an 11-tap Gaussian window (σ 1.5),
    K1 0.01, K2 0.03, data range 1, averaged over channels and over the pixels whose
    window lies inside the image."""
    import torch

    x, y = _pair(pred, target)
    if x.ndim == 2:
        x, y = x[..., None], y[..., None]
    g = _gaussian_window(sigma)
    k = g.numel()
    if min(x.shape[:2]) < k:
        raise ValueError(f"SSIM needs images of at least {k}x{k} pixels, got {x.shape[1]}x{x.shape[0]}")
    tx = torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[:, None]  # (C,1,H,W)
    ty = torch.from_numpy(np.ascontiguousarray(y.transpose(2, 0, 1)))[:, None]

    def blur(t):
        t = torch.nn.functional.conv2d(t, g.view(1, 1, 1, k))
        return torch.nn.functional.conv2d(t, g.view(1, 1, k, 1))

    mx, my = blur(tx), blur(ty)
    sxx = blur(tx * tx) - mx * mx
    syy = blur(ty * ty) - my * my
    sxy = blur(tx * ty) - mx * my
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return float(s.mean())


def image_metrics(pred, target, kind: str, tolerance: float = 2.0) -> dict[str, float]:
    """The metrics for the target domain: ``"drawing"`` → line P/R/F1 (and L1),
    anything else (photos) → L1, PSNR, SSIM."""
    if kind == "drawing":
        return {**line_scores(pred, target, tolerance), "l1": l1(pred, target)}
    return {"l1": l1(pred, target), "psnr": psnr(pred, target), "ssim": ssim(pred, target)}


def mean_metrics(rows: list[dict[str, float]]) -> dict[str, float]:
    """Per-image metric dicts → their means (keys of the first row)."""
    if not rows:
        return {}
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
