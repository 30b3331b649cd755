"""Full-reference fidelity metrics: PSNR and SSIM, on the Y channel and on RGB, as face-restoration papers report them.

Convention: images are (H, W, 3) RGB uint8 of the same size. The Y channel is ITU-R BT.601 luma
in the studio range [16, 235] (MATLAB's ``rgb2ycbcr``), the convention of the SR/BFR literature
(basicsr, CodeFormer, DiffBIR tables), kept in float so no rounding enters the scores.
SSIM is Wang et al. 2004 with an 11x11 Gaussian window (sigma 1.5), averaged over the pixels
whose window lies inside the image; on RGB it is the mean over the three channels. Both equal
scikit-image's ``peak_signal_noise_ratio`` / ``structural_similarity(gaussian_weights=True,
sigma=1.5, use_sample_covariance=False, data_range=255)`` on the same arrays (tests check it).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

# ITU-R BT.601 luma for RGB in [0, 255] onto [16, 235] (MATLAB rgb2ycbcr, row 1).
BT601_Y_WEIGHTS = np.array([65.481, 128.553, 24.966]) / 255.0
BT601_Y_OFFSET = 16.0
DATA_RANGE = 255.0
# Wang et al. 2004: K1, K2 and the Gaussian window.
SSIM_K1, SSIM_K2 = 0.01, 0.03
SSIM_SIGMA = 1.5
SSIM_RADIUS = 5  # 11x11 window: int(3.5 * sigma + 0.5), scikit-image's truncation
CHANNELS = ("y", "rgb")


def rgb_to_y(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) RGB in [0, 255] -> (H, W) float64 BT.601 luma in [16, 235]."""
    return rgb.astype(np.float64) @ BT601_Y_WEIGHTS + BT601_Y_OFFSET


def psnr(restored: np.ndarray, reference: np.ndarray, *, channel: str = "y") -> float:
    """Peak signal-to-noise ratio in dB (peak 255); ``inf`` for identical images."""
    a, b = _planes(restored, reference, channel)
    mse = np.mean((a - b) ** 2)
    return float("inf") if mse == 0 else float(10.0 * np.log10(DATA_RANGE**2 / mse))


def ssim(restored: np.ndarray, reference: np.ndarray, *, channel: str = "y") -> float:
    """Structural similarity in [-1, 1]; 1 for identical images. RGB: the mean over channels."""
    a, b = _planes(restored, reference, channel)
    if min(a.shape[:2]) <= 2 * SSIM_RADIUS:
        raise ValueError(f"SSIM needs images larger than {2 * SSIM_RADIUS + 1} px a side, got {a.shape[:2]}")
    if a.ndim == 2:
        return _ssim_plane(a, b)
    return float(np.mean([_ssim_plane(a[..., c], b[..., c]) for c in range(a.shape[2])]))


def _planes(restored: np.ndarray, reference: np.ndarray, channel: str) -> tuple[np.ndarray, np.ndarray]:
    """Check the pair and return both as float64 planes: (H, W) for 'y', (H, W, 3) for 'rgb'."""
    if channel not in CHANNELS:
        raise ValueError(f"channel must be one of {CHANNELS}, got {channel!r}")
    for name, image in (("restored", restored), ("reference", reference)):
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"{name} must be an (H, W, 3) RGB image, got shape {image.shape}")
    if restored.shape != reference.shape:
        raise ValueError(f"restored {restored.shape} and reference {reference.shape} differ in size")
    if channel == "y":
        return rgb_to_y(restored), rgb_to_y(reference)
    return restored.astype(np.float64), reference.astype(np.float64)


def _gaussian_window_mean(plane: np.ndarray) -> np.ndarray:
    """Gaussian-weighted local mean; only the pixels SSIM averages over (border cropped) are meaningful."""
    return ndimage.gaussian_filter(plane, SSIM_SIGMA, truncate=SSIM_RADIUS / SSIM_SIGMA, mode="reflect")


def _ssim_plane(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of two (H, W) float planes (Wang et al. 2004, population covariances)."""
    mean_a, mean_b = _gaussian_window_mean(a), _gaussian_window_mean(b)
    var_a = _gaussian_window_mean(a * a) - mean_a**2
    var_b = _gaussian_window_mean(b * b) - mean_b**2
    cov_ab = _gaussian_window_mean(a * b) - mean_a * mean_b
    c1, c2 = (SSIM_K1 * DATA_RANGE) ** 2, (SSIM_K2 * DATA_RANGE) ** 2
    ssim_map = ((2 * mean_a * mean_b + c1) * (2 * cov_ab + c2)) / ((mean_a**2 + mean_b**2 + c1) * (var_a + var_b + c2))
    inner = ssim_map[SSIM_RADIUS:-SSIM_RADIUS, SSIM_RADIUS:-SSIM_RADIUS]  # windows inside the image
    return float(inner.mean(dtype=np.float64))
