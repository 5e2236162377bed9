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
from datetime import datetime
from typing import TypeVar

from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from sensorium.errors import Reason, SensoriumError
from sensorium.photos import camera, capture_time, photo_formats

T = TypeVar("T")

# The service checks width x height itself (see the module docstring); concurrent decodes must
# not race on a global limit. Truncated files must fail, never be half-decoded silently.
Image.MAX_IMAGE_PIXELS = None
ImageFile.LOAD_TRUNCATED_IMAGES = False
# Register the plugins now rather than lazily, from several pool threads at once; HEIF comes
# from pillow-heif when the `media` extra is installed.
Image.init()

FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "TIFF", "BMP", *photo_formats())
"""Formats accepted (JPEG includes MPO, the multi-picture JPEG many phones write, which Pillow
opens through its JPEG plugin; HEIF, what iPhones write, and AVIF where this install decodes
them). Others are refused without being parsed, which also keeps rarely used, less hardened
decoders out of reach."""
EMBEDDING_SETTINGS = ("embedding.max_image_bytes", "embedding.max_image_pixels")
_NAMES = ", ".join({"WEBP": "WebP", "HEIF": "HEIC/HEIF"}.get(name, name) for name in FORMATS)

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
    taken_at: datetime | None = None
    """When the photo was taken, from its EXIF (`sensorium.photos.capture_time`): aware
    when EXIF gives the UTC offset, naive (the camera's local time) when not, None without."""
    camera: str = ""
    """The camera's make and model from EXIF ("Apple iPhone 13"); "" for images no camera
    took (screenshots, scans, graphics), as far as EXIF tells."""


def decode_image(
    data: bytes, *, max_bytes: int, max_pixels: int, min_side: int | None = None,
    settings: tuple[str, str] = EMBEDDING_SETTINGS,
) -> DecodedImage:
    """Decode `data` safely (see the module docstring).

    `min_side`: the shortest side the model's preprocessing needs (e.g. 224); JPEGs at least
    twice as large are decoded at a reduced DCT scale whose shortest side is still >= it.
    `settings`: the settings that hold `max_bytes` and `max_pixels`, named by the errors.
    Raises `SensoriumError` INPUT_EMPTY, INPUT_TOO_LARGE, IMAGE_TOO_LARGE or IMAGE_UNDECODABLE.
    """
    return _guarded(lambda: _decode(data, max_pixels, min_side, settings[1]), data, max_bytes,
                    max_pixels, settings)


def decoded_bytes(data: bytes, *, max_bytes: int, max_pixels: int, min_side: int | None = None) -> int:
    """The memory decoding `data` will take, from its header alone (no pixel is decoded): the
    pixels it decodes to (after a JPEG draft) x 4 bytes, twice (the decoded image and one
    converted copy). Callers charge it to the byte budget before decoding: a 100 MP PNG is
    800 MB. Raises as `decode_image` for what the header shows."""

    def estimate() -> int:
        image = Image.open(io.BytesIO(data), formats=FORMATS)
        width, height = _checked_size(image, max_pixels, EMBEDDING_SETTINGS[1])
        scale = 1
        if min_side and image.format in ("JPEG", "MPO"):
            while scale < 8 and min(width, height) // (scale * 2) >= min_side:
                scale *= 2
        return -(-width // scale) * -(-height // scale) * 4 * 2

    return _guarded(estimate, data, max_bytes, max_pixels)


def _guarded(work: Callable[[], T], data: bytes, max_bytes: int, max_pixels: int,
             settings: tuple[str, str] = EMBEDDING_SETTINGS) -> T:
    """`work()` on `data`, Pillow's failures turned into the reasons of `decode_image`;
    `settings` name the byte and pixel limits."""
    bytes_setting, pixels_setting = settings
    if not data:
        raise SensoriumError(Reason.INPUT_EMPTY, "the image is empty (0 bytes); send its content")
    if len(data) > max_bytes:
        raise SensoriumError(
            Reason.INPUT_TOO_LARGE,
            f"the image is {len(data)} bytes; the limit is {max_bytes}",
            {"limit_bytes": str(max_bytes), "size_bytes": str(len(data))},
            setting=bytes_setting,
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
        raise _too_large(str(exc), max_pixels, pixels_setting) from None
    except UnidentifiedImageError:
        raise SensoriumError(
            Reason.IMAGE_UNDECODABLE,
            f"the content is not an image in a supported format ({_NAMES}), or its "
            "header is damaged" + ("" if "HEIF" in FORMATS else
                                   "; HEIC/HEIF photos need the `media` extra (pillow-heif)"),
        ) from None
    except MemoryError:
        raise _too_large("decoding it ran out of memory", max_pixels, pixels_setting) from None
    except CORRUPT_IMAGE_ERRORS as exc:
        # What Pillow's decoders raise on corrupt data: "this image is broken". Anything else
        # is a bug of ours and propagates (INTERNAL_ERROR, logged with its stack).
        log.info("image undecodable: %s: %s", type(exc).__name__, _short(exc))
        raise SensoriumError(
            Reason.IMAGE_UNDECODABLE,
            f"the image is corrupt or truncated and cannot be decoded ({type(exc).__name__}: "
            f"{_short(exc)})",
        ) from None


def _checked_size(image: Image.Image, max_pixels: int, pixels_setting: str) -> tuple[int, int]:
    width, height = image.size
    if width <= 0 or height <= 0:
        raise SensoriumError(Reason.IMAGE_UNDECODABLE, f"the image has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise _too_large(f"the image is {width}x{height} = {width * height} pixels", max_pixels,
                         pixels_setting)
    return width, height


def _decode(data: bytes, max_pixels: int, min_side: int | None, pixels_setting: str) -> DecodedImage:
    image: Image.Image = Image.open(io.BytesIO(data), formats=FORMATS)
    width, height = _checked_size(image, max_pixels, pixels_setting)
    image_format = image.format or ""
    exif = image.getexif()
    orientation = exif.get(0x0112, 1)  # EXIF Orientation tag
    if min_side and image_format in ("JPEG", "MPO") and min(width, height) >= 2 * min_side:
        # Pillow picks the largest DCT scale (1/2, 1/4, 1/8) keeping both sides >= the request.
        image.draft("RGB", (min_side, min_side))
    image.load()
    if orientation in (5, 6, 7, 8):  # a quarter turn swaps the sides users see
        width, height = height, width
    image = ImageOps.exif_transpose(image) if orientation != 1 else image
    return DecodedImage(_to_rgb(image), width, height, image_format, capture_time(exif), camera(exif))


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


def _too_large(what: str, max_pixels: int, setting: str) -> SensoriumError:
    return SensoriumError(
        Reason.IMAGE_TOO_LARGE,
        f"{what}; the limit is {max_pixels} pixels; send a smaller image",
        {"limit_pixels": str(max_pixels)}, setting=setting,
    )


def _short(exc: BaseException) -> str:
    text = str(exc) or "no detail"
    return text if len(text) <= 160 else text[:157] + "..."
