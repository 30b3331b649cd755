"""Geometry check at ingest: is the retouch the same frame as its original?

A retoucher may deliver at another size (a half-size proof), another aspect (a crop), rotated
by an EXIF tag, or reframed. Comparing such a pair pixel for pixel would show the mouth where
the eyes are; so every pair is compared on its screen previews, and the retouch is either
mapped onto the original's frame (a plain rescale, or an ECC alignment: OpenCV's
``findTransformECC``, coarse to fine on grey copies ~480 px wide), or flagged with a one-line
reason when it cannot be. Never silently compared.

The result is an affine matrix from original pixels to retouch pixels (full resolution, upright
images), which :func:`to_original_frame` applies to the full retouch before its tiles are made.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np

# Widths of the grey copies ECC runs on, coarse to fine.
ECC_WIDTHS = (120, 480)
# ECC's correlation coefficient (1 = identical up to brightness and contrast) below which the frames
# are not the same picture: a retouch correlates above 0.95, another crop of the scene far below.
MIN_CORRELATION = 0.9
# Alignment error (full-resolution pixels) under which two frames count as the same.
SAME_FRAME_PX = 1.0
_ECC_CRITERIA = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 100, 1e-5)
# EXIF orientations that swap width and height (90-degree rotations).
_ROTATED = {5, 6, 7, 8}


@dataclass(frozen=True)
class Geometry:
    """How the retouch maps onto the original's frame.

    Args:
        status: 'same' (pixel for pixel), 'scaled' (another size, same frame), 'aligned' (reframed,
            aligned by ECC) or 'flagged' (cannot be aligned: shown scaled, with the reason).
        matrix: 2x3 affine from original pixels to retouch pixels, row-major (6 floats).
        reason: one line for the reviewer; None when the frames are the same.
    """

    status: str
    matrix: tuple[float, ...]
    reason: str | None = None

    def as_facts(self) -> dict:
        return asdict(self)

    @classmethod
    def from_facts(cls, facts: dict | None) -> Geometry:
        """The geometry stored in a pair's facts (pairs ingested before the check: the same frame)."""
        if not facts:
            return SAME
        return cls(facts["status"], tuple(facts["matrix"]), facts.get("reason"))


SAME = Geometry("same", (1.0, 0.0, 0.0, 0.0, 1.0, 0.0))


def upright_size(width: int, height: int, orientation: int | None) -> tuple[int, int]:
    """The size of an image once its EXIF orientation is applied."""
    return (height, width) if orientation in _ROTATED else (width, height)


def check_geometry(
    original_preview: np.ndarray,
    retouched_preview: np.ndarray,
    original_size: tuple[int, int],
    retouched_size: tuple[int, int],
    orientations: tuple[int | None, int | None] = (None, None),
) -> Geometry:
    """Compare the two frames from their upright previews and full (upright) sizes; see the module doc."""
    notes = []
    if (orientations[0] or 1) != (orientations[1] or 1):
        notes.append(f"EXIF orientation differs ({orientations[0] or 1} vs {orientations[1] or 1})")
    scale = np.diag([retouched_size[0] / original_size[0], retouched_size[1] / original_size[1], 1.0])
    found = _ecc(original_preview, retouched_preview, original_size, retouched_size, scale)
    sizes = f"{retouched_size[0]}x{retouched_size[1]} against {original_size[0]}x{original_size[1]}"
    if found is None:
        reason = f"retouch ({sizes}) does not match the original's frame; shown scaled to it, compare by hand"
        return Geometry("flagged", _flat(scale), "; ".join([*notes, reason]))
    matrix, correlation = found
    error_px = _mismatch_px(matrix, scale, original_size)
    if error_px < SAME_FRAME_PX:
        if retouched_size == original_size:
            return Geometry("same", SAME.matrix, "; ".join(notes) or None)
        reason = f"retouch is {sizes}: scaled to the original's frame"
        return Geometry("scaled", _flat(scale), "; ".join([*notes, reason]))
    reason = (
        f"retouch ({sizes}) is reframed by up to {error_px:.0f} px: aligned to the original's frame "
        f"(ECC correlation {correlation:.2f})"
    )
    return Geometry("aligned", _flat(matrix), "; ".join([*notes, reason]))


def to_original_frame(retouched: np.ndarray, geometry: Geometry, original_size: tuple[int, int]) -> np.ndarray:
    """The full retouch resampled onto the original's frame ((H, W, 3) of ``original_size`` (W, H)).

    A retouch much larger than the original is first shrunk by area averaging, so the warp never
    skips pixels (which would alias fine skin texture).
    """
    if geometry.status == "same":
        return retouched
    matrix = np.vstack([np.array(geometry.matrix, dtype=np.float64).reshape(2, 3), [0.0, 0.0, 1.0]])
    factor = float(np.hypot(matrix[0, 0], matrix[1, 0]))  # retouch pixels per original pixel
    if factor > 1.5:
        shrunk = (round(retouched.shape[1] / factor), round(retouched.shape[0] / factor))
        retouched = cv2.resize(retouched, shrunk, interpolation=cv2.INTER_AREA)
        matrix = np.diag([1 / factor, 1 / factor, 1.0]) @ matrix
    return cv2.warpAffine(retouched, matrix[:2], tuple(original_size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)


def _ecc(
    original: np.ndarray,
    retouched: np.ndarray,
    original_size: tuple[int, int],
    retouched_size: tuple[int, int],
    scale: np.ndarray,
) -> tuple[np.ndarray, float] | None:
    """The affine (3x3, original full-res -> retouch full-res) ECC finds, and its correlation; None when
    it does not converge or the correlation is under ``MIN_CORRELATION``."""
    matrix = scale.copy()
    correlation = 0.0
    for width in ECC_WIDTHS:
        template, to_template = _grey(original, width, original_size)
        moving, to_moving = _grey(retouched, width, retouched_size)
        warp = (to_moving @ matrix @ np.linalg.inv(to_template))[:2].astype(np.float32)
        try:
            correlation, warp = cv2.findTransformECC(template, moving, warp, cv2.MOTION_AFFINE, _ECC_CRITERIA, None, 5)
        except cv2.error:
            return None
        matrix = np.linalg.inv(to_moving) @ np.vstack([warp, [0, 0, 1]]) @ to_template
    return (matrix, float(correlation)) if correlation >= MIN_CORRELATION else None


def _grey(rgb: np.ndarray, width: int, full_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """A float grey copy ``width`` px wide, and the 3x3 map from full-resolution pixels to its pixels."""
    height = max(1, round(rgb.shape[0] * width / rgb.shape[1]))
    grey = cv2.cvtColor(cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY)
    to_small = np.diag([width / full_size[0], height / full_size[1], 1.0])
    return grey.astype(np.float32), to_small


def _mismatch_px(matrix: np.ndarray, scale: np.ndarray, original_size: tuple[int, int]) -> float:
    """Largest distance (retouch pixels) between where ``matrix`` and a plain rescale put the original's corners."""
    width, height = original_size
    corners = np.array([[0, 0, 1], [width, 0, 1], [0, height, 1], [width, height, 1]], dtype=np.float64).T
    return float(np.abs((matrix - scale)[:2] @ corners).max())


def _flat(matrix: np.ndarray) -> tuple[float, ...]:
    return tuple(float(value) for value in np.asarray(matrix)[:2].ravel())
