"""Full-reference fidelity metrics: PSNR and SSIM, on the Y channel and on RGB, as face-restoration papers report them.

Convention: images are (H, W, 3) RGB uint8 of the same size. The Y channel is ITU-R BT.601 luma
in the studio range [16, 235] (MATLAB's ``rgb2ycbcr``; :func:`authface_core.niqe.rgb_to_y`), the
convention of the SR/BFR literature (basicsr, CodeFormer, DiffBIR tables), kept in float so no
rounding enters the scores. The scores are scikit-image's ``peak_signal_noise_ratio`` and
``structural_similarity`` on those planes: SSIM as Wang et al. 2004, an 11x11 Gaussian window
(sigma 1.5), population covariances, averaged over the pixels whose window lies inside the image;
on RGB the mean over the three channels.
"""

from __future__ import annotations

import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from ..niqe import rgb_to_y

DATA_RANGE = 255.0
SSIM_SIGMA = 1.5  # Wang et al. 2004's Gaussian window
SSIM_WINDOW = 11  # the window scikit-image builds for that sigma: 2 * int(3.5 * sigma + 0.5) + 1
CHANNELS = ("y", "rgb")


def psnr(restored: np.ndarray, reference: np.ndarray, *, channel: str = "y") -> float:
    """Peak signal-to-noise ratio in dB (peak 255); ``inf`` for identical images."""
    a, b = _planes(restored, reference, channel)
    with np.errstate(divide="ignore"):  # identical images: 255^2 / 0 is the documented inf
        return float(peak_signal_noise_ratio(b, a, data_range=DATA_RANGE))


def ssim(restored: np.ndarray, reference: np.ndarray, *, channel: str = "y") -> float:
    """Structural similarity in [-1, 1]; 1 for identical images. RGB: the mean over channels."""
    a, b = _planes(restored, reference, channel)
    if min(a.shape[:2]) < SSIM_WINDOW:
        raise ValueError(f"SSIM needs images of at least {SSIM_WINDOW} px a side, got {a.shape[:2]}")
    return float(
        structural_similarity(
            b,
            a,
            gaussian_weights=True,
            sigma=SSIM_SIGMA,
            use_sample_covariance=False,
            data_range=DATA_RANGE,
            channel_axis=None if a.ndim == 2 else -1,
        )
    )


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
