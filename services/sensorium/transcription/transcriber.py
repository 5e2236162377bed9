"""The transcription engine: faster-whisper on decoded audio, one file at a time per worker.

`Transcriber.run` is the Batcher's streaming model function: it runs in a model worker thread,
emits the `Info` first, then each `Segment` as faster-whisper's lazy generator yields it, so an
hour of audio shows its first segment after one 30-second window, not after the whole file.
`emit` raises `StreamCancelled` once the caller is gone, which ends decoding within a segment.

The engine knows nothing about gRPC or queues; options arrive already validated (`Options`),
with batched mode's consequences applied by `resolve_options`.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from sensorium.device import is_cuda_oom
from sensorium.errors import Reason, SensoriumError
from sensorium.text import normalize
from sensorium.transcription.api import (
    DEFAULT_BEAM_SIZE,
    DEFAULT_TEMPERATURES,
    Info,
    Options,
    Piece,
    RequestedOptions,
    Segment,
    Word,
)
from sensorium.transcription.audio import SAMPLE_RATE
from sensorium.transcription.models import ResolvedModel

log = logging.getLogger("sensorium.transcription")

MAX_BEAM_SIZE = 32
MAX_TEMPERATURES = 16
BATCHED_WINDOW_SECONDS = 30.0
"""Without VAD, the batched pipeline can only take audio shorter than one window."""
NO_SPEECH_THRESHOLD = 0.6
"""faster-whisper's own `no_speech_threshold`: above it a window probably holds no speech."""
COMPRESSION_RATIO_THRESHOLD = 2.4
"""faster-whisper's own `compression_ratio_threshold`: above it the text is a repetition loop."""
_SPEECH_CHECK_PADDING = 0.25


@dataclass(frozen=True)
class Request:
    """One item for the model worker: decoded 16 kHz mono audio and validated options."""

    audio: npt.NDArray[np.float32] = field(repr=False)
    options: Options


Emit = Callable[[Piece], None]


def resolve_options(
    requested: RequestedOptions, *, multilingual: bool, languages: Sequence[str],
    default_batch_size: int,
) -> Options:
    """Validate a client's options and settle the defaults, including batched mode's.

    faster-whisper's batched pipeline never conditions on previous text, decodes at a single
    temperature, and turns VAD on by default. Asking for the opposite explicitly is refused
    (INVALID_REQUEST) rather than silently overridden; the result reports what was used.
    """
    def invalid(message: str) -> SensoriumError:
        return SensoriumError(Reason.INVALID_REQUEST, message)

    language = requested.language.strip().lower() or None
    if language is not None and language not in languages:
        quoted = repr(language if len(language) <= 20 else language[:17] + "...")
        if not multilingual:
            raise invalid(f"the model is English-only; it cannot transcribe language {quoted}. "
                          "Leave `language` empty or set it to \"en\"")
        raise invalid(f"unknown language code {quoted}; use an ISO 639-1 code such as "
                      "\"en\", \"de\" or \"ja\", or leave it empty to detect it")
    if requested.task == "translate" and not multilingual:
        raise invalid("the model is English-only and cannot translate; use a multilingual model "
                      "(one whose name does not end in .en)")
    beam_size = requested.beam_size or DEFAULT_BEAM_SIZE
    if not 1 <= beam_size <= MAX_BEAM_SIZE:
        raise invalid(f"beam_size must be between 1 and {MAX_BEAM_SIZE}, not {beam_size}")
    temperatures = requested.temperatures or DEFAULT_TEMPERATURES
    if len(temperatures) > MAX_TEMPERATURES or not all(
        math.isfinite(t) and 0.0 <= t <= 2.0 for t in temperatures
    ):
        raise invalid(f"temperatures must be at most {MAX_TEMPERATURES} values between 0 and 2")
    condition = requested.condition_on_previous_text
    vad_filter = requested.vad_filter
    batch_size = requested.batch_size
    if requested.batched:
        if condition:
            raise invalid("batched mode never conditions on previous text; unset "
                          "condition_on_previous_text or turn batched off")
        if requested.temperatures and len(requested.temperatures) > 1:
            raise invalid("batched mode decodes at one temperature without fallback; give one "
                          "temperature or turn batched off")
        temperatures = temperatures[:1]
        condition = False
        vad_filter = True if vad_filter is None else vad_filter
        batch_size = batch_size or default_batch_size
    else:
        if batch_size:
            raise invalid("batch_size applies only to batched mode; set batched or unset batch_size")
        condition = True if condition is None else condition
        vad_filter = bool(vad_filter)
    return Options(
        language=language, task=requested.task, beam_size=beam_size,
        word_timestamps=requested.word_timestamps, vad_filter=vad_filter,
        initial_prompt=requested.initial_prompt or None, hotwords=requested.hotwords or None,
        temperatures=tuple(float(t) for t in temperatures), condition_on_previous_text=condition,
        batched=requested.batched, batch_size=batch_size,
    )


