"""Alignment reproduces FFHQ's crops; paste-back is seamless and exact on a round trip."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from authface_core.faces import align_face, detect_faces, paste_faces, template_affine, upscale_image
from authface_core.faces.align import FFHQ_TEMPLATE_512, crop_footprint
from authface_core.io import load_rgb

from .helpers import psnr, register_affine

FFHQ_FACES = (
    "gfpgan_00000000.png",
    "gpen_ffhq_00006.png",
    "gpen_ffhq_00007.png",
    "gpen_ffhq_00008.png",
    "gpen_ffhq_00009.png",
)


def test_realigning_ffhq_faces_recovers_ffhq_crops(shared_faces):
    errors = []
    for name in FFHQ_FACES:
        original = load_rgb(shared_faces / "hq_aligned" / name)
        faces = detect_faces(original)
        assert len(faces) == 1, name
        crop = align_face(original, faces[0], 512).image
        reference = cv2.resize(original, (512, 512), interpolation=cv2.INTER_AREA)
        scale_error, shift = register_affine(reference, crop)
        print(f"{name}: scale error {scale_error:.2%}, centre shift {shift:.2f} px")
        assert scale_error < 0.025 and shift < 5.0, name
        errors.append((scale_error, shift))
    scale_errors, shifts = np.array(errors).T
    print(f"median scale error {np.median(scale_errors):.2%}, median shift {np.median(shifts):.2f} px")
    assert np.median(scale_errors) < 0.01 and np.median(shifts) < 3.0


def test_template_fallback_lands_points_on_the_template(astronaut):
    face = detect_faces(astronaut)[0]
    affine = template_affine(face.landmarks.to_five(), 1024)
    mapped = face.landmarks.to_five().transformed(affine).points
    # A similarity fit of real points onto the mean template: each point within 6% of the crop.
    assert np.abs(mapped - FFHQ_TEMPLATE_512 * 2).max() < 0.06 * 1024


def test_aligned_crop_sizes_and_landmarks(astronaut):
    face = detect_faces(astronaut)[0]
    for size in (256, 512, 1024):
        aligned = align_face(astronaut, face, size)
        assert aligned.image.shape == (size, size, 3)
        five = aligned.landmarks.to_five().points / size
        # FFHQ crops put the eyes near 47% height and the mouth near 72%.
        assert 0.38 < five[:2, 1].mean() < 0.55 and 0.62 < five[3:, 1].mean() < 0.80


def test_face_at_the_edge_is_padded_by_mirroring_not_grey(astronaut):
    face = detect_faces(astronaut)[0]
    # Cut the photo just right of the face's centre: a third of the crop falls outside the photo.
    cut = astronaut[:, : int(face.box.center[0]) + 30].copy()
    edge_face = detect_faces(cut)[0] if detect_faces(cut) else face
    crop = align_face(cut, edge_face, 256).image
    x0, _, x1, _ = crop_footprint(align_face(cut, edge_face, 256).affine, 256)
    assert x1 > cut.shape[1], "the test needs a crop that leaves the photo"
    right_strip = crop[:, -40:].astype(np.float64)
    # Mirrored content has texture; a flat fill (the textbook grey/black border) has none.
    assert right_strip.std(axis=(0, 1)).min() > 10
    assert (right_strip.reshape(-1, 3) == right_strip.reshape(-1, 3)[0]).all(axis=1).mean() < 0.2


def _round_trip(rgb):
    faces = detect_faces(rgb)
    aligned = [align_face(rgb, face, 512) for face in faces]
    return aligned, paste_faces(rgb, [a.image for a in aligned], [a.affine for a in aligned])


def test_round_trip_of_untouched_crops_is_near_lossless(shared_faces):
    scores = {}
    for path in sorted((shared_faces / "whole").iterdir()):
        rgb = load_rgb(path)
        _, pasted = _round_trip(rgb)
        assert pasted.shape == rgb.shape
        scores[path.name] = psnr(pasted, rgb)
    print({name: round(value, 2) for name, value in scores.items()})
    assert min(scores.values()) > 36.0
    assert np.mean(list(scores.values())) > 40.0


def _gradient_energy(image: np.ndarray) -> np.ndarray:
    gray = image.astype(np.float32).mean(axis=2)
    return cv2.Sobel(gray, cv2.CV_32F, 1, 0) ** 2 + cv2.Sobel(gray, cv2.CV_32F, 0, 1) ** 2


def _square_outline(affine: np.ndarray, size: int, shape: tuple[int, int]) -> np.ndarray:
    """Pixels on the border of the crop square as it lands in the photo."""
    inside = cv2.warpAffine(
        np.ones((size, size), np.uint8), cv2.invertAffineTransform(affine), shape[::-1], flags=cv2.INTER_NEAREST
    )
    kernel = np.ones((5, 5), np.uint8)
    return (cv2.dilate(inside, kernel) - cv2.erode(inside, kernel)).astype(bool)


@pytest.mark.parametrize("name", ["face_recognition_kit_with_rose.jpg", "diffbir_Queen.jpeg"])
def test_pasting_changed_faces_leaves_no_seam(shared_faces, name):
    rgb = load_rgb(shared_faces / "whole" / name)
    faces = detect_faces(rgb)
    aligned = [align_face(rgb, face, 512) for face in faces]
    # A restored face differs from the photo: here, 40 levels brighter.
    brighter = [np.clip(a.image.astype(int) + 40, 0, 255).astype(np.uint8) for a in aligned]
    pasted = paste_faces(rgb, brighter, [a.affine for a in aligned])
    outline = np.zeros(rgb.shape[:2], bool)
    for a in aligned:
        outline |= _square_outline(a.affine, 512, rgb.shape[:2])
    energy_ratio = _gradient_energy(pasted)[outline].mean() / _gradient_energy(rgb)[outline].mean()
    print(f"{name}: gradient energy on the square's border, pasted / original = {energy_ratio:.3f}")
    assert energy_ratio < 1.1, "a visible square edge adds gradient energy along the border"
    cx, cy = (int(v) for v in aligned[0].source.box.center)
    patch = np.s_[cy - 5 : cy + 5, cx - 5 : cx + 5]
    assert np.abs(pasted[patch].astype(int) - rgb[patch]).mean() > 20  # the face itself did change


def test_paste_with_upscale_keeps_faces_in_place(astronaut):
    aligned, _ = _round_trip(astronaut)
    pasted = paste_faces(astronaut, [a.image for a in aligned], [a.affine for a in aligned], upscale=2)
    assert pasted.shape == (1024, 1024, 3)
    background = upscale_image(astronaut, 2)
    assert psnr(pasted, background) > 35
    with pytest.raises(ValueError, match="upscale must be an integer from 1 to 4"):
        paste_faces(astronaut, [], [], upscale=5)


def test_overlapping_faces_paste_largest_last(astronaut):
    face = detect_faces(astronaut)[0]
    big = align_face(astronaut, face, 512)
    small_affine = big.affine.copy()
    small_affine[:, :2] *= 2  # the same face, half as large in the photo, centred differently
    red = np.zeros((512, 512, 3), np.uint8)
    red[..., 0] = 255
    blue = np.zeros((512, 512, 3), np.uint8)
    blue[..., 2] = 255
    for order in ([red, blue], [blue, red]):
        faces = order if order[0] is red else order
        affines = [big.affine, small_affine] if faces[0] is red else [small_affine, big.affine]
        pasted = paste_faces(astronaut, faces, affines)
        inverse = cv2.invertAffineTransform(big.affine)
        cx, cy = inverse @ np.array([256, 256, 1.0])
        pixel = pasted[int(cy), int(cx)]
        assert pixel[0] > 200 and pixel[2] < 50, "the larger face (red) must end on top whatever the input order"


def _blend_whole_box(photo: np.ndarray, face: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """The textbook paste, written out here: bilinear warp of the face and of its mask over the face's whole
    box, then one blend."""
    from authface_core.faces.blend import feather_mask

    out = photo.copy()
    size = face.shape[0]
    height, width = out.shape[:2]
    x0, y0, x1, y1 = crop_footprint(affine, size, margin=1)
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
    to_box = cv2.invertAffineTransform(affine)
    to_box[:, 2] -= (x0, y0)
    warped = cv2.warpAffine(face, to_box, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    mask = cv2.warpAffine(feather_mask(size), to_box, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR)
    out[y0:y1, x0:x1] = cv2.blendLinear(warped, out[y0:y1, x0:x1], mask, 1.0 - mask)
    return out


@pytest.mark.parametrize("angle", [0, 7, 45, -60, 90])
@pytest.mark.parametrize("scale", [1.0, 1.7, 3.3])
@pytest.mark.parametrize("centre", [(600, 450), (40, 30), (1190, 890)])
def test_paste_copies_the_inner_box_exactly_as_a_whole_box_blend_would(angle, scale, centre):
    """The fast path (copy where the mask is 1, blend the frame) gives the whole-box blend's pixels exactly,
    upright or rotated, inside the photo or cut by its edge."""
    rng = np.random.default_rng(angle + 10 * int(scale * 10))
    photo = rng.integers(0, 256, (900, 1200, 3), dtype=np.uint8)
    face = rng.integers(0, 256, (128, 128, 3), dtype=np.uint8)
    to_photo = cv2.getRotationMatrix2D((63.5, 63.5), angle, scale)
    to_photo[:, 2] += (centre[0] - 63.5, centre[1] - 63.5)
    affine = cv2.invertAffineTransform(to_photo)
    np.testing.assert_array_equal(paste_faces(photo, [face], [affine]), _blend_whole_box(photo, face, affine))
