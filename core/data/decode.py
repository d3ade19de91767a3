"""Decode image bytes into the mode a model expects, safely.

Handles what real folders hold: CMYK, 16-bit and 32-bit integer or float
images, palette images, transparency (composited over white), grayscale and
1-bit images, tiny images, and EXIF orientation (photos are turned upright).
Decoding is bounded before anything is allocated: images above Pillow's
decompression-bomb limit are refused, and so are images more than MAX_ASPECT times
longer than wide, whose resize to a model's input (short side to the input size)
would need gigabytes; pixels after that resize are then at most MAX_ASPECT times
the square of the input size. Every failure of Pillow, whatever it raises
(``OSError``, ``SyntaxError``, ``struct.error`` from a malformed EXIF chunk...), becomes
:class:`ImageDecodeError` with a message that says what is wrong and what to do; only
a ``MemoryError`` passes, for the caller to list as too large.
"""
from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

MAX_PIXELS = Image.MAX_IMAGE_PIXELS  # about 89 megapixels, Pillow's own limit
MAX_ASPECT = 100  # long side / short side


class ImageDecodeError(ValueError):
    """An image file that cannot be used; the message says why."""


def high_bit_depth_to_8bit(img: Image.Image) -> Image.Image:
    """16/32-bit integer and float images -> 8-bit grayscale, scaled by range."""
    values = np.asarray(img, dtype=np.float64)
    if img.mode.startswith("I;16") or (img.mode == "I" and values.max(initial=0) > 255):
        values = values / (65535.0 if values.max(initial=0) <= 65535 else values.max())
    elif img.mode == "F":
        lo, hi = values.min(initial=0), values.max(initial=0)
        values = (values - lo) / (hi - lo) if hi > lo else np.zeros_like(values)
    else:
        values = values / 255.0
    return Image.fromarray((values.clip(0, 1) * 255).round().astype(np.uint8), mode="L")


def opened(data: bytes, limit: int) -> Image.Image:
    """The image in `data`, checked against the size bounds, then fully decoded and
    turned upright (raises whatever Pillow raises)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        img = Image.open(io.BytesIO(data))
        if img.width * img.height > limit:
            raise ImageDecodeError(
                f"the image is {img.width} x {img.height} pixels, above the "
                f"{limit:,}-pixel safety limit; resize it first")
        if max(img.size) > MAX_ASPECT * max(min(img.size), 1):
            raise ImageDecodeError(
                f"the image is {img.width} x {img.height} pixels, more than "
                f"{MAX_ASPECT} times longer than wide: scaling it to the model's input "
                "would need too much memory; crop it first")
        img.load()
        ImageOps.exif_transpose(img, in_place=True)
    return img


def converted(img: Image.Image, mode: str) -> Image.Image:
    """A decoded image in `mode`: high bit depths scaled to 8 bits, transparency
    composited over white."""
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        img = high_bit_depth_to_8bit(img)
    if img.mode in ("P", "PA", "LA", "RGBA") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)
    return img.convert(mode)


def decode_image(data: bytes, mode: str, max_pixels: int | None = None) -> Image.Image:
    """Bytes -> a fully decoded image in `mode` ("L" or "RGB"); ImageDecodeError for
    anything that goes wrong but a MemoryError."""
    if not data:
        raise ImageDecodeError("the file is empty (0 bytes)")
    try:
        return converted(opened(data, MAX_PIXELS if max_pixels is None else max_pixels), mode)
    except (ImageDecodeError, MemoryError):
        raise
    except UnidentifiedImageError:
        raise ImageDecodeError("not an image Pillow can read (wrong extension or corrupt "
                               "header)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise ImageDecodeError(f"refused as a decompression bomb ({err})") from None
    except Exception as err:  # truncated data, malformed EXIF, ICC or text chunks...
        raise ImageDecodeError(f"the file is truncated or corrupt ({err or type(err).__name__}"
                               "); re-save it with an image editor") from None
