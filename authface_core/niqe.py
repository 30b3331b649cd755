"""NIQE, the Natural Image Quality Evaluator (Mittal, Soundararajan, Bovik, IEEE SPL 2013): no reference, lower better.

Core code needs it (the authenticity check gates its verdict on the input's NIQE) and so does
evaluation (``authface_core.metrics``), so it sits beside ``io`` and imports only NumPy and SciPy.

NIQE fits a multivariate Gaussian to 36 natural-scene statistics of an image (18 per scale, two
scales) and reports its distance to the Gaussian fitted on pristine photos. The pristine model
(mean and covariance) is the published one that MATLAB's ``niqe`` and basicsr ship; its numbers
are package data in ``authface_core/data/niqe_pris_params.npz`` (taken from basicsr 1.4.2's source
distribution, ``basicsr/metrics/niqe_pris_params.npz``). The algorithm below is written from the
paper and MATLAB's reference description:

1. the image as 8-bit luma (:func:`rgb_to_y` rounded, as MATLAB reads a uint8 image);
2. cropped to whole 96x96 blocks;
3. at each of two scales (full, then halved by MATLAB-style antialiased bicubic ``imresize``),
   MSCN coefficients (x - mu) / (sigma + 1) with a 7x7 Gaussian window (sigma 7/6, replicate border);
4. per block (96 px, then 48 px), an asymmetric generalised Gaussian (AGGD) fit of the MSCN
   coefficients (2 numbers) and of their products with the 4 neighbours to the right, below, and
   along both diagonals (4 numbers each, products wrap around inside the block);
5. distance sqrt((mu_p - mu_d)^T pinv((S_p + S_d) / 2) (mu_p - mu_d)) between the pristine
   Gaussian (mu_p, S_p) and the Gaussian of the image's block features (mu_d, S_d).
"""

from __future__ import annotations

from functools import cache
from importlib import resources

import numpy as np
from scipy import ndimage
from scipy.special import gamma

# ITU-R BT.601 luma for RGB in [0, 255] onto [16, 235] (MATLAB rgb2ycbcr, row 1).
BT601_Y_WEIGHTS = np.array([65.481, 128.553, 24.966]) / 255.0
BT601_Y_OFFSET = 16.0
BLOCK_SIZE = 96  # pixels at full scale (MATLAB niqe's default)
NIQE_MIN_SIDE = 2 * BLOCK_SIZE  # at least 2 x 2 blocks, so that the block features have a covariance
MSCN_WINDOW_SIZE, MSCN_WINDOW_SIGMA = 7, 7.0 / 6.0
MSCN_STABILITY = 1.0  # the "+1" in the denominator of the MSCN coefficients (for 0..255 images)
# Neighbour offsets (rows, columns) whose products with the MSCN map are modelled (paper, Fig. 2).
NEIGHBOUR_SHIFTS = ((0, 1), (1, 0), (1, 1), (1, -1))
# Shape parameters searched when fitting an AGGD (the reference grid 0.2:0.001:10).
AGGD_SHAPES = np.arange(0.2, 10.0 + 1e-9, 0.001)
_AGGD_RATIO = gamma(2.0 / AGGD_SHAPES) ** 2 / (gamma(1.0 / AGGD_SHAPES) * gamma(3.0 / AGGD_SHAPES))
BICUBIC_A = -0.5  # Keys' cubic convolution, MATLAB imresize's 'bicubic'


def rgb_to_y(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) RGB in [0, 255] -> (H, W) float64 BT.601 luma in [16, 235], the Y of the SR/BFR literature
    (also the Y plane of ``authface_core.metrics.fidelity``)."""
    return rgb.astype(np.float64) @ BT601_Y_WEIGHTS + BT601_Y_OFFSET


@cache
def pristine_model() -> tuple[np.ndarray, np.ndarray]:
    """The published pristine Gaussian: mean (36,) and covariance (36, 36)."""
    with resources.files(__package__).joinpath("data/niqe_pris_params.npz").open("rb") as handle:
        params = np.load(handle)
        return params["pristine_mean"], params["pristine_covariance"]


def niqe(rgb: np.ndarray) -> float:
    """NIQE of an (H, W, 3) uint8 RGB image (at least 192 px a side); lower means more natural."""
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"NIQE expects an (H, W, 3) RGB image, got shape {rgb.shape}")
    if min(rgb.shape[:2]) < NIQE_MIN_SIDE:
        raise ValueError(f"NIQE needs at least {NIQE_MIN_SIDE} px a side, got {rgb.shape}")
    luma = np.round(rgb_to_y(rgb))
    rows, cols = (luma.shape[0] // BLOCK_SIZE) * BLOCK_SIZE, (luma.shape[1] // BLOCK_SIZE) * BLOCK_SIZE
    luma = luma[:rows, :cols]
    features = np.concatenate(
        [_block_features(luma, BLOCK_SIZE), _block_features(imresize_half(luma), BLOCK_SIZE // 2)], axis=1
    )  # (blocks, 36)
    return _mvg_distance(features)


def niqe_or_none(rgb: np.ndarray) -> float | None:
    """NIQE where it is defined; None for images under 192 px a side or without texture (flat)."""
    if min(rgb.shape[:2]) < NIQE_MIN_SIDE:
        return None
    try:
        return niqe(rgb)
    except FlatImageError:
        return None


class FlatImageError(ValueError):
    """NIQE is undefined: the image has (almost) no texture to measure."""


def mscn(plane: np.ndarray) -> np.ndarray:
    """Mean-subtracted contrast-normalised coefficients of an (H, W) float plane."""
    window = _gaussian_window()
    mean = ndimage.correlate(plane, window, mode="nearest")
    variance = ndimage.correlate(plane * plane, window, mode="nearest") - mean**2
    return (plane - mean) / (np.sqrt(np.abs(variance)) + MSCN_STABILITY)


def fit_aggd(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Moment-matching AGGD fit of each row of ``samples`` (n, m) -> shape, left scale, right scale, each (n,)."""
    negative, positive = samples < 0, samples > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        left_std = np.sqrt(np.sum(samples**2 * negative, axis=1) / negative.sum(axis=1))
        right_std = np.sqrt(np.sum(samples**2 * positive, axis=1) / positive.sum(axis=1))
        gamma_hat = left_std / right_std
        r_hat = np.mean(np.abs(samples), axis=1) ** 2 / np.mean(samples**2, axis=1)
        r_hat_norm = r_hat * (gamma_hat**3 + 1) * (gamma_hat + 1) / (gamma_hat**2 + 1) ** 2
    shape = AGGD_SHAPES[np.argmin((_AGGD_RATIO[None, :] - r_hat_norm[:, None]) ** 2, axis=1)]
    scale = np.sqrt(gamma(1.0 / shape) / gamma(3.0 / shape))
    return shape, left_std * scale, right_std * scale


