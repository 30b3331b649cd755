"""Image input and output: the one loader and the one writer of the whole project.

Convention: every image leaving this module is a NumPy array of shape (H, W, 3), RGB, uint8,
already turned upright by its EXIF orientation. Transparency, when a file has it, travels
separately as an (H, W) uint8 alpha array so that paste-back can keep it.

Mode conversions, on purpose:
- ``RGB``: unchanged. An embedded ICC profile (Adobe RGB, Display P3, CMYK profiles...) is
  converted to sRGB, because the model was trained on sRGB photos.
- ``RGBA``, ``LA``, ``P``/``PA`` with transparency: colour to RGB, alpha kept.
- ``L``, ``1``, ``P`` without transparency: replicated or looked up to RGB.
- ``CMYK``, ``YCbCr``, ``LAB``, ``HSV``: converted to RGB (through the ICC profile when present).
- 16-bit (``I;16*``, ``I``) and float (``F``) grayscale: scaled to 8 bits by the type's full
  range (x / 257 for 16-bit), not clipped, so dark 16-bit scans do not turn black.
- Multi-frame files (GIF, TIFF pages): the first frame.

Refused with :class:`InvalidImageError` naming the file: a missing, empty, non-image, corrupt or
truncated file (a file that starts like a known image format but cannot be read is called corrupt,
not "not an image"), a broken symbolic link or a link loop, and any image over ``max_pixels``,
checked from the header before decoding, so a decompression bomb costs nothing.

Writes are atomic (a temporary file beside the target, then a rename) and get the mode the umask
gives a new file; :func:`remove_stale_temp_files` clears what a killed writer left behind.

:func:`resize_image` is the project's one rule for resizing an image to a given size.
"""

from __future__ import annotations

import errno
import io
import os
import re
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from .errors import InvalidImageError

# 8K photographs (7680x4320 = 33 MP, 8192x6144 = 50 MP, 8256x5504 = 45 MP) fit; 60 MP is the cap.
DEFAULT_MAX_PIXELS = 60_000_000
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
# Formats save_image writes, by suffix.
OUTPUT_FORMATS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".webp": "WEBP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".bmp": "BMP",
}
# The first bytes of the formats we read (and of HEIC, which we do not), to tell a corrupt image from a non-image.
_SIGNATURES = (
    (0, b"\x89PNG\r\n\x1a\n", "PNG"),
    (0, b"\xff\xd8\xff", "JPEG"),
    (0, b"GIF8", "GIF"),
    (0, b"II*\x00", "TIFF"),
    (0, b"MM\x00*", "TIFF"),
    (0, b"BM", "BMP"),
    (8, b"WEBP", "WebP"),
    (4, b"ftypheic", "HEIC"),
    (4, b"ftypheix", "HEIC"),
    (4, b"ftypmif1", "HEIF"),
    (4, b"ftypavif", "AVIF"),
)
_UNREADABLE_FORMATS = ("HEIC", "HEIF", "AVIF")
# Pillow's own refusal above 2 x Image.MAX_IMAGE_PIXELS names the pixel count this way.
_PILLOW_BOMB_SIZE = re.compile(r"Image size \((\d+) pixels\)")
# atomic_write_bytes's temporary files: ".<target name>.<writer pid>-<random>.tmp".
_TEMP_FILE = re.compile(r"^\..+\.(?:(?P<pid>\d+)-)?[A-Za-z0-9_]{8}\.tmp$")
# A temporary file untouched this long is stale even if a process with its writer's id still runs.
STALE_TEMP_AGE_S = 3600

ImageSource = str | os.PathLike | bytes

_SRGB_PROFILE = ImageCms.createProfile("sRGB")


