"""Identity: dlib's 128-D face descriptor, and how far two faces are from being the same person.

dlib's ResNet descriptor (shipped by face-recognition-models) reports 99.38% on LFW; two
descriptors closer than 0.6 (Euclidean) are dlib's usual "same person".
"""

from __future__ import annotations

from functools import cache

import numpy as np

from ..errors import NoFaceDetectedError
from .detect import DLIB_LOCK, DetectedFace, _check_rgb, detect_faces, import_dlib, model_path

SAME_PERSON_DISTANCE = 0.6  # dlib's documented threshold for its descriptor


@cache
def _descriptor_model():
    return import_dlib().face_recognition_model_v1(str(model_path("dlib_face_recognition_resnet_model_v1.dat")))


def face_descriptor(rgb: np.ndarray, face: DetectedFace | None = None, *, source: str = "image") -> np.ndarray:
    """(128,) float64 identity descriptor of ``face`` in ``rgb`` (the largest face when None)."""
    dlib = import_dlib()
    rgb = _check_rgb(rgb)
    if face is None:
        faces = detect_faces(rgb)
        if not faces:
            raise NoFaceDetectedError(source, "cannot compute an identity descriptor")
        face = faces[0]
    box = face.box
    rect = dlib.rectangle(round(box.left), round(box.top), round(box.right) - 1, round(box.bottom) - 1)
    shape = dlib.full_object_detection(rect, [dlib.point(round(x), round(y)) for x, y in face.landmarks.points])
    with DLIB_LOCK:
        descriptor = _descriptor_model().compute_face_descriptor(rgb, shape)
    return np.array(descriptor, dtype=np.float64)


def descriptor_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Euclidean distance between two descriptors: below 0.6 is dlib's 'same person'."""
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)))


def identity_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Similarity in [0, 1]: 1 - distance / 1.2, so dlib's 0.6 threshold sits at 0.5."""
    return float(np.clip(1.0 - descriptor_distance(a, b) / (2 * SAME_PERSON_DISTANCE), 0.0, 1.0))
