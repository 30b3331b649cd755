"""dlib over the identity photos of ../shared/faces, once per session (about 25 s; three tests read it)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from authface_core.faces import DLIB_IDENTITY, DetectedFace, detect_faces
from authface_core.io import list_images, load_rgb


@dataclass(frozen=True)
class IdentityPhoto:
    """One press photo of ``identity/<person>/``: its faces as ``detect_faces`` finds them (largest first)
    and dlib's descriptor of the largest (None when no face is found)."""

    person: str
    path: Path
    shape: tuple[int, ...]
    faces: list[DetectedFace]
    descriptor: np.ndarray | None


@pytest.fixture(scope="session")
def identity_photos(shared_faces) -> list[IdentityPhoto]:
    photos = []
    for path in list_images([shared_faces / "identity"]):
        rgb = load_rgb(path)
        faces = detect_faces(rgb)
        descriptor = DLIB_IDENTITY.embed(rgb, faces[0]) if faces else None
        photos.append(IdentityPhoto(path.parent.name, path, rgb.shape, faces, descriptor))
    return photos