@dataclass(frozen=True)
class LoadedImage:
    """A decoded image and what was learned while decoding it.

    Args:
        rgb: (H, W, 3) uint8, upright.
        alpha: (H, W) uint8 or None when the file has no transparency.
        source: the file name (or the given name for bytes), used in messages.
        original_mode: the PIL mode in the file, e.g. ``"I;16"`` or ``"CMYK"``.
        format: the file format PIL detected, e.g. ``"JPEG"``.
    """

    rgb: np.ndarray
    alpha: np.ndarray | None
    source: str
    original_mode: str
    format: str

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the upright image."""
        return self.rgb.shape[1], self.rgb.shape[0]


def open_image(source: ImageSource, *, name: str | None = None, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Open an image lazily and check it before decoding: exists, not empty, an image, not too large.

    Returns the PIL image, not yet decoded (callers that only need the header, or a draft-mode
    JPEG decode, stop here). ``name`` labels bytes in error messages.
    """
    label = name or (str(source) if not isinstance(source, bytes) else "<uploaded bytes>")
    if isinstance(source, bytes):
        if not source:
            raise InvalidImageError(label, "empty file (0 bytes)")
        stream: str | io.BytesIO = io.BytesIO(source)
    else:
        path = Path(source)
        problem = describe_unreadable_path(path)
        if problem:
            raise InvalidImageError(label, problem)
        if path.is_dir():
            raise InvalidImageError(label, "is a folder, not an image file")
        if path.stat().st_size == 0:
            raise InvalidImageError(label, "empty file (0 bytes)")
        stream = str(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(stream)
    except Image.DecompressionBombError as error:
        found = _PILLOW_BOMB_SIZE.search(str(error))
        pixels = int(found.group(1)) if found else None
        if pixels is not None and pixels <= max_pixels:  # within the caller's limit, over Pillow's own
            problem = f"image is {pixels:,} pixels, more than Pillow decodes (raise PIL.Image.MAX_IMAGE_PIXELS)"
        else:
            problem = (
                f"image is {'too many' if pixels is None else f'{pixels:,}'} pixels, {_over_the_limit(max_pixels)}"
            )
        raise InvalidImageError(label, problem) from None
    except UnidentifiedImageError:
        raise InvalidImageError(label, _unidentified_problem(source)) from None
    except PermissionError:
        raise InvalidImageError(label, "permission denied (cannot read the file)") from None
    except OSError as error:
        raise InvalidImageError(label, f"cannot read image: {error.strerror or error}") from None
    width, height = image.size
    if width <= 0 or height <= 0:
        raise InvalidImageError(label, f"invalid image size {width}x{height}")
    if width * height > max_pixels:
        raise InvalidImageError(
            label, f"image is {width}x{height} = {width * height:,} pixels, {_over_the_limit(max_pixels)}"
        )
    return image


def _over_the_limit(max_pixels: int) -> str:
    """'over the limit of 60,000,000 pixels (60 MP)': exact counts, so a file just over the limit reads so."""
    return f"over the limit of {max_pixels:,} pixels ({max_pixels / 1e6:g} MP); raise max_pixels to allow it"


def sniff_format(head: bytes) -> str | None:
    """The image format a file's first bytes announce (``"PNG"``, ``"JPEG"``, ``"HEIC"``...), or None."""
    return next((name for offset, magic, name in _SIGNATURES if head[offset : offset + len(magic)] == magic), None)


def _unidentified_problem(source: ImageSource) -> str:
    """Why Pillow could not identify a file: a format we do not read, a corrupt image, or not an image at all."""
    if isinstance(source, bytes):
        head = source[:16]
    else:
        with open(source, "rb") as handle:
            head = handle.read(16)
    announced = sniff_format(head)
    if announced in _UNREADABLE_FORMATS:
        return f"{announced} images are not supported (convert it to JPEG or PNG)"
    if announced:
        return f"corrupt {announced} image: it starts like one, but its header cannot be read"
    return "not an image file (format not recognised)"


def describe_unreadable_path(path: Path) -> str | None:
    """Why ``path`` cannot be opened at all (missing, a broken link, a link loop), or None if it can be."""
    try:
        os.stat(path)
    except OSError as error:
        if error.errno == errno.ELOOP:
            return "symbolic link loop (the link points, through other links, back to itself)"
        if path.is_symlink():
            return f"broken symbolic link (it points to {os.readlink(path)}, which does not exist)"
        if error.errno == errno.ENOENT:
            return "file not found"
        return f"cannot open: {error.strerror or error}"
    return None


def load_image(
    source: ImageSource,
    *,
    name: str | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_side: int | None = None,
) -> LoadedImage:
    """Decode a file or bytes into an upright sRGB uint8 image plus optional alpha (see module doc).

    ``max_side`` shrinks the image while decoding so that its longest side is at most that many
    pixels (previews): JPEG decodes straight to a smaller DCT scale (libjpeg's 1/2, 1/4, 1/8), then
    a Lanczos reduction makes the exact size. None (the default) decodes at full size.
    """
    if max_side is not None and max_side < 1:
        raise ValueError(f"max_side must be at least 1 pixel, got {max_side}")
    image = open_image(source, name=name, max_pixels=max_pixels)
    label = name or (str(source) if not isinstance(source, bytes) else "<uploaded bytes>")
    original_mode, file_format = image.mode, image.format or "unknown"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            if max_side is not None and max(image.size) > max_side:
                image = _decode_downsized(image, max_side)
            image.load()
            image = ImageOps.exif_transpose(image)
            rgb, alpha = pil_to_rgb(image)
    except (OSError, ValueError, SyntaxError) as error:
        raise InvalidImageError(label, f"corrupt or truncated image data ({error})") from None
    return LoadedImage(rgb=rgb, alpha=alpha, source=label, original_mode=original_mode, format=file_format)


def load_rgb(
    source: ImageSource, *, name: str | None = None, max_pixels: int = DEFAULT_MAX_PIXELS, max_side: int | None = None
) -> np.ndarray:
    """Shortcut for :func:`load_image` when only the (H, W, 3) uint8 RGB array is needed."""
    return load_image(source, name=name, max_pixels=max_pixels, max_side=max_side).rgb


def _decode_downsized(image: Image.Image, max_side: int) -> Image.Image:
    """Decode ``image`` (opened, not loaded) with its longest side reduced to ``max_side``.

    Palette and bilevel images are expanded first (resizing a palette would pick nearest colours);
    a transparent palette becomes RGBA, as :func:`pil_to_rgb` would make it.
    """
    scale = max_side / max(image.size)
    if image.format == "JPEG":  # libjpeg scales by 1/2, 1/4, 1/8 to the smallest size covering this
        image.draft("RGB", (round(image.width * scale), round(image.height * scale)))
    image.load()
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif image.mode in ("PA", "1"):
        image = image.convert("RGBA" if image.mode == "PA" else "L")
    if max(image.size) > max_side:  # thumbnail() keeps the aspect ratio; reducing_gap uses reduce() first
        image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS, reducing_gap=3.0)
    return image


