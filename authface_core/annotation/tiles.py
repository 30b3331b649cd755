"""Tile pyramids: what the review screen's viewer shows, at any zoom, without sending a whole 8K file.

Per image, a pyramid of ``TILE_SIZE`` px JPEG tiles: level 0 is the full resolution, each next
level halves it, the last fits one tile. A 16-bit PNG or TIFF is tone-mapped to 8-bit sRGB once,
here (``io.load_rgb``), and never again: the browser gets the same JPEG tiles for every format.

A pyramid is keyed by a 64-hex key: the file's SHA-256 for a file as it is, or a key derived from
both files of a pair for what only exists per pair (a retouch aligned to its original's frame,
the difference heat map). Keys name content, so a restart, a second project on the same files,
or a re-ingest reuses the tiles; a pyramid is written to a temporary folder and renamed into
place, so a reader sees a whole pyramid or none.

The web route that serves tiles (``annotate/app.py``) passes only a validated key and integers
to :meth:`TileStore.tile_file`; nothing a client sends becomes a path.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import os
import re
import secrets
import shutil
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from ..io import encode_image

# Side of a tile in pixels: 15x11 tiles make the full level of a 7680x5349 photo.
TILE_SIZE = 512
# JPEG quality of tiles: visually lossless at 100%, 4:4:4 chroma so skin tones keep their detail.
TILE_JPEG_QUALITY = 95
# Bumped whenever the tile recipe changes, so that stale pyramids are never shown.
TILES_VERSION = "v1"
# A pyramid key: 64 lowercase hex digits (a SHA-256).
KEY_PATTERN = re.compile(r"^[0-9a-f]{64}$")
# Gain of the difference view: |A - B| x 8, so a 2-level change shows as 16 of 255.
DIFFERENCE_GAIN = 8.0


@dataclass(frozen=True)
class TileInfo:
    """The shape of one pyramid: full size, tile side, and number of levels (level 0 = full size)."""

    width: int
    height: int
    tile: int
    levels: int

    def grid(self, level: int) -> tuple[int, int]:
        """(columns, rows) of tiles at ``level``."""
        width, height = self.level_size(level)
        return math.ceil(width / self.tile), math.ceil(height / self.tile)

    def level_size(self, level: int) -> tuple[int, int]:
        """Pixel size of ``level``: each level halves the previous one, rounding up."""
        scale = 2**level
        return math.ceil(self.width / scale), math.ceil(self.height / scale)


def level_count(width: int, height: int, tile: int = TILE_SIZE) -> int:
    """Levels a pyramid needs so that its last level fits one tile."""
    return 1 + max(0, math.ceil(math.log2(max(width, height) / tile)))


def derived_key(kind: str, original_sha256: str, retouched_sha256: str) -> str:
    """The key of a pyramid made from both files of a pair (``kind``: 'aligned', 'difference')."""
    return hashlib.sha256(f"{TILES_VERSION}:{kind}:{original_sha256}:{retouched_sha256}".encode()).hexdigest()


def check_key(key: str) -> str:
    """``key`` if it is 64 lowercase hex digits; ``ValueError`` otherwise (never a path)."""
    if not isinstance(key, str) or not KEY_PATTERN.match(key):
        raise ValueError(f"a tile key is 64 lowercase hex digits, got {key!r}")
    return key


def write_pyramid(rgb: np.ndarray, folder: Path, tile: int = TILE_SIZE) -> TileInfo:
    """Write the pyramid of ``rgb`` ((H, W, 3) uint8) as ``folder/<level>/<col>_<row>.jpg`` plus ``info.json``."""
    height, width = rgb.shape[:2]
    info = TileInfo(width=width, height=height, tile=tile, levels=level_count(width, height, tile))
    level_image = rgb
    for level in range(info.levels):
        (folder / str(level)).mkdir(parents=True)
        columns, rows = info.grid(level)
        for row in range(rows):
            for column in range(columns):
                piece = level_image[row * tile : (row + 1) * tile, column * tile : (column + 1) * tile]
                data = encode_image(
                    np.ascontiguousarray(piece), format="JPEG", quality=TILE_JPEG_QUALITY, jpeg_subsampling="4:4:4"
                )
                (folder / str(level) / f"{column}_{row}.jpg").write_bytes(data)
        if level + 1 < info.levels:
            next_width, next_height = info.level_size(level + 1)
            level_image = cv2.resize(level_image, (next_width, next_height), interpolation=cv2.INTER_AREA)
    (folder / "info.json").write_text(json.dumps(asdict(info)))
    return info


def difference_map(original: np.ndarray, retouched: np.ndarray, gain: float = DIFFERENCE_GAIN) -> np.ndarray:
    """The amplified |A - B| of two same-size RGB images as a heat map (dark: unchanged; hot: changed)."""
    difference = cv2.absdiff(original, retouched)  # (H, W, 3) uint8, without widening an 8K image
    change = cv2.max(cv2.max(difference[..., 0], difference[..., 1]), difference[..., 2])  # (H, W)
    amplified = cv2.convertScaleAbs(change, alpha=gain)  # saturates at 255
    return cv2.cvtColor(cv2.applyColorMap(amplified, cv2.COLORMAP_INFERNO), cv2.COLOR_BGR2RGB)


class TileStore:
    """Pyramids under ``<root>/<version>/<key[:2]>/<key>/`` (safe to share between threads)."""

    def __init__(self, root: str | Path):
        self.root = Path(root) / TILES_VERSION
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def folder(self, key: str) -> Path:
        check_key(key)
        return self.root / key[:2] / key

    def info(self, key: str) -> TileInfo | None:
        """The pyramid's shape, or None when it is not made (yet)."""
        index = self.folder(key) / "info.json"
        return TileInfo(**json.loads(index.read_text())) if index.is_file() else None

    def has(self, key: str) -> bool:
        return (self.folder(key) / "info.json").is_file()

    def ensure(self, key: str, make_rgb) -> TileInfo:
        """The pyramid of ``key``, made from ``make_rgb()`` when missing (one maker per key at a time)."""
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            info = self.info(key)
            if info is not None:
                return info
            return self.put(key, make_rgb())

    def put(self, key: str, rgb: np.ndarray) -> TileInfo:
        """Write the pyramid of ``rgb`` under ``key``, atomically (a temporary folder renamed into place)."""
        final = self.folder(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        partial = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=final.parent))
        try:
            info = write_pyramid(rgb, partial / "pyramid")
            try:
                (partial / "pyramid").replace(final)
            except OSError:  # another process renamed the same pyramid into place first
                if not self.has(key):
                    raise
        finally:
            shutil.rmtree(partial, ignore_errors=True)
        return info

    def tile_file(self, key: str, level: int, column: int, row: int) -> Path | None:
        """The tile's file, or None when the pyramid or that tile does not exist. Only a checked key and
        integers within the pyramid's grid make the path."""
        info = self.info(key)
        if info is None or not (0 <= level < info.levels):
            return None
        columns, rows = info.grid(level)
        if not (0 <= column < columns and 0 <= row < rows):
            return None
        return self.folder(key) / str(level) / f"{column}_{row}.jpg"


