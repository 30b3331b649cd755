"""Authenticity report: is the restored face still the person in the input, and can we tell?

For one aligned face (input and restored crop, same size) the report gives, measured by
``authface_core.faces.compare``, the dlib identity distance and similarity input -> output, the
landmark shift (mean distance between the 68 landmarks of both, in px of a 512 px face) and a verdict:

- "same person": the input is good enough to judge and the distance is under :data:`DRIFT_DISTANCE`;
- "identity drifted": the input is good enough to judge and the distance is over it;
- "cannot verify": dlib finds no face in the input or the output, or the input is so degraded
  (NIQE over :data:`INPUT_NIQE_LIMIT`) that its descriptor no longer tells people apart, so any
  verdict would be a guess (../shared/AUTHFACE.md, "how far identity survives degradation").

How the constants were obtained: ``python bench/calibrate_identity.py`` on the 58 photos of
``../shared/faces/identity`` (12 people). Each photo's face is aligned at 512 px (the clean crop
stands for a faithful restoration), degraded at ``authface_core.degradations.CALIBRATION_LEVELS``
(the input), and compared with its own clean crop (faithful) and with the clean crops of the 11
other people (drifted). Measured on 2026-11-27 with dlib 20.0.1 (232 degraded inputs):

| level (down x, blur, noise, JPEG q) | input NIQE median [range] | face found | own / others distance | AUC |
|---|---|---|---|---|
| x2, 1, 5, 80 | 6.44 [5.24, 7.45] | 58/58 | 0.083 / 0.891 | 1.000 |
| x4, 2, 10, 60 | 9.82 [9.05, 11.87] | 58/58 | 0.256 / 0.883 | 1.000 |
| x8, 3, 15, 40 | 14.29 [13.20, 16.84] | 58/58 | 0.487 / 0.860 | 1.000 |
| x16, 4, 20, 30 | 19.34 [16.67, 21.34] | 51/58 | 0.679 / 0.820 | 0.920 |

Clean photos alone: same vs different person ROC AUC 1.000 (136 / 1517 pairs, median distance
0.388 vs 0.889).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .faces.compare import compare_faces, measure_face, to_eval_size

# The verdicts, in the order the demo lists them.
SAME_PERSON, DRIFTED, CANNOT_VERIFY = "same person", "identity drifted", "cannot verify"
VERDICTS = (SAME_PERSON, DRIFTED, CANNOT_VERIFY)

# From input NIQE 16.67 on (the cleanest input of the x16 level, the first level whose own vs
# others AUC falls under 0.98 and where dlib misses 7/58 faces) the descriptor no longer tells
# people apart reliably: "cannot verify". Rounded down.
INPUT_NIQE_LIMIT = 16.6
# On the 173 inputs under the gate, the best cut between own (faithful) and others' (drifted)
# distances is 0.602 (balanced accuracy 1.000), which is also dlib's documented 0.6.
DRIFT_DISTANCE = 0.6
# 99th percentile of the landmark shift between gated inputs and their own clean crop (4.69 px):
# a faithful restoration rarely moves landmarks further, so a "same person" beyond it is flagged.
LANDMARK_SHIFT_LIMIT = 4.7


@dataclass(frozen=True)
class AuthenticityReport:
    """What the demo shows under each restored face.

    Args:
        identity_distance: dlib descriptor distance input -> output (None when a face was not found).
        identity_similarity: the same as a similarity in [0, 1] (0.5 at dlib's 0.6 threshold).
        landmark_shift: mean distance between the 68 landmarks of input and output, px at 512.
        verdict: one of :data:`VERDICTS`.
        warning: True when the user should look twice (identity drifted, face lost, geometry moved).
        message: one sentence for people, with the numbers behind the verdict.
        input_niqe: NIQE of the input face at 512 px (lower is cleaner), the quality gate's measure;
            None when no face was found or NIQE is undefined (a flat image).
    """

    identity_distance: float | None
    identity_similarity: float | None
    landmark_shift: float | None
    verdict: str
    warning: bool
    message: str
    input_niqe: float | None = None

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")


def input_based_verdict(input_niqe: float | None, distance: float) -> str:
    """The verdict from the input's NIQE (None: unmeasurable) and the identity distance input -> output, when
    both faces were found: "cannot verify" over the quality gate, else drifted over :data:`DRIFT_DISTANCE`."""
    if input_niqe is None or input_niqe > INPUT_NIQE_LIMIT:
        return CANNOT_VERIFY
    return DRIFTED if distance > DRIFT_DISTANCE else SAME_PERSON


def authenticity_report(input_face: np.ndarray, restored_face: np.ndarray) -> AuthenticityReport:
    """Compare an aligned input face with its restoration (both (S, S, 3) uint8, same size)."""
    from .niqe import niqe_or_none  # SciPy, half of ``import authface_core.restore``'s time, loaded on first use

    if input_face.shape != restored_face.shape:
        raise ValueError(f"input face {input_face.shape} and restored face {restored_face.shape} differ in size")
    source = measure_face(input_face)
    if not source.found:
        return AuthenticityReport(
            identity_distance=None,
            identity_similarity=None,
            landmark_shift=None,
            verdict=CANNOT_VERIFY,
            warning=False,
            message="cannot verify: no face found in the input (too small, degraded or turned away)",
        )
    input_niqe = niqe_or_none(to_eval_size(input_face))
    restored = measure_face(restored_face)
    if not restored.found:
        return AuthenticityReport(
            identity_distance=None,
            identity_similarity=None,
            landmark_shift=None,
            verdict=CANNOT_VERIFY,
            warning=True,
            message="cannot verify: the input has a face but none is found in the restored output",
            input_niqe=input_niqe,
        )
    scores = compare_faces(restored, source)
    numbers = (
        f"identity distance {scores.distance:.2f} (similarity {scores.similarity:.2f}), "
        f"landmark shift {scores.landmark_distance:.1f} px"
    )
    verdict = input_based_verdict(input_niqe, scores.distance)
    if verdict == CANNOT_VERIFY:
        warning = False
        quality = "unmeasurable" if input_niqe is None else f"{input_niqe:.1f} > {INPUT_NIQE_LIMIT:g}"
        message = (
            f"cannot verify: the input is too degraded to judge identity (NIQE {quality}); {numbers}, "
            "for information only"
        )
    elif verdict == DRIFTED:
        warning = True
        message = f"identity drifted (distance over {DRIFT_DISTANCE:.2f}): {numbers}"
    else:
        warning = scores.landmark_distance > LANDMARK_SHIFT_LIMIT
        geometry = f"; landmarks moved more than {LANDMARK_SHIFT_LIMIT:g} px" if warning else ""
        message = f"same person: {numbers}{geometry}"
    return AuthenticityReport(
        identity_distance=scores.distance,
        identity_similarity=scores.similarity,
        landmark_shift=scores.landmark_distance,
        verdict=verdict,
        warning=warning,
        message=message,
        input_niqe=input_niqe,
    )
