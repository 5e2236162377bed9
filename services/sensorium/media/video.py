"""Video frames for embedding: one at each scene change, at least one per interval, at most N
per file, each with its time, as small JPEGs. PyAV (FFmpeg's libraries, bundled) decodes.

Runs in a worker process (`sensorium.workers`): FFmpeg's decoders can crash or hang on hostile
input, and a long video keeps a core busy for minutes. FFmpeg is fenced in as for audio
(`sensorium.transcription.audio.open_fenced`): only audio and video containers, the file
protocol only, and text (playlists, concat scripts) refused before FFmpeg sees it.

Scene changes: every `sample_seconds` of video, the frame is shrunk to 64x36 and compared with
the previous sample: the mean absolute difference of their HSV pixels (0..1), the measure
PySceneDetect's content detector uses. A difference over `scene_threshold` is a cut, unless the
last cut is less than `min_scene_seconds` ago (flashes, fast pans). Cheap: the shrink is one
swscale call, ~2 ms per sample, against ~2.5 ms per decoded 720p frame.

Decoding skips non-reference frames (B-frames in H.264/HEVC) by default: halves the decode time
of typical camera and screen-recorder files, and every sample point still has a frame within a
fraction of a second. A long video that would not finish within `time_budget_seconds` (judged
from the pace so far and the declared duration) goes on decoding key frames only: a fraction of
the work, and encoders put key frames at scene cuts (x264's and x265's scenecut), so cuts are
still found, at a coarser time where key frames are far apart. The result says so.

The cap: when more frames are chosen than `max_frames`, interval frames go first, then scene
frames, each time the one whose neighbours are closest together, so the frames left still
cover the whole video evenly. A one-hour video gives at most `max_frames` frames whatever its
content. Frames are oriented as the video is displayed (the container's rotation applied).

Truncation: FFmpeg ends without an error where a file is cut short. When the container
declares its duration, the decoded duration is compared with it as for audio
(`sensorium.transcription.audio`): a shortfall of more than 1 s and 5 % is VIDEO_TRUNCATED
unless `allow_truncated`.
"""

from __future__ import annotations

import io
import logging
import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import IO, Any

import av
import numpy as np
import numpy.typing as npt
from PIL import Image

from sensorium.errors import Reason, SensoriumError
from sensorium.media.api import VideoFrame, VideoFrames
from sensorium.transcription.audio import ffmpeg_why, open_fenced

log = logging.getLogger("sensorium.media")

_THUMB = (64, 36)
TRUNCATION_TOLERANCE_SECONDS = 1.0
TRUNCATION_TOLERANCE_FRACTION = 0.05
_ROTATIONS = {90: Image.Transpose.ROTATE_90, -90: Image.Transpose.ROTATE_270,
              180: Image.Transpose.ROTATE_180, -180: Image.Transpose.ROTATE_180}


@dataclass(frozen=True)
class FrameOptions:
    """How frames are chosen (the media settings, as plain values)."""

    interval_seconds: float = 30.0
    """At least one frame per this many seconds of video, scene change or not."""
    max_frames: int = 64
    """At most this many frames per video, however long."""
    scene_threshold: float = 0.12
    """Mean HSV difference (0..1) between two samples that counts as a cut."""
    sample_seconds: float = 0.5
    """How often the scene measure is taken; a cut's frame is at most this late."""
    min_scene_seconds: float = 1.0
    """A cut within this many seconds of the last one is ignored."""
    max_side: int = 512
    """Longest side of a returned frame in pixels (CLIP models take 224-448)."""
    jpeg_quality: int = 85
    max_pixels: int = 50_000_000
    """Largest width x height of a video's frames (checked before decoding)."""
    skip_nonreference: bool = True
    """Do not decode non-reference frames (see the module docstring)."""
    allow_truncated: bool = False
    """Return the frames of a file cut short instead of failing with VIDEO_TRUNCATED."""
    threads: int = 1
    """Decoder threads (the worker's share of the CPUs)."""
    time_budget_seconds: float = 0.0
    """Wall-clock seconds decoding may take before it falls back to key frames only (see the
    module docstring); 0 = never. Set it below the worker's time limit."""


@dataclass
class _Candidate:
    frame: VideoFrame
    scene_change: bool


