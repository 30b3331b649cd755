"""Reference photos: parsing, the Hungarian matching, and verdicts on real photos of ../shared/faces/identity."""

from __future__ import annotations

import numpy as np
import pytest

from authface_core.io import load_image, load_rgb, resize_image
from authface_core.references import (
    CANNOT_VERIFY,
    DEFAULT_PERSON,
    DIFFERENT_PERSON,
    MAX_REFERENCES,
    REFERENCE_DISTANCE,
    SAME_PERSON,
    ReferenceCheck,
    ReferenceSpec,
    check_faces,
    check_reference_counts,
    embed_reference,
    load_references,
    match_faces,
    parse_reference,
    verify_photo,
)


def test_parse_reference_names_persons_and_faces(tmp_path):
    assert parse_reference("a.jpg") == ReferenceSpec("a.jpg", DEFAULT_PERSON, None)
    assert parse_reference("anna=photos/a1.jpg") == ReferenceSpec("photos/a1.jpg", "anna", None)
    assert parse_reference("ben=b.jpg#1") == ReferenceSpec("b.jpg", "ben", 1)
    assert parse_reference("dir=x/a.jpg") == ReferenceSpec("x/a.jpg", "dir", None)
    assert parse_reference("x/y=z.jpg") == ReferenceSpec("x/y=z.jpg", DEFAULT_PERSON, None)  # '/' in a name: a path
    odd = tmp_path / "anna=odd#2.jpg"
    odd.write_bytes(b"")
    assert parse_reference(str(odd)) == ReferenceSpec(str(odd))  # an existing file is taken as it is
    with pytest.raises(ValueError, match="NAME=]PATH"):
        parse_reference("anna=")


def test_more_than_eight_references_of_one_person_are_refused():
    check_reference_counts(["anna"] * MAX_REFERENCES + ["ben"])
    with pytest.raises(ValueError, match="9 references for 'anna'"):
        check_reference_counts(["anna"] * (MAX_REFERENCES + 1))


def test_matching_is_an_assignment_not_greedy():
    # Greedy (face 0 takes its closest, person 0) would leave face 1 only person 1, over the threshold.
    costs = np.array([[0.30, 0.35], [0.32, 0.90]])
    assert match_faces(costs, threshold=0.6) == {0: 1, 1: 0}


def test_matching_leaves_faces_over_the_threshold_to_nobody():
    costs = np.array([[0.2, 0.7], [0.3, 0.8], [np.nan, 0.65]])
    assert match_faces(costs, threshold=0.6) == {0: 0}  # face 1 loses person 0 to face 0; person 1 too far
    assert match_faces(np.zeros((0, 2)), threshold=0.6) == {}


def test_an_invalid_verdict_is_refused():
    with pytest.raises(ValueError, match="verdict must be one of"):
        ReferenceCheck(None, "maybe", None, None, (), 0.6, "")


@pytest.fixture(scope="module")
def identity(shared_faces):
    return shared_faces / "identity"


def side_by_side(left: np.ndarray, right: np.ndarray, height: int = 600) -> np.ndarray:
    """Two photos at one height, pasted next to each other: a whole photo with two known people."""

    def at_height(rgb):
        return resize_image(rgb, round(rgb.shape[1] * height / rgb.shape[0]), height)

    return np.concatenate([at_height(left), at_height(right)], axis=1)


def test_two_faces_in_a_photo_are_matched_to_their_named_references(identity):
    photo = side_by_side(load_rgb(identity / "obama" / "obama.jpg"), load_rgb(identity / "biden" / "biden.jpg"))
    specs = [
        parse_reference(f"biden={identity / 'biden' / 'biden2.jpg'}"),
        parse_reference(f"obama={identity / 'obama' / 'obama1.jpg'}"),
        parse_reference(f"obama={identity / 'obama' / 'obama2.jpg'}"),
    ]
    references = load_references(specs)
    assert all(ref.found for ref in references)
    checks = verify_photo(photo, references)
    assert len(checks) == 2
    (left_box, left), (right_box, right) = checks
    assert left_box.center[0] < photo.shape[1] / 2 < right_box.center[0]
    assert (left.person, left.verdict) == ("obama", SAME_PERSON), left.message
    assert (right.person, right.verdict) == ("biden", SAME_PERSON), right.message
    assert left.distance <= REFERENCE_DISTANCE and right.distance <= REFERENCE_DISTANCE
    assert [person for person, _, _ in left.distances] == ["biden", "obama", "obama"]
    assert left.distance == pytest.approx(np.mean([d for p, _, d in left.distances if p == "obama"]))


def test_a_stranger_is_a_different_person(identity):
    references = load_references([ReferenceSpec(str(identity / "obama" / "obama1.jpg"), "obama")])
    ((_, check),) = verify_photo(load_rgb(identity / "matt_damon" / "img29.jpg"), references)
    assert check.verdict == DIFFERENT_PERSON and check.person is None, check.message
    assert check.closest == "obama" and check.distance > REFERENCE_DISTANCE


def test_references_that_disagree_cannot_verify(identity):
    specs = [
        ReferenceSpec(str(identity / "obama" / "obama1.jpg")),
        ReferenceSpec(str(identity / "biden" / "biden2.jpg")),
    ]
    ((_, check),) = verify_photo(load_rgb(identity / "obama" / "obama.jpg"), load_references(specs))
    assert check.verdict == CANNOT_VERIFY and "disagree" in check.message, check.message


def test_no_face_in_the_references_or_the_face_cannot_verify(identity, astronaut):
    flat = np.full((300, 300, 3), 128, np.uint8)
    reference = embed_reference(flat, person="anna")
    assert not reference.found and reference.problem == "no face found"
    obama = embed_reference(load_image(identity / "obama" / "obama1.jpg"))
    assert obama.source.endswith("obama1.jpg")
    face = embed_reference(astronaut).embedding
    (check,) = check_faces([face], [reference])
    assert check.verdict == CANNOT_VERIFY and "references of anna" in check.message
    (check,) = check_faces([None], [obama])
    assert check.verdict == CANNOT_VERIFY and check.distance is None
    picked = embed_reference(astronaut, face_index=3)
    assert not picked.found and "face #3 asked for, 1 found" in picked.problem


def test_a_face_too_degraded_to_judge_cannot_verify_and_claims_nobody(identity):
    from authface_core.authenticity import INPUT_NIQE_LIMIT

    obama = embed_reference(load_image(identity / "obama" / "obama1.jpg"), person="obama")
    face = embed_reference(load_image(identity / "obama" / "obama.jpg")).embedding
    sharp, blurred = check_faces([face, face], [obama], niqes=[INPUT_NIQE_LIMIT - 1, INPUT_NIQE_LIMIT + 1])
    assert (sharp.person, sharp.verdict) == ("obama", SAME_PERSON)
    assert (blurred.person, blurred.verdict) == (None, CANNOT_VERIFY) and "too degraded" in blurred.message
    assert blurred.distances[0][2] == pytest.approx(sharp.distance)  # shown for information
