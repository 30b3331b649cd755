"""Identity and geometry metrics between two aligned faces: dlib descriptor similarity, a Deg-like angle, LMD.

Face-restoration papers report Deg (the angle between identity embeddings of output and ground
truth; ArcFace there) and LMD (the mean distance between facial landmarks of output and ground
truth on aligned 512 px faces). Here both use dlib: its 128-D face descriptor and its 68-point
shape predictor (``authface_core.faces``). Aligned faces of any size are first resized to
:data:`EVAL_FACE_SIZE`, so LMD is in pixels of a 512 px face whatever size the method outputs.
A face dlib cannot find gives ``None`` for these metrics: a missing value, never a made-up one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..degradations import resize_square
from ..faces.detect import DetectedFace, Landmarks, detect_faces
from ..faces.identity import descriptor_distance, face_descriptor, identity_similarity

EVAL_FACE_SIZE = 512  # LMD and identity are measured on aligned faces at 512 px (papers' convention)


@dataclass(frozen=True)
class FaceMeasurement:
    """What dlib sees in one aligned face at :data:`EVAL_FACE_SIZE`: the face and its descriptor, or nothing."""

    face: DetectedFace | None
    descriptor: np.ndarray | None  # (128,) float64

    @property
    def found(self) -> bool:
        return self.face is not None


@dataclass(frozen=True)
class IdentityScores:
    """Identity and geometry of a restored face against a reference face.

    Args:
        distance: L2 distance of dlib descriptors (dlib's "same person" is below 0.6).
        similarity: :func:`authface_core.faces.identity.identity_similarity`, in [0, 1].
        angle: angle between the descriptors in degrees (a Deg-like score; lower is closer).
        landmark_distance: mean distance between the 68 landmarks in px at 512 (LMD).
    """

    distance: float
    similarity: float
    angle: float
    landmark_distance: float


def to_eval_size(aligned_rgb: np.ndarray) -> np.ndarray:
    """An aligned (S, S, 3) face resized to (512, 512, 3) uint8 (area when shrinking, cubic when enlarging)."""
    height, width = aligned_rgb.shape[:2]
    if height != width:
        raise ValueError(f"expected a square aligned face, got {width}x{height}")
    return resize_square(aligned_rgb, EVAL_FACE_SIZE)


def measure_face(aligned_rgb: np.ndarray) -> FaceMeasurement:
    """Detect the largest face of an aligned crop (at 512 px) and compute its dlib descriptor."""
    face_512 = to_eval_size(aligned_rgb)
    faces = detect_faces(face_512)
    if not faces:
        return FaceMeasurement(face=None, descriptor=None)
    return FaceMeasurement(face=faces[0], descriptor=face_descriptor(face_512, faces[0]))


def descriptor_angle(a: np.ndarray, b: np.ndarray) -> float:
    """Angle in degrees between two descriptors (0 when they point the same way).

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
    """Identity and landmark scores of ``restored`` against ``reference``; None when either face was not found."""
    if not (restored.found and reference.found):
        return None
    return IdentityScores(
        distance=descriptor_distance(restored.descriptor, reference.descriptor),
        similarity=identity_similarity(restored.descriptor, reference.descriptor),
        angle=descriptor_angle(restored.descriptor, reference.descriptor),
        landmark_distance=landmark_distance(restored.face.landmarks, reference.face.landmarks),
    )
