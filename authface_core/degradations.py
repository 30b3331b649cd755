"""Synthetic face degradation: the classical blind-face-restoration model, seeded and reproducible.

    LQ = JPEG_q( downsample_r( HQ * k_sigma ) + n_delta ), resized back to the HQ size

(GFPGAN, Wang et al. 2021, Eq. 6; DifFace and DiffBIR use the same chain with wider ranges).
Images are (H, W, 3) RGB uint8 arrays, as everywhere before ``pipeline``.

The work is split in two so that every random draw is written down: :func:`sample_degradation`
draws a :class:`DegradationParams` from a :class:`DegradationConfig` with an explicit
``np.random.Generator``, and :func:`apply_degradation` is a deterministic function of the image and
those parameters (the noise is drawn from a seed stored in the parameters). The training data
loader degrades on the fly with these functions; :func:`build_degraded_set` writes
CelebA-Test-style benchmark sets with a manifest of the parameters of every image.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm.auto import tqdm

from .errors import InvalidImageError
from .io import atomic_write_bytes, encode_image, load_rgb, resize_image

# Blur kernel side used by GFPGAN's training options (``blur_kernel_size: 41``).
DEFAULT_KERNEL_SIZE = 41
MANIFEST_NAME = "manifest.json"
# The four strengths of ../shared/AUTHFACE.md's identity table, (downsample x, blur sigma, noise sigma,
# JPEG quality), mild to strongest: ``authface_core.authenticity``'s constants were calibrated at these
# levels (bench/calibrate_identity.py), applied by :func:`degrade_at_level`.
CALIBRATION_LEVELS = ((2.0, 1.0, 5.0, 80), (4.0, 2.0, 10.0, 60), (8.0, 3.0, 15.0, 40), (16.0, 4.0, 20.0, 30))
# The reference check's levels (bench/reference_identity.py): x4 to x16 of the above, and x32, one more step of
# the same progression (downsampling doubled, blur +1, noise +5, JPEG quality -10): a 512 px face at 16 px.
REFERENCE_LEVELS = (*CALIBRATION_LEVELS[1:], (32.0, 5.0, 25.0, 20))


def _check_range(name: str, bounds: tuple[float, float], low: float, high: float) -> None:
    if len(bounds) != 2 or not bounds[0] <= bounds[1]:
        raise ValueError(f"{name} must be a (min, max) pair with min <= max, got {bounds!r}")
    if bounds[0] < low or bounds[1] > high:
        raise ValueError(f"{name} must lie within [{low}, {high}], got {bounds!r}")


@dataclass(frozen=True)
class DegradationConfig:
    """Ranges that degradation parameters are drawn from, uniformly.

    Args:
        blur_sigma: (min, max) standard deviation of the Gaussian blur kernel, in HQ pixels.
        downsample: (min, max) downsampling factor r (1 keeps the size; 8 means 512 -> 64 px).
        noise: (min, max) standard deviation of the additive Gaussian noise, on the 0-255 scale.
        jpeg_quality: (min, max) JPEG quality, inclusive, 1-100.
        kernel_size: side of the (odd) blur kernel.
        anisotropic_prob: chance that a kernel is anisotropic (two sigmas drawn independently and
            a random rotation) rather than isotropic.
    """

    blur_sigma: tuple[float, float]
    downsample: tuple[float, float]
    noise: tuple[float, float]
    jpeg_quality: tuple[int, int]
    kernel_size: int = DEFAULT_KERNEL_SIZE
    anisotropic_prob: float = 0.5

    def __post_init__(self) -> None:
        for name in ("blur_sigma", "downsample", "noise", "jpeg_quality"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        _check_range("blur_sigma", self.blur_sigma, 1e-3, 100.0)
        _check_range("downsample", self.downsample, 1e-3, 256.0)
        _check_range("noise", self.noise, 0.0, 255.0)
        _check_range("jpeg_quality", self.jpeg_quality, 1, 100)
        if not all(isinstance(q, (int, np.integer)) for q in self.jpeg_quality):
            raise ValueError(f"jpeg_quality must be two integers, got {self.jpeg_quality!r}")
        if self.kernel_size < 3 or self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be an odd integer >= 3, got {self.kernel_size!r}")
        if not 0.0 <= self.anisotropic_prob <= 1.0:
            raise ValueError(f"anisotropic_prob must lie within [0, 1], got {self.anisotropic_prob!r}")


# Ranges from ../shared/AUTHFACE.md: GFPGAN's training options (ffhq_gfpgan.yml: blur_sigma
# [0.1, 10], downsample_range [0.8, 8], noise_range [0, 20], jpeg_range [60, 100]) and the harder
# DifFace/DiffBIR face setting (sigma up to 15, downsampling up to 32, JPEG down to 30).
PRESETS: dict[str, DegradationConfig] = {
    "gfpgan": DegradationConfig(
        blur_sigma=(0.1, 10.0), downsample=(0.8, 8.0), noise=(0.0, 20.0), jpeg_quality=(60, 100)
    ),
    "difface": DegradationConfig(
        blur_sigma=(0.1, 15.0), downsample=(0.8, 32.0), noise=(0.0, 20.0), jpeg_quality=(30, 100)
    ),
}


@dataclass(frozen=True)
class DegradationParams:
    """The parameters of one degradation, enough to replay it exactly.

    Args:
        sigma_x, sigma_y: blur standard deviations along the kernel's own axes (equal when isotropic).
        theta: kernel rotation in radians.
        downsample: factor r.
        noise_sigma: Gaussian noise standard deviation on the 0-255 scale.
        jpeg_quality: JPEG quality 1-100.
        kernel_size: side of the blur kernel.
        noise_seed: seed of the noise field, so that replaying gives the same pixels.
    """

    sigma_x: float
    sigma_y: float
    theta: float
    downsample: float
    noise_sigma: float
    jpeg_quality: int
    kernel_size: int
    noise_seed: int

    def to_dict(self) -> dict[str, float | int]:
        """Plain Python numbers (JSON-ready)."""
        return asdict(self)


def sample_degradation(config: DegradationConfig, rng: np.random.Generator) -> DegradationParams:
    """Draw one set of parameters uniformly within ``config``'s ranges."""
    anisotropic = rng.random() < config.anisotropic_prob
    sigma_x = float(rng.uniform(*config.blur_sigma))
    sigma_y = float(rng.uniform(*config.blur_sigma)) if anisotropic else sigma_x
    theta = float(rng.uniform(0.0, math.pi)) if anisotropic else 0.0
    return DegradationParams(
        sigma_x=sigma_x,
        sigma_y=sigma_y,
        theta=theta,
        downsample=float(rng.uniform(*config.downsample)),
        noise_sigma=float(rng.uniform(*config.noise)),
        jpeg_quality=int(rng.integers(config.jpeg_quality[0], config.jpeg_quality[1], endpoint=True)),
        kernel_size=config.kernel_size,
        noise_seed=int(rng.integers(0, 2**31 - 1)),
    )


