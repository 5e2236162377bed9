"""The transcription service's domain: what a caller asks (`RequestedOptions`), what the engine
uses (`Options`), what comes back (`Info`, then `Segment`s; a `TranscriptionSummary` at the
end), and the interface both implementations of the one seam offer (`TranscriptionEngine`).

Plain dataclasses only: the gRPC wire module and remote callers import this without
faster-whisper or numpy.
"""

from __future__ import annotations

import os
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Literal, Protocol

from sensorium.contract import EngineKey

Task = Literal["transcribe", "translate"]

DEFAULT_BEAM_SIZE = 5
DEFAULT_TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
"""faster-whisper's (and OpenAI Whisper's) fallback list."""


@dataclass(frozen=True)
class Options:
    """Decoding options, validated; see `resolve_options`."""

    language: str | None = None
    """ISO 639-1 code, or None to detect."""
    task: Task = "transcribe"
    beam_size: int = DEFAULT_BEAM_SIZE
    word_timestamps: bool = False
    vad_filter: bool = False
    initial_prompt: str | None = None
    hotwords: str | None = None
    temperatures: tuple[float, ...] = DEFAULT_TEMPERATURES
    condition_on_previous_text: bool = True
    batched: bool = False
    batch_size: int = 8


@dataclass(frozen=True)
class RequestedOptions:
    """Options as a client gave them: None = not given (the proto's unset fields)."""

    language: str = ""
    task: Task = "transcribe"
    beam_size: int = 0
    word_timestamps: bool = False
    vad_filter: bool | None = None
    initial_prompt: str = ""
    hotwords: str = ""
    temperatures: tuple[float, ...] = ()
    condition_on_previous_text: bool | None = None
    batched: bool = False
    batch_size: int = 0


@dataclass(frozen=True)
class Word:
    start: float
    end: float
    text: str
    probability: float


@dataclass(frozen=True)
class Segment:
    index: int
    start: float
    end: float
    text: str
    words: tuple[Word, ...] = ()
    avg_logprob: float = 0.0
    no_speech_probability: float = 0.0
    compression_ratio: float = 0.0
    temperature: float = 0.0


@dataclass(frozen=True)
class Info:
    """What is known before the first segment."""

    language: str
    language_probability: float
    duration: float
    duration_after_vad: float
    model: str
    options: Options
    declared_duration: float | None = None
    """The duration the file's container declares, when it declares one exactly."""
    truncated: bool = False
    """The file decoded well short of its declared duration and the caller allowed it."""


Piece = Info | Segment


@dataclass(frozen=True)
class TranscriptionSummary:
    """What a whole transcription came to (the stream's last message)."""

    segment_count: int
    processing_seconds: float
    real_time_factor: float
    """Processing time over audio duration (0 for empty audio)."""

    @classmethod
    def of(cls, segment_count: int, seconds: float, duration: float) -> TranscriptionSummary:
        return cls(segment_count, seconds, seconds / duration if duration > 0 else 0.0)


class TranscriptionEngine(Protocol):
    """Speech to timed text, in this process or on a server (see `sensorium.engines`)."""

    def transcribe_file(
        self, path: str | os.PathLike[str], options: RequestedOptions, *,
        allow_truncated: bool = False, deadline: float | None = None,
    ) -> AsyncGenerator[Piece, None]:
        """The `Info`, then each `Segment` as it is made. Raises `SensoriumError` for audio that
        cannot be transcribed (undecodable, too long, truncated unless `allow_truncated`) or
        options the model refuses. `deadline` is on the `time.monotonic()` scale."""
        ...


TRANSCRIPTION: EngineKey[TranscriptionEngine] = EngineKey("transcription")