def pil_to_rgb(image: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    """A decoded PIL image of any mode to ((H, W, 3) uint8 sRGB, (H, W) uint8 alpha or None), as the module doc says."""
    mode = image.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        return _high_depth_gray_to_rgb(image), None
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif mode == "PA":
        image = image.convert("RGBA")
    elif mode == "LA":
        image = image.convert("RGBA")
    elif mode in ("L", "1"):
        image = image.convert("RGB")
    alpha = None
    if image.mode == "RGBA":
        alpha = np.asarray(image.getchannel("A"), dtype=np.uint8).copy()
        image = image.convert("RGB")
    image = _to_srgb(image)
    return np.ascontiguousarray(np.asarray(image, dtype=np.uint8)), alpha


def _to_srgb(image: Image.Image) -> Image.Image:
    """Convert through the embedded ICC profile when there is one, else with PIL's formulas."""
    icc = image.info.get("icc_profile")
    if icc and image.mode in ("RGB", "CMYK"):
        try:
            source_profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            return ImageCms.profileToProfile(image, source_profile, _SRGB_PROFILE, outputMode="RGB")
        except (ImageCms.PyCMSError, OSError, ValueError):
            pass  # a broken profile: fall back to the plain conversion below
    return image if image.mode == "RGB" else image.convert("RGB")


def _high_depth_gray_to_rgb(image: Image.Image) -> np.ndarray:
    values = np.asarray(image)
    if image.mode == "F":
        scaled = np.clip(values, 0.0, 1.0 if values.max(initial=0) <= 1.0 else 255.0)
        gray = scaled * (255.0 if scaled.max(initial=0) <= 1.0 else 1.0)
    else:
        # 16-bit data (PIL opens 16-bit PNGs as "I" or "I;16"): full 0..65535 range to 0..255.
        gray = np.clip(values.astype(np.float64), 0, 65535) / 257.0
    gray8 = np.round(gray).astype(np.uint8)
    return np.ascontiguousarray(np.repeat(gray8[:, :, None], 3, axis=2))


def resize_image(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """``image`` (H, W, 3) or (H, W) resized to (height, width): area averaging when the area shrinks (no
    aliasing), Lanczos when it grows (sharp, as the photo's upscale); the same array at the same size."""
    if width < 1 or height < 1:
        raise ValueError(f"cannot resize to {width}x{height}: both sides must be at least 1 px")
    if image.shape[1] == width and image.shape[0] == height:
        return image
    shrinking = width * height < image.shape[0] * image.shape[1]
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LANCZOS4)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a crash leaves either the old file or the new one, never half.

    The file gets the mode a new file gets under the umask (as ``open`` would), not mkstemp's 0600. An error
    names ``path``, never the temporary file.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}-", suffix=".tmp")
    except OSError as error:
        raise OSError(error.errno, f"cannot write {path}: {error.strerror or error}") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o666 & ~current_umask())
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as error:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise OSError(error.errno, f"cannot write {path}: {error.strerror or error}") from None
        raise