def imresize_half(plane: np.ndarray) -> np.ndarray:
    """Halve an (H, W) plane like MATLAB's ``imresize(x, 0.5)``: antialiased bicubic, symmetric border."""
    return _resize_axis_half(_resize_axis_half(plane, axis=0), axis=1)


def _block_features(luma: np.ndarray, block: int) -> np.ndarray:
    """(H, W) plane whose sides are multiples of ``block`` -> (blocks, 18) NSS features."""
    coefficients = mscn(luma)
    rows, cols = coefficients.shape[0] // block, coefficients.shape[1] // block
    blocks = coefficients.reshape(rows, block, cols, block).transpose(0, 2, 1, 3).reshape(-1, block, block)
    shape, left, right = fit_aggd(blocks.reshape(len(blocks), -1))
    columns = [shape, (left + right) / 2]
    for shift in NEIGHBOUR_SHIFTS:
        products = blocks * np.roll(blocks, shift, axis=(1, 2))
        shape, left, right = fit_aggd(products.reshape(len(blocks), -1))
        mean = (right - left) * gamma(2.0 / shape) / gamma(1.0 / shape)
        columns += [shape, mean, left, right]
    return np.stack(columns, axis=1)


def _mvg_distance(features: np.ndarray) -> float:
    """Distance between the pristine Gaussian and the one fitted on ``features`` (blocks, 36)."""
    pristine_mean, pristine_cov = pristine_model()
    features = np.where(np.isfinite(features), features, np.nan)  # flat blocks give undefined fits
    finite = features[~np.isnan(features).any(axis=1)]  # MATLAB's nancov drops those blocks
    if len(finite) < 2:
        raise FlatImageError("NIQE: fewer than 2 image blocks have usable statistics (is the image flat?)")
    difference = pristine_mean - np.nanmean(features, axis=0)
    covariance = (pristine_cov + np.cov(finite, rowvar=False)) / 2
    return float(np.sqrt(difference @ np.linalg.pinv(covariance) @ difference))


@cache
def _gaussian_window() -> np.ndarray:
    """MATLAB ``fspecial('gaussian', 7, 7/6)``: (7, 7), sums to 1."""
    offsets = np.arange(MSCN_WINDOW_SIZE) - MSCN_WINDOW_SIZE // 2
    window = np.exp(-(offsets[:, None] ** 2 + offsets[None, :] ** 2) / (2 * MSCN_WINDOW_SIGMA**2))
    return window / window.sum()


def _cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with a = -0.5."""
    x = np.abs(x)
    a = BICUBIC_A
    return np.where(
        x <= 1,
        (a + 2) * x**3 - (a + 3) * x**2 + 1,
        np.where(x < 2, a * x**3 - 5 * a * x**2 + 8 * a * x - 4 * a, 0.0),
    )


def _resize_axis_half(plane: np.ndarray, axis: int) -> np.ndarray:
    """Halve one axis: the cubic kernel stretched x2 (antialiasing), taps mirrored at the borders."""
    length = plane.shape[axis]
    scale = 0.5
    taps = int(np.ceil(4 / scale)) + 2  # kernel width 4 input px at scale 1, widened by 1/scale
    centres = (np.arange(length // 2 + length % 2) + 0.5) / scale - 0.5  # output pixel centres, input coords
    first = np.floor(centres - 2 / scale).astype(int)
    indices = first[:, None] + np.arange(taps)[None, :]  # (out, taps)
    weights = scale * _cubic(scale * (centres[:, None] - indices))
    weights /= weights.sum(axis=1, keepdims=True)
    # Symmetric padding, as MATLAB's imresize: index -1 reads 0, index `length` reads `length - 1`.
    mirrored = np.where(indices < 0, -indices - 1, indices)
    mirrored = np.where(mirrored >= length, 2 * length - 1 - mirrored, mirrored)
    moved = np.moveaxis(plane, axis, 0)  # (length, ...)
    resized = np.einsum("ot,ot...->o...", weights, moved[mirrored])
    return np.moveaxis(resized, 0, axis)
