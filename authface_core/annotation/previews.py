"""Previews: what a reviewer looks at instead of the 8K originals.

Per file, a screen-size preview (longest side ``SCREEN_MAX_SIDE``, decoded by ``io.load_image``'s
``max_side``: an 8K JPEG decodes straight to 1/4 scale, ~0.2 s instead of a full decode): the
perceptual hash, the geometry check and face detection run on it.
Per pair, the tile pyramids the viewer shows (``tiles.py``): the original, the retouch in the
original's frame (``geometry.py``) and their difference heat map; and the 100% regions of every
face (eyes, mouth, both cheeks, forehead), boxes in the original's pixels that the viewer shows
from the full-resolution tiles of either side, so both show exactly the same place.
Everything is cached on disk, written atomically, keyed by content hash, so the originals are
only ever read.

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

from ..errors import AuthFaceError
from ..io import atomic_write_bytes, encode_image, load_rgb
from .config import DEFAULT_MAX_PIXELS
from .geometry import Geometry, to_original_frame, upright_size
from .store import PairRecord
from .tiles import TileInfo, TileStore, derived_key, difference_map

# Longest side of the screen preview: a full-HD screen. It is also an 8K JPEG's 1/4 DCT scale
# (7680 / 4), so libjpeg decodes straight to it and no resize is needed.
SCREEN_MAX_SIDE = 1920
# JPEG quality of cached previews: visually lossless, 4:4:4 chroma so skin tones keep their detail.
PREVIEW_JPEG_QUALITY = 95
# Side of the aligned face on which faces/regions.py defines its eye and mouth boxes.
ALIGNED_SIZE = 512
CROP_REGIONS = ("eyes", "mouth", "left_cheek", "right_cheek", "forehead")
# Skin patches, in eye distances on the aligned face: (centre x from the eye centre, centre y from
# the eyes' height, half width, half height). Cheeks sit under each eye, a little outwards, at 55%
# of the way down to the mouth; the forehead above the brows.
_CHEEK_OUTWARD, _CHEEK_DOWN, _CHEEK_HALF = 0.05, 0.55, 0.22
_FOREHEAD_UP, _FOREHEAD_HALF_WIDTH, _FOREHEAD_HALF_HEIGHT = 0.8, 0.45, 0.2
# The sides of a pair the viewer can show, each a tile pyramid.
SIDES = ("original", "retouched", "difference")
# Bumped whenever the preview recipe changes, so that stale caches are never shown.
CACHE_VERSION = "v2"


@dataclass(frozen=True)
class FaceRegions:
    """The 100% regions of every face in a pair's original, or why there are none (no face, unreadable file).

    ``faces`` holds, per face from left to right, ``{region: (x0, y0, x1, y1)}`` in original pixels.
    """

    faces: tuple[dict[str, tuple[int, int, int, int]], ...]
    problem: str | None = None


@dataclass(frozen=True)
class PairTiles:
    """The pyramids of a pair's three sides: ``{side: (key, TileInfo)}``, and the geometry applied."""

    sides: dict[str, tuple[str, TileInfo]]
    geometry: Geometry


def pair_tile_keys(pair: PairRecord) -> dict[str, str]:
    """The pyramid key of each side of ``pair``: the files' own hashes when the frames are the same,
    keys derived from both hashes for what exists only per pair."""
    both = (pair.original_sha256, pair.retouched_sha256)
    same = Geometry.from_facts(pair.facts.get("geometry")).status == "same"
    return {
        "original": pair.original_sha256,
        "retouched": pair.retouched_sha256 if same else derived_key("aligned", *both),
        "difference": derived_key("difference", *both),
    }


