"""The transcription runtime: faster-whisper behind a streaming Batcher, for every front end.

`decode` turns a file (path, bytes or a binary stream) into 16 kHz samples with PyAV, in a
decoder process (`decoding.AudioDecoderPool`: FFmpeg parses hostile files out of this process,
memory-capped, time-limited, crash-isolated) and at most `preprocess_threads` at once, before
the audio queues for a model worker, so the model threads only ever run the model. The memory
the samples will take is charged to the byte budget before decoding starts, from the duration
the container declares (the whole duration limit when it declares none; a file that turns out
longer than it declared is charged again, up to the limit, and decoded again).

`transcribe` yields the `Info`, then each `Segment` as the worker emits it; leaving early,
cancelling or a passed deadline stops the worker within one segment. Each worker runs one file
at a time (Whisper has no cross-request batching). The decoded samples count against the
process's byte budget while they wait.
`transcribe_file` does both for a file: the runtime is the in-process `TranscriptionEngine` of
the one seam (`sensorium.engines`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import shutil
import tempfile
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import IO, TYPE_CHECKING

import numpy as np

from sensorium import metrics, pins
from sensorium.batching import Batcher
from sensorium.contract import RuntimeContext
from sensorium.device import DeviceError, DevicePlan, is_cuda_library_error, load_with_fallback, thread_counts
from sensorium.errors import ModelError, Reason, SensoriumError, ServiceStartError
from sensorium.transcription import audio, models, transcriber
from sensorium.transcription.api import (
    Info,
    Options,
    Piece,
    RequestedOptions,
    Segment,
    TranscriptionEngine,
)
from sensorium.transcription.audio import DecodedAudio
from sensorium.transcription.decoding import AudioDecoderPool
from sensorium.transcription.transcriber import Request

log = logging.getLogger("sensorium.transcription")

AudioSource = str | os.PathLike[str] | bytes | IO[bytes]
"""A file path, the file's bytes, or a seekable binary stream."""
Loader = Callable[[DevicePlan], transcriber.Transcriber]