def check_audio(options: Options, duration: float) -> None:
    """Refuse combinations faster-whisper would fail on deep inside the model worker."""
    if options.batched and not options.vad_filter and duration >= BATCHED_WINDOW_SECONDS:
        raise SensoriumError(
            Reason.INVALID_REQUEST,
            f"batched mode without the VAD filter takes audio shorter than "
            f"{BATCHED_WINDOW_SECONDS:g} s (this is {duration:.1f} s): turn vad_filter on",
        )


class Transcriber:
    """One faster-whisper model serving `workers` threads (CTranslate2 replicas), or none yet.

    `load()` and `warm_up()` block: call them off the event loop.
    """

    def __init__(
        self,
        model: ResolvedModel,
        *,
        device: str,
        compute_type: str,
        cpu_threads: int,
        workers: int,
        download_root: str,
        local_files_only: bool = True,
    ) -> None:
        self.model = model
        self.device = device
        self.compute_type = compute_type
        self.cpu_threads = cpu_threads
        self.workers = workers
        self.download_root = download_root
        self.local_files_only = local_files_only
        self._whisper: Any = None

    @property
    def whisper(self) -> Any:
        """The loaded `faster_whisper.WhisperModel`."""
        if self._whisper is None:
            raise RuntimeError("the transcriber is not loaded")
        return self._whisper

    @property
    def multilingual(self) -> bool:
        return bool(self.whisper.model.is_multilingual)

    @property
    def languages(self) -> list[str]:
        return list(self.whisper.supported_languages)

    def load(self) -> None:
        from faster_whisper import WhisperModel

        # num_workers: CTranslate2 replicas, so `workers` threads transcribe truly in parallel.
        self._whisper = WhisperModel(
            self.model.source, device=self.device, compute_type=self.compute_type,
            cpu_threads=self.cpu_threads, num_workers=self.workers,
            download_root=self.download_root, local_files_only=self.local_files_only,
        )
        log.info(
            "loaded Whisper model %s (%s) on %s, %s, %d worker(s) x %d CPU thread(s)",
            self.model.setting, self.model.provenance, self.device, self.compute_type,
            self.workers, self.cpu_threads,
        )

    def warm_up(self) -> None:
        """One inference on a second of quiet noise: CTranslate2 loads CUDA libraries lazily at
        the first kernel, and the first call allocates its buffers; neither should hit a client.
        Loads the Silero VAD model too."""
        noise = np.random.default_rng(0).normal(0, 1e-3, SAMPLE_RATE).astype(np.float32)
        request = Request(noise, Options(beam_size=1, temperatures=(0.0,), vad_filter=True))
        self.run(request, lambda piece: None, lambda: False)
        request = Request(noise, Options(beam_size=1, temperatures=(0.0,)))
        self.run(request, lambda piece: None, lambda: False)

    def run(self, request: Request, emit: Emit, cancelled: Callable[[], bool]) -> None:
        """The Batcher's `run_stream`: emit the `Info`, then each segment as it is decoded."""
        options = request.options
        try:
            segments, info = self._transcribe(request)
        except Exception as exc:
            raise _model_error(exc) from exc
        duration = len(request.audio) / SAMPLE_RATE
        emit(Info(
            language=info.language, language_probability=float(info.language_probability),
            duration=duration,
            duration_after_vad=float(info.duration_after_vad if options.vad_filter else duration),
            model=self.model.setting, options=options,
        ))
        speech = _SpeechSpans(request.audio)
        # The generator does the decoding as it is consumed: each next() is one more window.
        with contextlib.closing(iter(segments)) as pending:
            index = 0
            while not cancelled():
                try:
                    segment = next(pending, None)
                except Exception as exc:
                    raise _model_error(exc) from exc
                if segment is None:
                    return
                if not segment.text.strip() or self._invented(request, segment, speech):
                    continue
                emit(_segment(index, segment, duration))
                index += 1

    @staticmethod
    def _invented(request: Request, segment: Any, speech: _SpeechSpans) -> bool:
        """True for text Whisper made up in a window without speech.

        On silence or faint noise Whisper writes "you", "...", "Thank you." and the like.
        faster-whisper drops a window only when its no-speech probability is high *and* the text
        is improbable, which such confident inventions pass. So a segment from a window Whisper
        itself rates as probably speechless is kept only if it is not a repetition loop (what
        is left when every fallback temperature failed) and Silero VAD hears speech in its span.
        With the VAD filter on, non-speech never reaches the model and nothing is checked.
        """
        if request.options.vad_filter or segment.no_speech_prob <= NO_SPEECH_THRESHOLD:
            return False
        if segment.compression_ratio > COMPRESSION_RATIO_THRESHOLD:
            log.debug("dropped a repetition loop in a window without speech: %r", segment.text)
            return True
        if speech.overlaps(segment.start - _SPEECH_CHECK_PADDING, segment.end + _SPEECH_CHECK_PADDING):
            return False
        log.debug("dropped a segment without speech: %r (no_speech_prob %.2f)",
                  segment.text, segment.no_speech_prob)
        return True

    def _transcribe(self, request: Request) -> tuple[Any, Any]:
        options = request.options
        kwargs: dict[str, Any] = {
            "language": options.language, "task": options.task, "beam_size": options.beam_size,
            "word_timestamps": options.word_timestamps, "vad_filter": options.vad_filter,
            "initial_prompt": options.initial_prompt, "hotwords": options.hotwords,
            "temperature": list(options.temperatures),
            "condition_on_previous_text": options.condition_on_previous_text,
        }
        if options.batched:
            from faster_whisper import BatchedInferencePipeline

            # The pipeline keeps per-call state (last_speech_timestamp): one per call, it is
            # only a thin wrapper around the shared model.
            pipeline = BatchedInferencePipeline(self.whisper)
            del kwargs["condition_on_previous_text"]  # the pipeline ignores it (always off)
            return pipeline.transcribe(request.audio, batch_size=options.batch_size, **kwargs)  # type: ignore[no-any-return]
        return self.whisper.transcribe(request.audio, **kwargs)  # type: ignore[no-any-return]


