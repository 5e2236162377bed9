"""Audio decoding with PyAV (FFmpeg's libraries, bundled: no system ffmpeg) to what Whisper
takes: 16 kHz mono float32 samples.

Runs outside the model thread. The duration limit is enforced on the samples actually decoded,
never on what the container declares: a duration can be missing or forged, and 64 MiB of
low-bitrate Opus is a day of audio. Decoding stops as soon as the limit is passed.

FFmpeg may stop early without an error on a truncated or corrupt file (a FLAC cut in half
decodes its first half and ends). So, when the container declares a duration it knows exactly
(see `_exact_declared_duration`), the decoded duration is compared with it: a shortfall of more
than `TRUNCATION_TOLERANCE_SECONDS` and `TRUNCATION_TOLERANCE_FRACTION` of the declared
duration is reported (`DecodedAudio.shortfall_seconds`), and the caller decides (AUDIO_TRUNCATED
by default).

FFmpeg opens what a file tells it to: a concat script (`ffconcat version 1.0` / `file 'x.wav'`)
or an HLS playlist makes it read other files, and a `.m3u` names paths. So only real audio and
video containers are opened (`ALLOWED_FORMATS`, FFmpeg's `format_whitelist`), through the
`file` protocol only (`protocol_whitelist`), and a file that is text (every playlist and script
is) is refused before FFmpeg sees it (UNSUPPORTED_TYPE). In the server this runs in worker
processes (`decoding.py`), with a memory cap, a time limit and crash isolation.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import av
import numpy as np
import numpy.typing as npt

from sensorium.errors import Reason, SensoriumError

log = logging.getLogger("sensorium.transcription")

SAMPLE_RATE = 16000
"""What Whisper's feature extractor expects."""

# A decoded duration short of the declared one by more than both of these is a truncation.
# Encoder delay and padding (MP3, AAC, Opus) account for tens of milliseconds, never seconds.
TRUNCATION_TOLERANCE_SECONDS = 1.0
TRUNCATION_TOLERANCE_FRACTION = 0.05

# Frames are grouped to this many input samples before resampling, as faster-whisper's own
# decode_audio does: far fewer Python-level resampler calls, and bit-identical samples.
_GROUP_SAMPLES = 500_000

ALLOWED_FORMATS = (
    "wav", "w64", "aiff", "caf", "au", "flac", "mp3", "ogg", "mov", "matroska", "aac", "asf",
    "amr", "ac3", "eac3", "avi", "mpeg", "mpegts", "flv", "wv", "ape",
)
"""FFmpeg demuxers that may open an upload: containers of audio (and of video with an audio
track). Left out on purpose: concat, hls, dash and every playlist, image, network and device
demuxer. A name matches FFmpeg's comma-separated demuxer names ("mov" is
"mov,mp4,m4a,3gp,3g2,mj2")."""
_OPEN_OPTIONS = {"format_whitelist": ",".join(ALLOWED_FORMATS), "protocol_whitelist": "file"}
_SNIFF_BYTES = 4096

@dataclass(frozen=True)
class DecodedAudio:
    """Decoded audio and what was learned about the file while decoding it."""

    samples: npt.NDArray[np.float32]
    """16 kHz mono samples in [-1, 1]."""
    container: str
    """FFmpeg's name of the container format, e.g. "flac", "mov,mp4,m4a,3gp,3g2,mj2"."""
    codec: str
    """FFmpeg's name of the audio codec, e.g. "mp3float", "opus"."""
    declared_seconds: float | None
    """The duration the container declares exactly, or None when it declares none (or only an
    estimate, such as an MP3 without a Xing/VBRI header)."""
    skipped_packets: int
    """Packets FFmpeg could not decode and that were skipped."""

    @property
    def duration(self) -> float:
        return len(self.samples) / SAMPLE_RATE

    @property
    def shortfall_seconds(self) -> float:
        """How far decoding fell short of the declared duration when that counts as truncation
        (see the module docstring); 0.0 otherwise."""
        if self.declared_seconds is None:
            return 0.0
        missing = self.declared_seconds - self.duration
        if missing > max(TRUNCATION_TOLERANCE_SECONDS,
                         TRUNCATION_TOLERANCE_FRACTION * self.declared_seconds):
            return missing
        return 0.0