def _skin_boxes(points: np.ndarray) -> dict[str, tuple[float, float, float, float]]:
    """Cheek and forehead boxes on an aligned face, from its dlib-68 landmarks ((68, 2))."""
    left, right = points[36:42].mean(axis=0), points[42:48].mean(axis=0)
    distance = float(np.linalg.norm(right - left))
    eye_y, mouth_y = (left[1] + right[1]) / 2, points[48:68, 1].mean()
    cheek_y = eye_y + _CHEEK_DOWN * (mouth_y - eye_y)
    half = _CHEEK_HALF * distance

    def around(x: float, y: float, half_width: float, half_height: float):
        return (x - half_width, y - half_height, x + half_width, y + half_height)

    return {
        "left_cheek": around(left[0] - _CHEEK_OUTWARD * distance, cheek_y, half, half),
        "right_cheek": around(right[0] + _CHEEK_OUTWARD * distance, cheek_y, half, half),
        "forehead": around(
            (left[0] + right[0]) / 2,
            eye_y - _FOREHEAD_UP * distance,
            _FOREHEAD_HALF_WIDTH * distance,
            _FOREHEAD_HALF_HEIGHT * distance,
        ),
    }


def region_boxes(landmarks68, image_size: tuple[int, int]) -> dict[str, tuple[int, int, int, int]]:
    """Boxes (x0, y0, x1, y1) of ``CROP_REGIONS`` in image pixels, from dlib-68 landmarks in that image.

    faces/regions.py defines the eyes and mouth on the FFHQ-aligned face, ``_skin_boxes`` the skin
    patches; their corners are mapped back through the inverse alignment and bounded, so the boxes
    follow a tilted face. A box cut off by the border is left out.
    """
    from ..faces.align import apply_affine, ffhq_affine
    from ..faces.regions import facial_regions

    affine = ffhq_affine(landmarks68, size=ALIGNED_SIZE)  # (2, 3) image -> aligned
    aligned = landmarks68.transformed(affine)
    regions = facial_regions(aligned, size=ALIGNED_SIZE)
    aligned_boxes = {name: (b.x0, b.y0, b.x1, b.y1) for name in ("eyes", "mouth") for b in [getattr(regions, name)]}
    aligned_boxes.update(_skin_boxes(aligned.points))
    inverse = np.linalg.inv(np.vstack([affine, [0.0, 0.0, 1.0]]))[:2]  # (2, 3) aligned -> image
    width, height = image_size
    boxes = {}
    for name in CROP_REGIONS:
        ax0, ay0, ax1, ay1 = aligned_boxes[name]
        corners = np.array([[ax0, ay0], [ax1, ay0], [ax0, ay1], [ax1, ay1]], float)
        mapped = apply_affine(corners, inverse)  # (4, 2) in image pixels
        x0, y0 = (int(v) for v in np.floor(mapped.min(axis=0)))
        x1, y1 = (int(v) for v in np.ceil(mapped.max(axis=0)))
        x0, y0, x1, y1 = max(0, x0), max(0, y0), min(width, x1), min(height, y1)
        if x1 > x0 and y1 > y0:
            boxes[name] = (x0, y0, x1, y1)
    return boxes