def _model_error(exc: Exception) -> Exception:
    if isinstance(exc, SensoriumError):
        return exc
    if is_cuda_oom(exc):
        return SensoriumError(
            Reason.GPU_OUT_OF_MEMORY,
            "the GPU ran out of memory on this file; retry later, or use a smaller batch_size "
            "or a smaller model",
            retry_after_seconds=5.0,
        )
    return exc


def _clamp(value: float, duration: float) -> float:
    return min(max(float(value), 0.0), duration)


class _SpeechSpans:
    """Where Silero VAD hears speech in one request's audio, found once, on first use.

    Synthetic and far-field voices often get a high no-speech probability on every window, and
    running VAD per suspicious segment (with overlapping padding) cost more CPU than the whole
    file once: ~40 % of tiny.en's own time on 80 s of espeak speech.
    """

    def __init__(self, audio: npt.NDArray[np.float32]) -> None:
        self._audio = audio
        self._spans: list[tuple[float, float]] | None = None

    def overlaps(self, start: float, end: float) -> bool:
        if self._spans is None:
            from faster_whisper.vad import VadOptions, get_speech_timestamps

            found = get_speech_timestamps(self._audio, VadOptions())
            self._spans = [(s["start"] / SAMPLE_RATE, s["end"] / SAMPLE_RATE) for s in found]
        return any(s < end and e > start for s, e in self._spans)


def _segment(index: int, segment: Any, duration: float) -> Segment:
    # Whisper's timestamps can overshoot the audio by a few tens of milliseconds: keep every
    # time inside [0, duration] and never let an end precede its start.
    start = _clamp(segment.start, duration)
    end = max(_clamp(segment.end, duration), start)
    words: list[Word] = []
    for word in segment.words or ():
        word_start = _clamp(word.start, duration)
        words.append(Word(word_start, max(_clamp(word.end, duration), word_start), normalize(word.word),
                          float(word.probability)))
    # Text as every engine stores it (sensorium.text): Whisper's byte-level tokens can decode to
    # compatibility and invisible characters.
    return Segment(
        index=index, start=start, end=end, text=normalize(segment.text).strip(), words=tuple(words),
        avg_logprob=float(segment.avg_logprob), no_speech_probability=float(segment.no_speech_prob),
        compression_ratio=float(segment.compression_ratio),
        temperature=float(segment.temperature or 0.0),
    )
