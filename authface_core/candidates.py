"""Best of N: restore each face with several seeds and keep the most authentic candidate.

A diffusion restorer draws another face for every seed, and at strong degradation some of them are someone
else. With ``RestoreConfig.candidates`` N > 1 each face is restored N times (one batch, seeds from
``restore.candidate_seeds``) and the candidates are ranked by :func:`rank_candidates`:

1. with reference photos (``authface_core.references``): the mean distance to the references of the closest
   person (the Hungarian matching of faces to persons happens afterwards, on the candidates kept);
2. without, when the input allows a verdict (a face is found in it and its NIQE is within the authenticity
   report's gate, ``authenticity.INPUT_NIQE_LIMIT``): the identity distance to the input;
3. else NIQE alone (lower is more natural).

Distances equal to two decimals (what reports show) are ties, broken by NIQE; a candidate in which no face is
found comes after those with one. Every candidate's scores are kept (the sidecar lists them, the demo shows
them and lets the visitor pick another).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from .faces.compare import measure_face, to_eval_size
from .faces.identity import DLIB_IDENTITY, IdentityModel
from .references import Reference, mean_distances

BY_REFERENCES, BY_INPUT, BY_NIQE = "references", "input", "niqe"
TIE_DECIMALS = 2  # distances equal to this many decimals are ties (reports show two)


@dataclass(frozen=True)
class CandidateScore:
    """One candidate's scores.

    Args:
        index: the candidate's number (0 to N - 1).
        seed: the seed it was drawn with (None when not known).
        basis: what ranked it: "references", "input" or "niqe" (module doc).
        distance: the identity distance that ranked it (None for "niqe", or when no face was found in it).
        niqe: its NIQE at 512 px (None when undefined).
        chosen: whether it is the one kept.
    """

    index: int
    seed: int | None
    basis: str
    distance: float | None
    niqe: float | None
    chosen: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


def ranking_basis(input_face: np.ndarray, references: Sequence[Reference], model: IdentityModel) -> tuple[str, object]:
    """("references", None), ("input", the input's embedding) or ("niqe", None) for one face (module doc)."""
    from .authenticity import INPUT_NIQE_LIMIT
    from .niqe import niqe_or_none

    if any(ref.found for ref in references):
        return BY_REFERENCES, None
    source = measure_face(input_face, model)
    quality = niqe_or_none(to_eval_size(input_face)) if source.found else None
    if quality is not None and quality <= INPUT_NIQE_LIMIT:
        return BY_INPUT, source.descriptor
    return BY_NIQE, None


def score_candidates(
    input_face: np.ndarray,
    candidates: np.ndarray,
    *,
    references: Sequence[Reference] = (),
    seeds: Sequence[int] | None = None,
    model: IdentityModel = DLIB_IDENTITY,
) -> list[CandidateScore]:
    """Score the candidates (K, S, S, 3) uint8 of one aligned input face (S, S, 3) and mark the one kept."""
    from .niqe import niqe_or_none

    basis, input_embedding = ranking_basis(input_face, references, model)
    scores = []
    for index, candidate in enumerate(candidates):
        distance = None
        if basis != BY_NIQE:
            embedding = measure_face(candidate, model).descriptor
            if embedding is not None and basis == BY_REFERENCES:
                distance = min(mean_distances(embedding, references, model).values())
            elif embedding is not None:
                distance = model.distance(embedding, input_embedding)
        seed = None if seeds is None else int(seeds[index])
        scores.append(CandidateScore(index, seed, basis, distance, niqe_or_none(to_eval_size(candidate))))
    best = rank_candidates(scores)[0]
    return [CandidateScore(**{**asdict(score), "chosen": score.index == best}) for score in scores]


def rank_candidates(scores: Sequence[CandidateScore]) -> list[int]:
    """Candidate indices, best first (module doc)."""

    def key(score: CandidateScore):
        distance = math.inf if score.distance is None else round(score.distance, TIE_DECIMALS)
        niqe = math.inf if score.niqe is None else score.niqe
        return (score.basis != BY_NIQE and score.distance is None, distance, niqe, score.index)

    return [score.index for score in sorted(scores, key=key)]
