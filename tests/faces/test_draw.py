"""Numbered face boxes drawn on a copy of the photo, where the boxes are, scaled to the image drawn on."""

from __future__ import annotations

import numpy as np
import pytest

from authface_core.faces.detect import FaceBox
from authface_core.faces.draw import NUMBERED_COLOR, SKIPPED_COLOR, draw_numbered_boxes


def colour_share(region: np.ndarray, colour) -> float:
    """The share of ``region``'s pixels within 30 levels of ``colour`` in every channel."""
    return float((np.abs(region.astype(int) - colour) <= 30).all(axis=-1).mean())


def test_boxes_are_drawn_where_the_faces_are_at_the_image_scale():
    photo = np.full((400, 800, 3), 40, np.uint8)
    numbered = [FaceBox(100, 200, 200, 300), FaceBox(500, 100, 700, 300)]
    skipped = [FaceBox(300, 300, 360, 360)]
    drawn = draw_numbered_boxes(photo[::2, ::2], numbered, skipped, scale=0.5)  # drawn on a half-size copy
    assert drawn.shape == (200, 400, 3) and photo.max() == 40  # a copy; the photo is untouched
    for box in numbered:
        left, top, right, bottom = (round(v * 0.5) for v in (box.left, box.top, box.right, box.bottom))
        assert colour_share(drawn[top + 5 : bottom - 5, left], NUMBERED_COLOR) > 0.9  # left edge
        assert colour_share(drawn[bottom, left + 5 : right - 5], NUMBERED_COLOR) > 0.9  # bottom edge
        assert colour_share(drawn[top + 5 : bottom - 5, left + 5 : right - 5], NUMBERED_COLOR) == 0  # inside
        assert colour_share(drawn[max(top - 15, 0) : top, left : left + 10], NUMBERED_COLOR) > 0.3  # its tag
    assert (
        colour_share(drawn[155:175, 150], SKIPPED_COLOR) > 0.9
        and colour_share(drawn[155:175, 150], NUMBERED_COLOR) == 0
    )
    untouched = drawn[5:40, 300:380]
    assert (untouched == 40).all()


def test_refuses_what_is_not_an_rgb_image():
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8"):
        draw_numbered_boxes(np.zeros((10, 10), np.uint8), [])
