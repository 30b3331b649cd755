"""Ingest: find original/retouch pairs in a folder, describe every file, flag duplicates.

Pairs are matched by a :class:`NamingRule` (``portrait.jpg`` with ``portrait_retouched.tif``) or
listed in a CSV. Nothing is dropped silently: files without a partner are ``unmatched``, files
we cannot read are ``rejected`` with the reason, other formats are ``unsupported``. Originals are
only read, never modified.

Only files inside the folder being ingested are ever read: a CSV row or a link that leads
elsewhere is refused before anything is opened, with the same words whether or not the file
exists, so ingest cannot be used to read or probe the server's other files.

Each file gets a SHA-256 of its bytes (exact duplicates) and a 64-bit DCT perceptual hash
(near duplicates: the same photo re-exported or resized) computed on the screen preview, which
is cached on the way so that the first view of the pair needs no 8K decode.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, ImageCms, TiffImagePlugin
from scipy.fft import dctn

from ..errors import InvalidImageError, PairingError
from ..io import open_image
from .geometry import Geometry, check_geometry, upright_size
from .previews import PreviewCache
from .store import PairRecord

# The formats photographers deliver; anything else is listed as unsupported.
SUPPORTED_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff")
# Why a path that leads out of the folder being ingested is refused (the same words for every such path).
OUTSIDE_FOLDER = "outside the folder being ingested; only files inside it are read"
# Hamming distance (out of 64 bits) under which two perceptual hashes are the same photo. The
# usual pHash threshold for "same image after re-encoding or resizing" (Zauner 2010 used ~10).
NEAR_DUPLICATE_BITS = 8
# Files described at once: Pillow releases the GIL while decoding, and this machine has 2 cores.
INGEST_WORKERS = 2
_HASH_CHUNK_BYTES = 1 << 20
# Byte offset of the bit depth in a PNG: 8 signature + 4 length + 4 type + 8 width/height bytes.
_PNG_BIT_DEPTH_OFFSET = 24
# pHash: the 8x8 lowest DCT frequencies of a 32x32 grey thumbnail (Zauner, "Implementation and
# benchmarking of perceptual image hash functions", 2010).
_PHASH_SIDE = 32
_PHASH_FREQUENCIES = 8


@dataclass(frozen=True)
class NamingRule:
    """How a retouch is named after its original: ``<stem><original_suffix>.<ext>`` and
    ``<stem><retouched_suffix>.<ext>`` (extensions may differ, e.g. JPEG original, TIFF retouch).

    Args:
        original_suffix: ending of the original's stem; empty means "any stem not a retouch".
        retouched_suffix: ending of the retouch's stem, e.g. ``"_retouched"``.
    """

    original_suffix: str = ""
    retouched_suffix: str = "_retouched"

    def __post_init__(self):
        if not self.retouched_suffix:
            raise PairingError("naming rule: retouched_suffix must not be empty")
        if self.original_suffix == self.retouched_suffix:
            raise PairingError(f"naming rule: both suffixes are {self.retouched_suffix!r}; they must differ")

    def classify(self, path: Path, root: Path) -> tuple[str, str] | None:
        """('original' | 'retouched', pairing key) for a file, or None when its name fits neither side."""
        stem = path.relative_to(root).with_suffix("").as_posix()
        if stem.endswith(self.retouched_suffix):
            return "retouched", stem[: -len(self.retouched_suffix)]
        if not self.original_suffix:
            return "original", stem
        if stem.endswith(self.original_suffix):
            return "original", stem[: -len(self.original_suffix)]
        return None


@dataclass(frozen=True)
class FileFacts:
    """What a reviewer should know about one file, read without modifying it.

    Args:
        path: absolute path.
        sha256: hex digest of the bytes.
        size_bytes: file size.
        width, height: pixel size as stored (before EXIF rotation).
        format: PIL format name (JPEG, PNG, TIFF).
        mode: PIL mode (RGB, I;16, CMYK...).
        bit_depth: bits per channel as stored in the file.
        icc_profile: the embedded colour profile's description, or None (untagged, assumed sRGB).
        camera: EXIF make and model, or None.
        phash: 64-bit perceptual hash as 16 hex digits.
        orientation: the EXIF orientation tag (1-8), or None when the file has none.
    """

    path: str
    sha256: str
    size_bytes: int
    width: int
    height: int
    format: str
    mode: str
    bit_depth: int
    icc_profile: str | None
    camera: str | None
    phash: str
    orientation: int | None = None


@dataclass(frozen=True)
class DuplicateGroup:
    """Files that are the same photo: ``kind`` 'exact' (same bytes) or 'near' (same perceptual hash)."""

    kind: str
    paths: tuple[str, ...]
    distance_bits: int = 0


@dataclass(frozen=True)
class IngestReport:
    """Everything ingest found; nothing is dropped without being listed here."""

    pairs: list[PairRecord] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (path in the folder, or CSV row; reason)
    unsupported: list[str] = field(default_factory=list)
    duplicates: list[DuplicateGroup] = field(default_factory=list)
    # byte-identical copies of a pair, reviewed once: (the copy's original, its retouch, the kept pair's original)
    merged: list[tuple[str, str, str]] = field(default_factory=list)


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks (an 8K TIFF is ~200 MB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def perceptual_hash(rgb: np.ndarray) -> int:
    """64-bit DCT hash of an (H, W, 3) uint8 image: robust to re-encoding and resizing."""
    gray = Image.fromarray(rgb).convert("L").resize((_PHASH_SIDE, _PHASH_SIDE), Image.Resampling.BOX)
    coefficients = dctn(np.asarray(gray, dtype=np.float64), norm="ortho")  # (32, 32)
    low = coefficients[:_PHASH_FREQUENCIES, :_PHASH_FREQUENCIES].ravel()  # (64,)
    bits = low > np.median(low[1:])  # the DC term would dominate the median
    return int("".join("1" if bit else "0" for bit in bits), 2)


def hash_distance(a: str | int, b: str | int) -> int:
    """Hamming distance between two perceptual hashes (ints or hex strings)."""
    a = int(a, 16) if isinstance(a, str) else a
    b = int(b, 16) if isinstance(b, str) else b
    return (a ^ b).bit_count()


def pair_id_for(original_sha256: str, retouched_sha256: str) -> str:
    """A stable pair id: the same two files always make the same pair, wherever they sit."""
    return hashlib.sha256(f"{original_sha256}:{retouched_sha256}".encode()).hexdigest()[:16]


def describe_file(path: Path, previews: PreviewCache) -> FileFacts:
    """Hash and describe one file, caching its screen preview; raises InvalidImageError if unreadable."""
    sha256 = sha256_file(path)
    with open_image(path, max_pixels=previews.max_pixels) as image:
        facts = dict(
            path=str(path.resolve()),
            sha256=sha256,
            size_bytes=path.stat().st_size,
            width=image.width,
            height=image.height,
            format=image.format or "unknown",
            mode=image.mode,
            bit_depth=_bit_depth(image, path),
            icc_profile=_icc_description(image.info.get("icc_profile")),
            camera=_camera(image),
            orientation=_exif(image).get(ExifTags.Base.Orientation),
        )
    preview = previews.screen_rgb(path, sha256)
    return FileFacts(**facts, phash=f"{perceptual_hash(preview):016x}")


def pair_geometry(original: FileFacts, retouched: FileFacts, previews: PreviewCache) -> Geometry:
    """How the retouch maps onto the original's frame, from both (cached) screen previews (``geometry.py``)."""
    return check_geometry(
        previews.screen_rgb(original.path, original.sha256),
        previews.screen_rgb(retouched.path, retouched.sha256),
        upright_size(original.width, original.height, original.orientation),
        upright_size(retouched.width, retouched.height, retouched.orientation),
        (original.orientation, retouched.orientation),
    )


