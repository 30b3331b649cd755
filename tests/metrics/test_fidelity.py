"""PSNR and SSIM equal scikit-image's on the same images, on Y and on RGB."""

from __future__ import annotations

import numpy as np
import pytest
from skimage import color, metrics

from authface_core.degradations import DegradationParams, apply_degradation
from authface_core.metrics.fidelity import psnr, rgb_to_y, ssim

SKIMAGE_SSIM = {"gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False, "data_range": 255}


@pytest.fixture(scope="module")
def astronaut_pair(astronaut):
    """The astronaut and a blurred, noisy, JPEG-compressed copy of it."""
    params = DegradationParams(2.0, 2.0, 0.0, 4.0, 10.0, 60, 41, noise_seed=7)
    return astronaut, apply_degradation(astronaut, params)


def test_y_channel_is_bt601_studio_range(astronaut):
    np.testing.assert_allclose(rgb_to_y(astronaut), color.rgb2ycbcr(astronaut)[..., 0], atol=1e-9)


def test_psnr_equals_scikit_image(astronaut_pair):
    clean, degraded = astronaut_pair
    expected_rgb = metrics.peak_signal_noise_ratio(clean, degraded, data_range=255)
    expected_y = metrics.peak_signal_noise_ratio(rgb_to_y(clean), rgb_to_y(degraded), data_range=255)
    assert psnr(degraded, clean, channel="rgb") == pytest.approx(expected_rgb, abs=1e-9)
    assert psnr(degraded, clean, channel="y") == pytest.approx(expected_y, abs=1e-9)
    assert 20 < expected_y < 40  # a real degradation, not a trivial pair


def test_ssim_equals_scikit_image(astronaut_pair):
    clean, degraded = astronaut_pair
    expected_rgb = metrics.structural_similarity(clean, degraded, channel_axis=-1, **SKIMAGE_SSIM)
    expected_y = metrics.structural_similarity(rgb_to_y(clean), rgb_to_y(degraded), **SKIMAGE_SSIM)
    assert ssim(degraded, clean, channel="rgb") == pytest.approx(expected_rgb, abs=1e-9)
    assert ssim(degraded, clean, channel="y") == pytest.approx(expected_y, abs=1e-9)
    assert 0.3 < expected_y < 0.95


def test_real_faces_match_scikit_image(shared_faces):
    from authface_core.degradations import load_square_face

    clean = load_square_face(shared_faces / "hq_aligned" / "gpen_ffhq_00006.png", 256)
    degraded = apply_degradation(clean, DegradationParams(3.0, 1.5, 0.7, 6.0, 15.0, 40, 41, noise_seed=1))
    assert psnr(degraded, clean, channel="y") == pytest.approx(
        metrics.peak_signal_noise_ratio(rgb_to_y(clean), rgb_to_y(degraded), data_range=255), abs=1e-9
    )
    assert ssim(degraded, clean, channel="rgb") == pytest.approx(
        metrics.structural_similarity(clean, degraded, channel_axis=-1, **SKIMAGE_SSIM), abs=1e-9
    )


def test_identical_images_are_perfect(astronaut):
    assert psnr(astronaut, astronaut) == float("inf")
    assert ssim(astronaut, astronaut, channel="rgb") == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("a_shape", "b_shape", "channel", "message"),
    [
        ((32, 32, 3), (32, 32, 3), "lab", "channel must be one of"),
        ((32, 32, 3), (32, 30, 3), "y", "differ in size"),
        ((32, 32), (32, 32), "y", "RGB image"),
    ],
)
def test_bad_inputs_are_refused(a_shape, b_shape, channel, message):
    with pytest.raises(ValueError, match=message):
        psnr(np.zeros(a_shape, np.uint8), np.zeros(b_shape, np.uint8), channel=channel)