def current_umask() -> int:
    """The process's umask, read without changing it where Linux shows it (os.umask alone must set it to read it)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def remove_stale_temp_files(folder: str | os.PathLike, *, max_age_s: float = STALE_TEMP_AGE_S) -> list[Path]:
    """Delete the temporary files that killed :func:`atomic_write_bytes` calls left under ``folder``; return them.

    A temporary file is stale when the process that wrote it is gone, or when it is older than ``max_age_s``.
    """
    removed = []
    now = time.time()
    for root, _, names in os.walk(folder):
        for name in names:
            match = _TEMP_FILE.match(name)
            path = Path(root) / name
            if match is None:
                continue
            try:
                stale = now - path.lstat().st_mtime > max_age_s or not _process_alive(match["pid"])
                if stale:
                    path.unlink()
                    removed.append(path)
            except FileNotFoundError:
                continue  # its writer finished and renamed it meanwhile
    return removed


def _process_alive(pid: str | None) -> bool:
    """Whether a process with this id runs here (unknown ids, from older temporary names, count as alive)."""
    if pid is None:
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def encode_image(
    rgb: np.ndarray,
    alpha: np.ndarray | None = None,
    *,
    format: str = "PNG",
    quality: int = 95,
    jpeg_subsampling: str = "4:2:0",
    png_compress_level: int | None = None,
) -> bytes:
    """Encode an (H, W, 3) uint8 image (plus optional alpha) to bytes in ``format``.

    ``jpeg_subsampling`` "4:4:4" keeps full colour resolution (sharper skin tones and lips in
    previews), at about a third more bytes than the usual "4:2:0". ``png_compress_level`` 0-9 trades
    time for bytes (None: Pillow's 6); 1 writes a 47 MP photo in 3 s instead of 19 s for a third more
    bytes (measured here).
    """
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) uint8 array, got {rgb.shape} {rgb.dtype}")
    image = Image.fromarray(rgb, "RGB")
    if alpha is not None and format.upper() in ("PNG", "WEBP", "TIFF"):
        image.putalpha(Image.fromarray(alpha, "L"))
    buffer = io.BytesIO()
    options = {"quality": quality} if format.upper() in ("JPEG", "WEBP") else {}
    if format.upper() == "JPEG":
        options["subsampling"] = jpeg_subsampling
    if format.upper() == "PNG" and png_compress_level is not None:
        options["compress_level"] = png_compress_level
    image.save(buffer, format=format, **options)
    return buffer.getvalue()


def save_image(
    path: str | os.PathLike,
    rgb: np.ndarray,
    alpha: np.ndarray | None = None,
    *,
    quality: int = 95,
    png_compress_level: int | None = None,
) -> None:
    """Save atomically; the format follows the suffix (PNG keeps alpha, JPEG drops it)."""
    suffix = Path(path).suffix.lower()
    if suffix not in OUTPUT_FORMATS:
        raise ValueError(f"{path}: unsupported output format {suffix!r}; use one of {sorted(OUTPUT_FORMATS)}")
    encoded = encode_image(
        rgb, alpha, format=OUTPUT_FORMATS[suffix], quality=quality, png_compress_level=png_compress_level
    )
    atomic_write_bytes(path, encoded)


def list_images(paths: list[str | os.PathLike]) -> list[Path]:
    """Expand files and folders (recursively) into image files, sorted; non-image names are kept if given directly."""
    found: list[Path] = []
    for item in map(Path, paths):
        if item.is_dir():
            found.extend(sorted(p for p in item.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES))
        else:
            found.append(item)
    return found
