"""Compare two aligned faces: identity distance and similarity, a Deg-like angle, and landmark shift (LMD).

Face-restoration papers report Deg (the angle between identity embeddings of output and ground
truth; ArcFace there) and LMD (the mean distance between facial landmarks of output and ground
truth on aligned 512 px faces). Here the embedding comes from an :class:`IdentityModel` (dlib's
128-D descriptor by default) and the landmarks from dlib's 68-point shape predictor. Aligned faces
of any size are first resized to :data:`EVAL_FACE_SIZE`, so LMD is in pixels of a 512 px face
whatever size the method outputs. A face dlib cannot find gives no scores: a missing value, never a
made-up one. The authenticity check (``authface_core.authenticity``) and the evaluation
(``authface_core.metrics.evaluate``) both measure through this module.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..io import resize_image
from .detect import DetectedFace, Landmarks, detect_faces
from .identity import DLIB_IDENTITY, IdentityModel, identity_similarity

EVAL_FACE_SIZE = 512  # LMD and identity are measured on aligned faces at 512 px (papers' convention)


@dataclass(frozen=True)
class FaceMeasurement:
    """What the models see in one aligned face at :data:`EVAL_FACE_SIZE`: the face and its embedding (by
    ``model``), or nothing."""

    face: DetectedFace | None
    descriptor: np.ndarray | None
    model: IdentityModel = DLIB_IDENTITY

    @property
    def found(self) -> bool:
        return self.face is not None


@dataclass(frozen=True)
class IdentityScores:
    """Identity and geometry of a restored face against a reference face.

    Args:
        distance: the identity model's distance (dlib: Euclidean; "same person" below 0.6).
        similarity: :func:`authface_core.faces.identity.identity_similarity` of it, in [0, 1].
        angle: angle between the embeddings in degrees (a Deg-like score; lower is closer).
        landmark_distance: mean distance between the 68 landmarks in px at 512 (LMD).
    """

    distance: float
    similarity: float
    angle: float
    landmark_distance: float


def to_eval_size(aligned_rgb: np.ndarray) -> np.ndarray:
    """An aligned (S, S, 3) face resized to (512, 512, 3) uint8 (:func:`authface_core.io.resize_image`)."""
    height, width = aligned_rgb.shape[:2]
    if height != width:
        raise ValueError(f"expected a square aligned face, got {width}x{height}")
    return resize_image(aligned_rgb, EVAL_FACE_SIZE, EVAL_FACE_SIZE)


def measure_face(aligned_rgb: np.ndarray, model: IdentityModel = DLIB_IDENTITY) -> FaceMeasurement:
    """Detect the largest face of an aligned crop (at 512 px) and compute its identity embedding."""
    face_512 = to_eval_size(aligned_rgb)
    faces = detect_faces(face_512)
    if not faces:
        return FaceMeasurement(face=None, descriptor=None, model=model)
    return FaceMeasurement(face=faces[0], descriptor=model.embed(face_512, faces[0]), model=model)


def descriptor_angle(a: np.ndarray, b: np.ndarray) -> float:
    """Angle in degrees between two embeddings (0 when they point the same way).

    Kahan's 2 atan2(|u - v|, |u + v|) on unit vectors: exact near 0 deg, where arccos of the cosine is not.
    """
    u, v = a / np.linalg.norm(a), b / np.linalg.norm(b)
    return float(np.degrees(2.0 * np.arctan2(np.linalg.norm(u - v), np.linalg.norm(u + v))))


def landmark_distance(a: Landmarks, b: Landmarks) -> float:
    """Mean Euclidean distance between corresponding landmarks (LMD), in the landmarks' pixels."""
    if a.scheme != b.scheme:
        raise ValueError(f"cannot compare {a.scheme} landmarks with {b.scheme} landmarks")
    return float(np.linalg.norm(a.points - b.points, axis=1).mean())


def compare_faces(restored: FaceMeasurement, reference: FaceMeasurement) -> IdentityScores | None:
    """Identity and landmark scores of ``restored`` against ``reference``; None when either face was not found.

    Raises:
        ValueError: the two were measured by different identity models (their embeddings do not compare).
    """
    if restored.model.name != reference.model.name:
        raise ValueError(f"cannot compare a {restored.model.name} embedding with a {reference.model.name} one")
    if not (restored.found and reference.found):
        return None
    model = restored.model
    distance = model.distance(restored.descriptor, reference.descriptor)
    return IdentityScores(
        distance=distance,
        similarity=identity_similarity(distance, model.same_person_distance),
        angle=descriptor_angle(restored.descriptor, reference.descriptor),
        landmark_distance=landmark_distance(restored.face.landmarks, reference.face.landmarks),
    )
