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
    try:
        container = av.open(source if not isinstance(source, Path) else str(source),
                            mode="r", metadata_errors="ignore")
    except av.FFmpegError as exc:
        raise _undecodable(f"it is not an audio or video file FFmpeg recognises ({_why(exc)})") from None
    try:
        with container:
            stream = next((s for s in container.streams if s.type == "audio"), None)
            if stream is None:
                kinds = ", ".join(sorted({s.type for s in container.streams})) or "no streams"
                # A silent video is no bad file to the index job: it indexes the frames alone.
                no_track = _undecodable(f"the {container.format.name} file has no audio track ({kinds})")
                raise SensoriumError(no_track.reason, no_track.message, {"missing_track": "audio"})
            declared = _exact_declared_duration(container, stream, source)
            chunks, skipped = _decode_stream(container, stream, limit, max_seconds, stop)
            codec = stream.codec_context.name
            container_name = container.format.name
    except (SensoriumError, InterruptedError):
        raise
    except av.FFmpegError as exc:
        raise _undecodable(f"FFmpeg failed while reading it ({_why(exc)})") from None
    except Exception as exc:  # PyAV raising anything else is a decoder bug on this input
        log.warning("audio decoder crashed: %r", exc, exc_info=True)
        raise SensoriumError(
            Reason.PARSER_CRASH, "the audio decoder failed on this file; do not retry it as is"
        ) from exc
    samples = (np.concatenate(chunks) if chunks else np.zeros(0, np.int16)).astype(np.float32)
    samples /= 32768.0  # s16 -> [-1, 1), as faster-whisper's decode_audio does
    if skipped and len(samples) == 0:
        raise _undecodable(f"none of its {skipped} {codec} packets could be decoded")
    return DecodedAudio(samples, container_name, codec, declared, skipped)


def _decode_stream(
    container: Any, stream: Any, limit: int, max_seconds: float, stop: Callable[[], bool] | None,
) -> tuple[list[npt.NDArray[np.int16]], int]:
    resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
    fifo = av.AudioFifo()
    chunks: list[npt.NDArray[np.int16]] = []
    total = 0
    skipped = 0

    def resample(frame: Any) -> None:
        nonlocal total
        for out in resampler.resample(frame):
            array = np.asarray(out.to_ndarray(), dtype=np.int16).reshape(-1)
            chunks.append(array)
            total += len(array)
        if total > limit:
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
            skipped += 1  # a corrupt packet: skip it, as FFmpeg's tools do; counted above
            continue
        for frame in frames:
            frame.pts = None  # the FIFO checks timestamps for gaps; corrupt files have them
            fifo.write(frame)
            if fifo.samples >= _GROUP_SAMPLES:
                resample(fifo.read())
    if fifo.samples:
        resample(fifo.read())
    resample(None)  # flush the resampler's delay line
    return chunks, skipped


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


def _why(exc: BaseException) -> str:
    # FFmpeg's message without the file name, which is a server-side temporary path.
    strerror = getattr(exc, "strerror", None)
    return str(strerror or type(exc).__name__)
