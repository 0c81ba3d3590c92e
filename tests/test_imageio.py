"""read_image / image_size on every kind of file a real dataset holds, all generated here."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from edgedet.data.imageio import image_size, read_image
from edgedet.errors import DataError, ImageReadError

ORIENTATION = 0x0112


def _rgb(h=6, w=4):
    return np.arange(h * w * 3, dtype=np.uint8).reshape(h, w, 3)


def _png16_rgb(path, pixels: np.ndarray) -> None:
    """A 48-bit RGB PNG written by hand: Pillow can read this kind but not write it."""
    h, w, _ = pixels.shape
    raw = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in pixels)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    body = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)


def _assert_rgb8(arr, h, w):
    assert arr.dtype == np.uint8
    assert arr.shape == (h, w, 3)


def test_rgb_png_roundtrip(tmp_path):
    Image.fromarray(_rgb()).save(tmp_path / "a.png")
    arr = read_image(tmp_path / "a.png")
    _assert_rgb8(arr, 6, 4)
    np.testing.assert_array_equal(arr, _rgb())
    assert arr.flags.writeable


def test_grayscale_png_repeats_channel(tmp_path):
    gray = np.array([[0, 100], [200, 255]], np.uint8)
    Image.fromarray(gray).save(tmp_path / "g.png")
    arr = read_image(tmp_path / "g.png")
    _assert_rgb8(arr, 2, 2)
    for c in range(3):
        np.testing.assert_array_equal(arr[:, :, c], gray)


def test_rgba_and_la_drop_alpha(tmp_path):
    rgba = np.dstack([_rgb(), np.zeros((6, 4), np.uint8)])  # fully transparent: pixels must survive
    Image.fromarray(rgba).save(tmp_path / "a.png")
    np.testing.assert_array_equal(read_image(tmp_path / "a.png"), _rgb())

    Image.fromarray(np.array([[[7, 0], [9, 255]]], np.uint8), mode="LA").save(tmp_path / "la.png")
    np.testing.assert_array_equal(read_image(tmp_path / "la.png")[:, :, 0], [[7, 9]])


def test_palette_with_transparency_no_warning(tmp_path, recwarn):
    img = Image.fromarray(_rgb()).convert("P")
    img.save(tmp_path / "p.png", transparency=bytes([0] * 256))
    arr = read_image(tmp_path / "p.png")
    _assert_rgb8(arr, 6, 4)
    np.testing.assert_array_equal(arr, np.array(img.convert("RGB")))
    assert not [w for w in recwarn if issubclass(w.category, UserWarning)]


def test_cmyk_jpeg(tmp_path):
    Image.new("CMYK", (5, 3), (0, 0, 0, 0)).save(tmp_path / "c.jpg")
    arr = read_image(tmp_path / "c.jpg")
    _assert_rgb8(arr, 3, 5)
    assert arr.min() >= 250  # no ink is white


def test_gray16_png_scaled_not_clipped(tmp_path):
    values = np.array([[0, 257, 1000, 32896, 65535]], np.uint16)
    Image.fromarray(values).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode.startswith("I")
    arr = read_image(tmp_path / "g16.png")
    _assert_rgb8(arr, 1, 5)
    np.testing.assert_array_equal(arr[0, :, 0], [0, 1, 4, 128, 255])
    np.testing.assert_array_equal(arr[:, :, 0], arr[:, :, 2])


def test_rgb48_png(tmp_path):
    pixels = np.array([[[65535, 0, 257 * 128]]], np.uint16)
    _png16_rgb(tmp_path / "rgb16.png", pixels)
    np.testing.assert_array_equal(read_image(tmp_path / "rgb16.png"), [[[255, 0, 128]]])


def test_exif_rotated_jpeg(tmp_path):
    exif = Image.Exif()
    exif[ORIENTATION] = 6  # camera held sideways: display rotated 90 degrees clockwise
    src = np.zeros((40, 60, 3), np.uint8)  # stored 60 wide, 40 high
    src[:, :30] = 255  # left half white
    Image.fromarray(src).save(tmp_path / "r.jpg", exif=exif, quality=95)

    arr = read_image(tmp_path / "r.jpg")
    _assert_rgb8(arr, 60, 40)
    assert arr[:25].mean() > 200 and arr[35:].mean() < 50  # stored left half is now on top
    assert image_size(tmp_path / "r.jpg") == (40, 60)


def test_image_size_plain(tmp_path):
    Image.fromarray(_rgb(6, 4)).save(tmp_path / "a.png")
    assert image_size(tmp_path / "a.png") == (4, 6)


def _truncated(tmp_path, name):
    path = tmp_path / name
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


@pytest.mark.parametrize("name", ["cut.jpg", "cut.png"])
def test_truncated_files_are_errors(tmp_path, name):
    path = _truncated(tmp_path, name)
    with pytest.raises(ImageReadError, match="truncated") as info:
        read_image(path)
    message = str(info.value)
    assert message.startswith(f"cannot read image {path}: ")
    assert "\n" not in message


def test_text_file_named_jpg(tmp_path):
    (tmp_path / "note.jpg").write_text("not an image")
    for fn in (read_image, image_size):
        with pytest.raises(ImageReadError, match=r"note\.jpg: not an image file"):
            fn(tmp_path / "note.jpg")


def test_missing_file(tmp_path):
    with pytest.raises(ImageReadError, match=r"gone\.jpg: no such file or directory"):
        read_image(tmp_path / "gone.jpg")


def test_directory_is_not_an_image(tmp_path):
    with pytest.raises(ImageReadError, match="is a directory"):
        read_image(tmp_path)


def test_image_read_error_is_a_data_error():
    assert issubclass(ImageReadError, DataError)