def gaussian_kernel(sigma_x: float, sigma_y: float, theta: float, size: int) -> np.ndarray:
    """(size, size) float64 anisotropic Gaussian kernel summing to 1 (covariance R diag(sx^2, sy^2) R^T)."""
    rotation = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    covariance = rotation @ np.diag([sigma_x**2, sigma_y**2]) @ rotation.T
    radius = size // 2
    grid = np.arange(-radius, radius + 1, dtype=np.float64)
    xy = np.stack(np.meshgrid(grid, grid, indexing="xy"), axis=-1)  # (size, size, 2) as (x, y)
    exponent = np.einsum("hwi,ij,hwj->hw", xy, np.linalg.inv(covariance), xy)
    kernel = np.exp(-0.5 * exponent)
    return kernel / kernel.sum()


def apply_degradation(hq: np.ndarray, params: DegradationParams) -> np.ndarray:
    """Blur, downsample, add noise, JPEG-compress and resize back: (H, W, 3) uint8 -> same shape."""
    if hq.dtype != np.uint8 or hq.ndim != 3 or hq.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) uint8 image, got {hq.shape} {hq.dtype}")
    height, width = hq.shape[:2]
    kernel = gaussian_kernel(params.sigma_x, params.sigma_y, params.theta, params.kernel_size)
    blurred = cv2.filter2D(hq.astype(np.float32), -1, kernel.astype(np.float32), borderType=cv2.BORDER_REFLECT_101)
    small_size = (max(1, round(width / params.downsample)), max(1, round(height / params.downsample)))
    small = cv2.resize(blurred, small_size, interpolation=cv2.INTER_LINEAR)
    noise = np.random.default_rng(params.noise_seed).normal(0.0, params.noise_sigma, small.shape)
    noisy = np.clip(np.round(small + noise), 0, 255).astype(np.uint8)
    ok, encoded = cv2.imencode(".jpg", noisy[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, params.jpeg_quality])
    if not ok:
        raise RuntimeError(f"OpenCV could not JPEG-encode a {small_size} image at quality {params.jpeg_quality}")
    compressed = cv2.imdecode(encoded, cv2.IMREAD_COLOR)[:, :, ::-1]
    return np.ascontiguousarray(cv2.resize(compressed, (width, height), interpolation=cv2.INTER_LINEAR))


