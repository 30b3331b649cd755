"""The demo's clickable examples, made when the app starts from a photo the project may ship.

The photo is scikit-image's astronaut (Eileen Collins, NASA, public domain), degraded with the project's
own degradations (``authface_core.degradations``, the calibration levels, fixed seeds), so every
example is reproducible, carries no one's rights and says what was done to it. Each has a face the
detector finds (the tests check this), so each one restores on any model, the tiny one included.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from authface_core.degradations import CALIBRATION_LEVELS, degrade_at_level
from authface_core.faces.align import align_face
from authface_core.faces.detect import detect_faces
from authface_core.io import save_image
from authface_core.pipeline.color_fix import to_luminance

MILD, MEDIUM, STRONG = CALIBRATION_LEVELS[:3]  # x2 / x4 / x8 downsampling with blur, noise and JPEG
# Side of the aligned face crop example: the model's face size.
CROP_SIDE = 512


@dataclass(frozen=True)
class Example:
    """One example: its file name, its label on the page, how it is made from the astronaut photo and the settings
    it fills in besides the photo (by setting name)."""

    file_name: str
    label: str
    make: Callable[[np.ndarray], np.ndarray]
    settings: dict = field(default_factory=dict)


def astronaut() -> np.ndarray:
    """The public-domain portrait scikit-image ships: (512, 512, 3) uint8."""
    from skimage import data

    return data.astronaut()


def aligned_crop(photo: np.ndarray) -> np.ndarray:
    """The photo's first face, FFHQ-aligned at ``CROP_SIDE``."""
    return align_face(photo, detect_faces(photo)[0], CROP_SIDE).image


EXAMPLES = (
    Example("astronaut_mild.jpg", "Mildly degraded, x2", lambda p: degrade_at_level(p, MILD, seed=1), {"upscale": 2}),
    Example("astronaut_blurred.jpg", "Blurred, noisy, compressed", lambda p: degrade_at_level(p, MEDIUM, seed=2)),
    Example("astronaut_gray.jpg", "Old grayscale print", lambda p: to_luminance(degrade_at_level(p, MEDIUM, seed=3))),
    Example(
        "astronaut_face_crop.png",
        "Face crop, heavily degraded (aligned mode)",
        lambda p: degrade_at_level(aligned_crop(p), STRONG, seed=4),
        {"aligned": True},
    ),
)


def write_examples(folder: Path) -> list[Path]:
    """Write every example into ``folder`` (a JPEG at quality 95 adds little to the degradation); their paths."""
    photo = astronaut()
    paths = []
    for example in EXAMPLES:
        path = folder / example.file_name
        save_image(path, example.make(photo))
        paths.append(path)
    return paths
