"""The authenticity report: same person, drift and "cannot verify" on real faces, with the calibrated constants."""

from __future__ import annotations

import numpy as np
import pytest

from authface_core.authenticity import (
    CANNOT_VERIFY,
    DRIFTED,
    INPUT_NIQE_LIMIT,
    SAME_PERSON,
    AuthenticityReport,
    authenticity_report,
)
from authface_core.degradations import CALIBRATION_LEVELS, degrade_at_level, load_square_face

MODERATE, STRONGEST = CALIBRATION_LEVELS[1], CALIBRATION_LEVELS[-1]  # x4 blur 2 ... ; x16 blur 4 noise 20 q30


@pytest.fixture(scope="module")
def person_a(shared_faces):
    return load_square_face(shared_faces / "hq_aligned" / "gpen_ffhq_00006.png", 512)


@pytest.fixture(scope="module")
def person_b(shared_faces):
    return load_square_face(shared_faces / "hq_aligned" / "ddnm_00234.png", 512)


def test_identical_face_is_the_same_person(astronaut):
    report = authenticity_report(astronaut, astronaut)
    assert report.verdict == SAME_PERSON and not report.warning
    assert report.identity_distance == 0.0 and report.identity_similarity == 1.0 and report.landmark_shift == 0.0
    assert report.input_niqe < INPUT_NIQE_LIMIT


def test_faithful_restoration_of_a_degraded_input_is_the_same_person(person_a):
    degraded = degrade_at_level(person_a, MODERATE, seed=0)
    report = authenticity_report(degraded, person_a)
    print("faithful:", report.message)
    assert report.verdict == SAME_PERSON, report.message
    assert not report.warning


def test_restoration_into_someone_else_is_flagged(person_a, person_b):
    degraded = degrade_at_level(person_a, MODERATE, seed=0)
    report = authenticity_report(degraded, person_b)
    print("drifted:", report.message)
    assert report.verdict == DRIFTED and report.warning
    assert report.identity_distance > 0.6


def test_a_badly_degraded_input_cannot_be_verified(person_a, person_b):
    degraded = degrade_at_level(person_a, STRONGEST, seed=0)
    report = authenticity_report(degraded, person_b)
    print("too degraded:", report.message)
    assert report.verdict == CANNOT_VERIFY
    assert report.input_niqe > INPUT_NIQE_LIMIT or "no face found in the input" in report.message


def test_no_face_in_the_input_cannot_be_verified(astronaut):
    flat = np.full_like(astronaut, 128)
    report = authenticity_report(flat, astronaut)
    assert report.verdict == CANNOT_VERIFY and report.identity_distance is None
    assert "no face found in the input" in report.message


def test_a_face_lost_in_the_output_is_a_warning(astronaut):
    noise = np.random.default_rng(0).integers(0, 256, astronaut.shape, dtype=np.uint8)
    report = authenticity_report(astronaut, noise)
    assert report.verdict == CANNOT_VERIFY and report.warning
    assert "none is found in the restored output" in report.message


def test_invalid_inputs_are_refused(astronaut):
    with pytest.raises(ValueError, match="differ in size"):
        authenticity_report(astronaut, astronaut[:256, :256])
    with pytest.raises(ValueError, match="verdict must be one of"):
        AuthenticityReport(0.1, 0.9, 1.0, "probably fine", False, "")
