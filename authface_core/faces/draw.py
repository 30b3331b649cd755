"""Face boxes drawn on a copy of a photo, numbered as the faces are reported, so a person can tell which
row of a report is which face.

Images are (H, W, 3) RGB uint8; boxes are in the pixels of the photo they were found in and are scaled
to the image drawn on (usually a screen-sized copy).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from .detect import FaceBox

# Restored faces: amber boxes with the number on a filled tag; faces left out: gray boxes, no number.
NUMBERED_COLOR = (255, 190, 0)
SKIPPED_COLOR = (150, 150, 150)
LABEL_TEXT_COLOR = (0, 0, 0)
# Line width and text size grow with the image: this many pixels of the longer side per pixel of line.
PIXELS_PER_LINE_WIDTH = 400


def draw_numbered_boxes(
    image: np.ndarray, numbered: Sequence[FaceBox], skipped: Sequence[FaceBox] = (), *, scale: float = 1.0
) -> np.ndarray:
    """A copy of ``image`` with box ``i`` of ``numbered`` labelled ``i + 1`` and the ``skipped`` boxes in gray;
    ``scale`` maps box coordinates to ``image`` pixels (``image`` width / the photo's width)."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) uint8 image, got {image.shape} {image.dtype}")
    canvas = np.ascontiguousarray(image).copy()
    line = max(1, round(max(image.shape[:2]) / PIXELS_PER_LINE_WIDTH))
    for box in skipped:
        cv2.rectangle(canvas, *_corners(box, scale), SKIPPED_COLOR, line, cv2.LINE_AA)
    for number, box in enumerate(numbered, start=1):
        (left, top), bottom_right = _corners(box, scale)
        cv2.rectangle(canvas, (left, top), bottom_right, NUMBERED_COLOR, line, cv2.LINE_AA)
        _draw_tag(canvas, str(number), (left, top), line)
    return canvas


def _corners(box: FaceBox, scale: float) -> tuple[tuple[int, int], tuple[int, int]]:
    return (round(box.left * scale), round(box.top * scale)), (round(box.right * scale), round(box.bottom * scale))


def _draw_tag(canvas: np.ndarray, text: str, corner: tuple[int, int], line: int) -> None:
    """The number on a filled tag just above the box's top-left corner (inside the box when there is no room)."""
    font, font_scale, thickness = cv2.FONT_HERSHEY_SIMPLEX, 0.6 * line, line
    (text_width, text_height), baseline = cv2.getTextSize(text, font, font_scale, thickness)
    pad = 2 * line
    left, top = corner
    tag_height = text_height + baseline + 2 * pad
    tag_top = top - tag_height if top - tag_height >= 0 else top
    cv2.rectangle(canvas, (left, tag_top), (left + text_width + 2 * pad, tag_top + tag_height), NUMBERED_COLOR, -1)
    origin = (left + pad, tag_top + pad + text_height)
    cv2.putText(canvas, text, origin, font, font_scale, LABEL_TEXT_COLOR, thickness, cv2.LINE_AA)