class TranscriptionRuntime:
    """Whisper transcription; `start()` before use, `close()` after."""

    def __init__(self, context: RuntimeContext, *, load: Loader | None = None) -> None:
        self.root = context.settings
        self.settings = context.settings.transcription
        self.budget = context.budget
        self._context = context
        self._load = load or self._load_engine
        self.engine: transcriber.Transcriber | None = None
        self.plan: DevicePlan | None = None
        self._batcher: Batcher[Request, Piece] | None = None
        self._decoding: asyncio.Semaphore | None = None
        self._decoders: AudioDecoderPool | None = None

    @property
    def batcher(self) -> Batcher[Request, Piece]:
        if self._batcher is None:
            raise _not_ready()
        return self._batcher

    @property
    def model_name(self) -> str:
        """The model as settings name it ("packaged:base"), reported to clients."""
        return self.settings.model

    async def start(self) -> None:
        try:
            plan = await self._context.device.plan(self._context.cpus)
            engine, plan = await asyncio.to_thread(
                load_with_fallback, self.root.device, plan, self._load, what="transcription"
            )
        except ServiceStartError:
            raise
        except (ModelError, DeviceError) as exc:
            raise ServiceStartError(str(exc)) from None
        except Exception as exc:  # e.g. a CUDA library failure under device=cuda
            log.error("cannot load the transcription model", exc_info=exc)
            raise ServiceStartError(f"loading the Whisper model failed: {type(exc).__name__}: {exc}") from exc
        threads = thread_counts(plan.device, plan.cpu_threads, self.settings.workers)
        self.engine, self.plan = engine, plan
        self._decoding = asyncio.Semaphore(threads.preprocess_threads)
        self._decoders = AudioDecoderPool(
            workers=threads.preprocess_threads, memory_mb=self.settings.decoder_memory_mb,
            timeout_seconds=self.settings.decode_timeout_seconds,
            max_pending=self.settings.queue_size + threads.preprocess_threads,
            on_worker_restart=lambda reason: metrics.WORKER_RESTARTS.labels("transcription", reason).inc(),
            log_config=(self.root.log_level, self.root.log_format),
        )
        try:
            await self._decoders.warm_up()
        except Exception as exc:
            await self._decoders.close()
            raise ServiceStartError(f"the audio decoder processes did not start: {exc}") from exc
        self._batcher = Batcher(
            "transcription", run_stream=engine.run, max_batch_size=1,
            workers=self.settings.workers, queue_size=self.settings.queue_size,
            queue_setting="transcription.queue_size", observer=metrics.BatchMetrics(),
        )
        self._batcher.start()
        log.info("transcription runtime started", extra={
            "device": plan.device, "device_reason": plan.reason, "workers": self.settings.workers,
            "cpu_threads": engine.cpu_threads, "decode_threads": threads.preprocess_threads,
        })

    def _load_engine(self, plan: DevicePlan) -> transcriber.Transcriber:
        """Resolve, check against its pin, load and warm up the model on `plan`'s device
        (blocking)."""
        resolved = models.resolve(self.settings.model, self.root.model_dir)
        try:
            actual = models.weights_sha256(resolved, self.root.model_dir)
            if actual is not None:
                how = pins.check("transcription", self.settings.model, actual, self.settings.weights_sha256,
                                 "SENSORIUM_TRANSCRIPTION__WEIGHTS_SHA256")
                log.info("transcription weights checked", extra={"sha256": actual, "check": how})
        except ModelError as exc:
            raise ServiceStartError(str(exc)) from None
        threads = thread_counts(plan.device, plan.cpu_threads, self.settings.workers,
                                model_threads=self.settings.cpu_threads)
        compute_type = plan.compute_type if self.settings.compute_type == "auto" \
            else self.settings.compute_type
        engine = transcriber.Transcriber(
            resolved, device=plan.device, compute_type=compute_type,
            cpu_threads=threads.model_threads, workers=self.settings.workers,
            download_root=str(self.root.model_dir), local_files_only=True,
        )
        try:
            engine.load()
            engine.warm_up()
        except Exception as exc:
            error = _start_error(exc, resolved, self.root.model_dir)
            if error is exc:
                raise
            raise error from exc
        return engine

    async def close(self, grace: float | None = None) -> None:
        # Streams in work are stopped: a transcript cut short is reported to its caller as
        # SHUTTING_DOWN, which it can retry elsewhere; waiting for an hour-long file would not do.
        if self._batcher is not None:
            await self._batcher.close(drain=False, grace=grace)
        if self._decoders is not None:
            await self._decoders.close()

    def resolve_options(self, requested: RequestedOptions) -> Options:
        """Validate a caller's options against the loaded model (INVALID_REQUEST if wrong)."""
        if self.engine is None:
            raise _not_ready()
        return transcriber.resolve_options(
            requested, multilingual=self.engine.multilingual, languages=self.engine.languages,
            default_batch_size=self.settings.batch_size,
        )

    async def decode(self, source: AudioSource, *, allow_truncated: bool = False) -> DecodedAudio:
        """Decode off the event loop and the model threads; refuses at once when the model's
        queue is full (it would not take the audio anyway), and truncated audio unless
        `allow_truncated`."""
        batcher = self.batcher
        assert self._decoding is not None
        batcher.check_capacity()
        async with self._decoding, _spooled(source) as path:
            decoded = await self._decode_file(path)
        if decoded.shortfall_seconds and not allow_truncated:
            declared = decoded.declared_seconds or 0.0
            raise SensoriumError(
                Reason.AUDIO_TRUNCATED,
                f"the file declares {declared:.2f} s of audio but only {decoded.duration:.2f} s "
                f"could be decoded: it is truncated or corrupt. Send the complete file, or allow "
                f"truncated audio to transcribe what decodes",
                {"declared_seconds": f"{declared:.3f}", "decoded_seconds": f"{decoded.duration:.3f}"},
            )
        return decoded

    async def _decode_file(self, path: str) -> DecodedAudio:
        """Decode `path` in a decoder process, its samples charged to the budget first."""
        assert self._decoders is not None
        limit = self.settings.max_duration_seconds
        declared = await self._decoders.estimate(path)
        # Encoder padding and estimates from the bitrate are off by a little, not by seconds.
        seconds = limit if declared is None else min(limit, declared * 1.05 + 2.0)
        fd, out = tempfile.mkstemp(prefix="sensorium-audio-", suffix=".f32")
        os.close(fd)
        try:
            with self.budget.hold(_sample_bytes(seconds)) as held:
                report = await self._decoders.decode(path, out, max_seconds=seconds,
                                                     final=seconds >= limit)
                if report.past_limit:  # longer than the container said: charge the limit
                    held.add(_sample_bytes(limit) - held.size)
                    report = await self._decoders.decode(path, out, max_seconds=limit, final=True)
                samples = await asyncio.to_thread(np.fromfile, out, dtype=np.float32)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(out)
        return DecodedAudio(samples, report.container, report.codec, report.declared_seconds,
                            report.skipped_packets)

    async def transcribe(
        self, decoded: DecodedAudio, options: Options, *, deadline: float | None = None
    ) -> AsyncGenerator[Info | Segment, None]:
        """The `Info`, then each `Segment` as the model emits it. `deadline` is on the
        `time.monotonic()` scale."""
        batcher = self.batcher
        transcriber.check_audio(options, decoded.duration)
        declared, truncated = decoded.declared_seconds, bool(decoded.shortfall_seconds)
        if not len(decoded.samples):
            # Header-only: nothing to transcribe, and nothing for the model to detect.
            yield Info(language=options.language or "",
                       language_probability=1.0 if options.language else 0.0, duration=0.0,
                       duration_after_vad=0.0, model=self.model_name, options=options,
                       declared_duration=declared, truncated=truncated)
            return
        # The samples are the bulk of what a waiting call holds: admission on memory.
        with self.budget.hold(decoded.samples.nbytes):
            stream = batcher.submit_stream(Request(decoded.samples, options), deadline)
            async with stream:
                async for piece in stream:
                    if isinstance(piece, Info):
                        piece = dataclasses.replace(piece, declared_duration=declared, truncated=truncated)
                    yield piece


    async def transcribe_file(
        self, path: str | os.PathLike[str], options: RequestedOptions, *,
        allow_truncated: bool = False, deadline: float | None = None,
    ) -> AsyncGenerator[Piece, None]:
        """Validate `options` (cheap), decode the file, then `transcribe` it."""
        resolved = self.resolve_options(options)
        decoded = await self.decode(os.fspath(path), allow_truncated=allow_truncated)
        pieces = self.transcribe(decoded, resolved, deadline=deadline)
        async with contextlib.aclosing(pieces):
            async for piece in pieces:
                yield piece


