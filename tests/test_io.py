"""The one image loader: odd modes converted on purpose, bad files refused with the file named."""

from __future__ import annotations

import io
import os
import stat
import struct
import time
import zlib

import numpy as np
import pytest
from PIL import Image

from authface_core.errors import InvalidImageError
from authface_core.faces import detect_faces
from authface_core.io import load_image, load_rgb, remove_stale_temp_files, save_image


def _save(image: Image.Image, path, **options):
    image.save(path, **options)
    return path


def test_corrupt_bytes_are_refused_naming_the_file(tmp_path, astronaut):
    good = io.BytesIO()
    Image.fromarray(astronaut).save(good, format="JPEG")
    path = tmp_path / "corrupt.jpg"
    path.write_bytes(good.getvalue()[: len(good.getvalue()) // 3])  # truncated mid-scan
    with pytest.raises(InvalidImageError, match=r"corrupt\.jpg: corrupt or truncated"):
        load_image(path)


def test_zero_bytes_file_is_refused(tmp_path):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    with pytest.raises(InvalidImageError, match=r"empty\.png: empty file \(0 bytes\)"):
        load_image(path)


def test_text_file_named_jpg_is_refused(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("these are my notes, not a photo\n")
    with pytest.raises(InvalidImageError, match=r"notes\.jpg: not an image file"):
        load_image(path)


def test_missing_file_is_refused(tmp_path):
    with pytest.raises(InvalidImageError, match="file not found"):
        load_image(tmp_path / "nope.png")


def test_16_bit_png_is_scaled_to_8_bits(tmp_path, astronaut):
    gray8 = np.asarray(Image.fromarray(astronaut).convert("L"))
    gray16 = gray8.astype(np.uint16) * 257
    path = _save(Image.fromarray(gray16), tmp_path / "deep.png")
    loaded = load_image(path)
    assert loaded.original_mode.startswith("I")
    assert loaded.rgb.dtype == np.uint8 and loaded.rgb.shape == (*gray8.shape, 3)
    assert np.array_equal(loaded.rgb[:, :, 0], gray8) and np.array_equal(loaded.rgb[:, :, 2], gray8)


def test_cmyk_jpeg_is_converted_to_rgb(tmp_path, astronaut):
    path = _save(Image.fromarray(astronaut).convert("CMYK"), tmp_path / "print.jpg", quality=95)
    loaded = load_image(path)
    assert loaded.original_mode == "CMYK"
    assert loaded.rgb.shape == astronaut.shape
    assert np.abs(loaded.rgb.astype(int) - astronaut).mean() < 6  # colours survive, not inverted


def test_palette_png_with_transparency_keeps_alpha(tmp_path, astronaut):
    palette = Image.fromarray(astronaut).convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    transparent_index = palette.getpixel((0, 0))
    path = _save(palette, tmp_path / "logo.png", transparency=transparent_index)
    loaded = load_image(path)
    assert loaded.original_mode == "P"
    assert loaded.alpha is not None and loaded.alpha.shape == astronaut.shape[:2]
    assert loaded.alpha[0, 0] == 0 and loaded.alpha.max() == 255
    assert loaded.rgb.shape == astronaut.shape


def test_rgba_and_grayscale_modes(tmp_path, astronaut):
    rgba = np.dstack([astronaut, np.full(astronaut.shape[:2], 128, np.uint8)])
    loaded = load_image(_save(Image.fromarray(rgba, "RGBA"), tmp_path / "rgba.png"))
    assert np.array_equal(loaded.rgb, astronaut) and (loaded.alpha == 128).all()
    gray = load_image(_save(Image.fromarray(astronaut).convert("L"), tmp_path / "gray.png"))
    assert gray.alpha is None and gray.rgb.shape == astronaut.shape


def test_exif_rotated_jpeg_is_turned_upright(tmp_path, astronaut):
    # The camera stored the pixels turned a quarter; orientation 6 says "rotate 90 degrees clockwise".
    stored = Image.fromarray(astronaut).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    path = _save(stored, tmp_path / "phone.jpg", exif=exif, quality=95)
    assert len(detect_faces(np.asarray(stored))) == 0  # sideways, the face detector sees nothing
    upright = load_rgb(path)
    assert upright.shape == astronaut.shape
    assert np.abs(upright.astype(int) - astronaut).mean() < 4
    faces = detect_faces(upright)
    assert faces and faces[0].box.score > 1.0  # the astronaut's face, found confidently once upright
    assert abs(faces[0].box.center[0] - 223) < 10 and abs(faces[0].box.center[1] - 127) < 10


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


def test_decompression_bomb_is_refused_before_decoding(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_header_only(100_000, 100_000))
    with pytest.raises(InvalidImageError) as refused:
        load_image(path)
    # Our wording, not Pillow's "could be decompression bomb DOS attack".
    assert str(refused.value) == (
        f"{path}: image is 10,000,000,000 pixels, over the limit of 60,000,000 pixels (60 MP); "
        "raise max_pixels to allow it"
    )


def test_pixel_limit_is_configurable_and_admits_8k(tmp_path):
    path = tmp_path / "8k.png"
    path.write_bytes(_png_header_only(8192, 6144))  # 50 MP: an 8K photograph
    from authface_core.io import open_image

    assert open_image(path).size == (8192, 6144)
    with pytest.raises(InvalidImageError, match=r"8192x6144 = 50,331,648 pixels, over the limit of 10,000,000 pixels"):
        open_image(path, max_pixels=10_000_000)


def test_just_over_the_limit_does_not_read_as_equal_to_it(tmp_path):
    """60,000,001 pixels used to read "60 MP, over the limit of 60 MP"."""
    from authface_core.io import open_image

    path = tmp_path / "big.png"
    path.write_bytes(_png_header_only(7746, 7746))  # 60,000,516 pixels
    with pytest.raises(InvalidImageError, match=r"7746x7746 = 60,000,516 pixels, over the limit of 60,000,000 pixels"):
        open_image(path)


def test_png_with_a_bad_header_checksum_is_called_corrupt(tmp_path):
    data = bytearray(_png_header_only(64, 64))
    data[29] ^= 0xFF  # a byte of the IHDR chunk's CRC
    path = tmp_path / "scan.png"
    path.write_bytes(bytes(data))
    with pytest.raises(InvalidImageError, match=r"scan\.png: corrupt PNG image"):
        load_image(path)


def test_heic_is_named_as_unsupported(tmp_path):
    path = tmp_path / "phone.heic"
    path.write_bytes(b"\x00\x00\x00\x18ftypheic" + b"\x00" * 64)
    with pytest.raises(InvalidImageError, match=r"phone\.heic: HEIC images are not supported"):
        load_image(path)


def test_symlink_loop_and_broken_link_say_so(tmp_path):
    loop_a, loop_b = tmp_path / "a.jpg", tmp_path / "b.jpg"
    loop_a.symlink_to(loop_b)
    loop_b.symlink_to(loop_a)
    with pytest.raises(InvalidImageError, match=r"a\.jpg: symbolic link loop"):
        load_image(loop_a)
    broken = tmp_path / "gone.jpg"
    broken.symlink_to(tmp_path / "moved-away.jpg")
    with pytest.raises(InvalidImageError, match=r"gone\.jpg: broken symbolic link \(it points to .*moved-away\.jpg"):
        load_image(broken)


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_written_files_get_the_mode_of_the_umask(tmp_path, astronaut, umask):
    previous = os.umask(umask)
    try:
        save_image(tmp_path / "out.png", astronaut[:8, :8])
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "out.png").stat().st_mode) == 0o666 & ~umask


def test_a_failed_write_names_the_target_not_the_temp_file(tmp_path, astronaut):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where a folder should be")
    with pytest.raises(OSError, match=r"cannot write .*not-a-folder/out\.png") as failed:
        save_image(blocker / "out.png", astronaut[:8, :8])
    assert ".tmp" not in str(failed.value)


def test_stale_temp_files_of_killed_writers_are_removed(tmp_path):
    """A writer killed between mkstemp and rename leaves a temp file; the next run clears it, not live ones."""
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    killed = tmp_path / "nested" / f".a.png.{int(dead.stdout)}-abcd1234.tmp"
    killed.parent.mkdir()
    killed.write_bytes(b"half a png")
    live = tmp_path / f".b.png.{os.getpid()}-efgh5678.tmp"  # a write of this very process, in flight
    live.write_bytes(b"being written")
    old = tmp_path / ".c.png.zyxw9876.tmp"  # an older, pid-less name, untouched for two hours
    old.write_bytes(b"old")
    os.utime(old, (time.time() - 7200,) * 2)
    keep = tmp_path / "photo.tmp"  # not ours
    keep.write_bytes(b"x")

    assert sorted(remove_stale_temp_files(tmp_path)) == sorted([killed, old])
    assert live.exists() and keep.exists() and not killed.exists() and not old.exists()


def test_save_image_round_trips_with_alpha(tmp_path, astronaut):
    alpha = np.tile(np.arange(512, dtype=np.uint8)[None, :] // 2, (512, 1))
    save_image(tmp_path / "out.png", astronaut, alpha)
    loaded = load_image(tmp_path / "out.png")
    assert np.array_equal(loaded.rgb, astronaut) and np.array_equal(loaded.alpha, alpha)
    assert not list(tmp_path.glob(".*.tmp"))  # the temporary file was renamed away


def test_uploaded_bytes_are_named_in_errors():
    with pytest.raises(InvalidImageError, match=r"upload\.png: not an image file"):
        load_image(b"hello", name="upload.png")


def test_resize_shrinks_by_area_averaging(astronaut):
    from authface_core.io import resize_image

    half = resize_image(astronaut, 256, 256)
    block_means = astronaut.reshape(256, 2, 256, 2, 3).astype(np.float64).mean(axis=(1, 3))
    assert half.shape == (256, 256, 3) and half.dtype == np.uint8
    assert np.abs(half - block_means).max() <= 0.5 + 1e-9  # each pixel is its 2x2 block's mean, rounded


def test_resize_enlarges_smoothly_and_keeps_other_shapes():
    from authface_core.io import resize_image

    # A horizontal ramp of 2 grey levels per pixel: an interpolating kernel gives 1 level per output pixel
    # in the interior (pixel centres of the 2x image sit at (x + 0.5) / 2 - 0.5 in input pixels).
    ramp = np.tile(np.arange(0, 128, 2, dtype=np.uint8), (8, 1))  # (8, 64)
    enlarged = resize_image(ramp, 128, 16)
    centres = (np.arange(128) + 0.5) / 2 - 0.5
    assert enlarged.shape == (16, 128)
    np.testing.assert_allclose(enlarged[:, 8:-8], np.tile(2 * centres[8:-8], (16, 1)), atol=1.0)
    wide = resize_image(np.zeros((10, 30, 3), np.uint8), 15, 5)
    assert wide.shape == (5, 15, 3)


def test_resize_to_the_same_size_is_a_no_op_and_empty_sizes_are_refused(astronaut):
    from authface_core.io import resize_image

    assert resize_image(astronaut, 512, 512) is astronaut
    with pytest.raises(ValueError, match="at least 1 px"):
        resize_image(astronaut, 0, 512)
