"""Face selection and the eye/mouth regions of aligned faces."""

from __future__ import annotations

import numpy as np
import pytest

from authface_core.faces import align_face, detect_faces, facial_regions, region_mask, select_faces
from authface_core.faces.detect import LEFT_EYE_68, MOUTH_68, RIGHT_EYE_68
from authface_core.io import load_rgb


@pytest.fixture(scope="module")
def queen(shared_faces):
    rgb = load_rgb(shared_faces / "whole" / "diffbir_Queen.jpeg")
    return rgb, detect_faces(rgb)


def test_select_all_largest_central_and_min_size(queen):
    rgb, faces = queen
    size = (rgb.shape[1], rgb.shape[0])
    assert len(select_faces(faces, size).selected) == 4
    largest = select_faces(faces, size, mode="largest")
    assert largest.selected == [max(faces, key=lambda f: f.box.area)]
    assert {reason for _, reason in largest.skipped} == {"not the largest face"}
    central = select_faces(faces, size, mode="central")
    centre = np.array(size) / 2
    distances = [np.linalg.norm(np.array(f.box.center) - centre) for f in faces]
    assert central.selected == [faces[int(np.argmin(distances))]]
    sides = sorted(max(f.box.width, f.box.height) for f in faces)
    threshold = (sides[0] + sides[-1]) / 2  # between the smallest and the largest face
    sized = select_faces(faces, size, min_size=threshold)
    assert 1 <= len(sized.selected) < 4
    assert len(sized.selected) == sum(side >= threshold for side in sides)
    assert len(sized.selected) + len(sized.skipped) == 4
    assert all("smaller than the minimum" in reason for _, reason in sized.skipped)


def test_select_rejects_unknown_modes():
    with pytest.raises(ValueError, match="face selection mode must be one of"):
        select_faces([], (10, 10), mode="biggest")


def test_regions_cover_eyes_and_mouth_of_aligned_faces(shared_faces):
    for name in ("gpen_ffhq_00006.png", "ddnm_00234.png", "sam_866.jpg"):
        rgb = load_rgb(shared_faces / "hq_aligned" / name)
        aligned = align_face(rgb, detect_faces(rgb)[0], 512)
        regions = facial_regions(aligned.landmarks, 512)
        points = aligned.landmarks.points
        for part, box in (
            (LEFT_EYE_68, regions.left_eye),
            (RIGHT_EYE_68, regions.right_eye),
            (MOUTH_68, regions.mouth),
        ):
            assert all(box.contains(x, y) for x, y in points[part]), name
        assert regions.left_eye.x1 <= regions.right_eye.x0 + 5  # two separate eyes, left then right
        assert regions.eyes.y1 <= regions.mouth.y0 + 10  # eyes above the mouth
        mask = region_mask(regions, 512)
        assert 0.03 < mask.mean() < 0.25  # the regions are a small part of the face
        latent_box = regions.mouth.scaled(1 / 8)
        assert latent_box.width >= 1 and latent_box.x1 <= 64


def test_regions_on_the_astronaut(astronaut):
    aligned = align_face(astronaut, detect_faces(astronaut)[0], 256)
    regions = facial_regions(aligned.landmarks, 256)
    assert regions.eyes.contains(*aligned.landmarks.to_five().points[0])
    assert regions.mouth.contains(*aligned.landmarks.to_five().points[3])