class TileGate:
    """Per-reviewer tile tokens: ``<name as base64url>.<HMAC-SHA256 of the name>``, unguessable without the
    project's secret.

    The secret lives in the project folder (``tile-secret``, owner-only), so a restarted server
    accepts the tokens of pages that stayed open; the web route still checks, on every request,
    that the token's person holds a role (a person taken off the allow-lists is refused at once).
    """

    def __init__(self, secret_file: str | Path):
        self._secret = _read_or_make_secret(Path(secret_file))

    def token(self, person: str) -> str:
        name = base64.urlsafe_b64encode(person.encode()).decode().rstrip("=")
        return f"{name}.{self._signature(person)}"

    def person(self, token: str) -> str | None:
        """The person ``token`` was issued to, or None when it is not a token of this project."""
        name, _, signature = token.partition(".")
        try:
            person = base64.urlsafe_b64decode(name + "=" * (-len(name) % 4)).decode()
        except (ValueError, UnicodeDecodeError):
            return None
        # As bytes: hmac compares text only when it is ASCII, and a URL can carry any character.
        return person if hmac.compare_digest(signature.encode(), self._signature(person).encode()) else None

    def _signature(self, person: str) -> str:
        return hmac.new(self._secret, f"tiles:{person}".encode(), hashlib.sha256).hexdigest()


def _read_or_make_secret(path: Path) -> bytes:
    """The 32-byte secret in ``path``, created owner-only on first use (two processes agree on one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(secrets.token_bytes(32))
    for _ in range(100):  # another process may be writing it this instant
        secret = path.read_bytes()
        if len(secret) == 32:
            return secret
        time.sleep(0.01)
    raise ValueError(f"{path}: not a tile secret (32 bytes); delete it to make a new one")