def degrade(
    hq: np.ndarray, config: DegradationConfig, rng: np.random.Generator
) -> tuple[np.ndarray, DegradationParams]:
    """Draw parameters from ``config`` with ``rng`` and apply them: returns (LQ image, parameters)."""
    params = sample_degradation(config, rng)
    return apply_degradation(hq, params), params


def resolve_degradation(preset_or_config: str | DegradationConfig) -> DegradationConfig:
    """A preset name (``"gfpgan"``, ``"difface"``) or a config, as a config."""
    if isinstance(preset_or_config, DegradationConfig):
        return preset_or_config
    if preset_or_config not in PRESETS:
        raise ValueError(f"unknown degradation preset {preset_or_config!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[preset_or_config]


def degrade_at_level(face: np.ndarray, level: tuple[float, float, float, int], seed: int) -> np.ndarray:
    """One of :data:`CALIBRATION_LEVELS` applied to a face: isotropic blur, noise drawn from ``seed``."""
    down, sigma, noise, quality = level
    params = DegradationParams(
        sigma_x=sigma,
        sigma_y=sigma,
        theta=0.0,
        downsample=down,
        noise_sigma=noise,
        jpeg_quality=quality,
        kernel_size=DEFAULT_KERNEL_SIZE,
        noise_seed=seed,
    )
    return apply_degradation(face, params)


def load_square_face(path: str | os.PathLike, size: int) -> np.ndarray:
    """Load an aligned (square) face and resize it to (size, size, 3) uint8; refuse other shapes."""
    rgb = load_rgb(path)
    height, width = rgb.shape[:2]
    if height != width:
        raise InvalidImageError(
            str(path),
            f"is {width}x{height}, not an aligned square face; align it first (python -m authface_core faces)",
        )
    return resize_image(rgb, size, size)


def build_degraded_set(
    hq_paths: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    preset_or_config: str | DegradationConfig,
    seed: int,
    size: int = 512,
) -> Path:
    """Write a CelebA-Test-style benchmark set and return ``out_dir``.

    Layout: ``out_dir/hq/NAME.png`` (the ground truth, resized to ``size``),
    ``out_dir/lq/NAME.png`` (its degraded version, same size) and ``out_dir/manifest.json``
    (preset, seed, ranges and the parameters drawn for every image). Image ``i`` draws from
    ``np.random.default_rng([seed, i])``, so a fixed seed and file list rebuild the same bytes.
    Every file is written atomically.
    """
    config = resolve_degradation(preset_or_config)
    paths = [Path(p) for p in hq_paths]
    if not paths:
        raise ValueError("hq_paths is empty: nothing to degrade")
    if size < 8:
        raise ValueError(f"size must be at least 8 pixels, got {size}")
    names = [p.stem + ".png" for p in paths]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"several inputs would be written as the same file name(s): {duplicates}")
    out_dir = Path(out_dir)
    entries = []
    for index, (path, name) in enumerate(
        tqdm(list(zip(paths, names, strict=True)), desc="Degrading faces", unit="face")
    ):
        hq = load_square_face(path, size)
        lq, params = degrade(hq, config, np.random.default_rng([seed, index]))
        atomic_write_bytes(out_dir / "hq" / name, encode_image(hq))
        atomic_write_bytes(out_dir / "lq" / name, encode_image(lq))
        entries.append({"name": name, "source": str(path), **params.to_dict()})
    preset = preset_or_config if isinstance(preset_or_config, str) else None
    manifest = {"preset": preset, "seed": seed, "size": size, "config": asdict(config), "images": entries}
    atomic_write_bytes(out_dir / MANIFEST_NAME, (json.dumps(manifest, indent=2) + "\n").encode())
    return out_dir
