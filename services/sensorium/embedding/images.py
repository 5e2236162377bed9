"""Safe image decoding for the embedding service: bytes in, an RGB `PIL.Image` out, or a
`SensoriumError` that says what is wrong with the image.

The order matters for safety: the byte limit before anything is parsed; the pixel limit right
after `Image.open()`, which reads only the header, so a 60000 x 60000 "bomb" of a few KiB is
refused before a single pixel is decoded; JPEG `draft()` so a 50 MP phone photo is decoded at
the smallest DCT scale that still covers the model's input; `load()` last, where truncated and
corrupt data surfaces. Only the first frame of animated images (GIF, WebP, multi-page TIFF) is
used, and later frames are never touched (some bombs hide in them).

Pillow's own bomb check (`Image.MAX_IMAGE_PIXELS`) and its warning filter are process-global
and not thread-safe, so this module switches the global check off once, at import, and
enforces the service's own limit per call (`DecompressionBombError` is still caught in case
another module turns it back on).
"""

from __future__ import annotations

import io
import logging
import struct
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from sensorium.errors import Reason, SensoriumError

T = TypeVar("T")

# The service checks width x height itself (see the module docstring); concurrent decodes must
# not race on a global limit. Truncated files must fail, never be half-decoded silently.
Image.MAX_IMAGE_PIXELS = None
ImageFile.LOAD_TRUNCATED_IMAGES = False
# Register the plugins now rather than lazily, from several pool threads at once.
Image.init()

FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "TIFF", "BMP")
"""Formats accepted (JPEG includes MPO, the multi-picture JPEG many phones write, which Pillow
opens through its JPEG plugin). Others are refused without being parsed, which also keeps
rarely used, less hardened decoders out of reach."""

_WHITE = (255, 255, 255)
CORRUPT_IMAGE_ERRORS: tuple[type[Exception], ...] = (
    OSError, ValueError, SyntaxError, EOFError, struct.error, IndexError, KeyError, ZeroDivisionError,
    OverflowError,
)
"""What Pillow's decoders raise on corrupt or truncated data (OSError covers "image file is
truncated" and "broken data stream"; SyntaxError "not a TIFF file"; struct.error, IndexError and
KeyError short or inconsistent headers)."""
log = logging.getLogger("sensorium.embedding")


@dataclass(frozen=True)
class DecodedImage:
    """An image ready for the model's preprocessing."""

    image: Image.Image
    """RGB, EXIF orientation applied, transparency composited on white; possibly reduced by
    JPEG draft decoding (never below the size asked for)."""
    width: int
    """Width of the full image in pixels, EXIF orientation applied (before any draft)."""
    height: int
    """Height of the full image in pixels, EXIF orientation applied (before any draft)."""
    format: str
    """The container format Pillow detected, e.g. "JPEG"."""


def decode_image(
    data: bytes, *, max_bytes: int, max_pixels: int, min_side: int | None = None
) -> DecodedImage:
    """Decode `data` safely (see the module docstring).

    `min_side`: the shortest side the model's preprocessing needs (e.g. 224); JPEGs at least
    twice as large are decoded at a reduced DCT scale whose shortest side is still >= it.
    Raises `SensoriumError` INPUT_EMPTY, INPUT_TOO_LARGE, IMAGE_TOO_LARGE or IMAGE_UNDECODABLE.
    """
    return _guarded(lambda: _decode(data, max_pixels, min_side), data, max_bytes, max_pixels)


