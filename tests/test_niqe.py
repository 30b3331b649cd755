"""NIQE: the published pristine model ships as package data, and the score ranks degradation strength."""

from __future__ import annotations

import numpy as np
import pytest

from authface_core.degradations import CALIBRATION_LEVELS, degrade_at_level, load_square_face
from authface_core.niqe import imresize_half, niqe, niqe_or_none, pristine_model


def test_pristine_model_is_the_published_one():
    mean, covariance = pristine_model()
    assert mean.shape == (36,) and covariance.shape == (36, 36)
    np.testing.assert_allclose(covariance, covariance.T)
    assert np.all(np.linalg.eigvalsh(covariance) > -1e-9)  # a covariance matrix
    assert mean[0] == pytest.approx(2.6013, abs=1e-4)  # first feature: MSCN shape parameter of pristine photos


@pytest.mark.parametrize("name", ["gpen_ffhq_00006.png", "ddnm_00234.png", "sam_866.jpg"])
def test_clean_face_ranks_better_than_stronger_degradations(shared_faces, name):
    face = load_square_face(shared_faces / "hq_aligned" / name, 512)
    scores = [niqe(face)] + [niqe(degrade_at_level(face, level, seed=0)) for level in CALIBRATION_LEVELS]
    print(name, "NIQE clean -> strongest:", [round(s, 2) for s in scores])
    assert all(a < b for a, b in zip(scores[:-1], scores[1:], strict=True)), scores
    assert scores[0] < 6.0  # a clean FFHQ/CelebA-HQ face reads as natural


def test_astronaut_is_natural_and_noise_is_not(astronaut):
    rng = np.random.default_rng(0)
    noisy = np.clip(astronaut + rng.normal(0, 25, astronaut.shape), 0, 255).astype(np.uint8)
    assert niqe(astronaut) < 4.0 < niqe(noisy)


def test_half_resize_keeps_flat_images_flat_and_halves_the_size():
    plane = np.full((97, 64), 100.0)
    half = imresize_half(plane)
    assert half.shape == (49, 32)
    np.testing.assert_allclose(half, 100.0)


def test_small_images_are_refused():
    with pytest.raises(ValueError, match="at least 192 px"):
        niqe(np.zeros((100, 300, 3), np.uint8))


def test_niqe_or_none_is_none_where_niqe_is_undefined(astronaut):
    assert niqe_or_none(astronaut[:100]) is None  # under 192 px a side
    assert niqe_or_none(np.full((256, 256, 3), 128, np.uint8)) is None  # flat: no statistics to fit
    assert niqe_or_none(astronaut) == niqe(astronaut)
