"""Photo formats and capture times, for every engine that reads images (embedding, media):
HEIC/HEIF and AVIF decoding for Pillow, and when and with which camera a photo was taken
according to its EXIF data.

Phones write JPEG (Android, iPhone in "most compatible" mode), HEIC (iPhone by default) and
AVIF (recent Android). Pillow decodes JPEG and, since 11.3, AVIF itself; HEIC/HEIF needs the
`pillow-heif` plugin (libheif with libde265), which `register_heif` registers once per process.
The plugin applies the HEIF container's rotation and mirroring while decoding and resets the
EXIF orientation to 1, so `ImageOps.exif_transpose` after it never turns a photo twice.

Capture time: EXIF `DateTimeOriginal` (when the shutter fired), else `DateTimeDigitized`, else
the IFD0 `DateTime` (when the file was last written by the camera or an editor), each with its
sub-seconds and UTC offset tags when present (`OffsetTimeOriginal` & co., EXIF 2.31; most phones
since 2017 write them). EXIF times without an offset are the camera's local wall-clock time in
an unknown zone: they are returned as naive datetimes, never guessed into UTC.
"""

from __future__ import annotations

import contextlib
import re
import threading
from datetime import datetime, timedelta, timezone

from PIL import Image

_EXIF_IFD = 0x8769
# (time tag, sub-second tag, offset tag, the IFD holding them): best first.
_TIME_TAGS = (
    (0x9003, 0x9291, 0x9011, _EXIF_IFD),  # DateTimeOriginal, SubSecTimeOriginal, OffsetTimeOriginal
    (0x9004, 0x9292, 0x9012, _EXIF_IFD),  # DateTimeDigitized, SubSecTimeDigitized, OffsetTimeDigitized
    (0x0132, 0x9290, 0x9010, None),  # DateTime (IFD0), SubSecTime, OffsetTime
)
_DATETIME = re.compile(r"^\s*(\d{4})[:\-](\d{2})[:\-](\d{2})[ T](\d{2}):(\d{2}):(\d{2})")
_OFFSET = re.compile(r"^\s*([+-])(\d{2}):?(\d{2})\s*$")
_registered = False
_lock = threading.Lock()


def register_heif() -> bool:
    """Register the HEIC/HEIF decoder with Pillow if `pillow-heif` is installed (the `media`
    extra); True when HEIF images can be opened. Safe to call from any thread, any number of
    times."""
    global _registered
    with _lock:
        if not _registered:
            try:
                import pillow_heif
            except ImportError:
                return False
            # Thumbnails and depth maps are never used: do not decode them.
            pillow_heif.register_heif_opener(thumbnails=False, depth_images=False, aux_images=False)
            _registered = True
    return True


def photo_formats() -> tuple[str, ...]:
    """The phone and camera formats this process can decode beyond Pillow's classic ones."""
    Image.init()
    formats = []
    if register_heif():
        formats.append("HEIF")
    if "AVIF" in Image.OPEN:  # Pillow >= 11.3 built with libavif (the PyPI wheels are)
        formats.append("AVIF")
    return tuple(formats)


def capture_time(exif: Image.Exif) -> datetime | None:
    """When the photo was taken, from its EXIF (see the module docstring); None when no tag
    holds a valid date. Timezone-aware when EXIF gives the UTC offset, naive otherwise."""
    try:
        exif_ifd = exif.get_ifd(_EXIF_IFD)
    except (KeyError, ValueError, TypeError, OSError):  # a damaged IFD pointer
        exif_ifd = {}
    for time_tag, subsec_tag, offset_tag, ifd in _TIME_TAGS:
        tags = exif_ifd if ifd == _EXIF_IFD else exif
        when = _parse_datetime(tags.get(time_tag))
        if when is None:
            continue
        # Cameras put the offset of DateTime in either IFD; the Exif IFD is where EXIF says.
        offset = _parse_offset(exif_ifd.get(offset_tag)) or _parse_offset(exif.get(offset_tag))
        fraction = _text(exif_ifd.get(subsec_tag) or exif.get(subsec_tag)).strip()
        if fraction.isdigit():
            when = when.replace(microsecond=int((fraction + "000000")[:6]))
        return when.replace(tzinfo=offset) if offset is not None else when
    return None


def camera(exif: Image.Exif) -> str:
    """The camera that took the photo, "Make Model" from EXIF ("Apple iPhone 13"); "" when EXIF
    names none, as for screenshots, scans and generated images."""
    make, model = _text(exif.get(0x010F)).strip(), _text(exif.get(0x0110)).strip()
    if make and model.lower().startswith(make.lower()):  # "Canon" + "Canon EOS R5"
        return model
    return " ".join(part for part in (make, model) if part)


PHOTO_FORMATS = frozenset({"JPEG", "MPO", "HEIF", "AVIF"})
"""What cameras and phones save photos as; screenshots and graphics are mostly PNG."""


def is_photo(image_format: str, camera_name: str) -> bool:
    """Whether an image is (most likely) a photo rather than a screenshot, scan or graphic:
    EXIF names a camera, or it is in a camera's lossy format (messengers strip EXIF from the
    photos they pass on, but keep them JPEG). A JPEG screenshot counts as a photo."""
    return bool(camera_name) or image_format in PHOTO_FORMATS


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("ascii", "replace").rstrip("\x00")
    return value.rstrip("\x00") if isinstance(value, str) else ""


def _parse_datetime(value: object) -> datetime | None:
    match = _DATETIME.match(_text(value))
    if match is None:
        return None  # absent, blank ("    :  :  ") or malformed
    with contextlib.suppress(ValueError):  # "0000:00:00 00:00:00" and other impossible dates
        year, month, day, hour, minute, second = (int(group) for group in match.groups())
        return datetime(year, month, day, hour, minute, min(second, 59))
    return None


def _parse_offset(value: object) -> timezone | None:
    match = _OFFSET.match(_text(value))
    if match is None:
        return None
    sign, hours, minutes = match.groups()
    delta = timedelta(hours=int(hours), minutes=int(minutes))
    if delta > timedelta(hours=14):  # beyond every real zone (UTC-12 .. UTC+14): a bad tag
        return None
    return timezone(-delta if sign == "-" else delta)