def extract_frames(
    source: str | Path | IO[bytes], options: FrameOptions, *, stop: Callable[[], bool] | None = None
) -> VideoFrames:
    """Choose and encode the frames of the first video track of `source` (a path or a seekable
    binary file).

    Raises `SensoriumError`: VIDEO_UNDECODABLE (not a video FFmpeg reads, no video track,
    nothing decodable), VIDEO_TRUNCATED (see the module docstring), IMAGE_TOO_LARGE (frames over
    `max_pixels`), PARSER_CRASH (the decoder failed in a way FFmpeg does not report as bad
    data). `stop()` is polled between packets; True ends decoding with `InterruptedError`.
    """
    # FFmpeg fenced in as for audio: no playlist or concat script makes it open other files.
    container = open_fenced(source, what="video", send="mp4, mov, mkv or webm with a video track",
                            undecodable=_undecodable)
    try:
        with container:
            stream = container.streams.video[0] if container.streams.video else None
            if stream is None:
                kinds = ", ".join(sorted({s.type for s in container.streams})) or "no streams"
                # A sound-only file: the index job transcribes it alone.
                no_track = _undecodable(f"the {container.format.name} file has no video track ({kinds})")
                raise SensoriumError(no_track.reason, no_track.message, {"missing_track": "video"})
            width, height = stream.width, stream.height
            if width * height > options.max_pixels:
                raise SensoriumError(
                    Reason.IMAGE_TOO_LARGE,
                    f"the video's frames are {width}x{height} = {width * height} pixels; the limit "
                    f"is {options.max_pixels}", {"limit_pixels": str(options.max_pixels)},
                    setting="media.max_pixels",
                )
            return _decode(container, stream, options, stop)
    except (SensoriumError, InterruptedError):
        raise
    except av.FFmpegError as exc:
        raise _undecodable(f"FFmpeg failed while reading it ({ffmpeg_why(exc)})") from None
    except Exception as exc:  # PyAV raising anything else is a decoder bug on this input
        log.warning("video decoder crashed: %r", exc, exc_info=True)
        raise SensoriumError(
            Reason.PARSER_CRASH, "the video decoder failed on this file; do not retry it as is"
        ) from exc


def _decode(
    container: Any, stream: Any, options: FrameOptions, stop: Callable[[], bool] | None
) -> VideoFrames:
    context = stream.codec_context
    context.thread_count = max(1, options.threads)
    stream.thread_type = "AUTO" if options.threads > 1 else "SLICE"
    if options.skip_nonreference:
        context.skip_frame = "NONREF"
    start = _seconds(stream.start_time, stream.time_base) or 0.0
    declared = _declared_seconds(container, stream)
    started = time.monotonic()
    keyframes_after: float | None = None
    chosen: list[_Candidate] = []
    previous: npt.NDArray[np.int16] | None = None
    next_sample = 0.0
    last_cut = -math.inf
    last_time = 0.0
    skipped = decoded = candidates = 0
    size = (0, 0)
    for packet in container.demux(stream):
        if stop is not None and stop():
            raise InterruptedError("decoding stopped: the caller is gone")
        try:
            frames = packet.decode()
        except av.error.InvalidDataError:
            skipped += 1  # a corrupt packet: skip it, as FFmpeg's tools do
            continue
        if keyframes_after is not None:  # frames between key frames are read, not decoded
            read = _seconds(packet.pts, packet.time_base)
            last_time = max(last_time, (read or 0.0) - start)
        for frame in frames:
            decoded += 1
            at = _seconds(frame.pts, frame.time_base)
            if at is None:
                continue
            at = max(0.0, at - start)
            last_time = max(last_time, at)
            if options.time_budget_seconds and keyframes_after is None and _over_budget(
                time.monotonic() - started, at, declared, options.time_budget_seconds
            ):
                context.skip_frame = "NONKEY"
                keyframes_after = at
                log.info("video decoding falls back to key frames after %.1f s of video", at)
            if at + 1e-6 < next_sample:
                continue
            # On a fixed grid, so that frames the decoder skips do not delay the next sample.
            next_sample = (math.floor(at / options.sample_seconds + 1e-6) + 1) * options.sample_seconds
            rotation = round(frame.rotation / 90.0) * 90 if frame.rotation else 0
            thumb = _upright(frame.to_image(width=_THUMB[0], height=_THUMB[1]), rotation)
            hsv = np.asarray(thumb.convert("HSV"), np.int16)
            score = 1.0 if previous is None else float(np.abs(hsv - previous).mean() / 255.0)
            previous = hsv
            last_kept = chosen[-1].frame.seconds if chosen else -math.inf
            is_cut = not chosen or (
                score >= options.scene_threshold and at - last_cut >= options.min_scene_seconds
            )
            if not is_cut and at - last_kept < options.interval_seconds:
                continue
            if is_cut:
                last_cut = at
            kept = _encode(frame, rotation, at, is_cut, score, options)
            size = _display_size(frame, rotation)
            chosen.append(_Candidate(kept, is_cut))
            candidates += 1
            if len(chosen) > options.max_frames:
                _evict(chosen)
    codec = context.name
    if not decoded and skipped:
        raise _undecodable(f"none of its {skipped} {codec} packets could be decoded")
    if not chosen:
        raise _undecodable("it has a video track but no frame could be decoded")
    result = VideoFrames(
        frames=[candidate.frame for candidate in chosen], decoded_seconds=last_time,
        declared_seconds=declared, width=size[0], height=size[1],
        container=container.format.name, codec=codec, skipped_packets=skipped, candidates=candidates,
        keyframes_only_after=keyframes_after, taken_at=recorded_at(container.metadata),
    )
    if shortfall_seconds(result) and not options.allow_truncated:
        raise SensoriumError(
            Reason.VIDEO_TRUNCATED,
            f"the video ends after {result.decoded_seconds:.1f} s of the {result.declared_seconds:.1f} s "
            "its container declares: the file is cut short or damaged; send the complete file",
            {"declared_seconds": f"{result.declared_seconds:.1f}",
             "decoded_seconds": f"{result.decoded_seconds:.1f}"},
        )
    return result


