"""Phone photos: HEIC and AVIF decode, are recognised by content, turn the right way up, and
carry when they were taken."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest
from PIL import Image

import mediakit
from sensorium.embedding.images import FORMATS, decode_image
from sensorium.errors import Reason, SensoriumError
from sensorium.index.sniff import sniff, sniff_file
from sensorium.photos import capture_time, is_photo, register_heif

LIMITS = {"max_bytes": 10_000_000, "max_pixels": 50_000_000}


def _blue_side(image: Image.Image) -> str:
    """Which edge of the picture the blue quarter of `mediakit.two_tone` ended up on."""
    pixels = np.asarray(image.convert("RGB"), np.float32)
    h, w = pixels.shape[:2]
    edges = {"left": pixels[h // 2, 2], "right": pixels[h // 2, w - 3],
             "top": pixels[2, w // 2], "bottom": pixels[h - 3, w // 2]}
    return max(edges, key=lambda edge: edges[edge][2] - edges[edge][0])


def test_heif_and_avif_are_accepted_formats():
    assert register_heif()
    assert {"HEIF", "AVIF"} <= set(FORMATS)


def test_a_heic_photo_decodes_upright_with_its_capture_time(tmp_path):
    register_heif()
    # Orientation 6: the camera was turned a quarter to the right; viewers turn it back.
    tags = mediakit.exif(orientation=6, original="2023:07:14 18:30:05", offset="+02:00", subsec="25")
    data = mediakit.heic(mediakit.two_tone(64, 32), tags)
    path = tmp_path / "IMG_0001.bin"  # a name that says nothing
    path.write_bytes(data)
    assert sniff_file(path).kind == "image"

    decoded = decode_image(data, **LIMITS)
    assert decoded.format == "HEIF"
    assert (decoded.width, decoded.height) == decoded.image.size == (32, 64)
    assert _blue_side(decoded.image) == "top"  # the left edge, turned a quarter clockwise
    assert decoded.taken_at == datetime(2023, 7, 14, 18, 30, 5, 250000, timezone(timedelta(hours=2)))
    assert decoded.taken_at.astimezone(UTC).hour == 16


@pytest.mark.parametrize(
    ("orientation", "size", "blue"),
    [(1, (64, 32), "left"), (3, (64, 32), "right"), (6, (32, 64), "top"), (8, (32, 64), "bottom")],
)
def test_avif_and_jpeg_orientation_is_applied_before_embedding(orientation, size, blue):
    for fmt in ("AVIF", "JPEG"):
        data = mediakit.encode(mediakit.two_tone(64, 32), fmt, exif=mediakit.exif(orientation=orientation))
        decoded = decode_image(data, **LIMITS)
        assert decoded.image.size == (decoded.width, decoded.height) == size, fmt
        assert _blue_side(decoded.image) == blue, fmt


def test_avif_is_sniffed_as_an_image():
    assert sniff(mediakit.encode(mediakit.two_tone(), "AVIF")[:8192]).kind == "image"


def test_heif_brands_filetype_does_not_know_are_still_images():
    register_heif()
    data = bytearray(mediakit.heic(mediakit.two_tone()))
    assert data[4:12] == b"ftypheic"
    data[8:12] = b"heix"  # the 10-bit brand some iPhones and Canon cameras write
    verdict = sniff(bytes(data[:8192]))
    assert (verdict.kind, verdict.mime) == ("image", "image/heic")


def test_a_truncated_heic_is_undecodable_with_a_reason():
    register_heif()
    data = mediakit.heic(mediakit.photo_like(256, 192), quality=95)
    with pytest.raises(SensoriumError) as error:
        decode_image(data[: len(data) // 2], **LIMITS)
    assert error.value.reason is Reason.IMAGE_UNDECODABLE


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        # The shutter time, with its offset and sub-seconds.
        ({"original": "2021:12:31 23:59:59", "offset": "-05:00"},
         datetime(2021, 12, 31, 23, 59, 59, tzinfo=timezone(-timedelta(hours=5)))),
        # No offset: the camera's wall clock, zone unknown, kept naive rather than guessed.
        ({"original": "2019:05:01 08:00:00"}, datetime(2019, 5, 1, 8, 0, 0)),
        # No DateTimeOriginal: the digitised time, then IFD0's DateTime.
        ({"digitized": "2018:02:03 04:05:06"}, datetime(2018, 2, 3, 4, 5, 6)),
        ({"modified": "2017:01:01 10:00:00"}, datetime(2017, 1, 1, 10, 0, 0)),
        ({"original": "2016:06:06 06:06:06", "modified": "2024:01:01 00:00:00"},
         datetime(2016, 6, 6, 6, 6, 6)),
        # What broken cameras and editors write: blanks and zeros mean "unknown".
        ({"original": "0000:00:00 00:00:00"}, None),
        ({"original": "    :  :     :  :  "}, None),
        ({"original": "2020:02:30 10:00:00", "digitized": "2020:02:28 10:00:00"}, datetime(2020, 2, 28, 10)),
        ({"original": "2020:01:01 10:00:00", "offset": "+25:00"}, datetime(2020, 1, 1, 10)),
        ({}, None),
    ],
)
def test_capture_time_from_exif(tags, expected):
    assert capture_time(mediakit.exif(**tags)) == expected


def test_capture_time_survives_a_jpeg_round_trip():
    tags = mediakit.exif(original="2022:08:09 10:11:12", offset="+09:30")
    decoded = decode_image(mediakit.encode(mediakit.two_tone(), "JPEG", exif=tags), **LIMITS)
    plus_0930 = timezone(timedelta(hours=9, minutes=30))
    assert decoded.taken_at == datetime(2022, 8, 9, 10, 11, 12, tzinfo=plus_0930)
    assert decode_image(mediakit.encode(mediakit.two_tone(), "PNG"), **LIMITS).taken_at is None


def test_the_camera_is_named_and_tells_photos_from_screenshots():
    tags = mediakit.exif(original="2024:05:05 12:00:00")
    tags[0x010F], tags[0x0110] = "Apple", "iPhone 13"
    photo = decode_image(mediakit.encode(mediakit.two_tone(), "PNG", exif=tags), **LIMITS)
    assert photo.camera == "Apple iPhone 13" and is_photo(photo.format, photo.camera)
    tags[0x010F], tags[0x0110] = "Canon", "Canon EOS R5"
    canon = decode_image(mediakit.encode(mediakit.two_tone(), "JPEG", exif=tags), **LIMITS)
    assert canon.camera == "Canon EOS R5"
    screenshot = decode_image(mediakit.encode(mediakit.two_tone(), "PNG"), **LIMITS)
    assert screenshot.camera == "" and not is_photo(screenshot.format, screenshot.camera)
    # Messengers strip EXIF but keep photos JPEG: still photos.
    forwarded = decode_image(mediakit.encode(mediakit.two_tone(), "JPEG"), **LIMITS)
    assert forwarded.camera == "" and is_photo(forwarded.format, forwarded.camera)
