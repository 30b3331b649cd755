"""Reference photos: is a restored face the same person as in other photos of that person?

The authenticity report (``authface_core.authenticity``) compares a restored face with its own degraded
input, which stops being honest beyond about x8 degradation: the input's descriptor no longer tells
people apart, and the report says "cannot verify". Other photos of the person (references, 1 to
:data:`MAX_REFERENCES` each, any size) do not degrade with the input, so they can vouch for a restoration
at any degradation.

- A reference photo gives one face: the largest, or the one the user picks (numbered left to right, as
  restore numbers faces). References are named by person (``anna=a1.jpg``); unnamed ones belong to
  :data:`DEFAULT_PERSON`.
- Each face to check is matched to one person by the Hungarian assignment over the mean distance to the
  person's references (:func:`match_faces`), so two faces never claim one person; a face over
  :data:`REFERENCE_DISTANCE` from every person it could take is matched to nobody.
- The verdict per face (:class:`ReferenceCheck`): "same person" (matched), "different person" (matched to
  nobody), or "cannot verify": no face in the face checked, or one too degraded to describe anyone (NIQE
  over the authenticity report's gate, ``authenticity.INPUT_NIQE_LIMIT``: an unrestored x16 face is far from
  every reference photo, its own person's too), no face in any reference of the person it would be, or
  references of that person that disagree among themselves (two of them further apart than the threshold:
  a wrong photo among them, or one too poor to describe the person).

Embeddings come from an :class:`authface_core.faces.identity.IdentityModel` (dlib's 128-D descriptor by
default); the threshold belongs to that model and was calibrated for dlib's.

Calibration (``python bench/reference_identity.py``, 2026-12-03, dlib 20.0.1): the 58 photos of
``../shared/faces/identity`` (12 people). Each photo's aligned clean face is a probe and stands in for a
faithful restoration (no real weights here: a real restoration can only do worse). Its references are K
*other* photos of the same person (genuine trials: 58 with K = 1, 48 with K = 3, people with 4 photos or
more) or K photos of each other person (impostor trials: 638 / 432). Mean distance to the references:
genuine median 0.389 (largest 0.609), impostor median 0.898 (smallest 0.665); the cut with the best
balanced accuracy (1.000) is 0.637, rounded to 0.64. Two photos of one person are never further apart than
0.613 (136 pairs) and of two people never closer than 0.628 (1517 pairs), so the same threshold tells
references that disagree. The clean faces' NIQE is 2.60 to 9.90 (median 4.55), far under the gate of 16.6;
the degraded probes' median is 9.82 / 14.29 / 19.34 / 20.76 at x4 / x8 / x16 / x32. Side by side with the
input-based report, probes degraded at ``degradations.REFERENCE_LEVELS`` (rates genuine / impostor, %; AUC
of own vs other distances where the faces were found; "unrestored": the degraded probe itself is checked,
a restorer that did nothing):

| level | check | K | correct % | cannot verify % | confident wrong % | AUC |
|---|---|---:|---|---|---|---:|
| x4 to x32 | references, restored | 1 | 100.0 / 100.0 | 0.0 / 0.0 | 0.0 / 0.0 | 1.000 |
| x4 to x32 | references, restored | 3 | 100.0 / 100.0 | 0.0 / 0.0 | 0.0 / 0.0 | 1.000 |
| x4 | references, unrestored | 1 | 100.0 / 99.8 | 0.0 / 0.0 | 0.0 / 0.2 | 1.000 |
| x4 | references, unrestored | 3 | 100.0 / 99.8 | 0.0 / 0.0 | 0.0 / 0.2 | 1.000 |
| x4 | input-based (today) | - | 100.0 / 100.0 | 0.0 / 0.0 | 0.0 / 0.0 | 1.000 |
| x8 | references, unrestored | 1 | 93.1 / 98.0 | 1.7 / 1.7 | 5.2 / 0.3 | 0.997 |
| x8 | references, unrestored | 3 | 89.6 / 97.5 | 2.1 / 2.1 | 8.3 / 0.5 | 0.999 |
| x8 | input-based (today) | - | 94.8 / 98.3 | 1.7 / 1.7 | 3.4 / 0.1 | 1.000 |
| x16 | references, unrestored | 1 | 0.0 / 0.0 | 100.0 / 100.0 | 0.0 / 0.0 | 0.877 |
| x16 | references, unrestored | 3 | 0.0 / 0.0 | 100.0 / 100.0 | 0.0 / 0.0 | 0.896 |
| x16 | input-based (today) | - | 0.0 / 0.0 | 100.0 / 100.0 | 0.0 / 0.0 | 0.920 |
| x32 | references, unrestored | 1 | 0.0 / 0.0 | 100.0 / 100.0 | 0.0 / 0.0 | 0.709 |
| x32 | references, unrestored | 3 | 0.0 / 0.0 | 100.0 / 100.0 | 0.0 / 0.0 | 0.726 |
| x32 | input-based (today) | - | 0.0 / 0.0 | 100.0 / 100.0 | 0.0 / 0.0 | 0.690 |

So at x16 and x32, where the input-based report can only say "cannot verify", a restoration checked
against 3 references gets a verdict, right on every trial here (AUC 1.000, no confident wrong verdict);
a face left as degraded as the input is gated ("cannot verify"), not called someone else.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .authenticity import INPUT_NIQE_LIMIT
from .faces.align import align_face
from .faces.compare import EVAL_FACE_SIZE
from .faces.detect import FaceBox, detect_faces
from .faces.identity import DLIB_IDENTITY, IdentityModel
from .faces.select import left_to_right
from .io import LoadedImage, load_image

# The cut between the mean distance to a person's own references and to someone else's (module doc).
REFERENCE_DISTANCE = 0.64
MAX_REFERENCES = 8  # per person: a few photos describe a person; more only slow every check down
DEFAULT_PERSON = "reference"
SAME_PERSON, DIFFERENT_PERSON, CANNOT_VERIFY = "same person", "different person", "cannot verify"
REFERENCE_VERDICTS = (SAME_PERSON, DIFFERENT_PERSON, CANNOT_VERIFY)
_PERSON_NAME = re.compile(r"[\w][\w .'-]*")
_FACE_SUFFIX = re.compile(r"^(?P<path>.+)#(?P<index>\d+)$")
# A pairing over the threshold costs this much in the assignment, so pairings under it are maximised first.
_NO_MATCH_COST = 1e6


@dataclass(frozen=True)
class ReferenceSpec:
    """One reference as asked for: a photo, the person it shows, and which of its faces (None: the largest;
    else the index left to right)."""

    path: str
    person: str = DEFAULT_PERSON
    face_index: int | None = None


def parse_reference(text: str) -> ReferenceSpec:
    """``[NAME=]PATH[#FACE]`` as a :class:`ReferenceSpec`: ``anna=photos/a1.jpg``, ``a.jpg#1`` (its second face
    from the left). A text that names an existing file as a whole is that file, whatever it contains.

    Raises:
        ValueError: an empty path or person name.
    """
    if Path(text).exists():
        return ReferenceSpec(text)
    person, path = DEFAULT_PERSON, text
    name, sep, rest = text.partition("=")
    if sep and _PERSON_NAME.fullmatch(name) and "/" not in name:
        person, path = name.strip(), rest
    face_index = None
    suffix = _FACE_SUFFIX.match(path)
    if suffix and not Path(path).exists():
        path, face_index = suffix["path"], int(suffix["index"])
    if not path or not person:
        raise ValueError(f"a reference is [NAME=]PATH[#FACE], got {text!r}")
    return ReferenceSpec(path, person, face_index)


@dataclass(frozen=True)
class Reference:
    """One reference face: the person, the photo it came from, its box and embedding (both None when the photo
    has no face, or not the one asked for) and why not."""

    person: str
    source: str
    box: FaceBox | None
    embedding: np.ndarray | None
    problem: str = ""

    @property
    def found(self) -> bool:
        return self.embedding is not None


def embed_reference(
    image: LoadedImage | np.ndarray,
    *,
    person: str = DEFAULT_PERSON,
    face_index: int | None = None,
    model: IdentityModel = DLIB_IDENTITY,
) -> Reference:
    """The reference face of a photo (any size): the largest, or the ``face_index``-th from the left.

    A photo without that face gives a :class:`Reference` that is not ``found`` (its ``problem`` says why),
    so the verdicts can say "cannot verify" rather than fail.
    """
    rgb, source = (image.rgb, image.source) if isinstance(image, LoadedImage) else (image, "<image>")
    faces = detect_faces(rgb)
    if not faces:
        return Reference(person, source, None, None, "no face found")
    if face_index is None:
        face = faces[0]
    elif face_index < len(faces):
        face = left_to_right(faces)[face_index]
    else:
        return Reference(person, source, None, None, f"face #{face_index} asked for, {len(faces)} found")
    return Reference(person, source, face.box, model.embed(rgb, face))


def load_references(specs: Sequence[ReferenceSpec], *, model: IdentityModel = DLIB_IDENTITY) -> list[Reference]:
    """Load and embed every reference.

    Raises:
        InvalidImageError: a photo that cannot be read (the message names it).
        ValueError: more than :data:`MAX_REFERENCES` for one person.
    """
    check_reference_counts([spec.person for spec in specs])
    return [
        embed_reference(load_image(spec.path), person=spec.person, face_index=spec.face_index, model=model)
        for spec in specs
    ]


def check_reference_counts(persons: Sequence[str]) -> None:
    """Refuse (``ValueError``) more than :data:`MAX_REFERENCES` references of one person."""
    for person in dict.fromkeys(persons):
        count = persons.count(person)
        if count > MAX_REFERENCES:
            raise ValueError(f"{count} references for {person!r}: at most {MAX_REFERENCES} per person")


@dataclass(frozen=True)
class ReferenceCheck:
    """The verdict on one face against the references.

    Args:
        person: the person the face was matched to (None: nobody).
        verdict: one of :data:`REFERENCE_VERDICTS`.
        distance: mean distance to the references of ``person``, or of the closest person when matched to
            nobody (None when the face or every reference lacks an embedding).
        closest: the person at the smallest mean distance (None as ``distance``).
        distances: (person, reference photo, distance) for every reference; distance None where a face is missing.
        threshold: the distance under which a face is its person's.
        message: one sentence for people, with the numbers behind the verdict.
    """

    person: str | None
    verdict: str
    distance: float | None
    closest: str | None
    distances: tuple[tuple[str, str, float | None], ...]
    threshold: float
    message: str

    def __post_init__(self) -> None:
        if self.verdict not in REFERENCE_VERDICTS:
            raise ValueError(f"verdict must be one of {REFERENCE_VERDICTS}, got {self.verdict!r}")

    def to_dict(self) -> dict:
        """JSON-ready: the fields, with each reference's distance as an object."""
        return {
            "person": self.person,
            "verdict": self.verdict,
            "distance": self.distance,
            "closest": self.closest,
            "threshold": self.threshold,
            "references": [
                {"person": person, "file": source, "distance": distance} for person, source, distance in self.distances
            ],
            "message": self.message,
        }


