"""Previews: screen size from a downsized decode, tiles of a pair, 100% regions of every face, prefetch."""

from __future__ import annotations

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
    assert len(list((preview_cache.root / "screen").rglob("*.jpg"))) == 1  # cached on disk
    width, height = Image.open(path).size
    assert max(preview.shape[:2]) == SCREEN_MAX_SIDE
    assert preview.shape[1] / preview.shape[0] == pytest.approx(width / height, rel=0.01)
    # the same picture as a full decode, shrunk
    full = np.asarray(Image.fromarray(load_rgb(path)).resize(preview.shape[1::-1]))
    assert np.abs(full.astype(int) - preview.astype(int)).mean() < 6


def test_tiles_and_regions_of_a_real_face_prefetched(portrait_pair, preview_cache):
    prefetcher = Prefetcher(preview_cache)
    for future in prefetcher.prefetch([portrait_pair]):
        future.result(timeout=300)
    prefetcher.shutdown()
    assert preview_cache.is_ready(portrait_pair)
    assert prefetcher.prefetch([portrait_pair]) == []  # nothing left to do: cached

    tiles = preview_cache.pair_tiles(portrait_pair)
    original = load_rgb(portrait_pair.original_path)
    retouched = load_rgb(portrait_pair.retouched_path)
    for side, source in (("original", original), ("retouched", retouched)):
        key, info = tiles.sides[side]
        assert (info.width, info.height) == (3000, original.shape[0])
        tile = np.asarray(Image.open(preview_cache.tiles.tile_file(key, 0, 2, 1))).astype(int)  # a 100% tile
        assert np.abs(tile - source[512:1024, 1024:1536].astype(int)).mean() < 2
    regions = preview_cache.regions(portrait_pair)
    assert regions.problem is None and len(regions.faces) >= 1
    face = max(regions.faces, key=lambda boxes: boxes["eyes"][2] - boxes["eyes"][0])  # the portrait's face
    assert set(face) == {"eyes", "mouth", "left_cheek", "right_cheek", "forehead"}
    eyes, mouth, forehead = face["eyes"], face["mouth"], face["forehead"]
    left, right = face["left_cheek"], face["right_cheek"]
    assert 30 < eyes[2] - eyes[0] < 1500 and 10 < eyes[3] - eyes[1] < 1000  # a region of the face
    assert forehead[3] <= eyes[1] + 5 and eyes[1] < mouth[1]  # forehead above the eyes, eyes above the mouth
    assert left[2] < right[0] + (right[2] - right[0]) and left[0] < right[0]  # a cheek on each side
    assert eyes[3] <= (left[1] + left[3]) / 2 <= mouth[3]  # cheeks between the eyes and the mouth
