"""Measurements shared by the face-geometry tests."""

from __future__ import annotations

import cv2
import numpy as np


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def register_affine(reference: np.ndarray, moving: np.ndarray) -> tuple[float, float]:
    """ECC affine registration of two same-size RGB images: (scale error, centre shift in px)."""
    gray = [cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255 for image in (reference, moving)]
    warp = np.eye(2, 3, dtype=np.float32)
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 200, 1e-6)
    _, warp = cv2.findTransformECC(gray[0], gray[1], warp, cv2.MOTION_AFFINE, criteria, None, 5)
    scale = float(np.sqrt(abs(np.linalg.det(warp[:, :2]))))
    centre = np.array([(reference.shape[1] - 1) / 2, (reference.shape[0] - 1) / 2])
    shift = float(np.linalg.norm(warp[:, :2] @ centre + warp[:, 2] - centre))
    return abs(scale - 1.0), shift
