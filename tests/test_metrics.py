"""Line precision/recall/F1 at 2 px and photo metrics (L1, PSNR, SSIM)."""
import numpy as np
import pytest
import torch

from loomis.train.metrics import image_metrics, l1, line_scores, psnr, ssim


def _drawing(size: int = 64) -> np.ndarray:
    img = np.full((size, size), 255, np.uint8)
    img[20, 8:56] = 0          # a horizontal line
    img[8:56, 40] = 0          # a vertical line
    yy, xx = np.mgrid[:size, :size]
    img[np.abs(np.hypot(yy - 32, xx - 24) - 12) < 0.7] = 0  # a circle
    return img


def test_f1_self_blank_and_shifted():
    d = _drawing()
    assert line_scores(d, d) == {"precision": 1.0, "recall": 1.0, "f1": 1.0}
    blank = np.full_like(d, 255)
    assert line_scores(blank, d)["f1"] == 0.0 and line_scores(d, blank)["f1"] == 0.0
    shifted = np.full_like(d, 255)
    shifted[:, 1:] = d[:, :-1]
    assert line_scores(shifted, d)["f1"] == 1.0
    far = np.full_like(d, 255)
    far[5:, 5:] = d[:-5, :-5]
    assert line_scores(far, d)["f1"] < 0.5  # 5 px off is outside the 2-px tolerance
    assert line_scores(far, d, tolerance=7.1)["f1"] == 1.0


def test_inputs_in_any_form_agree():
    d = _drawing()
    rgb = np.repeat(d[..., None], 3, axis=2)
    t = torch.from_numpy(rgb).permute(2, 0, 1).float() / 127.5 - 1
    assert line_scores(t, d) == line_scores(rgb, d) == line_scores(d, d)
    with pytest.raises(ValueError, match="differ"):
        line_scores(d[:32], d)


def test_photo_metrics():
    rng = np.random.default_rng(0)
    x = rng.random((48, 48, 3))
    assert l1(x, x) == 0 and psnr(x, x) == 100.0 and ssim(x, x) == pytest.approx(1.0)
    noisy = np.clip(x + rng.normal(0, 0.1, x.shape), 0, 1)
    assert 15 < psnr(noisy, x) < 25 and ssim(noisy, x) < 0.95
    assert psnr(np.zeros((16, 16)), np.full((16, 16), 0.1)) == pytest.approx(20.0)
    m = image_metrics(noisy, x, "photo")
    assert set(m) == {"l1", "psnr", "ssim"} and m["l1"] == pytest.approx(l1(noisy, x))
    with pytest.raises(ValueError, match="\\[0, 1\\]"):
        l1(x * 3, x)
