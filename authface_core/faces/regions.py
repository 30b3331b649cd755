"""Eye and mouth regions of an aligned face, from its 68 landmarks.

The training loss judges these regions of the predicted clean latent, and the authenticity
report and annotation app crop them. Boxes are integer pixel boxes (x0, y0, x1, y1),
end-exclusive, in the coordinates of the aligned crop the landmarks belong to.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .detect import LEFT_EYE_68, MOUTH_68, RIGHT_EYE_68, Landmarks

# Margin around the landmark hull, as a fraction of the eye distance: enough to include the
# eyelids and brows' lower edge, and the lips' surroundings.
EYE_MARGIN = 0.20
MOUTH_MARGIN = 0.20
REGION_NAMES = ("left_eye", "right_eye", "eyes", "mouth")


@dataclass(frozen=True)
class RegionBox:
    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    def scaled(self, factor: float) -> RegionBox:
        """The box in a crop ``factor`` times the size (e.g. 1/8 for an SDXL latent)."""
        return RegionBox(
            int(np.floor(self.x0 * factor)),
            int(np.floor(self.y0 * factor)),
            max(int(np.ceil(self.x1 * factor)), int(np.floor(self.x0 * factor)) + 1),
            max(int(np.ceil(self.y1 * factor)), int(np.floor(self.y0 * factor)) + 1),
        )

    def contains(self, x: float, y: float) -> bool:
        return self.x0 <= x < self.x1 and self.y0 <= y < self.y1


@dataclass(frozen=True)
class FacialRegions:
    left_eye: RegionBox
    right_eye: RegionBox
    eyes: RegionBox
    mouth: RegionBox

    def get(self, name: str) -> RegionBox:
        if name not in REGION_NAMES:
            raise ValueError(f"region must be one of {REGION_NAMES}, got {name!r}")
        return getattr(self, name)


def facial_regions(landmarks: Landmarks, size: int = 512) -> FacialRegions:
    """Eye and mouth boxes around the landmarks of an aligned (size x size) face."""
    if landmarks.scheme != "dlib68":
        raise ValueError(f"facial regions need dlib68 landmarks, got {landmarks.scheme!r}")
    points = landmarks.points
    eye_distance = float(np.linalg.norm(points[RIGHT_EYE_68].mean(0) - points[LEFT_EYE_68].mean(0)))

    def box(part: np.ndarray, margin: float) -> RegionBox:
        pad = margin * eye_distance
        (x0, y0), (x1, y1) = part.min(axis=0) - pad, part.max(axis=0) + pad
        return RegionBox(
            int(np.clip(np.floor(x0), 0, size - 1)),
            int(np.clip(np.floor(y0), 0, size - 1)),
            int(np.clip(np.ceil(x1), 1, size)),
            int(np.clip(np.ceil(y1), 1, size)),
        )

    return FacialRegions(
        left_eye=box(points[LEFT_EYE_68], EYE_MARGIN),
        right_eye=box(points[RIGHT_EYE_68], EYE_MARGIN),
        eyes=box(points[36:48], EYE_MARGIN),
        mouth=box(points[MOUTH_68], MOUTH_MARGIN),
    )


def region_mask(regions: FacialRegions, size: int, which: tuple[str, ...] = ("eyes", "mouth")) -> np.ndarray:
    """(size, size) float32 mask, 1 inside the named regions, 0 elsewhere."""
    mask = np.zeros((size, size), dtype=np.float32)
    for name in which:
        region = regions.get(name)
        mask[region.y0 : region.y1, region.x0 : region.x1] = 1.0
    return mask
