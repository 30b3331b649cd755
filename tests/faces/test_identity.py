"""Identity descriptors separate people: same-person pairs closer than different-person pairs."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from authface_core.errors import NoFaceDetectedError
from authface_core.faces import descriptor_distance, detect_faces, face_descriptor, identity_similarity
from authface_core.io import list_images, load_rgb


def roc_auc(same: np.ndarray, different: np.ndarray) -> float:
    """Probability that a different-person pair is farther apart than a same-person pair."""
    greater = (different[None, :] > same[:, None]).mean()
    ties = (different[None, :] == same[:, None]).mean()
    return float(greater + 0.5 * ties)


def test_same_person_pairs_score_closer_than_different_people(shared_faces):
    people = []
    for path in list_images([shared_faces / "identity"]):
        people.append((path.parent.name, face_descriptor(load_rgb(path), source=str(path))))
    same, different = [], []
    for (person_a, a), (person_b, b) in itertools.combinations(people, 2):
        (same if person_a == person_b else different).append(descriptor_distance(a, b))
    auc = roc_auc(np.array(same), np.array(different))
    print(f"identity ROC AUC over {len(same)} same-person and {len(different)} different-person pairs: {auc:.4f}")
    assert len({person for person, _ in people}) == 12
    assert auc > 0.99


def test_descriptor_is_stable_under_mild_changes_and_similarity_is_bounded(astronaut):
    import cv2

    face = detect_faces(astronaut)[0]
    reference = face_descriptor(astronaut, face)
    assert reference.shape == (128,)
    smaller = cv2.resize(astronaut, (384, 384), interpolation=cv2.INTER_AREA)
    assert descriptor_distance(reference, face_descriptor(smaller)) < 0.3
    assert identity_similarity(reference, reference) == 1.0
    flipped = astronaut[:, ::-1].copy()
    assert 0.0 <= identity_similarity(reference, face_descriptor(flipped)) <= 1.0


def test_no_face_raises_a_named_error():
    from skimage import data

    with pytest.raises(NoFaceDetectedError, match="coffee.png: no face detected"):
        face_descriptor(data.coffee(), source="coffee.png")