if TYPE_CHECKING:
    _ENGINE: type[TranscriptionEngine] = TranscriptionRuntime  # mypy: the in-process engine


def _sample_bytes(seconds: float) -> int:
    """Memory of `seconds` of decoded audio (16 kHz mono float32)."""
    return int(seconds * audio.SAMPLE_RATE) * 4


@contextlib.asynccontextmanager
async def _spooled(source: AudioSource) -> AsyncIterator[str]:
    """`source` as a path a decoder process can open: a path as is; bytes or a stream written to
    a temporary file for the duration of the context."""
    if isinstance(source, str | os.PathLike):
        yield os.fspath(source)
        return
    fd, name = tempfile.mkstemp(prefix="sensorium-upload-")
    try:
        with os.fdopen(fd, "wb") as handle:
            if isinstance(source, bytes):
                await asyncio.to_thread(handle.write, source)
            else:
                await asyncio.to_thread(shutil.copyfileobj, source, handle, 1024 * 1024)
        yield name
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)


def _not_ready() -> SensoriumError:
    return SensoriumError(Reason.NOT_READY, "the transcription model is loading; retry shortly",
                          retry_after_seconds=5.0)


def _start_error(exc: Exception, resolved: models.ResolvedModel, model_dir: os.PathLike[str]) -> Exception:
    """A load failure as a `ServiceStartError` saying what to fix; CUDA library failures stay
    as they are, for `load_with_fallback` to recognise."""
    if isinstance(exc, ModelError | DeviceError):
        return ServiceStartError(str(exc))
    if is_cuda_library_error(exc):
        return exc
    if isinstance(exc, ValueError) and "Invalid model size" in str(exc):
        return ServiceStartError(
            f"{exc}. SENSORIUM_TRANSCRIPTION__MODEL takes a Whisper size, a hub repository "
            "(org/name), a local CTranslate2 directory, or packaged:tiny.en / packaged:base"
        )
    if resolved.kind == "hub":
        return ServiceStartError(
            f"cannot load Whisper model {resolved.setting!r} from {model_dir} "
            f"({type(exc).__name__}: {exc}). Servers never download at start-up: run "
            "`sensorium models transcription` where huggingface.co is reachable (same "
            "SENSORIUM_MODEL_DIR), or use a local directory or a packaged: model"
        )
    log.error("cannot load the transcription model", exc_info=exc)
    return ServiceStartError(
        f"cannot load Whisper model {resolved.setting!r} from {resolved.source} "
        f"({type(exc).__name__}: {exc})"
    )