def inside_folder(root: Path, path: str | Path) -> Path | None:
    """``path`` (relative to ``root``, or absolute) with links followed, if it lies inside ``root``; else None.

    Decided on the path alone: nothing is opened, so a path outside says nothing of what exists there.
    """
    try:
        resolved = (root / path).resolve()
    except (OSError, RuntimeError):  # a link loop leads nowhere, so not inside either
        return None
    return resolved if resolved.is_relative_to(root) else None


def list_folder(root: Path) -> tuple[list[Path], list[tuple[str, str]]]:
    """Every file under ``root`` (hidden ones skipped) and the refused entries: links leading out of
    it, and linked folders, which are not followed."""
    files: list[Path] = []
    refused: list[tuple[str, str]] = []
    for folder, subfolders, names in os.walk(root):
        here = Path(folder)
        subfolders[:] = sorted(name for name in subfolders if not name.startswith("."))
        refused += [
            ((here / name).relative_to(root).as_posix(), "a linked folder; links to folders are not followed")
            for name in subfolders
            if (here / name).is_symlink()
        ]
        for name in sorted(names):
            if name.startswith("."):
                continue
            if inside_folder(root, here / name) is None:
                refused.append(((here / name).relative_to(root).as_posix(), OUTSIDE_FOLDER))
            elif (here / name).is_file():
                files.append(here / name)
    return sorted(files), refused


