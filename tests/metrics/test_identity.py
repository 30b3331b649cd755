"""Identity metrics: dlib's descriptor separates people, LMD is zero on itself and follows a known shift."""

from __future__ import annotations

import itertools

import cv2
import numpy as np
import pytest

from authface_core.degradations import load_square_face
from authface_core.faces.detect import Landmarks, detect_faces
from authface_core.faces.identity import descriptor_distance, face_descriptor
from authface_core.io import list_images, load_rgb
from authface_core.metrics.identity import compare_faces, descriptor_angle, landmark_distance, measure_face
from authface_core.metrics.stats import best_threshold, roc_auc

SHIFTS_PX = (2.0, 4.0, 8.0, 16.0)
DETECTION_SIDE = 512  # the press photos' faces are large: detecting on a 512 px copy is 4x faster than at 1024


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


def test_identity_separates_same_from_different_person(shared_faces):
    descriptors = []
    for person in sorted(p for p in (shared_faces / "identity").iterdir() if p.is_dir()):
        for path in list_images([person]):
            photo = load_rgb(path)
            faces = detect_faces(photo, max_side=DETECTION_SIDE)
            assert faces, f"no face found in {path}"
            descriptors.append((person.name, face_descriptor(photo, faces[0])))
    same, different = [], []
    for (person_a, a), (person_b, b) in itertools.combinations(descriptors, 2):
        (same if person_a == person_b else different).append(descriptor_distance(a, b))
    auc = roc_auc(same, different)
    threshold, accuracy = best_threshold(same, different)
    print(
        f"identity/: {len(descriptors)} photos, {len(same)} same / {len(different)} different pairs, "
        f"ROC AUC {auc:.4f}, best threshold {threshold:.3f} (balanced accuracy {accuracy:.3f})"
    )
    assert auc > 0.95
    assert np.median(same) < 0.6 < np.median(different)


def test_roc_auc_and_threshold_on_known_groups():
    assert roc_auc([0.1, 0.2], [0.8, 0.9]) == 1.0
    assert roc_auc([0.8, 0.9], [0.1, 0.2]) == 0.0
    assert roc_auc([0.5], [0.5]) == 0.5
    threshold, accuracy = best_threshold([0.1, 0.2, 0.3], [0.7, 0.8])
    assert 0.3 <= threshold <= 0.7 and accuracy == 1.0
