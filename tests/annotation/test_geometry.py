"""The geometry check at ingest: the same frame, another size, a reframed crop, another photo, a rotation tag."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from authface_core.annotation.geometry import check_geometry, to_original_frame
from authface_core.annotation.ingest import ingest_folder
from authface_core.annotation.previews import PreviewCache, pair_tile_keys

from .conftest import photo, retouch

WIDTH = 1200


@pytest.fixture(scope="module")
def portrait() -> Image.Image:
    face = photo("astronaut")
    return face.resize((WIDTH, round(WIDTH * 0.75)), Image.Resampling.BICUBIC)


def preview(image: Image.Image) -> np.ndarray:
    small = image.copy()
    small.thumbnail((480, 480))
    return np.asarray(small)


def check(original: Image.Image, retouched: Image.Image):
    return check_geometry(preview(original), preview(retouched), original.size, retouched.size)


def test_the_same_frame_is_compared_pixel_for_pixel(portrait):
    geometry = check(portrait, retouch(portrait))
    assert geometry.status == "same" and geometry.reason is None


def test_a_half_size_retouch_is_scaled_and_says_so(portrait):
    half = retouch(portrait).resize((WIDTH // 2, portrait.height // 2), Image.Resampling.LANCZOS)
    geometry = check(portrait, half)
    assert geometry.status == "scaled" and "600x450 against 1200x900" in geometry.reason
    mapped = to_original_frame(np.asarray(half), geometry, portrait.size)
    assert mapped.shape == (900, 1200, 3)
    assert np.abs(mapped.astype(int) - np.asarray(retouch(portrait)).astype(int))[20:-20, 20:-20].mean() < 6


def test_a_reframed_retouch_is_aligned_to_the_original(portrait):
    cropped = retouch(portrait).crop((60, 36, WIDTH - 20, portrait.height - 10))  # a retoucher's tighter crop
    geometry = check(portrait, cropped)
    assert geometry.status == "aligned" and "reframed" in geometry.reason and "\n" not in geometry.reason
    matrix = np.array(geometry.matrix).reshape(2, 3)
    np.testing.assert_allclose(matrix[:, 2], [-60, -36], atol=1.5)  # original pixel (60, 36) is the crop's (0, 0)
    mapped = to_original_frame(np.asarray(cropped), geometry, portrait.size)
    inside = (slice(60, -20), slice(80, -40))
    assert np.abs(mapped[inside].astype(int) - np.asarray(retouch(portrait))[inside].astype(int)).mean() < 4


def test_another_photo_is_flagged_never_compared_silently(portrait):
    other = photo("coffee").resize(portrait.size)
    geometry = check(portrait, other)
    assert geometry.status == "flagged" and "does not match the original's frame" in geometry.reason


def test_an_orientation_tag_that_differs_is_named():
    face = photo("astronaut")
    geometry = check_geometry(preview(face), preview(face), face.size, face.size, (1, 6))
    assert geometry.reason.startswith("EXIF orientation differs (1 vs 6)")


def test_ingest_records_the_geometry_and_tiles_the_retouch_in_the_originals_frame(portrait, tmp_path):
    folder = tmp_path / "shoot"
    folder.mkdir()
    portrait.save(folder / "a.png")
    retouch(portrait).crop((60, 36, WIDTH - 20, portrait.height - 10)).save(folder / "a_retouched.jpg", quality=95)
    cache = PreviewCache(tmp_path / "cache")
    (pair,) = ingest_folder(folder, cache).pairs
    assert pair.facts["geometry"]["status"] == "aligned"
    keys = pair_tile_keys(pair)
    assert keys["retouched"] != pair.retouched_sha256  # the aligned retouch is a pyramid of its own
    tiles = cache.pair_tiles(pair)
    assert {(info.width, info.height) for _, info in tiles.sides.values()} == {portrait.size}
