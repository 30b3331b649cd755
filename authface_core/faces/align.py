"""Face alignment: the affine map from a photo to a square, FFHQ-style face crop, and the warp.

Images are (H, W, 3) RGB uint8; affines are (2, 3) float64 matrices mapping photo pixels to
aligned-crop pixels (OpenCV convention, pixel centres at integers).

The primary recipe is FFHQ's own (from the 68 landmarks), because the AuthFace model was
trained on FFHQ crops and the recipe reproduces them (within 1.7% scale and 3.5 px at 512,
measured in ../shared/AUTHFACE.md). A 5-point similarity fit onto the FFHQ mean template is the
fallback when only five points are known.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .detect import LEFT_EYE_68, MOUTH_LEFT_68, MOUTH_RIGHT_68, RIGHT_EYE_68, DetectedFace, Landmarks

DEFAULT_FACE_SIZE = 512

# FFHQ recipe (NVlabs/ffhq-dataset, recreate_aligned_images): the crop is a square of side
# max(2.0 x eye distance, 1.8 x eye-to-mouth distance), centred 0.1 eye-to-mouth below the eyes.
FFHQ_EYE_DISTANCE_FACTOR = 2.0
FFHQ_EYE_TO_MOUTH_FACTOR = 1.8
FFHQ_CENTRE_SHIFT = 0.1

# The FFHQ 5-point mean template at 512 px (left eye, right eye, nose tip, left and right mouth
# corner), as used by facexlib/GFPGAN/CodeFormer; scaled linearly for other sizes.
FFHQ_TEMPLATE_512 = np.array(
    [[192.98, 239.95], [318.90, 240.19], [256.63, 314.02], [201.26, 371.41], [313.09, 371.15]], dtype=np.float64
)


@dataclass(frozen=True)
class AlignedFace:
    """A square face crop and how it was made.

    Args:
        image: (S, S, 3) uint8 crop.
        affine: (2, 3) photo -> crop pixel map; paste-back inverts it.
        landmarks: the face's landmarks in crop pixels (same scheme as detected).
        source: the detection the crop came from.
    """

    image: np.ndarray
    affine: np.ndarray
    landmarks: Landmarks
    source: DetectedFace

    @property
    def size(self) -> int:
        return self.image.shape[0]


def ffhq_quad(landmarks: Landmarks) -> np.ndarray:
    """FFHQ's oriented crop square in photo pixels: (4, 2) corners top-left, bottom-left, bottom-right, top-right."""
    if landmarks.scheme != "dlib68":
        raise ValueError(f"the FFHQ recipe needs dlib68 landmarks, got {landmarks.scheme!r}; use template_affine")
    points = landmarks.points
    eye_left = points[LEFT_EYE_68].mean(axis=0)
    eye_right = points[RIGHT_EYE_68].mean(axis=0)
    eye_mid = (eye_left + eye_right) / 2
    eye_to_eye = eye_right - eye_left
    mouth_mid = (points[MOUTH_LEFT_68] + points[MOUTH_RIGHT_68]) / 2
    eye_to_mouth = mouth_mid - eye_mid
    # x: the crop's horizontal half-axis, the eye line turned halfway towards the face's vertical.
    x = eye_to_eye - np.flipud(eye_to_mouth) * [-1, 1]
    x /= np.hypot(*x)
    x *= max(np.hypot(*eye_to_eye) * FFHQ_EYE_DISTANCE_FACTOR, np.hypot(*eye_to_mouth) * FFHQ_EYE_TO_MOUTH_FACTOR)
    y = np.flipud(x) * [-1, 1]
    centre = eye_mid + eye_to_mouth * FFHQ_CENTRE_SHIFT
    return np.stack([centre - x - y, centre - x + y, centre + x + y, centre + x - y])


def ffhq_affine(landmarks: Landmarks, size: int = DEFAULT_FACE_SIZE) -> np.ndarray:
    """(2, 3) photo -> crop map sending FFHQ's quad onto the (size x size) square."""
    quad = ffhq_quad(landmarks)
    # The quad's corners are the outer edges of the crop: pixel-edge -0.5 and size - 0.5.
    corners = np.array([[-0.5, -0.5], [-0.5, size - 0.5], [size - 0.5, size - 0.5]], dtype=np.float32)
    return cv2.getAffineTransform(quad[:3].astype(np.float32), corners).astype(np.float64)


def template_affine(landmarks: Landmarks, size: int = DEFAULT_FACE_SIZE) -> np.ndarray:
    """(2, 3) similarity fit of the five points onto the FFHQ mean template (fallback recipe)."""
    five = landmarks.to_five().points.astype(np.float32)
    template = (FFHQ_TEMPLATE_512 * (size / 512)).astype(np.float32)
    affine, _ = cv2.estimateAffinePartial2D(five, template, method=cv2.LMEDS)
    if affine is None:
        raise ValueError("cannot fit the 5-point template: degenerate landmarks")
    return affine.astype(np.float64)


