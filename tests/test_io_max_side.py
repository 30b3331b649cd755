"""``load_image(max_side=...)``: decoding straight to a preview size gives the same picture, upright, in any mode.

Kept apart from test_io.py so the two can change independently; both test authface_core/io.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from authface_core.io import load_image


def _shrunk(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The reference: a full decode resized with PIL, built without load_image's downsizing path."""
    return np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.LANCZOS))


@pytest.fixture(scope="module")
def big_photo(astronaut) -> np.ndarray:
    """The astronaut at 3072x2048: large enough for libjpeg's 1/4 scale, small enough to be quick."""
    return np.asarray(Image.fromarray(astronaut).resize((3072, 2048), Image.Resampling.BICUBIC))


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_max_side_decodes_the_same_picture_smaller(tmp_path, big_photo, suffix):
    path = tmp_path / f"big{suffix}"
    Image.fromarray(big_photo).save(path, **({"quality": 95} if suffix == ".jpg" else {}))
    full = load_image(path).rgb
    small = load_image(path, max_side=768)
    assert small.rgb.shape == (512, 768, 3) and small.size == (768, 512)
    difference = np.abs(small.rgb.astype(int) - _shrunk(full, (768, 512)).astype(int))
    assert difference.mean() < 3


def test_max_side_turns_the_image_upright(tmp_path, big_photo):
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # EXIF orientation: rotate 90 degrees clockwise to view
    Image.fromarray(big_photo).save(path, quality=95, exif=exif)
    full, small = load_image(path).rgb, load_image(path, max_side=600).rgb
    assert full.shape == (3072, 2048, 3) and small.shape == (600, 400, 3)
    assert np.abs(small.astype(int) - _shrunk(full, (400, 600)).astype(int)).mean() < 3


def test_max_side_keeps_modes_and_alpha(tmp_path, astronaut):
    palette = Image.fromarray(astronaut).convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    palette.info["transparency"] = 0
    palette.save(tmp_path / "palette.png", transparency=0)
    whole, small = load_image(tmp_path / "palette.png"), load_image(tmp_path / "palette.png", max_side=128)
    assert small.rgb.shape == (128, 128, 3) and small.alpha is not None and small.alpha.shape == (128, 128)
    assert (small.alpha == 0).any() == (whole.alpha == 0).any()
    deep = (np.asarray(Image.fromarray(astronaut).convert("L"), dtype=np.uint16) * 257).astype(np.uint16)
    Image.fromarray(deep).save(tmp_path / "deep.png")
    gray = load_image(tmp_path / "deep.png", max_side=256).rgb
    reference = _shrunk(np.asarray(Image.fromarray(astronaut).convert("L").convert("RGB")), (256, 256))
    assert gray.shape == (256, 256, 3) and np.abs(gray.astype(int) - reference.astype(int)).mean() < 3


def test_max_side_above_the_size_changes_nothing(tmp_path, astronaut):
    Image.fromarray(astronaut).save(tmp_path / "a.png")
    np.testing.assert_array_equal(load_image(tmp_path / "a.png", max_side=4000).rgb, astronaut)
    with pytest.raises(ValueError, match="max_side must be at least 1 pixel, got 0"):
        load_image(tmp_path / "a.png", max_side=0)


def test_max_side_jpeg_skips_the_full_decode(tmp_path, big_photo, monkeypatch):
    """libjpeg's DCT scaling decodes 1/16 of the pixels: the decoder itself runs at the reduced size."""
    from PIL import JpegImagePlugin

    path = tmp_path / "big.jpg"
    Image.fromarray(big_photo).save(path, quality=95)
    decoded_sizes = []
    original_load = JpegImagePlugin.JpegImageFile.load

    def recording_load(image):
        decoded_sizes.append(image.size)
        return original_load(image)

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "load", recording_load)
    load_image(path, max_side=768)
    assert decoded_sizes and decoded_sizes[0] == (768, 512)  # 3072x2048 decoded at 1/4 scale, never in full
    decoded_sizes.clear()
    load_image(path)
    assert decoded_sizes[0] == (3072, 2048)