def decode(
    source: str | Path | IO[bytes],
    *,
    max_seconds: float,
    stop: Callable[[], bool] | None = None,
) -> DecodedAudio:
    """Decode the first audio track of `source` (a path or a seekable binary file).

    Raises `SensoriumError`: AUDIO_UNDECODABLE (not audio, no audio track, nothing decodable),
    AUDIO_TOO_LONG (more than `max_seconds` decoded), PARSER_CRASH (the decoder failed in a way
    FFmpeg does not report as bad data). `stop()` is polled between packets; when it returns
    True decoding ends with `InterruptedError` (the caller is gone).
    """
    limit = int(max_seconds * SAMPLE_RATE)
    chunks: list[npt.NDArray[np.int16]] = []
    report = _decode(source, limit, max_seconds, stop, chunks.append, final=True)
    samples = (np.concatenate(chunks) if chunks else np.zeros(0, np.int16)).astype(np.float32)
    samples /= 32768.0  # s16 -> [-1, 1), as faster-whisper's decode_audio does
    return DecodedAudio(samples, report.container, report.codec, report.declared_seconds,
                        report.skipped_packets)


@dataclass(frozen=True)
class DecodeReport:
    """What `decode_to_file` learned: as `DecodedAudio`, with the samples in the file."""

    container: str
    codec: str
    declared_seconds: float | None
    skipped_packets: int
    samples: int
    """Samples written (16 kHz mono float32)."""
    past_limit: bool = False
    """Decoding stopped at `max_seconds`, which was an estimate (`final=False`), not the limit."""


def decode_to_file(path: str, out: str, *, max_seconds: float, final: bool) -> DecodeReport:
    """Decode `path` into `out` as raw 16 kHz mono float32 samples, holding only a group of
    frames in memory at a time. With `final=False`, `max_seconds` is an estimate: passing it
    stops decoding with `past_limit` set instead of AUDIO_TOO_LONG. Raises as `decode`."""
    limit = int(max_seconds * SAMPLE_RATE)
    with open(out, "wb") as handle:

        def write(chunk: npt.NDArray[np.int16]) -> None:
            (chunk.astype(np.float32) / np.float32(32768.0)).tofile(handle)

        try:
            return _decode(path, limit, max_seconds, None, write, final=final)
        except _PastEstimate as past:
            return past.report


def estimate_seconds(path: str) -> float | None:
    """How long the container says its first audio track is (an estimate for MP3s without a
    frame count, from the bitrate), or None when it says nothing. Opens the file as `decode`
    does (same refusals) without decoding it."""
    with _open(path) as container:
        stream = _audio_stream(container)
        if stream.duration is not None and stream.time_base is not None:
            return float(stream.duration * stream.time_base)
        if container.duration is not None:
            return float(container.duration) / av.time_base
        return None


class _PastEstimate(Exception):
    def __init__(self, report: DecodeReport) -> None:
        self.report = report


def _open(source: str | Path | IO[bytes]) -> Any:
    """The container of `source`, opened with FFmpeg fenced in (see the module docstring)."""
    return open_fenced(source, what="audio", send="wav, mp3, flac, ogg, opus, m4a/aac or an mp4 "
                       "with an audio track", undecodable=_undecodable)