def people_of(references: Sequence[Reference]) -> list[str]:
    """The persons named by ``references``, in the order first named."""
    return list(dict.fromkeys(ref.person for ref in references))


def reference_disagreement(references: Sequence[Reference], model: IdentityModel = DLIB_IDENTITY) -> float | None:
    """The largest distance between two found references (of one person); None with fewer than two."""
    embeddings = [ref.embedding for ref in references if ref.found]
    pairs = list(itertools.combinations(embeddings, 2))
    return max((model.distance(a, b) for a, b in pairs), default=None)


def mean_distances(
    embedding: np.ndarray | None, references: Sequence[Reference], model: IdentityModel = DLIB_IDENTITY
) -> dict[str, float]:
    """Mean distance from ``embedding`` to each person's found references (persons with none are left out)."""
    if embedding is None:
        return {}
    per_person: dict[str, list[float]] = {}
    for ref in references:
        if ref.found:
            per_person.setdefault(ref.person, []).append(model.distance(embedding, ref.embedding))
    return {person: float(np.mean(values)) for person, values in per_person.items()}


def match_faces(costs: np.ndarray, threshold: float) -> dict[int, int]:
    """Face index -> person index by the Hungarian assignment over ``costs`` (faces x persons, NaN: no score).

    Pairings over ``threshold`` (or without a score) are never kept; the assignment first makes as many
    pairings under it as it can, then the closest ones, so two faces never claim one person.
    """
    from scipy.optimize import linear_sum_assignment

    costs = np.asarray(costs, dtype=np.float64)
    if costs.size == 0:
        return {}
    allowed = np.isfinite(costs) & (costs <= threshold)
    rows, cols = linear_sum_assignment(np.where(allowed, costs, _NO_MATCH_COST))
    return {int(r): int(c) for r, c in zip(rows, cols, strict=True) if allowed[r, c]}


