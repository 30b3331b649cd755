"""Colour fixes as pure functions, on real photos: what each keeps from the output and from the input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from authface_core.pipeline.color_fix import (
    adain_color_fix,
    apply_color_fix,
    wavelet_blur,
    wavelet_color_fix,
    wavelet_decomposition,
)


def to_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255


@pytest.fixture(scope="module")
def photo(astronaut) -> torch.Tensor:
    return to_tensor(astronaut[::4, ::4])  # (1, 3, 128, 128)


def test_wavelet_bands_add_up_to_the_image(photo):
    high, low = wavelet_decomposition(photo)
    assert torch.allclose(high + low, photo, atol=1e-6)
    # the low band is smooth: its neighbour differences are far smaller than the photo's
    assert low.diff(dim=-1).abs().mean() < 0.2 * photo.diff(dim=-1).abs().mean()


def test_wavelet_blur_keeps_size_and_constants():
    constant = torch.full((1, 3, 20, 24), 0.3)
    assert torch.allclose(wavelet_blur(constant, radius=8), constant)


def test_wavelet_fix_removes_a_colour_cast_and_keeps_detail(photo):
    cast = torch.tensor([0.08, -0.05, 0.03]).view(1, 3, 1, 1)
    fixed = wavelet_color_fix(photo + cast, photo)  # a smooth cast lives in the low band only
    assert torch.allclose(fixed, photo, atol=1e-5)


def test_wavelet_fix_takes_detail_from_output(photo):
    blurred_input = wavelet_blur(wavelet_blur(photo, 1), 2)
    fixed = wavelet_color_fix(photo, blurred_input)
    detail = lambda image: (image - wavelet_blur(image, 1)).abs().mean()  # noqa: E731
    assert detail(fixed) > 0.8 * detail(photo) > 2 * detail(blurred_input)


def test_adain_matches_channel_statistics(photo):
    reference = photo * 0.5 + 0.2
    fixed = adain_color_fix(photo, reference)
    assert torch.allclose(fixed.mean(dim=(2, 3)), reference.mean(dim=(2, 3)), atol=1e-5)
    assert torch.allclose(fixed.std(dim=(2, 3)), reference.std(dim=(2, 3)), atol=1e-3)


def test_uint8_fix_truncates_like_to_pil_image(astronaut):
    output, reference = astronaut[:64, :64], astronaut[64:128, 64:128]
    fixed = wavelet_color_fix(to_tensor(output), to_tensor(reference)).clamp(0, 1)
    truncated = np.floor(fixed[0].permute(1, 2, 0).numpy() * np.float32(255)).astype(np.uint8)
    result = apply_color_fix(output, reference, "wavelet")
    assert np.array_equal(result, truncated)
    rounded = np.round(fixed[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    assert not np.array_equal(result, rounded)  # the distinction is real on this photo


def test_none_is_identity_and_bad_inputs_are_refused(astronaut):
    face = astronaut[:32, :32]
    assert apply_color_fix(face, face[::-1], "none") is face
    with pytest.raises(ValueError, match="color_fix must be one of"):
        apply_color_fix(face, face, "histogram")
    with pytest.raises(ValueError, match="one shape"):
        apply_color_fix(face, astronaut[:16, :16], "wavelet")


def test_luminance_is_bt601_luma_and_keeps_gray_pixels_exactly(astronaut):
    from authface_core.pipeline.color_fix import is_grayscale, to_luminance

    faces = np.stack([astronaut[:64, :64], astronaut[64:128, 64:128]])  # (N, H, W, 3), as restored faces come
    luma = to_luminance(faces)
    expected = faces.astype(np.float64) @ np.array([0.299, 0.587, 0.114])  # ITU-R BT.601, restated
    assert luma.shape == faces.shape and luma.dtype == np.uint8
    assert np.abs(luma[..., 0] - expected).max() <= 0.5 + 1e-6
    assert (luma[..., 0] == luma[..., 1]).all() and (luma[..., 1] == luma[..., 2]).all()
    ramp = np.repeat(np.arange(256, dtype=np.uint8).reshape(16, 16, 1), 3, axis=2)
    assert np.array_equal(to_luminance(ramp), ramp)  # gray stays exactly as it was
    assert is_grayscale(luma) and is_grayscale(ramp) and not is_grayscale(astronaut)


def test_grayscale_allows_rounding_but_not_a_tint():
    from authface_core.pipeline.color_fix import GRAYSCALE_TOLERANCE, is_grayscale

    gray = np.full((8, 8, 3), 120, np.uint8)
    rounded = gray.copy()
    rounded[0, 0] = (120, 120 + GRAYSCALE_TOLERANCE, 120)  # a decoder's rounding
    tinted = gray.copy()
    tinted[0, 0] = (120, 121 + GRAYSCALE_TOLERANCE, 120)  # one pixel of colour is a colour photo
    assert is_grayscale(rounded) and not is_grayscale(tinted)
