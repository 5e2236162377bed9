"""The media service's domain: what a caller asks (`ImageTextOptions`, `VideoOptions`), what it
gets (`ImageText` with its `TextLine`s, `VideoFrames` with its `VideoFrame`s), and the interface
both implementations of the one seam offer (`MediaEngine`: the runtime in this process, or a
server over gRPC).

Plain dataclasses only: the worker processes, the gRPC wire module and remote callers import
this without RapidOCR, onnxruntime or PyAV.
"""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from sensorium.contract import EngineKey


class TextStatus(enum.StrEnum):
    """What happened about text in one image (mirrors the proto's `TextStatus`)."""

    READ = "READ"
    """Recognition ran; `lines` holds what it found (possibly nothing)."""
    NO_TEXT = "NO_TEXT"
    """A photo where the cheap text check found no text: recognition did not run."""
    SKIPPED = "SKIPPED"
    """The caller asked for no text."""
    DISABLED = "DISABLED"
    """Text recognition is off on this server (`media.ocr`)."""


@dataclass(frozen=True)
class ImageTextOptions:
    """What to do with one image (the request's options, as plain values)."""

    read_text: bool = True
    """Look for text (the server's `media.ocr` can still refuse: DISABLED)."""
    preview_side: int = 0
    """Also return the image upright and reduced so its shorter side is at most this many
    pixels, as a JPEG (what the index job embeds: the file is decoded once for both); 0 =
    no preview."""


@dataclass(frozen=True)
class Box:
    """An axis-aligned rectangle in pixels of the upright image, origin top-left, y down."""

    x0: int
    y0: int
    x1: int
    y1: int


@dataclass(frozen=True)
class TextLine:
    """One line of recognised text."""

    text: str
    box: Box
    confidence: float
    """The recogniser's confidence, 0..1."""


@dataclass(frozen=True)
class ImageText:
    """What was found in one image: its text lines (in reading order) and what is known of it."""

    lines: list[TextLine] = field(default_factory=list)
    status: TextStatus = TextStatus.READ
    width: int = 0
    """Width of the full image in pixels, EXIF orientation applied."""
    height: int = 0
    format: str = ""
    """The container format, e.g. "JPEG", "PNG", "HEIF"."""
    photo: bool = False
    """Judged a photo (EXIF names a camera, or a camera's lossy format): the text check ran
    before recognition."""
    camera: str = ""
    """The camera's make and model from EXIF ("Apple iPhone 13"), or ""."""
    taken_at: datetime | None = None
    """When the photo was taken, from EXIF: timezone-aware when EXIF gives the UTC offset, naive
    (the camera's own clock) when it does not, None without a date."""
    check_seconds: float = 0.0
    """Time the text check took (photos only)."""
    read_seconds: float = 0.0
    """Time recognition took (0 when it did not run)."""
    preview: bytes = b""
    """The upright, reduced image as a JPEG, when asked for (`ImageTextOptions.preview_side`)."""

    @property
    def text(self) -> str:
        """The lines in reading order, one per line."""
        return "\n".join(line.text for line in self.lines)

    @property
    def has_text(self) -> bool:
        return bool(self.lines)


@dataclass(frozen=True)
class VideoOptions:
    """What to take from one video (the request's options, as plain values)."""

    max_frames: int = 0
    """At most this many frames; 0 = the server's `media.max_frames_per_video` (also the cap)."""


@dataclass(frozen=True)
class VideoFrame:
    """One frame chosen for embedding."""

    seconds: float
    """Its time from the start of the video."""
    jpeg: bytes
    """The frame, upright (the container's rotation applied), as a JPEG."""
    width: int
    height: int
    scene_change: bool
    """True when chosen for a scene change (or as the first frame); False when chosen so that
    no interval goes without a frame."""
    score: float
    """The scene measure against the previous sample (0..1; 1.0 for the first frame)."""


@dataclass(frozen=True)
class VideoFrames:
    """The frames of one video and what was learned about it while decoding."""

    frames: list[VideoFrame]
    decoded_seconds: float
    """Time of the last decoded frame (of the last frame read, after a fall-back to key
    frames)."""
    declared_seconds: float | None
    """The duration the container declares, None when it declares none."""
    width: int
    """Frame size as displayed (rotation applied)."""
    height: int
    container: str
    codec: str
    skipped_packets: int = 0
    """Packets FFmpeg could not decode and that were skipped."""
    candidates: int = 0
    """Frames chosen before the frame cap was applied."""
    keyframes_only_after: float | None = None
    """The time in the video from which only key frames were decoded to stay within the time
    budget; None when every frame was."""
    taken_at: datetime | None = None
    """When the video was recorded, from the container's metadata (timezone-aware), or None."""


class MediaEngine(Protocol):
    """Text in images and frames of videos, in this process or on a server (see
    `sensorium.engines`). Both raise `SensoriumError` for a file that cannot be used."""

    async def read_image_text(
        self, path: str | os.PathLike[str], options: ImageTextOptions
    ) -> ImageText:
        """The text of the image file at `path` (and its metadata; its preview when asked)."""
        ...

    async def extract_frames(
        self, path: str | os.PathLike[str], options: VideoOptions
    ) -> VideoFrames:
        """The frames of the video file at `path`: at scene changes, at least one per interval,
        at most the cap."""
        ...


MEDIA: EngineKey[MediaEngine] = EngineKey("media")