def read_pairs_csv(csv_path: str | Path, root: Path) -> tuple[list[tuple[Path, Path]], list[tuple[str, str]]]:
    """(original, retouched) paths from a CSV with columns ``original,retouched``, relative to the
    folder ``root`` (or absolute inside it), and the (path as written, reason) of refused ones."""
    csv_path = Path(csv_path)
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise PairingError(f"{csv_path}: cannot read pairs CSV ({error})") from None
    if rows and not {"original", "retouched"} <= set(rows[0]):
        raise PairingError(f"{csv_path}: needs columns 'original' and 'retouched', found {sorted(rows[0])}")
    pairs, refused = [], []
    for line, row in enumerate(rows, start=2):
        if not row["original"] or not row["retouched"]:
            raise PairingError(f"{csv_path.name}:{line}: empty 'original' or 'retouched'")
        sides = [inside_folder(root, row[side]) for side in ("original", "retouched")]
        if None in sides:
            outside = [row[side] for side, path in zip(("original", "retouched"), sides, strict=True) if path is None]
            refused += [(f"{csv_path.name}:{line}: {name}", OUTSIDE_FOLDER) for name in outside]
        else:
            pairs.append((sides[0], sides[1]))
    return pairs, refused


def match_by_rule(files: list[Path], root: Path, rule: NamingRule) -> tuple[list[tuple[Path, Path]], list[Path]]:
    """(pairs, unmatched): files whose keys meet exactly one original and one or more retouches."""
    sides: dict[str, dict[str, list[Path]]] = defaultdict(lambda: {"original": [], "retouched": []})
    unmatched: list[Path] = []
    for path in files:
        found = rule.classify(path, root)
        if found is None:
            unmatched.append(path)
        else:
            sides[found[1]][found[0]].append(path)
    pairs = []
    for key in sorted(sides):
        originals, retouches = sides[key]["original"], sides[key]["retouched"]
        if len(originals) == 1 and retouches:
            pairs += [(originals[0], retouched) for retouched in sorted(retouches)]
        else:  # no partner, or two originals (name.jpg and name.tif) for one retouch: ambiguous
            unmatched += originals + retouches
    return pairs, sorted(unmatched)


