"""Previews: what a reviewer looks at instead of the 8K originals.

Per file, a screen-size preview (longest side ``SCREEN_MAX_SIDE``, decoded by ``io.load_image``'s
``max_side``: an 8K JPEG decodes straight to 1/4 scale, ~0.2 s instead of a full decode).
Per pair, 100% crops of the eyes and the mouth of both images, placed from the original's
landmarks (``authface_core.faces``) so that the two crops show exactly the same pixels.
Everything is cached on disk, written atomically, keyed by content hash (screen previews) or
pair id (crops), so the originals are only ever read.

:class:`Prefetcher` prepares the next pairs of a reviewer's queue on a background thread.
Images are (H, W, 3) RGB uint8 throughout.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import AuthFaceError, InvalidImageError
from ..io import atomic_write_bytes, encode_image, load_rgb
from .store import PairRecord

# Longest side of the screen preview: a full-HD screen. It is also an 8K JPEG's 1/4 DCT scale
# (7680 / 4), so libjpeg decodes straight to it and no resize is needed.
SCREEN_MAX_SIDE = 1920
# JPEG quality of cached previews: visually lossless, 4:4:4 chroma so skin tones keep their detail.
PREVIEW_JPEG_QUALITY = 95
# Side of the aligned face on which faces/regions.py defines its eye and mouth boxes.
ALIGNED_SIZE = 512
CROP_REGIONS = ("eyes", "mouth")
# Bumped whenever the preview recipe changes, so that stale caches are never shown.
CACHE_VERSION = "v1"


@dataclass(frozen=True)
class RegionCrop:
    """A 100% crop of one facial region from both images of a pair (PNG files)."""

    region: str
    original: Path
    retouched: Path


@dataclass(frozen=True)
class CropSet:
    """The crops of a pair, or why there are none (no face, unreadable file)."""

    crops: tuple[RegionCrop, ...]
    problem: str | None = None


def region_boxes(landmarks68, image_size: tuple[int, int]) -> dict[str, tuple[int, int, int, int]]:
    """Eye and mouth boxes (x0, y0, x1, y1) in image pixels, from dlib-68 landmarks in that image.

    faces/regions.py defines the regions on the FFHQ-aligned face; their corners are mapped back
    through the inverse alignment and bounded, so the boxes follow a tilted face.
    """
    from ..faces.align import apply_affine, ffhq_affine
    from ..faces.regions import facial_regions

    affine = ffhq_affine(landmarks68, size=ALIGNED_SIZE)  # (2, 3) image -> aligned
    regions = facial_regions(landmarks68.transformed(affine), size=ALIGNED_SIZE)
    inverse = np.linalg.inv(np.vstack([affine, [0.0, 0.0, 1.0]]))[:2]  # (2, 3) aligned -> image
    width, height = image_size
    boxes = {}
    for name in CROP_REGIONS:
        box = getattr(regions, name)
        corners = np.array([[box.x0, box.y0], [box.x1, box.y0], [box.x0, box.y1], [box.x1, box.y1]], float)
        mapped = apply_affine(corners, inverse)  # (4, 2) in image pixels
        x0, y0 = (int(v) for v in np.floor(mapped.min(axis=0)))
        x1, y1 = (int(v) for v in np.ceil(mapped.max(axis=0)))
        boxes[name] = (max(0, x0), max(0, y0), min(width, x1), min(height, y1))
    return boxes


class PreviewCache:
    """Screen previews and face crops cached under ``cache_dir`` (safe to share between threads)."""

    def __init__(self, cache_dir: str | Path):
        self.root = Path(cache_dir) / CACHE_VERSION
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    def _lock(self, key: str) -> threading.Lock:
        """One lock per cache entry: a prefetch and a click never decode the same file twice."""
        with self._locks_guard:
            return self._locks.setdefault(key, threading.Lock())

    def screen_path(self, path: str | Path, sha256: str) -> Path:
        """The cached screen preview JPEG of a file, made now if missing."""
        self.screen_rgb(path, sha256)
        return self._screen_file(sha256)

    def pair_screen_paths(self, pair: PairRecord) -> tuple[Path, Path]:
        """Both screen previews of a pair, the two decodes run side by side when neither is cached.

        Pillow releases the GIL while decoding, so two 8K PNGs take the time of one on two cores
        (measured here: 1.4 s instead of 2.8 s).
        """
        files = ((pair.original_path, pair.original_sha256), (pair.retouched_path, pair.retouched_sha256))
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="preview-decode") as pool:
            original, retouched = pool.map(lambda file: self.screen_path(*file), files)
        return original, retouched

    def screen_rgb(self, path: str | Path, sha256: str) -> np.ndarray:
        """The screen preview of a file as (h, w, 3) uint8, decoding the original only once ever."""
        cached = self._screen_file(sha256)
        with self._lock(f"screen:{sha256}"):
            if cached.is_file():
                return load_rgb(cached)
            rgb = load_rgb(path, max_side=SCREEN_MAX_SIDE)
            atomic_write_bytes(
                cached, encode_image(rgb, format="JPEG", quality=PREVIEW_JPEG_QUALITY, jpeg_subsampling="4:4:4")
            )
            return rgb

    def is_ready(self, pair: PairRecord) -> bool:
        """Screen previews and crops of ``pair`` are all cached."""
        return (
            all(self._screen_file(sha).is_file() for sha in (pair.original_sha256, pair.retouched_sha256))
            and self._crops_file(pair.pair_id).is_file()
        )

    def crops(self, pair: PairRecord) -> CropSet:
        """100% eye and mouth crops of both images, from landmarks found on the original's preview."""
        index = self._crops_file(pair.pair_id)
        with self._lock(f"crops:{pair.pair_id}"):
            if not index.is_file():
                atomic_write_bytes(index, json.dumps(self._make_crops(pair)).encode())
        return _crop_set_from_index(json.loads(index.read_text()), index.parent)

    def _make_crops(self, pair: PairRecord) -> dict:
        """Write the crop PNGs of ``pair``; returns the index: the boxes made, or why there are none."""
        from ..faces.detect import Landmarks, detect_faces

        preview = self.screen_rgb(pair.original_path, pair.original_sha256)
        faces = detect_faces(preview)  # thread-safe: detect.py serialises dlib calls
        if not faces:
            return {"problem": "no face detected in the original", "regions": {}}
        try:
            original = load_rgb(pair.original_path)
            retouched = load_rgb(pair.retouched_path)
        except InvalidImageError as error:
            return {"problem": str(error), "regions": {}}
        height, width = original.shape[:2]
        scale = width / preview.shape[1]  # preview -> full resolution
        landmarks = faces[0].landmarks
        boxes = region_boxes(Landmarks(landmarks.points * scale, landmarks.scheme), (width, height))
        retouch_scale = (retouched.shape[1] / width, retouched.shape[0] / height)  # a retouch may be resized
        folder = self._crops_file(pair.pair_id).parent
        regions = {}
        for name, (x0, y0, x1, y1) in boxes.items():
            if x1 <= x0 or y1 <= y0:
                continue
            rx0, rx1 = round(x0 * retouch_scale[0]), round(x1 * retouch_scale[0])
            ry0, ry1 = round(y0 * retouch_scale[1]), round(y1 * retouch_scale[1])
            for side, crop in (("original", original[y0:y1, x0:x1]), ("retouched", retouched[ry0:ry1, rx0:rx1])):
                atomic_write_bytes(folder / f"{side}_{name}.png", encode_image(np.ascontiguousarray(crop)))
            regions[name] = [x0, y0, x1, y1]
        return {"problem": None if regions else "face too close to the border for crops", "regions": regions}

    def _screen_file(self, sha256: str) -> Path:
        return self.root / "screen" / sha256[:2] / f"{sha256}.jpg"

    def _crops_file(self, pair_id: str) -> Path:
        return self.root / "crops" / pair_id / "index.json"


