"""Fixtures of the annotation tests: folders of original/retouch pairs, made under pytest's tmp folders.

The photos are those scikit-image ships (the astronaut, coffee, a cat, a rocket, the Hubble deep
field, the cameraman), so every test here runs on a fresh clone. The "retouch" of each photo is a
real edit (a light smoothing and a warmer, brighter tone) exported in another format, as a
retoucher's export would be.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms, ImageEnhance, ImageFilter

from authface_core.annotation.ingest import ingest_folder
from authface_core.annotation.previews import PreviewCache
from authface_core.annotation.store import PairRecord, ReviewStore

# the retouches exported as TIFF carry a colour profile, as a retoucher's export does
SRGB_ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
# scikit-image's bundled photos (no download), saved under these names
PHOTOS = {
    "astronaut.png": "astronaut",
    "coffee.png": "coffee",
    "chelsea.png": "chelsea",
    "rocket.jpg": "rocket",
    "hubble.png": "hubble_deep_field",
    "camera.png": "camera",
}


def photo(name: str) -> Image.Image:
    """A photo scikit-image ships, as an RGB PIL image."""
    from skimage import data

    return Image.fromarray(getattr(data, name)()).convert("RGB")


def retouch(image: Image.Image) -> Image.Image:
    """A light retouch: smooth the skin a little, warm and brighten the tone."""
    smoothed = image.convert("RGB").filter(ImageFilter.SMOOTH_MORE)
    return ImageEnhance.Color(ImageEnhance.Brightness(smoothed).enhance(1.06)).enhance(1.1)


def make_pairs_folder(folder: Path, photos=tuple(PHOTOS)) -> dict[str, Path]:
    """Originals as files of their own format, retouches exported as JPEG or TIFF; returns stem -> original."""
    folder.mkdir(parents=True, exist_ok=True)
    originals = {}
    for index, name in enumerate(photos):
        original = photo(PHOTOS[name])
        original.save(folder / name, **({"quality": 92} if name.endswith(".jpg") else {}))
        stem = Path(name).stem
        if index % 2:
            retouch(original).save(folder / f"{stem}_retouched.tif", icc_profile=SRGB_ICC)
        else:
            retouch(original).save(folder / f"{stem}_retouched.jpg", quality=95)
        originals[stem] = folder / name
    return originals


@pytest.fixture(scope="session")
def pairs_folder(tmp_path_factory) -> Path:
    """Six matched pairs plus every kind of trouble ingest must report (see test_ingest.py)."""
    folder = tmp_path_factory.mktemp("pairs")
    make_pairs_folder(folder)
    # an exact duplicate (same bytes, another name) with its own retouch
    shutil.copyfile(folder / "astronaut.png", folder / "copy_of_first.png")
    shutil.copyfile(folder / "astronaut_retouched.jpg", folder / "copy_of_first_retouched.jpg")
    # a near duplicate: the same photo resized and re-exported as JPEG
    photo("coffee").resize((300, 200), Image.Resampling.LANCZOS).save(folder / "reexport.jpg", quality=85)
    retouch(Image.open(folder / "reexport.jpg")).save(folder / "reexport_retouched.jpg", quality=90)
    # unmatched: an original without retouch, a retouch without original
    photo("retina").resize((400, 400)).save(folder / "lonely.jpg")
    retouch(photo("grass")).save(folder / "orphan_retouched.png")
    # corrupt: a truncated PNG whose retouch is fine
    photo("brick").save(folder / "whole_brick.png")
    data = (folder / "whole_brick.png").read_bytes()
    (folder / "whole_brick.png").unlink()
    (folder / "broken.png").write_bytes(data[: len(data) // 3])
    retouch(photo("brick")).save(folder / "broken_retouched.jpg")
    # unsupported: a text file and a WebP
    (folder / "notes.txt").write_text("shoot of 12 May")
    photo("astronaut").save(folder / "web.webp")
    # a 16-bit PNG pair in a subfolder
    sixteen = folder / "session2"
    sixteen.mkdir()
    gray = np.asarray(photo("coins").convert("L"), dtype=np.uint16) * 257
    Image.fromarray(gray).save(sixteen / "mono.png")
    Image.fromarray(np.clip(gray.astype(np.int64) + 1500, 0, 65535).astype(np.uint16)).save(
        sixteen / "mono_retouched.png"
    )
    return folder


@pytest.fixture(scope="session")
def clean_pairs_folder(tmp_path_factory) -> Path:
    """The six matched pairs alone."""
    folder = tmp_path_factory.mktemp("clean-pairs")
    make_pairs_folder(folder)
    return folder


@pytest.fixture(scope="session")
def pairs(clean_pairs_folder, tmp_path_factory) -> list[PairRecord]:
    """The six pairs of ``clean_pairs_folder``, ingested (real files, hashes and facts)."""
    found = ingest_folder(clean_pairs_folder, PreviewCache(tmp_path_factory.mktemp("cache"))).pairs
    assert len(found) == len(PHOTOS)
    return found


@pytest.fixture()
def preview_cache(tmp_path) -> PreviewCache:
    return PreviewCache(tmp_path / "cache")


@pytest.fixture()
def store(tmp_path) -> ReviewStore:
    return ReviewStore(tmp_path / "store" / "review.sqlite")
