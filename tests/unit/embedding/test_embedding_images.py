"""Safe image decoding: limits before decoding, formats, modes, orientation, corrupt data."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from sensorium.embedding.images import decode_image
from sensorium.errors import Reason, SensoriumError

LIMITS = {"max_bytes": 10_000_000, "max_pixels": 50_000_000}


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def noise(width: int, height: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "RGB")


def reason(data: bytes, **limits: int) -> Reason:
    with pytest.raises(SensoriumError) as error:
        decode_image(data, **{**LIMITS, **limits})
    return error.value.reason


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF", "TIFF", "BMP"])
def test_every_documented_format_decodes_to_rgb(fmt):
    decoded = decode_image(encode(noise(33, 21), fmt), **LIMITS)
    assert (decoded.width, decoded.height, decoded.format) == (33, 21, fmt)
    assert decoded.image.mode == "RGB" and decoded.image.size == (33, 21)


def test_limits_are_checked_before_decoding():
    assert reason(b"") is Reason.INPUT_EMPTY
    assert reason(encode(noise(50, 50), "PNG"), max_bytes=100) is Reason.INPUT_TOO_LARGE
    # A bilevel PNG of 144 MP is a few KiB: the pixel check must refuse it from the header.
    bomb = encode(Image.new("1", (12_000, 12_000)), "PNG")
    assert len(bomb) < 100_000
    with pytest.raises(SensoriumError) as error:
        decode_image(bomb, **LIMITS)
    assert error.value.reason is Reason.IMAGE_TOO_LARGE
    assert "12000x12000" in error.value.message and error.value.setting == "embedding.max_image_pixels"


def test_corrupt_and_unsupported_data_is_undecodable():
    assert reason(b"definitely not an image") is Reason.IMAGE_UNDECODABLE
    jpeg = encode(noise(64, 64), "JPEG")
    assert reason(jpeg[: len(jpeg) // 2]) is Reason.IMAGE_UNDECODABLE  # truncated: fails at load()
    assert reason(encode(noise(8, 8), "PCX")) is Reason.IMAGE_UNDECODABLE  # not a documented format


def test_transparency_is_composited_on_white():
    rgba = Image.new("RGBA", (10, 10), (255, 0, 0, 0))
    rgba.putpixel((0, 0), (0, 0, 255, 255))
    image = decode_image(encode(rgba, "PNG"), **LIMITS).image
    assert image.getpixel((5, 5)) == (255, 255, 255)
    assert image.getpixel((0, 0)) == (0, 0, 255)
    palette = Image.new("P", (4, 4), 1)
    palette.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    assert decode_image(encode(palette, "PNG", transparency=1), **LIMITS).image.getpixel((1, 1)) \
        == (255, 255, 255)


def test_cmyk_grey_and_16_bit_become_rgb():
    cmyk = decode_image(encode(Image.new("CMYK", (8, 8), (0, 255, 255, 0)), "JPEG"), **LIMITS).image
    red = cmyk.getpixel((4, 4))
    assert red[0] > 200 and red[1] < 60 and red[2] < 60
    grey = decode_image(encode(Image.new("L", (8, 8), 90), "PNG"), **LIMITS).image
    assert grey.getpixel((0, 0)) == (90, 90, 90)
    deep = Image.new("I;16", (8, 8), 65535)
    assert decode_image(encode(deep, "PNG"), **LIMITS).image.getpixel((0, 0)) == (255, 255, 255)


def test_exif_orientation_is_applied_and_reported():
    stored = noise(40, 20)
    exif = Image.Exif()
    exif[0x0112] = 6
    decoded = decode_image(encode(stored, "JPEG", exif=exif, quality=95), **LIMITS)
    assert (decoded.width, decoded.height) == (20, 40)
    assert decoded.image.size == (20, 40)


def test_animated_gif_uses_the_first_frame():
    frames = [Image.new("RGB", (16, 16), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    red = decode_image(data, **LIMITS).image.getpixel((8, 8))
    assert red[0] > 200 and red[2] < 60


def test_large_jpegs_are_draft_decoded_but_never_below_the_model_size():
    photo = encode(noise(2000, 1200).resize((2000, 1200)), "JPEG")
    decoded = decode_image(photo, **LIMITS, min_side=224)
    assert (decoded.width, decoded.height) == (2000, 1200)  # reported: the real size
    assert min(decoded.image.size) >= 224 and decoded.image.size[0] <= 500
    full = decode_image(photo, **LIMITS)
    assert full.image.size == (2000, 1200)
