"""Colour correction of a restored face towards its input, as small pure tensor functions.

Tensors are (N, 3, H, W) float in [0, 1]. ``output`` is the restored image and ``reference`` the
degraded input it came from (the control image), both the same size. Release behaviour
(``EthanLiang99/AuthFace`` ``utils/wavelet_color_fix.py``, ``test_face_xl.py:286-297``; see
../shared/AUTHFACE_RELEASE.md section 4) is reproduced by :func:`apply_color_fix`, which works on the
rounded uint8 decode and truncates (not rounds) back to uint8, as ``ToPILImage`` does.

A grayscale photo stays grayscale: :func:`is_grayscale` tells one apart and :func:`to_luminance`
reduces a restored face (which the model paints in colour) to its luma, on uint8 arrays.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from .constants import COLOR_FIX_METHODS

# Five levels whose dilations are 1, 2, 4, 8, 16 px (release: ``wavelet_decomposition(levels=5)``).
WAVELET_LEVELS = 5
# The release's AdaIN adds this to the unbiased variance (``calc_mean_std(eps=1e-5)``).
ADAIN_EPS = 1e-5

# A photo is grayscale when no pixel's channels differ by more than this many levels: a gray JPEG decodes
# with equal channels up to rounding, while the faintest sepia or scanner tint differs by more.
GRAYSCALE_TOLERANCE = 2

# A 3x3 binomial (B-spline "a trous") kernel, dilated per level.
_BINOMIAL_3X3 = torch.tensor([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]) / 16.0


def wavelet_blur(image: torch.Tensor, radius: int) -> torch.Tensor:
    """Depthwise binomial blur with dilation ``radius`` on a replicate-padded image (same size out)."""
    channels = image.shape[1]
    kernel = _BINOMIAL_3X3.to(image).expand(channels, 1, 3, 3)
    padded = F.pad(image, (radius, radius, radius, radius), mode="replicate")
    return F.conv2d(padded, kernel, groups=channels, dilation=radius)


def wavelet_decomposition(image: torch.Tensor, levels: int = WAVELET_LEVELS) -> tuple[torch.Tensor, torch.Tensor]:
    """Split into (high band, low band): the high band is the sum of each level's detail, summed in
    level order as the release does (so float rounding matches it)."""
    high = torch.zeros_like(image)
    low = image
    for level in range(levels):
        blurred = wavelet_blur(low, radius=2**level)
        high = high + (low - blurred)
        low = blurred
    return high, low


def wavelet_color_fix(output: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """High frequencies (detail) from ``output``, low frequencies (colour, shading) from ``reference``."""
    output_high, _ = wavelet_decomposition(output)
    _, reference_low = wavelet_decomposition(reference)
    return output_high + reference_low


def adain_color_fix(output: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Match each channel's mean and standard deviation (unbiased variance + eps) to ``reference``."""

    def mean_std(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        flat = image.flatten(2)  # (N, C, H*W)
        return flat.mean(dim=2)[..., None, None], (flat.var(dim=2) + ADAIN_EPS).sqrt()[..., None, None]

    output_mean, output_std = mean_std(output)
    reference_mean, reference_std = mean_std(reference)
    return (output - output_mean) / output_std * reference_std + reference_mean


def apply_color_fix(output: np.ndarray, reference: np.ndarray, method: str = "wavelet") -> np.ndarray:
    """Colour-fix uint8 images (N, H, W, 3) or (H, W, 3) the release's way: [0, 1] floats, fix, clamp,
    then ``x * 255`` truncated to uint8."""
    if method not in COLOR_FIX_METHODS:
        raise ValueError(f"color_fix must be one of {COLOR_FIX_METHODS}, got {method!r}")
    if output.shape != reference.shape:
        raise ValueError(f"color fix needs images of one shape, got {output.shape} and {reference.shape}")
    if method == "none":
        return output
    fix = wavelet_color_fix if method == "wavelet" else adain_color_fix
    fixed = fix(_uint8_to_tensor(output), _uint8_to_tensor(reference)).clamp(0, 1)
    fixed_uint8 = fixed.mul(255).to(torch.uint8)  # truncation, as torchvision's ToPILImage
    return fixed_uint8.permute(0, 2, 3, 1).numpy().reshape(output.shape)


def _uint8_to_tensor(images: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) or (H, W, 3) uint8 -> (N, 3, H, W) float32 in [0, 1], like ``ToTensor``."""
    batch = images if images.ndim == 4 else images[None]
    return torch.from_numpy(np.ascontiguousarray(batch)).permute(0, 3, 1, 2).float().div(255)


def is_grayscale(rgb: np.ndarray, tolerance: int = GRAYSCALE_TOLERANCE) -> bool:
    """Whether an (..., 3) uint8 image has no colour: every pixel's channels within ``tolerance`` levels."""
    return bool((rgb.max(axis=-1) - rgb.min(axis=-1) <= tolerance).all())


def to_luminance(images: np.ndarray) -> np.ndarray:
    """(..., 3) uint8 -> the same shape with each channel set to the pixel's luma (ITU-R BT.601, the Y of JPEG
    and of PSNR-Y; OpenCV's fixed-point weights sum to one, so a gray pixel keeps its exact value)."""
    flat = np.ascontiguousarray(images).reshape(-1, images.shape[-2], 3)  # OpenCV takes one (H, W, 3) image
    luma = cv2.cvtColor(flat, cv2.COLOR_RGB2GRAY)
    return np.repeat(luma[..., None], 3, axis=-1).reshape(images.shape)
