"""Safe image decoding: limits before decoding, formats, modes, orientation, corrupt data."""

from __future__ import annotations

import io
import time
import zlib

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


# --- hostile and broken files, made here (the real-world corpus has Pillow's own; CORPUS_DIR) ---


def _patched(data: bytes, offset: int, value: bytes) -> bytes:
    return data[:offset] + value + data[offset + len(value):]


def test_a_gif_claiming_gigapixels_is_refused_from_its_header():
    # A 1x1 GIF whose logical screen says 65535 x 65535: 4.3 GP announced in ~40 bytes.
    gif = _patched(encode(Image.new("P", (1, 1)), "GIF"), 6, (65535).to_bytes(2, "little") * 2)
    assert len(gif) < 100
    with pytest.raises(SensoriumError) as error:
        decode_image(gif, **LIMITS)
    assert error.value.reason is Reason.IMAGE_TOO_LARGE
    assert "65535x65535" in error.value.message


def test_a_bomb_in_the_second_frame_is_never_decoded():
    # Frame 1 is a plain 100x100 picture; frame 2's descriptor claims 65535 x 65535 pixels,
    # which Pillow would only meet when seeking to it. The first frame is all that is used.
    frames = [Image.new("RGB", (100, 100), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    gif = encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    descriptor = b"\x2c\x00\x00\x00\x00" + (100).to_bytes(2, "little") * 2
    second = gif.index(descriptor, gif.index(descriptor) + 1)
    bomb = _patched(gif, second + 5, (65535).to_bytes(2, "little") * 2)
    with Image.open(io.BytesIO(bomb)) as opened:
        opened.seek(1)  # what the file is: a bomb, for a reader that looks at frame 2
        assert opened.size[0] * opened.size[1] > LIMITS["max_pixels"]
    decoded = decode_image(bomb, **LIMITS)
    assert (decoded.width, decoded.height) == (100, 100)
    red = decoded.image.getpixel((50, 50))
    assert red[0] > 200 and red[2] < 60


def test_a_bmp_claiming_ten_gigapixels_is_refused_from_its_header():
    bmp = encode(Image.new("RGB", (4, 4)), "BMP")
    huge = _patched(bmp, 18, (100_000).to_bytes(4, "little") * 2)  # BITMAPINFOHEADER width, height
    with pytest.raises(SensoriumError) as error:
        decode_image(huge, **LIMITS)
    assert error.value.reason is Reason.IMAGE_TOO_LARGE


def test_broken_headers_and_data_streams_are_undecodable():
    png = encode(noise(64, 64), "PNG")
    assert reason(png[:8] + b"\0" * 72) is Reason.IMAGE_UNDECODABLE  # signature, then nothing valid
    # The compressed pixels damaged, with a valid checksum: it opens, and fails while decoding.
    start = png.index(b"IDAT") + 4
    length = int.from_bytes(png[start - 8:start - 4], "big")
    damaged = bytes(b ^ 0x5A for b in png[start + 10:start + length])
    chunk = png[start - 4:start + 10] + damaged
    corrupt = png[:start + 10] + damaged + zlib.crc32(chunk).to_bytes(4, "big") + png[start + length + 4:]
    with Image.open(io.BytesIO(corrupt)) as opened:
        assert opened.size == (64, 64)
    assert reason(corrupt) is Reason.IMAGE_UNDECODABLE


def test_a_fuzzed_tiff_fails_fast_and_cleanly():
    # A little-endian TIFF header whose first directory claims 65535 entries past the end of file.
    tiff = b"II*\x00\x08\x00\x00\x00" + b"\xff\xff" + b"\x00" * 20
    started = time.monotonic()
    assert reason(tiff) is Reason.IMAGE_UNDECODABLE
    assert time.monotonic() - started < 2


def test_greyscale_with_a_transparent_value_is_composited_on_white():
    grey = Image.new("L", (8, 8), 40)
    grey.putpixel((0, 0), 200)
    image = decode_image(encode(grey, "PNG", transparency=40), **LIMITS).image  # tRNS chunk
    assert image.getpixel((4, 4)) == (255, 255, 255)
    assert image.getpixel((0, 0)) == (200, 200, 200)
