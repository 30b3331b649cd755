"""Identity descriptors separate people: same-person pairs closer than different-person pairs."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from authface_core.errors import NoFaceDetectedError
from authface_core.faces import DLIB_IDENTITY, detect_faces, face_descriptor, identity_similarity


def roc_auc(same: np.ndarray, different: np.ndarray) -> float:
    """Probability that a different-person pair is farther apart than a same-person pair."""
    greater = (different[None, :] > same[:, None]).mean()
    ties = (different[None, :] == same[:, None]).mean()
    return float(greater + 0.5 * ties)


def test_same_person_pairs_score_closer_than_different_people(identity_photos):
    people = [(photo.person, photo.descriptor) for photo in identity_photos]
    assert all(descriptor is not None for _, descriptor in people)
    same, different = [], []
    for (person_a, a), (person_b, b) in itertools.combinations(people, 2):
        (same if person_a == person_b else different).append(np.linalg.norm(a - b))  # dlib: Euclidean
    same, different = np.array(same), np.array(different)
    auc = roc_auc(same, different)
    print(
        f"identity/: {len(people)} photos, ROC AUC over {len(same)} same-person and {len(different)} "
        f"different-person pairs: {auc:.4f}; median distance {np.median(same):.3f} vs {np.median(different):.3f}"
    )
    assert len({person for person, _ in people}) == 12
    assert auc > 0.99
    assert np.median(same) < DLIB_IDENTITY.same_person_distance < np.median(different)


def test_descriptor_is_stable_under_mild_changes_and_similarity_is_bounded(astronaut):
    import cv2

    face = detect_faces(astronaut)[0]
    reference = face_descriptor(astronaut, face)
    assert reference.shape == (128,)
    smaller = cv2.resize(astronaut, (384, 384), interpolation=cv2.INTER_AREA)
    assert DLIB_IDENTITY.distance(reference, face_descriptor(smaller)) < 0.3
    assert DLIB_IDENTITY.distance(reference, reference) == 0.0
    flipped = astronaut[:, ::-1].copy()
    assert 0.0 <= identity_similarity(DLIB_IDENTITY.distance(reference, face_descriptor(flipped))) <= 1.0


def test_similarity_puts_the_threshold_at_one_half():
    assert identity_similarity(0.0) == 1.0
    assert identity_similarity(0.6) == pytest.approx(0.5)
    assert identity_similarity(0.3, same_person_distance=0.3) == pytest.approx(0.5)
    assert identity_similarity(5.0) == 0.0


def test_no_face_raises_a_named_error():
    from skimage import data

    with pytest.raises(NoFaceDetectedError, match="coffee.png: no face detected"):
        face_descriptor(data.coffee(), source="coffee.png")
