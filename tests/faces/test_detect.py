"""Detection and landmarks on real photos."""

from __future__ import annotations

import numpy as np
import pytest

from authface_core.faces import detect_faces
from authface_core.faces.detect import Landmarks
from authface_core.io import load_rgb

# Faces a person counts in each photo of ../shared/faces/whole (checked by eye on a contact sheet;
# the third face of obama_and_biden is the girl in the shadow at the bottom right).
WHOLE_PHOTO_FACE_COUNTS = {
    "diffbir_01.jpg": 3,
    "diffbir_Audrey_Hepburn.jpg": 1,
    "diffbir_Harry_Potter.jpg": 3,
    "diffbir_Queen.jpeg": 4,
    "diffbir_real47_1.jpg": 3,
    "face_recognition_kit_with_rose.jpg": 2,
    "face_recognition_obama_and_biden.jpg": 3,
    "face_recognition_two_people.jpg": 2,
    "gfpgan_00.jpg": 2,
    "gfpgan_10045.png": 3,
    "gfpgan_Blake_Lively.jpg": 2,
}


@pytest.mark.parametrize("name", sorted(WHOLE_PHOTO_FACE_COUNTS))
def test_whole_photo_yields_the_faces_a_person_counts(shared_faces, name):
    faces = detect_faces(load_rgb(shared_faces / "whole" / name))
    assert len(faces) == WHOLE_PHOTO_FACE_COUNTS[name]
    areas = [face.box.area for face in faces]
    assert areas == sorted(areas, reverse=True)


def test_every_whole_photo_is_listed(shared_faces):
    assert sorted(p.name for p in (shared_faces / "whole").iterdir()) == sorted(WHOLE_PHOTO_FACE_COUNTS)


def test_each_identity_photo_yields_its_main_face(identity_photos):
    assert len(identity_photos) >= 50
    for photo in identity_photos:
        assert photo.faces, f"no face in {photo.path}"
        # The main face of a press photo is a real, sizeable face: at least 3% of the shorter side.
        assert photo.faces[0].box.width > 0.03 * min(photo.shape[:2]), photo.path


def test_landmarks_sit_on_the_face(astronaut):
    faces = detect_faces(astronaut)
    face = faces[0]
    five = face.landmarks.to_five().points
    box = face.box
    inside = (
        (five[:, 0] > box.left - 5)
        & (five[:, 0] < box.right + 5)
        & (five[:, 1] > box.top - 5)
        & (five[:, 1] < box.bottom + 20)
    )
    assert inside.all()
    left_eye, right_eye, nose, mouth_left, mouth_right = five
    assert left_eye[0] < right_eye[0] and mouth_left[0] < mouth_right[0]
    assert left_eye[1] < nose[1] < mouth_left[1]


def test_detection_on_a_downscaled_copy_keeps_full_resolution_landmarks(astronaut):
    import cv2

    big = cv2.resize(astronaut, (2048, 2048), interpolation=cv2.INTER_CUBIC)
    small_faces = detect_faces(astronaut)
    big_faces = detect_faces(big, max_side=512)
    assert big_faces, "the face must be found on the 512 px detection copy"
    # Landmarks are found at full resolution: they agree with 4x the small photo's within 2% of the face.
    error = np.linalg.norm(big_faces[0].landmarks.points / 4 - small_faces[0].landmarks.points, axis=1).mean()
    assert error < 0.02 * small_faces[0].box.width


def test_a_photo_without_a_face_yields_none():
    from skimage import data

    assert detect_faces(data.coffee()) == []


def test_landmark_schemes_are_validated():
    with pytest.raises(ValueError, match="dlib68 landmarks need shape"):
        Landmarks(np.zeros((5, 2)), "dlib68")
    with pytest.raises(ValueError, match="scheme must be one of"):
        Landmarks(np.zeros((5, 2)), "retinaface")


def test_cnn_detector_finds_the_same_face(astronaut):
    hog = detect_faces(astronaut)[0].box
    cnn = detect_faces(astronaut, detector="cnn", max_side=256)[0].box
    assert abs(cnn.center[0] - hog.center[0]) < 0.25 * hog.width
    assert abs(cnn.center[1] - hog.center[1]) < 0.25 * hog.height
    with pytest.raises(ValueError, match="detector must be one of"):
        detect_faces(astronaut, detector="retinaface")


@pytest.mark.parametrize("shape", [(10, 65000, 3), (65000, 10, 3), (1, 1, 3)])
def test_extreme_strips_are_valid_photos_without_faces(shape):
    """A 65000x10 strip used to shrink to 0 px high for detection and raise cv2.error in resize."""
    assert detect_faces(np.zeros(shape, np.uint8)) == []