class Prefetcher:
    """Prepares previews of upcoming pairs on one background thread, so a reviewer never waits.

    One worker: on a shared 2-core machine a second decode would only slow the reviewer's own.
    Errors are kept on the futures and surface when the pair is actually opened.
    """

    def __init__(self, cache: PreviewCache):
        self.cache = cache
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="preview-prefetch")
        self._pending: dict[str, Future] = {}
        self._guard = threading.Lock()

    def prefetch(self, pairs: Iterable[PairRecord]) -> list[Future]:
        """Queue the pairs not already queued or cached; returns their futures."""
        futures = []
        with self._guard:
            for pair in pairs:
                running = self._pending.get(pair.pair_id)
                if running is None or running.done():
                    if self.cache.is_ready(pair):
                        continue
                    running = self._pool.submit(self._prepare, pair)
                    self._pending[pair.pair_id] = running
                futures.append(running)
        return futures

    def _prepare(self, pair: PairRecord) -> None:
        self.cache.screen_rgb(pair.original_path, pair.original_sha256)
        self.cache.screen_rgb(pair.retouched_path, pair.retouched_sha256)
        try:
            self.cache.crops(pair)
        except AuthFaceError:
            pass  # raised again, and shown, when the pair's crops are asked for

    def shutdown(self) -> None:
        """Drop the queued pairs and wait for the one being prepared."""
        self._pool.shutdown(wait=True, cancel_futures=True)


def _crop_set_from_index(index: dict, folder: Path) -> CropSet:
    """The :class:`CropSet` an index written by ``_make_crops`` describes."""
    crops = tuple(
        RegionCrop(name, folder / f"original_{name}.png", folder / f"retouched_{name}.png")
        for name in CROP_REGIONS
        if name in index["regions"]
    )
    return CropSet(crops, index["problem"])
