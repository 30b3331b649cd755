"""Comparing two aligned faces: zero on itself, LMD follows a known shift, one identity model at a time."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from authface_core.degradations import load_square_face
from authface_core.faces.compare import (
    FaceMeasurement,
    compare_faces,
    descriptor_angle,
    landmark_distance,
    measure_face,
    to_eval_size,
)
from authface_core.faces.detect import Landmarks

SHIFTS_PX = (2.0, 4.0, 8.0, 16.0)


@pytest.fixture(scope="module")
def aligned_face(shared_faces):
    return load_square_face(shared_faces / "hq_aligned" / "gpen_ffhq_00006.png", 512)


def translated(face: np.ndarray, dx: float, dy: float) -> np.ndarray:
    matrix = np.array([[1.0, 0.0, dx], [0.0, 1.0, dy]])
    return cv2.warpAffine(face, matrix, face.shape[1::-1], borderMode=cv2.BORDER_REFLECT_101)


def test_face_against_itself_scores_perfectly(astronaut):
    measurement = measure_face(astronaut)
    assert measurement.found
    scores = compare_faces(measurement, measurement)
    assert scores.landmark_distance == 0.0
    assert scores.distance == 0.0 and scores.angle == 0.0 and scores.similarity == 1.0


def test_lmd_grows_with_a_known_shift(aligned_face):
    reference = measure_face(aligned_face)
    lmds = []
    for shift in SHIFTS_PX:
        moved = measure_face(translated(aligned_face, shift, shift / 2))
        true_shift = np.hypot(shift, shift / 2)
        lmds.append(landmark_distance(moved.face.landmarks, reference.face.landmarks))
        # dlib re-detects the moved face: its landmarks follow the shift to about a pixel.
        assert lmds[-1] == pytest.approx(true_shift, abs=1.5 + 0.15 * true_shift)
    print("LMD for shifts", [round(float(np.hypot(s, s / 2)), 2) for s in SHIFTS_PX], "->", [round(v, 2) for v in lmds])
    assert all(a < b for a, b in zip(lmds[:-1], lmds[1:], strict=True))


def test_landmark_distance_is_the_mean_point_distance():
    points = np.zeros((68, 2))
    moved = points + [3.0, 4.0]
    assert landmark_distance(Landmarks(points, "dlib68"), Landmarks(moved, "dlib68")) == pytest.approx(5.0)
    with pytest.raises(ValueError, match="cannot compare"):
        landmark_distance(Landmarks(points, "dlib68"), Landmarks(np.zeros((5, 2)), "five"))


def test_descriptor_angle():
    assert descriptor_angle(np.array([1.0, 0.0]), np.array([2.0, 0.0])) == pytest.approx(0.0)
    assert descriptor_angle(np.array([1.0, 0.0]), np.array([0.0, 3.0])) == pytest.approx(90.0)


class CosineModel:
    """A stand-in identity model with its own distance and threshold (as an ArcFace would plug in)."""

    name = "cosine-test-model"
    same_person_distance = 0.4

    def embed(self, rgb, face):
        return face.landmarks.points.ravel().astype(np.float64)

    def distance(self, a, b):
        return float(1.0 - a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_another_identity_model_plugs_in_and_models_never_mix(astronaut):
    model = CosineModel()
    measurement = measure_face(astronaut, model)
    assert measurement.model is model and measurement.descriptor.shape == (136,)
    scores = compare_faces(measurement, measurement)
    assert scores.distance == pytest.approx(0.0, abs=1e-12) and scores.similarity == pytest.approx(1.0)
    with pytest.raises(ValueError, match="cannot compare a cosine-test-model embedding"):
        compare_faces(measurement, measure_face(astronaut))


def test_a_missing_face_gives_no_scores_and_crops_must_be_square(astronaut):
    missing = FaceMeasurement(face=None, descriptor=None)
    assert compare_faces(missing, measure_face(astronaut)) is None
    assert to_eval_size(astronaut[:256, :256]).shape == (512, 512, 3)
    with pytest.raises(ValueError, match="square aligned face, got 512x256"):
        to_eval_size(astronaut[:256])