def open_fenced(
    source: str | Path | IO[bytes], *, what: str, send: str,
    undecodable: Callable[[str], SensoriumError],
) -> Any:
    """The PyAV container of `source`, with FFmpeg fenced in (see the module docstring): a file
    that is text is refused (UNSUPPORTED_TYPE) before FFmpeg sees it, and only
    `ALLOWED_FORMATS` open, through the `file` protocol only. Shared by every decoder of
    uploads (audio here, video frames in `sensorium.media.video`): `what` ("audio", "video")
    and `send` (the formats to send instead) word the refusals; `undecodable(why)` is the error
    for a file FFmpeg cannot open."""
    head = _read_head(source, _SNIFF_BYTES)
    if _is_text(head):
        raise SensoriumError(
            Reason.UNSUPPORTED_TYPE,
            f"the file is text, not {what} (a playlist, a concat script or a list of paths is "
            f"text); this server decodes {what} files only, never files another file names: send "
            f"the {what} itself ({send})",
        )
    try:
        return av.open(source if not isinstance(source, Path) else str(source), mode="r",
                       metadata_errors="ignore", options=dict(_OPEN_OPTIONS))
    except av.ArgumentError as exc:
        if getattr(exc, "errno", None) == 22:  # EINVAL: FFmpeg's "not on whitelist"
            raise SensoriumError(
                Reason.UNSUPPORTED_TYPE,
                "the file is in a format this server does not open (only audio and video "
                f"containers: {', '.join(ALLOWED_FORMATS)})",
            ) from None
        raise undecodable(f"it is not an audio or video file FFmpeg recognises ({ffmpeg_why(exc)})") from None
    except av.FFmpegError as exc:
        raise undecodable(f"it is not an audio or video file FFmpeg recognises ({ffmpeg_why(exc)})") from None


def _is_text(head: bytes) -> bool:
    """Whether a file's first bytes are text: no audio container is (each has binary headers
    or frame sync bytes within its first few KiB), and every playlist format is."""
    if not head or b"\x00" in head:
        return False
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not just a character cut at the end of the sniff
            return False
        text = head[: exc.start].decode("utf-8")
    printable = sum(ch.isprintable() or ch in "\r\n\t" for ch in text)
    return printable >= 0.95 * max(len(text), 1)


def _audio_stream(container: Any) -> Any:
    stream = next((s for s in container.streams if s.type == "audio"), None)
    if stream is None:
        kinds = ", ".join(sorted({s.type for s in container.streams})) or "no streams"
        # A silent video is no bad file to the index job: it indexes the frames alone.
        no_track = _undecodable(f"the {container.format.name} file has no audio track ({kinds})")
        raise SensoriumError(no_track.reason, no_track.message, {"missing_track": "audio"})
    return stream


def _decode(
    source: str | Path | IO[bytes], limit: int, max_seconds: float, stop: Callable[[], bool] | None,
    emit: Callable[[npt.NDArray[np.int16]], None], *, final: bool,
) -> DecodeReport:
    container = _open(source)
    try:
        with container:
            stream = _audio_stream(container)
            declared = _exact_declared_duration(container, stream, source)
            codec = stream.codec_context.name
            container_name = container.format.name

            def report(samples: int, past_limit: bool = False) -> DecodeReport:
                return DecodeReport(container_name, codec, declared, skipped[0], samples, past_limit)

            skipped = [0]
            total = _decode_stream(container, stream, limit, max_seconds, stop, emit, skipped,
                                   None if final else report)
    except (SensoriumError, InterruptedError, _PastEstimate):
        raise
    except av.FFmpegError as exc:
        raise _undecodable(f"FFmpeg failed while reading it ({ffmpeg_why(exc)})") from None
    except Exception as exc:  # PyAV raising anything else is a decoder bug on this input
        log.warning("audio decoder crashed: %r", exc, exc_info=True)
        raise SensoriumError(
            Reason.PARSER_CRASH, "the audio decoder failed on this file; do not retry it as is"
        ) from exc
    if skipped[0] and total == 0:
        raise _undecodable(f"none of its {skipped[0]} {codec} packets could be decoded")
    return report(total)