class PreviewCache:
    """Screen previews, tile pyramids and face regions cached under ``cache_dir`` (safe to share between threads).

    Args:
        cache_dir: the cache folder (``previews/`` of a project).
        max_pixels: the largest image read (the project's ``max_pixels`` setting).
    """

    def __init__(self, cache_dir: str | Path, *, max_pixels: int = DEFAULT_MAX_PIXELS):
        self.root = Path(cache_dir) / CACHE_VERSION
        self.tiles = TileStore(Path(cache_dir) / "tiles")
        self.max_pixels = max_pixels
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    def _lock(self, key: str) -> threading.Lock:
        """One lock per cache entry: a prefetch and a click never decode the same file twice."""
        with self._locks_guard:
            return self._locks.setdefault(key, threading.Lock())

    def load(self, path: str | Path, max_side: int | None = None) -> np.ndarray:
        """A file as upright sRGB uint8 (16-bit sources tone-mapped here), within the project's pixel limit."""
        return load_rgb(path, max_pixels=self.max_pixels, max_side=max_side)

    def screen_rgb(self, path: str | Path, sha256: str) -> np.ndarray:
        """The screen preview of a file as (h, w, 3) uint8, decoding the original only once ever."""
        cached = self._screen_file(sha256)
        with self._lock(f"screen:{sha256}"):
            if cached.is_file():
                return load_rgb(cached)
            rgb = self.load(path, max_side=SCREEN_MAX_SIDE)
            atomic_write_bytes(
                cached, encode_image(rgb, format="JPEG", quality=PREVIEW_JPEG_QUALITY, jpeg_subsampling="4:4:4")
            )
            return rgb

    def is_ready(self, pair: PairRecord) -> bool:
        """Tiles and face regions of ``pair`` are all cached."""
        return all(self.tiles.has(key) for key in pair_tile_keys(pair).values()) and self._regions_file(pair).is_file()

    def pair_tiles(self, pair: PairRecord) -> PairTiles:
        """The pair's three pyramids, made now when missing (both files decoded once, at full size)."""
        keys = pair_tile_keys(pair)
        geometry = Geometry.from_facts(pair.facts.get("geometry"))
        with self._lock(f"tiles:{pair.pair_id}"):
            if not all(self.tiles.has(key) for key in keys.values()):
                original = self.load(pair.original_path)
                size = (original.shape[1], original.shape[0])
                retouched = to_original_frame(self.load(pair.retouched_path), geometry, size)
                self.tiles.ensure(keys["original"], lambda: original)
                self.tiles.ensure(keys["retouched"], lambda: retouched)
                self.tiles.ensure(keys["difference"], lambda: difference_map(original, retouched))
            return PairTiles({side: (keys[side], self.tiles.info(keys[side])) for side in SIDES}, geometry)

    def regions(self, pair: PairRecord) -> FaceRegions:
        """The 100% regions of every face, from landmarks found on the original's preview."""
        index = self._regions_file(pair)
        with self._lock(f"regions:{pair.original_sha256}"):
            if not index.is_file():
                atomic_write_bytes(index, json.dumps(self._find_regions(pair)).encode())
        found = json.loads(index.read_text())
        faces = tuple({name: tuple(box) for name, box in face.items()} for face in found["faces"])
        return FaceRegions(faces, found["problem"])

    def _find_regions(self, pair: PairRecord) -> dict:
        """The index of ``regions``: boxes per face, left to right, or why there are none."""
        from ..faces.detect import Landmarks, detect_faces

        preview = self.screen_rgb(pair.original_path, pair.original_sha256)
        faces = detect_faces(preview)  # thread-safe: detect.py serialises dlib calls
        if not faces:
            return {"problem": "no face detected in the original", "faces": []}
        facts = pair.facts.get("original") or {}
        width, height = _upright(facts) if facts else self.load(pair.original_path).shape[1::-1]
        scale = width / preview.shape[1]  # preview -> full resolution
        found = []
        for face in sorted(faces, key=lambda face: float(face.landmarks.points[:, 0].mean())):
            points = Landmarks(face.landmarks.points * scale, face.landmarks.scheme)
            boxes = region_boxes(points, (width, height))
            if boxes:
                found.append(boxes)
        return {"problem": None if found else "faces too close to the border for regions", "faces": found}

    def _screen_file(self, sha256: str) -> Path:
        return self.root / "screen" / sha256[:2] / f"{sha256}.jpg"

    def _regions_file(self, pair: PairRecord) -> Path:
        return self.root / "regions" / pair.original_sha256[:2] / f"{pair.original_sha256}.json"


def _upright(facts: dict) -> tuple[int, int]:
    """A file's (width, height) once its EXIF orientation is applied, from its ingest facts."""
    return upright_size(facts["width"], facts["height"], facts.get("orientation"))


class Prefetcher:
    """Prepares tiles and regions of upcoming pairs on one background thread, so a reviewer never waits.

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
        self.cache.pair_tiles(pair)
        try:
            self.cache.regions(pair)
        except AuthFaceError:
            pass  # raised again, and shown, when the pair's regions are asked for

    def shutdown(self) -> None:
        """Drop the queued pairs and wait for the one being prepared."""
        self._pool.shutdown(wait=True, cancel_futures=True)