def check_faces(
    embeddings: Sequence[np.ndarray | None],
    references: Sequence[Reference],
    *,
    niqes: Sequence[float | None] | None = None,
    model: IdentityModel = DLIB_IDENTITY,
    threshold: float = REFERENCE_DISTANCE,
) -> list[ReferenceCheck]:
    """The verdict on each face (its embedding, None where no face was found) against the references.

    ``niqes`` (one per face, None: unmeasured) gate the faces: one over ``INPUT_NIQE_LIMIT`` is too degraded to
    be judged, and claims no person.
    """
    persons = people_of(references)
    niqes = [None] * len(embeddings) if niqes is None else niqes
    too_degraded = [quality is not None and quality > INPUT_NIQE_LIMIT for quality in niqes]
    means = [
        {} if degraded else mean_distances(embedding, references, model)
        for embedding, degraded in zip(embeddings, too_degraded, strict=True)
    ]
    costs = np.array([[m.get(person, np.nan) for person in persons] for m in means]).reshape(len(means), len(persons))
    matched = match_faces(costs, threshold)
    disagreements = {
        person: reference_disagreement([ref for ref in references if ref.person == person], model) for person in persons
    }
    return [
        _too_degraded(embedding, niqes[index], references, model, threshold)
        if too_degraded[index]
        else _verdict(
            embedding,
            means[index],
            persons[matched[index]] if index in matched else None,
            references,
            disagreements,
            model,
            threshold,
        )
        for index, embedding in enumerate(embeddings)
    ]


