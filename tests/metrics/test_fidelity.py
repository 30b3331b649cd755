"""PSNR and SSIM against references built without scikit-image's metrics: the MSE formula on planes from
scikit-image's colour conversion, and SSIM computed basicsr's way (OpenCV filters)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import color

from authface_core.degradations import DegradationParams, apply_degradation
from authface_core.metrics.fidelity import psnr, ssim
from authface_core.niqe import rgb_to_y


def reference_y(rgb: np.ndarray) -> np.ndarray:
    """BT.601 studio-range luma by scikit-image's colour module (MATLAB rgb2ycbcr's first row)."""
    return color.rgb2ycbcr(rgb)[..., 0]


def reference_psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / mse))


def reference_ssim_plane(a: np.ndarray, b: np.ndarray) -> float:
    """basicsr's ``_ssim`` (Wang et al. 2004): OpenCV 11x11 Gaussian (sigma 1.5) filter, valid region only."""
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    kernel = cv2.getGaussianKernel(11, 1.5)
    window = np.outer(kernel, kernel.transpose())

    def local_mean(plane):
        return cv2.filter2D(plane, -1, window)[5:-5, 5:-5]

    mu_a, mu_b = local_mean(a), local_mean(b)
    var_a, var_b = local_mean(a * a) - mu_a**2, local_mean(b * b) - mu_b**2
    cov = local_mean(a * b) - mu_a * mu_b
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return float(ssim_map.mean())


def reference_ssim_rgb(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean([reference_ssim_plane(a[..., c], b[..., c]) for c in range(3)]))


@pytest.fixture(scope="module")
def astronaut_pair(astronaut):
    """The astronaut and a blurred, noisy, JPEG-compressed copy of it."""
    params = DegradationParams(2.0, 2.0, 0.0, 4.0, 10.0, 60, 41, noise_seed=7)
    return astronaut, apply_degradation(astronaut, params)


def test_y_channel_is_bt601_studio_range(astronaut):
    np.testing.assert_allclose(rgb_to_y(astronaut), reference_y(astronaut), atol=1e-9)


def test_psnr_equals_the_mse_formula(astronaut_pair):
    clean, degraded = astronaut_pair
    expected_y = reference_psnr(reference_y(clean), reference_y(degraded))
    assert psnr(degraded, clean, channel="rgb") == pytest.approx(reference_psnr(clean, degraded), abs=1e-9)
    assert psnr(degraded, clean, channel="y") == pytest.approx(expected_y, abs=1e-9)
    assert 20 < expected_y < 40  # a real degradation, not a trivial pair


def test_ssim_equals_basicsr_recipe(astronaut_pair):
    clean, degraded = astronaut_pair
    expected_y = reference_ssim_plane(reference_y(clean), reference_y(degraded))
    rgb = clean.astype(np.float64), degraded.astype(np.float64)
    assert ssim(degraded, clean, channel="rgb") == pytest.approx(reference_ssim_rgb(*rgb), abs=1e-9)
    assert ssim(degraded, clean, channel="y") == pytest.approx(expected_y, abs=1e-9)
    assert 0.3 < expected_y < 0.95


def test_real_faces_match_the_references(shared_faces):
    from authface_core.degradations import load_square_face

    clean = load_square_face(shared_faces / "hq_aligned" / "gpen_ffhq_00006.png", 256)
    degraded = apply_degradation(clean, DegradationParams(3.0, 1.5, 0.7, 6.0, 15.0, 40, 41, noise_seed=1))
    assert psnr(degraded, clean, channel="y") == pytest.approx(
        reference_psnr(reference_y(clean), reference_y(degraded)), abs=1e-9
    )
    assert ssim(degraded, clean, channel="rgb") == pytest.approx(
        reference_ssim_rgb(clean.astype(np.float64), degraded.astype(np.float64)), abs=1e-9
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


def test_ssim_refuses_images_smaller_than_its_window():
    tiny = np.zeros((10, 40, 3), np.uint8)
    with pytest.raises(ValueError, match="at least 11 px"):
        ssim(tiny, tiny)
