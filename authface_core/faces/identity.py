"""Identity: an embedding per face, and how far two faces are from being the same person.

One small interface, :class:`IdentityModel`, is all the rest of the project asks of an identity
model (``faces.compare``, the authenticity check, the evaluation), so a stronger model (an ArcFace
whose weights the user has) can stand in for the default without touching its callers. The
default, :data:`DLIB_IDENTITY`, is dlib's ResNet descriptor (128-D, shipped by
face-recognition-models, 99.38% on LFW): two descriptors closer than 0.6 (Euclidean) are dlib's
usual "same person". Nothing here downloads weights.
"""

from __future__ import annotations

from functools import cache
from typing import Protocol

import numpy as np

from ..errors import NoFaceDetectedError
from .detect import DLIB_LOCK, DetectedFace, _check_rgb, detect_faces, import_dlib, model_path

SAME_PERSON_DISTANCE = 0.6  # dlib's documented threshold for its descriptor


class IdentityModel(Protocol):
    """A face-identity model: an embedding per detected face and a distance between embeddings.

    Attributes:
        name: names the model in reports (embeddings of different models are not comparable).
        same_person_distance: the model's own threshold: two faces closer than this are the same person.
    """

    name: str
    same_person_distance: float

    def embed(self, rgb: np.ndarray, face: DetectedFace) -> np.ndarray:
        """The identity embedding of ``face`` (found in ``rgb``, (H, W, 3) uint8), a 1-D float64 array."""
        ...

    def distance(self, a: np.ndarray, b: np.ndarray) -> float:
        """How far apart two embeddings of this model are (0 for the same embedding)."""
        ...


class DlibIdentity:
    """dlib's 128-D ResNet face descriptor, Euclidean distance (:class:`IdentityModel`)."""

    name = "dlib_face_recognition_resnet_model_v1"
    same_person_distance = SAME_PERSON_DISTANCE

    def embed(self, rgb: np.ndarray, face: DetectedFace) -> np.ndarray:
        """(128,) float64 descriptor, from the face's 68 landmarks as dlib's shape."""
        dlib = import_dlib()
        rgb = _check_rgb(rgb)
        box = face.box
        rect = dlib.rectangle(round(box.left), round(box.top), round(box.right) - 1, round(box.bottom) - 1)
        shape = dlib.full_object_detection(rect, [dlib.point(round(x), round(y)) for x, y in face.landmarks.points])
        with DLIB_LOCK:
            descriptor = _dlib_descriptor_model().compute_face_descriptor(rgb, shape)
        return np.array(descriptor, dtype=np.float64)

    def distance(self, a: np.ndarray, b: np.ndarray) -> float:
        """Euclidean distance: below 0.6 is dlib's 'same person'."""
        return float(np.linalg.norm(np.asarray(a) - np.asarray(b)))


DLIB_IDENTITY = DlibIdentity()


@cache
def _dlib_descriptor_model():
    return import_dlib().face_recognition_model_v1(str(model_path("dlib_face_recognition_resnet_model_v1.dat")))


def face_descriptor(
    rgb: np.ndarray,
    face: DetectedFace | None = None,
    *,
    source: str = "image",
    model: IdentityModel = DLIB_IDENTITY,
) -> np.ndarray:
    """The identity embedding of ``face`` in ``rgb`` (the largest face when None; ``source`` names the image
    in the error when there is none)."""
    if face is None:
        faces = detect_faces(_check_rgb(rgb))
        if not faces:
            raise NoFaceDetectedError(source, "cannot compute an identity descriptor")
        face = faces[0]
    return model.embed(rgb, face)


def identity_similarity(distance: float, same_person_distance: float = SAME_PERSON_DISTANCE) -> float:
    """A distance as a similarity in [0, 1]: 1 - distance / (2 * threshold), so the threshold sits at 0.5."""
    return float(np.clip(1.0 - distance / (2 * same_person_distance), 0.0, 1.0))