def _reference_distances(
    embedding: np.ndarray | None, references: Sequence[Reference], model: IdentityModel
) -> tuple[tuple[str, str, float | None], ...]:
    """(person, photo, distance) to each reference; distance None where a face is missing."""
    return tuple(
        (
            ref.person,
            ref.source,
            model.distance(embedding, ref.embedding) if embedding is not None and ref.found else None,
        )
        for ref in references
    )


def _too_degraded(
    embedding: np.ndarray | None, niqe: float, references: Sequence[Reference], model: IdentityModel, threshold: float
) -> ReferenceCheck:
    """ "cannot verify" for a face over the quality gate, its distances for information only."""
    return ReferenceCheck(
        None,
        CANNOT_VERIFY,
        None,
        None,
        _reference_distances(embedding, references, model),
        threshold,
        f"cannot verify: the face checked is too degraded to judge identity (NIQE {niqe:.1f} > "
        f"{INPUT_NIQE_LIMIT:g}); restore it first",
    )


def _verdict(
    embedding: np.ndarray | None,
    means: dict[str, float],
    person: str | None,
    references: Sequence[Reference],
    disagreements: dict[str, float | None],
    model: IdentityModel,
    threshold: float,
) -> ReferenceCheck:
    """One face's :class:`ReferenceCheck` from its matching (``person``) and its mean distances."""
    distances = _reference_distances(embedding, references, model)
    closest = min(means, key=means.get) if means else None
    shown = person or closest

    def check(verdict: str, message: str) -> ReferenceCheck:
        distance = means.get(shown) if shown else None
        return ReferenceCheck(person, verdict, distance, closest, distances, threshold, message)

    if embedding is None:
        return check(CANNOT_VERIFY, "cannot verify: no face found in the face checked")
    missing = [p for p in disagreements if p not in means]
    if person is None and missing:
        return check(CANNOT_VERIFY, f"cannot verify: no face found in the references of {', '.join(missing)}")
    disagreement = disagreements.get(shown)
    if disagreement is not None and disagreement > threshold:
        return check(
            CANNOT_VERIFY,
            f"cannot verify: the references of {shown} disagree among themselves (distance {disagreement:.2f} "
            f"> {threshold:.2f}); check that they show one person",
        )
    if person is not None:
        return check(SAME_PERSON, f"same person as {person}: distance {means[person]:.2f} <= {threshold:.2f}")
    return check(
        DIFFERENT_PERSON,
        f"different person: the closest, {closest}, is at distance {means[closest]:.2f} > {threshold:.2f}"
        if closest and means[closest] > threshold
        else f"different person: {closest} is claimed by a closer face",
    )


def verify_photo(
    image: LoadedImage | np.ndarray,
    references: Sequence[Reference],
    *,
    model: IdentityModel = DLIB_IDENTITY,
    threshold: float = REFERENCE_DISTANCE,
) -> list[tuple[FaceBox, ReferenceCheck]]:
    """Every face of a photo (restored by any tool), numbered left to right, with its verdict (a face is gated
    by the NIQE of its aligned crop at 512 px)."""
    from .niqe import niqe_or_none

    rgb = image.rgb if isinstance(image, LoadedImage) else image
    faces = left_to_right(detect_faces(rgb))
    checks = check_faces(
        [model.embed(rgb, face) for face in faces],
        references,
        niqes=[niqe_or_none(align_face(rgb, face, EVAL_FACE_SIZE).image) for face in faces],
        model=model,
        threshold=threshold,
    )
    return [(face.box, check) for face, check in zip(faces, checks, strict=True)]
