"""8K original/retouch pairs made from a real photo of ../shared/faces, for the browser tests and the benchmark.

The photo is upscaled whole to 7680 px wide (bicubic), as a camera file of that size would hold it;
the "retouch" is a real edit (a light blur and a brighter tone), optionally reframed (a tighter
crop, as a retoucher might deliver). 16-bit PNG and TIFF are written by OpenCV (Pillow writes
neither in 16-bit RGB); their 8-bit rendering is the 8-bit source exactly (value x 257).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image

EIGHT_K_WIDTH = 7680


def upscaled(photo: Path, width: int = EIGHT_K_WIDTH) -> np.ndarray:
    """The photo upscaled whole to ``width`` px wide: (H, W, 3) uint8."""
    image = Image.open(photo).convert("RGB")
    return np.asarray(image.resize((width, round(width * image.height / image.width)), Image.Resampling.BICUBIC))


def retouched(rgb: np.ndarray) -> np.ndarray:
    """A light retouch: smooth a little, brighten by 5%."""
    smooth = cv2.GaussianBlur(rgb, (0, 0), 1.2)
    return np.clip(smooth.astype(np.float32) * 1.05, 0, 255).astype(np.uint8)


def write(path: Path, rgb: np.ndarray) -> Path:
    """Save ``rgb``: ``.png``/``.tif`` as 16-bit (value x 257), ``.jpg`` at quality 95."""
    if path.suffix == ".jpg":
        Image.fromarray(rgb).save(path, quality=95)
    else:
        sixteen = rgb.astype(np.uint16)[..., ::-1] * 257  # OpenCV writes BGR
        cv2.imwrite(str(path), sixteen, [cv2.IMWRITE_PNG_COMPRESSION, 1] if path.suffix == ".png" else [])
    return path


def make_pair(
    photo: Path, folder: Path, stem: str, original_ext: str, retouch_ext: str, *, reframe: tuple | None = None
) -> tuple[Path, Path, np.ndarray]:
    """Write ``<stem><original_ext>`` and ``<stem>_retouched<retouch_ext>`` in ``folder``; returns both paths
    and the 8-bit original. ``reframe`` = (left, top, right, bottom) pixels cut off the retouch."""
    folder.mkdir(parents=True, exist_ok=True)
    original = upscaled(photo)
    edit = retouched(original)
    if reframe:
        left, top, right, bottom = reframe
        edit = edit[top : edit.shape[0] - bottom, left : edit.shape[1] - right]
    original_path = write(folder / f"{stem}{original_ext}", original)
    return original_path, write(folder / f"{stem}_retouched{retouch_ext}", edit), original
