"""Degradation presets: documented ranges, replayable parameters, byte-for-byte reproducible sets."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from authface_core.degradations import (
    PRESETS,
    DegradationConfig,
    apply_degradation,
    build_degraded_set,
    degrade,
    gaussian_kernel,
    sample_degradation,
)
from authface_core.errors import InvalidImageError
from authface_core.io import save_image

# The ranges of ../shared/AUTHFACE.md ("Degradation model for training and synthetic tests").
DOCUMENTED_RANGES = {
    "gfpgan": {"blur_sigma": (0.1, 10), "downsample": (0.8, 8), "noise": (0, 20), "jpeg_quality": (60, 100)},
    "difface": {"blur_sigma": (0.1, 15), "downsample": (0.8, 32), "noise": (0, 20), "jpeg_quality": (30, 100)},
}


@pytest.mark.parametrize("preset", sorted(DOCUMENTED_RANGES))
def test_preset_ranges_are_the_documented_ones(preset):
    config = PRESETS[preset]
    for field_name, bounds in DOCUMENTED_RANGES[preset].items():
        assert getattr(config, field_name) == pytest.approx(bounds)
    assert config.kernel_size == 41


@pytest.mark.parametrize("preset", sorted(DOCUMENTED_RANGES))
def test_presets_draw_within_their_ranges_and_cover_them(preset):
    config, rng = PRESETS[preset], np.random.default_rng(7)
    draws = [sample_degradation(config, rng) for _ in range(3000)]
    ranges = {
        "sigma_x": config.blur_sigma,
        "sigma_y": config.blur_sigma,
        "downsample": config.downsample,
        "noise_sigma": config.noise,
        "jpeg_quality": config.jpeg_quality,
    }
    for name, (low, high) in ranges.items():
        values = np.array([getattr(d, name) for d in draws])
        assert values.min() >= low and values.max() <= high, name
        # Uniform draws should reach both ends of the range (within 2% of its width).
        assert values.min() - low < 0.02 * (high - low) and high - values.max() < 0.02 * (high - low), name
    anisotropic = np.mean([d.sigma_x != d.sigma_y for d in draws])
    assert 0.45 < anisotropic < 0.55  # anisotropic_prob = 0.5
    assert all(0.0 <= d.theta < math.pi for d in draws)


@pytest.mark.parametrize(
    "changes",
    [
        {"blur_sigma": (5.0, 1.0)},
        {"downsample": (0.0, 4.0)},
        {"noise": (-1.0, 5.0)},
        {"jpeg_quality": (0, 100)},
        {"jpeg_quality": (60.5, 90)},
        {"kernel_size": 40},
        {"anisotropic_prob": 1.5},
    ],
)
def test_config_rejects_invalid_values_naming_the_field(changes):
    base = {"blur_sigma": (0.1, 10.0), "downsample": (1.0, 4.0), "noise": (0.0, 10.0), "jpeg_quality": (60, 100)}
    with pytest.raises(ValueError, match=next(iter(changes))):
        DegradationConfig(**{**base, **changes})


def test_gaussian_kernel_is_normalised_and_rotates():
    kernel = gaussian_kernel(2.0, 5.0, 0.0, 41)
    assert kernel.sum() == pytest.approx(1.0)
    # A quarter turn swaps the axes; an isotropic kernel is symmetric.
    np.testing.assert_allclose(
        gaussian_kernel(2.0, 5.0, math.pi / 2, 41), gaussian_kernel(5.0, 2.0, 0.0, 41), atol=1e-12
    )
    isotropic = gaussian_kernel(3.0, 3.0, 0.0, 21)
    np.testing.assert_allclose(isotropic, isotropic.T, atol=1e-15)
    # sigma_y = 5 > sigma_x = 2: the kernel spreads further down its centre column (y) than along its row (x).
    assert kernel[30, 20] > 1000 * kernel[20, 30]


def test_apply_degradation_replays_exactly_and_hurts_more_when_stronger(astronaut):
    face = astronaut[:256, 128:384]
    lq, params = degrade(face, PRESETS["gfpgan"], np.random.default_rng(3))
    assert lq.shape == face.shape and lq.dtype == np.uint8
    np.testing.assert_array_equal(apply_degradation(face, params), lq)

    def error_at(sigma: float, factor: float) -> float:
        mild = type(params)(sigma, sigma, 0.0, factor, 5.0, 90, 41, 0)
        return float(np.abs(apply_degradation(face, mild).astype(float) - face).mean())

    errors = [error_at(1.0, 1.5), error_at(3.0, 4.0), error_at(8.0, 8.0)]
    assert errors[0] < errors[1] < errors[2]


def test_apply_degradation_rejects_non_rgb_uint8():
    params = sample_degradation(PRESETS["gfpgan"], np.random.default_rng(0))
    with pytest.raises(ValueError, match="uint8"):
        apply_degradation(np.zeros((32, 32, 3), np.float32), params)


def test_fixed_seed_rebuilds_the_same_set_byte_for_byte(shared_faces, tmp_path):
    hq_paths = sorted((shared_faces / "hq_aligned").glob("*.png"))[:3]
    first = build_degraded_set(hq_paths, tmp_path / "a", "difface", seed=11, size=96)
    second = build_degraded_set(hq_paths, tmp_path / "b", "difface", seed=11, size=96)
    other_seed = build_degraded_set(hq_paths, tmp_path / "c", "difface", seed=12, size=96)
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert len(files) == 2 * len(hq_paths) + 1
    for relative in files:
        assert (first / relative).read_bytes() == (second / relative).read_bytes(), relative
    lq_name = f"lq/{hq_paths[0].stem}.png"
    assert (first / lq_name).read_bytes() != (other_seed / lq_name).read_bytes()

    manifest = json.loads((first / "manifest.json").read_text())
    assert manifest["preset"] == "difface" and manifest["seed"] == 11 and len(manifest["images"]) == 3
    for entry in manifest["images"]:
        assert 0.1 <= entry["sigma_x"] <= 15 and 0.8 <= entry["downsample"] <= 32 and 30 <= entry["jpeg_quality"] <= 100
    assert not list(first.rglob("*.tmp"))


def test_build_degraded_set_refuses_unaligned_and_corrupt_files(tmp_path, astronaut):
    wide = tmp_path / "wide.png"
    save_image(wide, astronaut[:200])
    with pytest.raises(InvalidImageError, match="wide.png.*not an aligned square face"):
        build_degraded_set([wide], tmp_path / "out", "gfpgan", seed=0, size=64)
    corrupt = tmp_path / "broken.png"
    corrupt.write_bytes(b"not a png")
    with pytest.raises(InvalidImageError, match="broken.png"):
        build_degraded_set([corrupt], tmp_path / "out", "gfpgan", seed=0, size=64)
    with pytest.raises(ValueError, match="unknown degradation preset"):
        build_degraded_set([wide], tmp_path / "out", "celeba", seed=0, size=64)
