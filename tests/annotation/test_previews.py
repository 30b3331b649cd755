"""Previews: screen size from a downsized decode, 100% eye and mouth crops of a real face, prefetch."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from authface_core.annotation.ingest import sha256_file
from authface_core.annotation.previews import SCREEN_MAX_SIDE, Prefetcher
from authface_core.annotation.store import PairRecord
from authface_core.io import load_rgb

from .conftest import photo, retouch


def make_portrait_pair(portrait: Image.Image, folder, width: int) -> PairRecord:
    """A portrait upscaled to ``width`` (JPEG) and its retouch (PNG at the same size)."""
    big = portrait.resize((width, round(width * portrait.height / portrait.width)), Image.Resampling.BICUBIC)
    original, retouched = folder / "portrait.jpg", folder / "portrait_retouched.png"
    big.save(original, quality=92)
    retouch(big).save(retouched, compress_level=1)
    return PairRecord(
        pair_id=f"portrait-{width}",
        original_path=str(original),
        retouched_path=str(retouched),
        original_sha256=sha256_file(original),
        retouched_sha256=sha256_file(retouched),
    )


@pytest.fixture(scope="module", params=["astronaut", "real photo"])
def portrait_pair(request, tmp_path_factory) -> PairRecord:
    """A 3000-px-wide pair: large enough for crops far from the preview's scale, fast to decode.

    Made from scikit-image's astronaut, and from a real whole photo of ../shared/faces when present.
    """
    if request.param == "astronaut":
        portrait = photo("astronaut")
    else:
        portrait = Image.open(request.getfixturevalue("shared_faces") / "whole" / "gfpgan_Blake_Lively.jpg")
    return make_portrait_pair(portrait.convert("RGB"), tmp_path_factory.mktemp("portrait"), 3000)


def test_screen_preview_of_8k_jpeg_is_screen_sized(preview_cache, tmp_path):
    path = tmp_path / "8k.jpg"
    photo("astronaut").resize((7680, 5120), Image.Resampling.BILINEAR).save(path, quality=90)
    preview = preview_cache.screen_rgb(path, sha256_file(path))
    assert preview_cache.screen_path(path, sha256_file(path)).is_file()
    width, height = Image.open(path).size
    assert max(preview.shape[:2]) == SCREEN_MAX_SIDE
    assert preview.shape[1] / preview.shape[0] == pytest.approx(width / height, rel=0.01)
    # the same picture as a full decode, shrunk
    full = np.asarray(Image.fromarray(load_rgb(path)).resize(preview.shape[1::-1]))
    assert np.abs(full.astype(int) - preview.astype(int)).mean() < 6


def test_crops_are_100_percent_pixels_of_both_images(portrait_pair, preview_cache):
    prefetcher = Prefetcher(preview_cache)
    for future in prefetcher.prefetch([portrait_pair]):
        future.result(timeout=300)
    prefetcher.shutdown()
    assert preview_cache.is_ready(portrait_pair)
    assert prefetcher.prefetch([portrait_pair]) == []  # nothing left to do: cached

    crop_set = preview_cache.crops(portrait_pair)
    assert crop_set.problem is None
    assert [crop.region for crop in crop_set.crops] == ["eyes", "mouth"]
    original = load_rgb(portrait_pair.original_path)
    retouched = load_rgb(portrait_pair.retouched_path)
    boxes = json.loads((crop_set.crops[0].original.parent / "index.json").read_text())["regions"]
    for crop in crop_set.crops:
        x0, y0, x1, y1 = boxes[crop.region]
        assert 30 < x1 - x0 < 1500 and 10 < y1 - y0 < 1000  # a region of the face, not the whole photo
        np.testing.assert_array_equal(np.asarray(Image.open(crop.original)), original[y0:y1, x0:x1])
        np.testing.assert_array_equal(np.asarray(Image.open(crop.retouched)), retouched[y0:y1, x0:x1])
    eyes, mouth = boxes["eyes"], boxes["mouth"]
    assert eyes[3] <= mouth[1] + (mouth[3] - mouth[1])  # eyes above the mouth
    assert eyes[1] < mouth[1]
