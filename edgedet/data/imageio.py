"""Decode any image a dataset may hold into the one layout the engine contract takes: RGB uint8 ``[H, W, 3]``.

Datasets gathered from phones, scanners and converters mix grayscale, 16-bit, palette, CMYK and
EXIF-rotated files; training, calibration and verification must all see the same pixels, so every
reader goes through here. Truncated files fail loudly: PIL's ``LOAD_TRUNCATED_IMAGES`` would pad them
with grey and silently train on it, so it is never enabled here.
"""

from __future__ import annotations

import os
import struct
import warnings
from contextlib import contextmanager

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from edgedet.errors import ImageReadError
from edgedet.runtime.preprocess import scale_16_to_8  # one rounding for files and arrays

# Everything PIL raises for a file that is missing, cut short, corrupt or in a mode it cannot convert.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, Image.DecompressionBombError)

# 16-bit grayscale; older Pillow opens 16-bit PNG as mode "I", so "I" is read as 16-bit too.
_GRAY16_MODES = {"I;16", "I;16B", "I;16L", "I;16N", "I"}

_ORIENTATION = 0x0112  # EXIF tag; PIL's ExifTags.Base needs Pillow 9.3, the project allows 9.0

# EXIF orientations that swap width and height (transpose, rotate 90/270, transverse).
_SWAPS_AXES = {5, 6, 7, 8}

# What edgedet reads as an image file wherever a folder or glob of images is given (predict, calibration).
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}


@contextmanager
def _open(path: str | os.PathLike):
    """``Image.open`` with Pillow's DecompressionBombWarning (a very large image, still decoded) turned into one
    edgedet warning naming the file, instead of a Python warning with a source line."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", Image.DecompressionBombWarning)
        with Image.open(path) as img:
            yield img
    for w in caught:
        if issubclass(w.category, Image.DecompressionBombWarning):
            from edgedet import log

            log.warn(f"{path}: {w.message}; decoded anyway")
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Fully decode ``path`` (so truncation is caught here, not mid-training) and apply its EXIF orientation."""
    try:
        with _open(path) as img:
            img.load()
            return _to_rgb8(ImageOps.exif_transpose(img))
    except _DECODE_ERRORS as e:
        raise ImageReadError(f"cannot read image {path}: {_reason(e)}") from e


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """``(width, height)`` as :func:`read_image` will return it, from the header alone where possible."""
    try:
        with _open(path) as img:
            width, height = img.size
            # Image.getexif, not PngImageFile.getexif: the PNG override decodes every pixel to look for an
            # eXIf chunk after the image data, which writers practically never emit.
            orientation = Image.Image.getexif(img).get(_ORIENTATION, 1)
    except _DECODE_ERRORS as e:
        raise ImageReadError(f"cannot read image {path}: {_reason(e)}") from e
    return (height, width) if orientation in _SWAPS_AXES else (width, height)


def _to_rgb8(img: Image.Image) -> np.ndarray:
    if img.mode in _GRAY16_MODES:
        gray = scale_16_to_8(np.asarray(img))
        return np.repeat(gray[:, :, None], 3, axis=2)
    if img.mode in ("P", "PA"):
        # Through RGBA: PIL warns when a palette with byte transparency goes straight to RGB.
        img = img.convert("RGBA")
    if img.mode != "RGB":
        img = img.convert("RGB")  # drops alpha rather than compositing: the pixels under it are the data
    return np.array(img)




def _reason(e: Exception) -> str:
    if isinstance(e, UnidentifiedImageError):
        return "not an image file, or a format Pillow cannot read"
    if isinstance(e, OSError) and e.strerror:
        return e.strerror.lower()  # "no such file or directory", not the errno repr with the path again
    return " ".join(str(e).split()) or type(e).__name__