def shortfall_seconds(result: VideoFrames) -> float:
    """How far decoding fell short of the declared duration, when that counts as truncation
    (see the module docstring); 0.0 otherwise."""
    if result.declared_seconds is None:
        return 0.0
    missing = result.declared_seconds - result.decoded_seconds
    limit = max(TRUNCATION_TOLERANCE_SECONDS, TRUNCATION_TOLERANCE_FRACTION * result.declared_seconds)
    return missing if missing > limit else 0.0


# ISO 8601 as containers write it: "2023-07-14T16:30:05.000000Z", "2023-07-14T18:30:05+0200".
_ISO = re.compile(
    r"^\s*(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:\.\d+)?\s*(Z|[+-]\d{2}:?\d{2})?\s*$")


def recorded_at(metadata: Mapping[str, str]) -> datetime | None:
    """When the video was recorded, from the container's tags, timezone-aware: Apple's
    `com.apple.quicktime.creationdate` (local time with its offset, what iPhones write) first,
    then `creation_time` (MP4/MOV: UTC by the specification; a value without a zone is taken
    as UTC). None without a valid date; MP4's zero date (1904-01-01) counts as none."""
    for key in ("com.apple.quicktime.creationdate", "creation_time"):
        match = _ISO.match(metadata.get(key, "") or "")
        if match is None:
            continue
        zone = match.group(7)
        try:
            year, month, day, hour, minute, second = (int(part) for part in match.groups()[:6])
            when = datetime(year, month, day, hour, minute, second)
        except ValueError:
            continue
        if when.year <= 1904:
            continue
        if zone in (None, "Z"):
            return when.replace(tzinfo=UTC)
        sign, digits = zone[0], zone[1:].replace(":", "")
        offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        if offset > timedelta(hours=14):
            continue
        return when.replace(tzinfo=timezone(-offset if sign == "-" else offset))
    return None


def _over_budget(elapsed: float, position: float, declared: float | None, budget: float) -> bool:
    """Whether decoding at this pace would pass `budget`: already past it, or, a second or more
    in, projected from the share of the declared duration decoded so far."""
    if elapsed >= budget:
        return True
    if declared is None or position <= 0 or elapsed < 1.0:
        return False
    return elapsed * declared / position > budget


def _evict(chosen: list[_Candidate]) -> None:
    """Drop one frame (see the module docstring); the first frame always stays."""
    def gap(index: int) -> float:
        after = chosen[index + 1].frame.seconds if index + 1 < len(chosen) else chosen[index].frame.seconds
        return after - chosen[index - 1].frame.seconds

    fillers = [index for index in range(1, len(chosen)) if not chosen[index].scene_change]
    pool = fillers or list(range(1, len(chosen)))
    del chosen[min(pool, key=gap)]


def _encode(frame: Any, rotation: int, at: float, scene_change: bool, score: float,
            options: FrameOptions) -> VideoFrame:
    scale = min(1.0, options.max_side / max(frame.width, frame.height))
    width, height = max(1, round(frame.width * scale)), max(1, round(frame.height * scale))
    image = _upright(frame.to_image(width=width, height=height, interpolation="AREA"), rotation)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=options.jpeg_quality)
    return VideoFrame(round(at, 3), buffer.getvalue(), image.width, image.height, scene_change,
                      round(score, 4))


def _upright(image: Image.Image, rotation: int) -> Image.Image:
    """`image` as the video is displayed: FFmpeg's rotation is counterclockwise, as PIL's."""
    transpose = _ROTATIONS.get(rotation)
    return image.transpose(transpose) if transpose is not None else image


def _display_size(frame: Any, rotation: int) -> tuple[int, int]:
    return (frame.height, frame.width) if rotation in (90, -90) else (frame.width, frame.height)


def _seconds(value: int | None, time_base: Any) -> float | None:
    if value is None or time_base is None:
        return None
    return float(value * time_base)


def _declared_seconds(container: Any, stream: Any) -> float | None:
    declared = _seconds(stream.duration, stream.time_base)
    if declared is None and container.duration is not None:
        declared = float(container.duration) / av.time_base
    # A frame's time is its start: the last one is one frame before the declared end.
    rate = stream.average_rate
    if declared is not None and rate:
        declared = max(0.0, declared - 1.0 / float(rate))
    return declared


def _undecodable(why: str) -> SensoriumError:
    return SensoriumError(
        Reason.VIDEO_UNDECODABLE,
        f"cannot decode the video: {why}; send mp4, mov, mkv or webm with a video track "
        "(H.264, HEVC, VP8/9, AV1)",
    )
