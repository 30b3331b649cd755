"""Fixtures of the annotation tests: a folder of real original/retouch pairs made from ../shared/faces.

The "retouch" of each photo is a real edit (a light skin smoothing and a warmer, brighter tone),
saved in another format, as a retoucher's export would be. Files are written under pytest's
tmp folders only; the photos of ../shared/faces are read, never copied into the repository.
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
PHOTOS = (
    "gpen_ffhq_00006.png",
    "gpen_ffhq_00007.png",
    "gpen_ffhq_00008.png",
    "ddnm_00234.png",
    "ddnm_00258.png",
    "ddnm_00265.png",
)


def retouch(image: Image.Image) -> Image.Image:
    """A light retouch: smooth the skin a little, warm and brighten the tone."""
    smoothed = image.convert("RGB").filter(ImageFilter.SMOOTH_MORE)
    return ImageEnhance.Color(ImageEnhance.Brightness(smoothed).enhance(1.06)).enhance(1.1)


def make_pairs_folder(shared_faces: Path, folder: Path, photos=PHOTOS) -> dict[str, Path]:
    """Originals copied byte for byte, retouches exported as JPEG or TIFF; returns name -> original."""
    folder.mkdir(parents=True, exist_ok=True)
    originals = {}
    for index, name in enumerate(photos):
        source = shared_faces / "hq_aligned" / name
        stem = Path(name).stem
        shutil.copyfile(source, folder / name)
        edited = retouch(Image.open(source))
        if index % 2:
            edited.save(folder / f"{stem}_retouched.tif", icc_profile=SRGB_ICC)
        else:
            edited.save(folder / f"{stem}_retouched.jpg", quality=95)
        originals[stem] = folder / name
    return originals


@pytest.fixture(scope="session")
def pairs_folder(shared_faces, tmp_path_factory) -> Path:
    """Six matched pairs plus every kind of trouble ingest must report (see test_ingest.py)."""
    folder = tmp_path_factory.mktemp("pairs")
    make_pairs_folder(shared_faces, folder)
    first = folder / PHOTOS[0]
    # an exact duplicate (same bytes, another name) with its own retouch
    shutil.copyfile(first, folder / "copy_of_first.png")
    shutil.copyfile(folder / "gpen_ffhq_00006_retouched.jpg", folder / "copy_of_first_retouched.jpg")
    # a near duplicate: the same photo resized and re-exported as JPEG
    Image.open(shared_faces / "hq_aligned" / PHOTOS[1]).resize((400, 400), Image.Resampling.LANCZOS).save(
        folder / "reexport.jpg", quality=85
    )
    retouch(Image.open(folder / "reexport.jpg")).save(folder / "reexport_retouched.jpg", quality=90)
    # unmatched: an original without retouch, a retouch without original
    shutil.copyfile(shared_faces / "whole" / "gfpgan_00.jpg", folder / "lonely.jpg")
    retouch(Image.open(shared_faces / "hq_aligned" / "ddnm_00273.png")).save(folder / "orphan_retouched.png")
    # corrupt: a truncated PNG whose retouch is fine
    data = (shared_faces / "hq_aligned" / "ddnm_00277.png").read_bytes()
    (folder / "broken.png").write_bytes(data[: len(data) // 3])
    retouch(Image.open(shared_faces / "hq_aligned" / "ddnm_00277.png")).save(folder / "broken_retouched.jpg")
    # unsupported: a text file and a WebP
    (folder / "notes.txt").write_text("shoot of 12 May")
    Image.open(first).save(folder / "web.webp")
    # a 16-bit PNG pair in a subfolder
    sixteen = folder / "session2"
    sixteen.mkdir()
    gray = np.asarray(Image.open(shared_faces / "hq_aligned" / "ddnm_00338.png").convert("L"), dtype=np.uint16) * 257
    Image.fromarray(gray).save(sixteen / "mono.png")
    Image.fromarray(np.clip(gray.astype(np.int64) + 1500, 0, 65535).astype(np.uint16)).save(
        sixteen / "mono_retouched.png"
    )
    return folder


@pytest.fixture(scope="session")
def real_pairs(pairs_folder, tmp_path_factory) -> list[PairRecord]:
    """The pairs ingested from the real photos of ``pairs_folder``."""
    return ingest_folder(pairs_folder, PreviewCache(tmp_path_factory.mktemp("cache"))).pairs


@pytest.fixture()
def preview_cache(tmp_path) -> PreviewCache:
    return PreviewCache(tmp_path / "cache")


@pytest.fixture()
def store(tmp_path) -> ReviewStore:
    return ReviewStore(tmp_path / "store" / "review.sqlite")