def apply_affine(points: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Map (N, 2) points through a (2, 3) affine matrix."""
    return points @ affine[:, :2].T + affine[:, 2]


def crop_footprint(affine: np.ndarray, size: int, *, margin: int = 0) -> tuple[int, int, int, int]:
    """Integer bounding box (x0, y0, x1, y1), end-exclusive, of the (size x size) crop in photo pixels."""
    edges = np.array([[-0.5, -0.5], [size - 0.5, -0.5], [-0.5, size - 0.5], [size - 0.5, size - 0.5]])
    corners = apply_affine(edges, cv2.invertAffineTransform(affine))
    x0, y0 = np.floor(corners.min(axis=0)).astype(int) - margin
    x1, y1 = np.ceil(corners.max(axis=0)).astype(int) + margin
    return int(x0), int(y0), int(x1), int(y1)


def face_scale(affine: np.ndarray) -> float:
    """Crop pixels per photo pixel (below 1 when the face is larger in the photo than the crop)."""
    return float(np.sqrt(abs(np.linalg.det(affine[:, :2]))))


def warp_to_crop(rgb: np.ndarray, affine: np.ndarray, size: int) -> np.ndarray:
    """Warp the photo into the (size, size) crop.

    Only the region under the crop is touched, and it is first shrunk with area averaging when
    the face is much larger than the crop, so 8K photos warp fast and without aliasing. Outside
    the photo the crop is filled by mirroring, never by a flat colour.
    """
    x0, y0, x1, y1 = crop_footprint(affine, size, margin=2)
    # Crop the photo region (mirroring where the square leaves the photo).
    region = _crop_with_reflection(rgb, x0, y0, x1, y1)
    local = affine.copy()
    local[:, 2] += affine[:, :2] @ np.array([x0, y0], dtype=np.float64)
    return warp_affine_antialiased(region, local, (size, size), border=cv2.BORDER_REFLECT_101)


def warp_affine_antialiased(
    image: np.ndarray, affine: np.ndarray, dsize: tuple[int, int], *, border: int, flags: int = cv2.INTER_CUBIC
) -> np.ndarray:
    """``cv2.warpAffine`` that stays free of aliasing when the map shrinks the image.

    The source is first shrunk by the whole factor k = floor(1 / scale) with area averaging, so
    the warp itself samples about one source pixel per output pixel.
    """
    scale = face_scale(affine)
    shrink = int(np.floor(1.0 / scale)) if scale < 1.0 else 1
    if shrink > 1:
        rows, cols = image.shape[0] // shrink, image.shape[1] // shrink
        image = cv2.resize(image[: rows * shrink, : cols * shrink], (cols, rows), interpolation=cv2.INTER_AREA)
        # shrunk pixel (u, v) is the mean of source pixels around (k u + (k - 1) / 2, k v + (k - 1) / 2).
        affine = affine @ np.array([[shrink, 0, (shrink - 1) / 2], [0, shrink, (shrink - 1) / 2], [0, 0, 1]])
    return cv2.warpAffine(image, affine, dsize, flags=flags, borderMode=border)


def _crop_with_reflection(rgb: np.ndarray, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    height, width = rgb.shape[:2]
    inside = rgb[max(y0, 0) : min(y1, height), max(x0, 0) : min(x1, width)]
    pads = (max(-y0, 0), max(y1 - height, 0), max(-x0, 0), max(x1 - width, 0))
    if not any(pads):
        return inside
    if inside.size == 0:
        raise ValueError("the face crop lies entirely outside the photo")
    # Reflection needs the pad to be smaller than the region; repeat reflecting until it fits.
    padded = inside
    top, bottom, left, right = pads
    while top or bottom or left or right:
        h, w = padded.shape[:2]
        t, b, lft, r = min(top, h - 1), min(bottom, h - 1), min(left, w - 1), min(right, w - 1)
        if h == 1 or w == 1:
            padded = cv2.copyMakeBorder(padded, top, bottom, left, right, cv2.BORDER_REPLICATE)
            break
        padded = cv2.copyMakeBorder(padded, t, b, lft, r, cv2.BORDER_REFLECT_101)
        top, bottom, left, right = top - t, bottom - b, left - lft, right - r
    return padded


def align_face(rgb: np.ndarray, face: DetectedFace, size: int = DEFAULT_FACE_SIZE) -> AlignedFace:
    """Crop one detected face the FFHQ way (68 points) or by the 5-point template (5 points)."""
    if size < 16:
        raise ValueError(f"face size must be at least 16 px, got {size}")
    if face.landmarks.scheme == "dlib68":
        affine = ffhq_affine(face.landmarks, size)
    else:
        affine = template_affine(face.landmarks, size)
    crop = warp_to_crop(rgb, affine, size)
    return AlignedFace(image=crop, affine=affine, landmarks=face.landmarks.transformed(affine), source=face)