def _decode_stream(
    container: Any, stream: Any, limit: int, max_seconds: float, stop: Callable[[], bool] | None,
    emit: Callable[[npt.NDArray[np.int16]], None], skipped: list[int],
    estimate: Callable[[int, bool], DecodeReport] | None,
) -> int:
    """Decode, resample and `emit` the audio; the samples emitted. Past `limit`: AUDIO_TOO_LONG,
    or, when the limit was an `estimate`, `_PastEstimate` with its report."""
    resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
    fifo = av.AudioFifo()
    total = 0

    def resample(frame: Any) -> None:
        nonlocal total
        for out in resampler.resample(frame):
            array = np.asarray(out.to_ndarray(), dtype=np.int16).reshape(-1)
            emit(array)
            total += len(array)
        if total > limit:
            if estimate is not None:
                raise _PastEstimate(estimate(total, True))
            raise SensoriumError(
                Reason.AUDIO_TOO_LONG,
                f"the audio is longer than {max_seconds:g} s, the limit; split it",
                {"limit_seconds": f"{max_seconds:g}"}, setting="transcription.max_duration_seconds",
            )

    for packet in container.demux(stream):
        if stop is not None and stop():
            raise InterruptedError("decoding stopped: the caller is gone")
        try:
            frames = packet.decode()
        except av.error.InvalidDataError:
            skipped[0] += 1  # a corrupt packet: skip it, as FFmpeg's tools do; counted above
            continue
        for frame in frames:
            frame.pts = None  # the FIFO checks timestamps for gaps; corrupt files have them
            fifo.write(frame)
            if fifo.samples >= _GROUP_SAMPLES:
                resample(fifo.read())
    if fifo.samples:
        resample(fifo.read())
    resample(None)  # flush the resampler's delay line
    return total


def _exact_declared_duration(container: Any, stream: Any, source: str | Path | IO[bytes]) -> float | None:
    """The duration the file declares, where it is exact enough to detect truncation.

    FFmpeg clamps a WAV's duration to the bytes present, so the header's data size is read
    here; an MP3's duration is a bitrate estimate unless a Xing/Info/VBRI header counts frames.
    Ogg durations come from the last page present, so a cut Ogg file cannot show truncation.
    """
    name = container.format.name
    if name == "wav":
        return _wav_declared_duration(source)
    if name == "ogg":
        return None
    if name == "mp3" and not _has_mp3_frame_count(source):
        return None
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return float(container.duration) / av.time_base
    return None


def _read_head(source: str | Path | IO[bytes], size: int) -> bytes:
    if isinstance(source, str | Path):
        with open(source, "rb") as handle:
            return handle.read(size)
    position = source.tell()
    try:
        source.seek(0)
        return source.read(size)
    finally:
        source.seek(position)


def _has_mp3_frame_count(source: str | Path | IO[bytes]) -> bool:
    # The Xing/Info or VBRI tag sits in the first MPEG frame, after any ID3v2 tag.
    head = _read_head(source, 256 * 1024)
    if head[:3] == b"ID3" and len(head) >= 10:
        size = (head[6] << 21) | (head[7] << 14) | (head[8] << 7) | head[9]
        head = head[10 + size:]
    first_frame = head[:4096]
    return any(tag in first_frame for tag in (b"Xing", b"Info", b"VBRI"))


def _wav_declared_duration(source: str | Path | IO[bytes]) -> float | None:
    """Seconds of audio the RIFF header's `data` chunk declares; None if unknown."""
    head = _read_head(source, 1024 * 1024)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None  # RF64 / W64 and friends: leave it to FFmpeg
    position, byte_rate = 12, 0
    while position + 8 <= len(head):
        chunk, size = struct.unpack_from("<4sI", head, position)
        if chunk == b"fmt " and position + 16 <= len(head):
            (byte_rate,) = struct.unpack_from("<I", head, position + 16)
        elif chunk == b"data":
            # 0 and 0xFFFFFFFF mark streamed WAVs whose writer never knew the size.
            if not byte_rate or size in (0, 0xFFFFFFFF):
                return None
            return float(size / byte_rate)
        position += 8 + size + (size & 1)  # chunks are padded to even sizes
    return None


def _undecodable(why: str) -> SensoriumError:
    return SensoriumError(
        Reason.AUDIO_UNDECODABLE,
        f"cannot decode the audio: {why}; send wav, mp3, flac, ogg, opus, m4a/aac or an mp4 with "
        "an audio track",
    )


def ffmpeg_why(exc: BaseException) -> str:
    """FFmpeg's message without the file name, which may be a server-side temporary path."""
    strerror = getattr(exc, "strerror", None)
    return str(strerror or type(exc).__name__)
