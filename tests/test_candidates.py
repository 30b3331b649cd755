"""Best of N: the candidate that is the right person is kept; the model is stubbed only where it returns them."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from authface_core.candidates import BY_INPUT, BY_NIQE, BY_REFERENCES, CandidateScore, rank_candidates
from authface_core.faces import align_face, detect_faces
from authface_core.io import load_image, load_rgb
from authface_core.references import SAME_PERSON, embed_reference
from authface_core.restore import RestoreConfig, candidate_seeds, face_seeds, restore_image

FACE_SIZE = 256


class CandidatePipe:
    """Stands in for the model: each call returns the next faces of ``candidates`` in turn (and records the
    batches and generators it was given)."""

    execution_device = torch.device("cpu")
    is_smoke_test_model = False

    def __init__(self, candidates: list[np.ndarray]):
        self.candidates, self.given, self.calls = candidates, 0, []

    def __call__(self, batch, *, generator, **settings):
        self.calls.append((len(batch), [g.initial_seed() for g in generator]))
        images = [self.candidates[(self.given + i) % len(self.candidates)] for i in range(len(batch))]
        self.given += len(batch)
        return SimpleNamespace(images=np.stack(images))


def aligned(path) -> np.ndarray:
    rgb = load_rgb(path)
    return align_face(rgb, detect_faces(rgb)[0], FACE_SIZE).image


@pytest.fixture(scope="module")
def people(shared_faces):
    identity = shared_faces / "identity"
    return {
        "photo": load_image(identity / "obama" / "obama.jpg"),
        "candidates": [
            aligned(identity / "biden" / "biden.jpg"),
            aligned(identity / "obama" / "obama1.jpg"),
            aligned(identity / "matt_damon" / "img29.jpg"),
        ],
        "reference": embed_reference(load_image(identity / "obama" / "obama2.jpg"), person="obama"),
    }


@pytest.mark.parametrize("with_references", [True, False])
def test_best_of_n_keeps_the_candidate_that_is_the_person(people, with_references):
    pipe = CandidatePipe(people["candidates"])
    config = RestoreConfig(face_size=FACE_SIZE, candidates=3, seed=7)
    references = [people["reference"]] if with_references else []
    result = restore_image(people["photo"], pipe, config, references=references)
    (face,) = result.faces
    assert pipe.calls[0][0] == 3  # the candidates of a face share one batch (max_batch_size 4)
    seeds = candidate_seeds(face_seeds(7, "", 1)[0], 3)
    assert [s.seed for s in face.candidates] == seeds == pipe.calls[0][1]
    assert [s.chosen for s in face.candidates] == [False, True, False]
    assert np.array_equal(face.restored_face, people["candidates"][1])
    assert face.candidate_faces.shape == (3, FACE_SIZE, FACE_SIZE, 3)
    basis = BY_REFERENCES if with_references else BY_INPUT  # a clean input is good enough to judge
    assert {s.basis for s in face.candidates} == {basis}
    distances = [s.distance for s in face.candidates]
    assert distances[1] < 0.6 < min(distances[0], distances[2])
    if with_references:
        assert face.reference_check.verdict == SAME_PERSON and face.reference_check.person == "obama"
    else:
        assert face.reference_check is None


def test_a_visitors_pick_is_pasted_back(people):
    from authface_core.restore import finish_restoration, prepare_restoration

    config = RestoreConfig(face_size=FACE_SIZE, candidates=3, seed=7)
    prepared = prepare_restoration(people["photo"], config)
    candidates = np.stack(people["candidates"])
    result = finish_restoration(prepared, candidates, smoke_test_model=False, chosen=[2])
    assert [s.chosen for s in result.faces[0].candidates] == [False, False, True]
    assert np.array_equal(result.faces[0].restored_face, people["candidates"][2])
    with pytest.raises(ValueError, match="face 0 has 3 candidates, got candidate 5"):
        finish_restoration(prepared, candidates, smoke_test_model=False, chosen=[5])


def test_one_candidate_keeps_the_faces_own_seed():
    assert candidate_seeds(123, 1) == [123]
    seeds = candidate_seeds(123, 4)
    assert seeds[0] == 123 and len(set(seeds)) == 4 and all(0 <= s < 2**63 for s in seeds)


def test_ranking_ties_are_broken_by_niqe_and_missing_faces_come_last():
    scores = [
        CandidateScore(0, None, BY_INPUT, 0.301, 9.0),
        CandidateScore(1, None, BY_INPUT, 0.299, 7.0),  # equal to two decimals: the lower NIQE wins
        CandidateScore(2, None, BY_INPUT, None, 1.0),  # no face found in it
        CandidateScore(3, None, BY_INPUT, 0.45, 2.0),
    ]
    assert rank_candidates(scores) == [1, 0, 3, 2]
    by_quality = [CandidateScore(0, None, BY_NIQE, None, 8.0), CandidateScore(1, None, BY_NIQE, None, 6.5)]
    assert rank_candidates(by_quality) == [1, 0]