def decoded_bytes(data: bytes, *, max_bytes: int, max_pixels: int, min_side: int | None = None) -> int:
    """The memory decoding `data` will take, from its header alone (no pixel is decoded): the
    pixels it decodes to (after a JPEG draft) x 4 bytes, twice (the decoded image and one
    converted copy). Callers charge it to the byte budget before decoding: a 100 MP PNG is
    800 MB. Raises as `decode_image` for what the header shows."""

    def estimate() -> int:
        image = Image.open(io.BytesIO(data), formats=FORMATS)
        width, height = _checked_size(image, max_pixels)
        scale = 1
        if min_side and image.format in ("JPEG", "MPO"):
            while scale < 8 and min(width, height) // (scale * 2) >= min_side:
                scale *= 2
        return -(-width // scale) * -(-height // scale) * 4 * 2

    return _guarded(estimate, data, max_bytes, max_pixels)


def _guarded(work: Callable[[], T], data: bytes, max_bytes: int, max_pixels: int) -> T:
    """`work()` on `data`, Pillow's failures turned into the reasons of `decode_image`."""
    if not data:
        raise SensoriumError(Reason.INPUT_EMPTY, "the image is empty (0 bytes); send its content")
    if len(data) > max_bytes:
        raise SensoriumError(
            Reason.INPUT_TOO_LARGE,
            f"the image is {len(data)} bytes; the limit is {max_bytes}",
            {"limit_bytes": str(max_bytes), "size_bytes": str(len(data))},
            setting="embedding.max_image_bytes",
        )
    try:
        with warnings.catch_warnings():
            # Pillow warns about e.g. corrupt EXIF; the outcome (an image or an error) is what
            # counts. catch_warnings is itself not thread-safe, but it only ever restores the
            # filters it saw, which here are the interpreter's unchanged defaults.
            warnings.simplefilter("ignore")
            return work()
    except SensoriumError:
        raise
    except Image.DecompressionBombError as exc:
        raise _too_large(str(exc), max_pixels) from None
    except UnidentifiedImageError:
        raise SensoriumError(
            Reason.IMAGE_UNDECODABLE,
            "the content is not an image in a supported format (JPEG, PNG, WebP, GIF, TIFF, "
            "BMP), or its header is damaged",
        ) from None
    except MemoryError:
        raise _too_large("decoding it ran out of memory", max_pixels) from None
    except CORRUPT_IMAGE_ERRORS as exc:
        # What Pillow's decoders raise on corrupt data: "this image is broken". Anything else
        # is a bug of ours and propagates (INTERNAL_ERROR, logged with its stack).
        log.info("image undecodable: %s: %s", type(exc).__name__, _short(exc))
        raise SensoriumError(
            Reason.IMAGE_UNDECODABLE,
            f"the image is corrupt or truncated and cannot be decoded ({type(exc).__name__}: "
            f"{_short(exc)})",
        ) from None


def _checked_size(image: Image.Image, max_pixels: int) -> tuple[int, int]:
    width, height = image.size
    if width <= 0 or height <= 0:
        raise SensoriumError(Reason.IMAGE_UNDECODABLE, f"the image has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise _too_large(f"the image is {width}x{height} = {width * height} pixels", max_pixels)
    return width, height


def _decode(data: bytes, max_pixels: int, min_side: int | None) -> DecodedImage:
    image: Image.Image = Image.open(io.BytesIO(data), formats=FORMATS)
    width, height = _checked_size(image, max_pixels)
    image_format = image.format or ""
    orientation = image.getexif().get(0x0112, 1)  # EXIF Orientation tag
    if min_side and image_format in ("JPEG", "MPO") and min(width, height) >= 2 * min_side:
        # Pillow picks the largest DCT scale (1/2, 1/4, 1/8) keeping both sides >= the request.
        image.draft("RGB", (min_side, min_side))
    image.load()
    if orientation in (5, 6, 7, 8):  # a quarter turn swaps the sides users see
        width, height = height, width
    image = ImageOps.exif_transpose(image) if orientation != 1 else image
    return DecodedImage(_to_rgb(image), width, height, image_format)


def _to_rgb(image: Image.Image) -> Image.Image:
    """RGB, with transparent pixels composited on white (CLIP never saw alpha; black, what a
    plain `convert("RGB")` gives transparent pixels, would change what the image shows)."""
    if image.mode == "RGB":
        return image
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info
    if has_alpha:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*_WHITE, 255))
        background.alpha_composite(rgba)
        return background.convert("RGB")
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # 16-bit and float greyscale: scale to 8 bits rather than clip at 255.
        image = image.convert("I") if image.mode.startswith("I;16") else image
        extrema = image.getextrema()
        high = float(extrema[1]) if isinstance(extrema[1], (int, float)) else 255.0
        scale = 255.0 / high if high > 255 else 1.0
        image = image.point(lambda value: value * scale).convert("L")
    return image.convert("RGB")


def _too_large(what: str, max_pixels: int) -> SensoriumError:
    return SensoriumError(
        Reason.IMAGE_TOO_LARGE,
        f"{what}; the limit is {max_pixels} pixels; send a smaller image",
        {"limit_pixels": str(max_pixels)}, setting="embedding.max_image_pixels",
    )


def _short(exc: BaseException) -> str:
    text = str(exc) or "no detail"
    return text if len(text) <= 160 else text[:157] + "..."