def ingest_folder(
    folder: str | Path,
    previews: PreviewCache,
    *,
    rule: NamingRule | None = None,
    pairs_csv: str | Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> IngestReport:
    """Find and describe the pairs under ``folder`` (by ``rule``, or by ``pairs_csv`` when given).

    ``progress(done, total)`` is called after each file (the CLI passes tqdm, the app gr.Progress).
    Paths in ``pairs_csv`` are relative to ``folder``; none may lead out of it.
    """
    root = Path(folder).resolve()
    if not root.is_dir():
        raise PairingError(f"{root}: not a folder")
    all_files, links_out = list_folder(root)
    supported = [path for path in all_files if path.suffix.lower() in SUPPORTED_SUFFIXES]
    unsupported = [str(path) for path in all_files if path.suffix.lower() not in SUPPORTED_SUFFIXES]
    if pairs_csv is not None:
        candidates, refused_rows = read_pairs_csv(pairs_csv, root)
        links_out += refused_rows
        in_csv = {path for pair in candidates for path in pair}
        unmatched = [path for path in supported if path not in in_csv]
        unsupported = [path for path in unsupported if Path(path) != Path(pairs_csv).resolve()]
    else:
        candidates, unmatched = match_by_rule(supported, root, rule or NamingRule())

    to_describe = sorted({path for pair in candidates for path in pair})
    facts, unreadable = _describe_all(to_describe, previews, progress)
    rejected = links_out + [(path.relative_to(root).as_posix(), problem) for path, problem in unreadable]
    pairs = [
        PairRecord(
            pair_id=pair_id_for(facts[original].sha256, facts[retouched].sha256),
            original_path=facts[original].path,
            retouched_path=facts[retouched].path,
            original_sha256=facts[original].sha256,
            retouched_sha256=facts[retouched].sha256,
            facts={
                "original": asdict(facts[original]),
                "retouched": asdict(facts[retouched]),
                "geometry": pair_geometry(facts[original], facts[retouched], previews).as_facts(),
            },
        )
        for original, retouched in candidates
        if original in facts and retouched in facts
    ]
    # the readable partner of an unreadable file is listed, not dropped
    paired = {path for pair in candidates if all(side in facts for side in pair) for path in pair}
    unmatched = sorted(set(unmatched) | {path for path in facts if path not in paired})
    unique: dict[str, PairRecord] = {}
    merged = []
    for pair in pairs:  # byte-identical copies of a pair are one pair (reported as merged)
        kept = unique.setdefault(pair.pair_id, pair)
        if kept is not pair:
            merged.append((pair.original_path, pair.retouched_path, kept.original_path))
    pairs = list(unique.values())
    own_retouch = {frozenset((pair.original_path, pair.retouched_path)) for pair in pairs}
    duplicates = [
        group
        for group in find_duplicates(list(facts.values()))
        if not (group.kind == "near" and frozenset(group.paths) in own_retouch)
    ]
    pairs = _flag_duplicates(pairs, duplicates)
    return IngestReport(
        pairs=pairs,
        unmatched=[str(path) for path in unmatched],
        rejected=rejected,
        unsupported=unsupported,
        duplicates=duplicates,
        merged=merged,
    )


def find_duplicates(facts: list[FileFacts]) -> list[DuplicateGroup]:
    """Exact duplicates (same SHA-256) and near duplicates (perceptual hashes within ``NEAR_DUPLICATE_BITS``).

    An original and its own retouch are near duplicates by design; :func:`ingest_folder` drops
    those groups, this function only compares files.
    """
    groups: list[DuplicateGroup] = []
    by_sha: dict[str, list[str]] = defaultdict(list)
    for fact in facts:
        by_sha[fact.sha256].append(fact.path)
    groups += [DuplicateGroup("exact", tuple(sorted(paths))) for paths in by_sha.values() if len(paths) > 1]
    unique = sorted({fact.sha256: fact for fact in facts}.values(), key=lambda fact: fact.path)
    hashes = np.array([int(fact.phash, 16) for fact in unique], dtype=np.uint64)  # (N,)
    for index, first in enumerate(unique[:-1]):
        distances = np.bitwise_count(hashes[index + 1 :] ^ hashes[index])  # (N - index - 1,) one row at a time
        for offset in np.flatnonzero(distances <= NEAR_DUPLICATE_BITS):
            second = unique[index + 1 + offset]
            groups.append(DuplicateGroup("near", (first.path, second.path), int(distances[offset])))
    return groups


def _flag_duplicates(pairs: list[PairRecord], duplicates: list[DuplicateGroup]) -> list[PairRecord]:
    """Note, in each pair's facts, the other pairs that share a file or a near-identical original."""
    pair_of_path: dict[str, list[str]] = defaultdict(list)
    for pair in pairs:
        pair_of_path[pair.original_path].append(pair.pair_id)
        pair_of_path[pair.retouched_path].append(pair.pair_id)
    related: dict[str, set[str]] = defaultdict(set)
    for group in duplicates:
        members = {pair_id for path in group.paths for pair_id in pair_of_path[path]}
        for pair_id in members:
            related[pair_id] |= members - {pair_id}
    return [
        PairRecord(**{**asdict(pair), "facts": {**pair.facts, "duplicate_of": sorted(related[pair.pair_id])}})
        for pair in pairs
    ]


def _describe_all(
    paths: list[Path], previews: PreviewCache, progress: Callable[[int, int], None] | None
) -> tuple[dict[Path, FileFacts], list[tuple[Path, str]]]:
    """Describe ``paths`` on ``INGEST_WORKERS`` threads: (facts by path, [(path, reason)] of unreadable files)."""
    facts: dict[Path, FileFacts] = {}
    rejected: list[tuple[Path, str]] = []

    def describe(path: Path):
        try:
            return path, describe_file(path, previews), None
        except InvalidImageError as error:
            return path, None, error.problem

    with ThreadPoolExecutor(max_workers=INGEST_WORKERS) as pool:
        for done, (path, fact, problem) in enumerate(pool.map(describe, paths), start=1):
            if fact is None:
                rejected.append((path, problem))
            else:
                facts[path] = fact
            if progress is not None:
                progress(done, len(paths))
    return facts, rejected


def _bit_depth(image: Image.Image, path: Path) -> int:
    """Bits per channel as stored: PNG from its header, TIFF from BitsPerSample, else from the mode."""
    if image.format == "PNG":
        with open(path, "rb") as handle:
            header = handle.read(_PNG_BIT_DEPTH_OFFSET + 1)
        return header[_PNG_BIT_DEPTH_OFFSET]
    if image.format == "TIFF":
        bits = image.tag_v2.get(TiffImagePlugin.BITSPERSAMPLE, (8,))
        return int(bits[0] if isinstance(bits, tuple) else bits)
    return {"1": 1, "I;16": 16, "I;16B": 16, "I;16L": 16, "I": 32, "F": 32}.get(image.mode, 8)


def _icc_description(icc: bytes | None) -> str | None:
    """The embedded profile's name; None when there is none, a note when it cannot be read."""
    if not icc:
        return None
    try:
        return ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(icc))).strip() or "unnamed profile"
    except (ImageCms.PyCMSError, OSError, ValueError):
        return "unreadable profile"


def _exif(image: Image.Image) -> Image.Exif:
    """The EXIF tags, from the header only (PIL's PNG getexif() would decode the whole image)."""
    if image.format == "PNG":
        exif = Image.Exif()
        if image.info.get("exif"):
            exif.load(image.info["exif"])
        return exif
    return image.getexif()


def _camera(image: Image.Image) -> str | None:
    """EXIF make and model."""
    exif = _exif(image)
    parts = [str(exif.get(tag, "")).strip("\x00 ") for tag in (ExifTags.Base.Make, ExifTags.Base.Model)]
    return " ".join(part for part in parts if part) or None
