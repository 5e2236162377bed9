"""The transcription service: gRPC messages in and out, faster-whisper behind a Batcher.

A call decodes its audio (PyAV, in a thread, bounded by the preprocessing thread count) before
it queues for a model worker, so the model threads only ever run the model. Each worker runs
one file at a time (no cross-request batching: faster-whisper batches windows of one file
only); the stream call sends each segment as the worker emits it, and the unary call collects
the same stream. Leaving a stream early, cancelling, or a passed deadline stops the worker
within one segment.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator
from typing import IO, Any

import grpc

from sensorium import metrics
from sensorium.batching import Batcher
from sensorium.device import (
    DeviceError,
    DevicePlan,
    is_cuda_library_error,
    resolve_device,
    thread_counts,
)
from sensorium.errors import Reason, SensoriumError
from sensorium.hosting import HostedService, ServiceStartError, ensure_unary_fits
from sensorium.models import ModelError
from sensorium.settings import Settings
from sensorium.transcription import audio, models, transcriber
from sensorium.transcription.transcriber import Info, Piece, Request, RequestedOptions, Segment
from sensorium.transcription.v1 import transcription_service_pb2 as pb
from sensorium.transcription.v1 import transcription_service_pb2_grpc as pb_grpc
from sensorium.type.v1 import geometry_pb2
from sensorium.uploads import ByteBudget, check_size, split_stream, spool_chunks

log = logging.getLogger("sensorium.transcription")

_SIZE_SETTING = "SENSORIUM_TRANSCRIPTION__MAX_AUDIO_BYTES"
_TASKS: dict[int, transcriber.Task] = {
    pb.TASK_UNSPECIFIED: "transcribe", pb.TASK_TRANSCRIBE: "transcribe",
    pb.TASK_TRANSLATE: "translate",
}
_TASK_ENUM = {"transcribe": pb.TASK_TRANSCRIBE, "translate": pb.TASK_TRANSLATE}


class TranscriptionService(HostedService):
    name = "transcription"
    full_name = "sensorium.transcription.v1.TranscriptionService"

    def __init__(self, settings: Settings, budget: ByteBudget) -> None:
        super().__init__()
        self.root = settings
        self.settings = settings.transcription
        self.budget = budget
        self.engine: transcriber.Transcriber | None = None
        self.batcher: Batcher[Request, Piece] | None = None
        self.plan: DevicePlan | None = None
        self._decoding: asyncio.Semaphore | None = None

    def register(self, server: grpc.aio.Server) -> None:
        pb_grpc.add_TranscriptionServiceServicer_to_server(_Servicer(self), server)

    async def start(self) -> None:
        try:
            engine, plan = await asyncio.to_thread(self._load)
        except (ModelError, DeviceError) as exc:
            raise ServiceStartError(str(exc)) from None
        self.engine, self.plan = engine, plan
        threads = thread_counts(plan.device, plan.cpu_threads, self.settings.workers)
        self._decoding = asyncio.Semaphore(threads.preprocess_threads)
        self.batcher = Batcher(
            "transcription", run_stream=engine.run, max_batch_size=1,
            workers=self.settings.workers, queue_size=self.settings.queue_size,
            observer=metrics.BatchMetrics(),
        )
        self.batcher.start()

    def _load(self) -> tuple[transcriber.Transcriber, DevicePlan]:
        """Resolve, load and warm up the model (blocking; runs in a thread)."""
        plan = resolve_device(self.root.device, libraries=("ctranslate2",))
        resolved = models.resolve(self.settings.model, self.root.model_dir)
        try:
            return self._load_on(plan, resolved), plan
        except Exception as exc:
            if not (plan.is_cuda and self.root.device == "auto" and is_cuda_library_error(exc)):
                raise _start_error(exc, resolved, self.root) from exc
            log.warning("CUDA failed at the first kernel, transcribing on the CPU: %s", exc)
            plan = plan.on_cpu(f"CUDA library failure at warm-up: {exc}")
            try:
                return self._load_on(plan, resolved), plan
            except Exception as again:
                raise _start_error(again, resolved, self.root) from again

    def _load_on(self, plan: DevicePlan, resolved: models.ResolvedModel) -> transcriber.Transcriber:
        workers = self.settings.workers
        threads = thread_counts(plan.device, plan.cpu_threads, workers,
                                model_threads=self.settings.cpu_threads)
        compute_type = plan.compute_type if self.settings.compute_type == "auto" \
            else self.settings.compute_type
        engine = transcriber.Transcriber(
            resolved, device=plan.device, compute_type=compute_type,
            cpu_threads=threads.model_threads, workers=workers,
            download_root=str(self.root.model_dir), local_files_only=True,
        )
        engine.load()
        engine.warm_up()
        return engine

    async def stop(self) -> None:
        if self.batcher is not None:
            await self.batcher.close(drain=False, grace=self.root.shutdown_grace_seconds)

    # ---- one call ------------------------------------------------------------------------

    def options(self, message: pb.TranscriptionOptions) -> transcriber.Options:
        assert self.engine is not None, "start() runs before any call is admitted"
        if message.task not in _TASKS:
            raise SensoriumError(Reason.INVALID_REQUEST, f"unknown task {message.task}")
        requested = RequestedOptions(
            language=message.language, task=_TASKS[message.task], beam_size=message.beam_size,
            word_timestamps=message.word_timestamps,
            vad_filter=message.vad_filter if message.HasField("vad_filter") else None,
            initial_prompt=message.initial_prompt, hotwords=message.hotwords,
            temperatures=tuple(message.temperatures),
            condition_on_previous_text=(message.condition_on_previous_text
                                        if message.HasField("condition_on_previous_text") else None),
            batched=message.batched, batch_size=message.batch_size,
        )
        return transcriber.resolve_options(
            requested, multilingual=self.engine.multilingual, languages=self.engine.languages,
            default_batch_size=self.settings.batch_size,
        )

    async def decode(self, source: str | IO[bytes], allow_truncated: bool) -> audio.DecodedAudio:
        """Decode off the event loop and the model threads; at most `preprocess_threads` at once."""
        assert self._decoding is not None and self.batcher is not None
        if self.batcher.queue_depth >= self.settings.queue_size:
            # Refuse before the decoding work, not after it: the queue will not take it anyway.
            raise SensoriumError(
                Reason.OVERLOADED, "the transcription queue is full; retry shortly",
                retry_after_seconds=5.0,
            )
        stop = threading.Event()
        async with self._decoding:
            try:
                decoded = await asyncio.to_thread(
                    audio.decode, source, max_seconds=self.settings.max_duration_seconds,
                    stop=stop.is_set,
                )
            except BaseException:
                stop.set()  # a cancelled call: the decoding thread ends at its next packet
                raise
        if decoded.shortfall_seconds and not allow_truncated:
            declared = decoded.declared_seconds or 0.0
            raise SensoriumError(
                Reason.AUDIO_TRUNCATED,
                f"the file declares {declared:.2f} s of audio but only {decoded.duration:.2f} s "
                f"could be decoded: it is truncated or corrupt. Send the complete file, or set "
                f"options.allow_truncated to transcribe what decodes",
                {"declared_seconds": f"{declared:.3f}", "decoded_seconds": f"{decoded.duration:.3f}"},
            )
        return decoded

    async def transcribe(
        self, decoded: audio.DecodedAudio, options: transcriber.Options,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncGenerator[pb.StreamTranscribeResponse, None]:
        """Info, then segments as the worker emits them, then the summary."""
        assert self.batcher is not None
        started = time.perf_counter()
        transcriber.check_audio(options, decoded.duration)
        if not len(decoded.samples):
            # Header-only: nothing to transcribe, and nothing for the model to detect.
            yield pb.StreamTranscribeResponse(info=_info(_empty_info(options, self.settings.model),
                                                         decoded))
            yield pb.StreamTranscribeResponse(summary=_summary(0, 0.0, 0.0))
            return
        # The decoded samples are the bulk of the memory a call holds while it waits: count them
        # against the server's byte budget (admission on memory) until the call ends.
        held = decoded.samples.nbytes
        self.budget.take(held)
        try:
            remaining = context.time_remaining()
            deadline = None if remaining is None else self.batcher.clock.now() + remaining
            count = 0
            async with self.batcher.submit_stream(Request(decoded.samples, options), deadline) as stream:
                async for piece in stream:
                    if isinstance(piece, Info):
                        yield pb.StreamTranscribeResponse(info=_info(piece, decoded))
                    elif isinstance(piece, Segment):
                        count += 1
                        yield pb.StreamTranscribeResponse(segment=_segment(piece))
        finally:
            self.budget.give(held)
        seconds = time.perf_counter() - started
        yield pb.StreamTranscribeResponse(summary=_summary(count, seconds, decoded.duration))


class _Servicer(pb_grpc.TranscriptionServiceServicer):
    def __init__(self, service: TranscriptionService) -> None:
        self.service = service

    async def Transcribe(
        self, request: pb.TranscribeRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.TranscribeResponse:
        started = time.perf_counter()
        options = self.service.options(request.options)
        size = len(request.content)
        check_size(size, self.service.settings.max_audio_bytes, "audio file", _SIZE_SETTING)
        with _held(self.service.budget, size):
            decoded = await self.service.decode(io.BytesIO(request.content),
                                                request.options.allow_truncated)
        response = pb.TranscribeResponse()
        async with contextlib.aclosing(self.service.transcribe(decoded, options, context)) as results:
            async for message in results:
                kind = message.WhichOneof("result")
                if kind == "info":
                    response.info.CopyFrom(message.info)
                elif kind == "segment":
                    response.segments.append(message.segment)
        seconds = time.perf_counter() - started
        response.summary.CopyFrom(_summary(len(response.segments), seconds, decoded.duration))
        ensure_unary_fits(response, "transcript", "StreamTranscribe")
        return response

    async def StreamTranscribe(
        self,
        requests: AsyncIterator[pb.StreamTranscribeRequest],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[pb.StreamTranscribeResponse]:
        started = time.perf_counter()
        header, chunks = await split_stream(requests)
        options = self.service.options(header.options)
        async with spool_chunks(
            chunks, declared_size=header.upload.size_bytes, filename=header.upload.filename,
            budget=self.service.budget, limit=self.service.settings.max_audio_bytes,
            what="audio file", setting=_SIZE_SETTING,
        ) as upload:
            decoded = await self.service.decode(str(upload.path), header.options.allow_truncated)
        async with contextlib.aclosing(self.service.transcribe(decoded, options, context)) as results:
            async for message in results:
                if message.WhichOneof("result") == "summary":
                    # Include receiving and decoding the upload, as the unary call does.
                    seconds = time.perf_counter() - started
                    message = pb.StreamTranscribeResponse(
                        summary=_summary(message.summary.segment_count, seconds, decoded.duration))
                yield message


@contextlib.contextmanager
def _held(budget: ByteBudget, size: int) -> Any:
    budget.take(size)
    try:
        yield
    finally:
        budget.give(size)


def _start_error(exc: BaseException, resolved: models.ResolvedModel, settings: Settings) -> ServiceStartError:
    if isinstance(exc, ModelError | DeviceError):
        return ServiceStartError(str(exc))
    if isinstance(exc, ValueError) and "Invalid model size" in str(exc):
        return ServiceStartError(
            f"{exc}. SENSORIUM_TRANSCRIPTION__MODEL takes a Whisper size, a hub repository "
            "(org/name), a local CTranslate2 directory, or packaged:tiny.en / packaged:base"
        )
    if resolved.kind == "hub":
        return ServiceStartError(
            f"cannot load Whisper model {resolved.setting!r} from {settings.model_dir} "
            f"({type(exc).__name__}: {exc}). Servers never download at start-up: run "
            "`sensorium models transcription` where huggingface.co is reachable (same "
            "SENSORIUM_MODEL_DIR), or use a local directory or a packaged: model"
        )
    log.error("cannot load the transcription model", exc_info=exc)
    return ServiceStartError(
        f"cannot load Whisper model {resolved.setting!r} from {resolved.source} "
        f"({type(exc).__name__}: {exc})"
    )


def _empty_info(options: transcriber.Options, model: str) -> Info:
    return Info(language=options.language or "", language_probability=1.0 if options.language else 0.0,
                duration=0.0, duration_after_vad=0.0, model=model, options=options)


def _info(info: Info, decoded: audio.DecodedAudio) -> pb.TranscriptionInfo:
    options = info.options
    return pb.TranscriptionInfo(
        language=info.language, language_probability=info.language_probability,
        duration_seconds=info.duration, duration_after_vad_seconds=info.duration_after_vad,
        model=info.model, batched=options.batched, vad_filter=options.vad_filter,
        condition_on_previous_text=options.condition_on_previous_text,
        task=_TASK_ENUM[options.task], declared_duration_seconds=decoded.declared_seconds or 0.0,
        truncated=bool(decoded.shortfall_seconds),
    )


def _time(start: float, end: float) -> geometry_pb2.TimeRange:
    return geometry_pb2.TimeRange(start_seconds=start, end_seconds=end)


def _segment(segment: Segment) -> pb.Segment:
    return pb.Segment(
        index=segment.index, time=_time(segment.start, segment.end), text=segment.text,
        words=[pb.Word(text=w.text, time=_time(w.start, w.end), probability=w.probability)
               for w in segment.words],
        avg_logprob=segment.avg_logprob, no_speech_probability=segment.no_speech_probability,
        compression_ratio=segment.compression_ratio, temperature=segment.temperature,
    )


def _summary(count: int, seconds: float, duration: float) -> pb.TranscriptionSummary:
    return pb.TranscriptionSummary(
        segment_count=count, processing_seconds=seconds,
        real_time_factor=seconds / duration if duration > 0 else 0.0,
    )


def create(settings: Settings, budget: ByteBudget) -> HostedService:
    return TranscriptionService(settings, budget)
