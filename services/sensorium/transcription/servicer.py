"""The transcription service's gRPC face: protobuf in and out, the `TranscriptionRuntime` behind.

`decode_request` and `transcript_messages` make the responses from a file without any gRPC
context, so the in-process CLI gives exactly what a server would. Uploads are released once
decoded; the decoded samples are held in the byte budget by the runtime until the call ends.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import grpc

from sensorium.errors import Reason, SensoriumError
from sensorium.hosting import deadline_of, ensure_unary_fits
from sensorium.transcription import transcriber
from sensorium.transcription.audio import DecodedAudio
from sensorium.transcription.runtime import AudioSource, TranscriptionRuntime
from sensorium.transcription.transcriber import Info, Options, RequestedOptions, Segment
from sensorium.transcription.v1 import transcription_service_pb2 as pb
from sensorium.transcription.v1 import transcription_service_pb2_grpc as pb_grpc
from sensorium.type.v1 import geometry_pb2
from sensorium.uploads import check_size, split_stream, spool_chunks

_SIZE_SETTING = "transcription.max_audio_bytes"
_TASKS: dict[int, transcriber.Task] = {
    pb.TASK_UNSPECIFIED: "transcribe", pb.TASK_TRANSCRIBE: "transcribe",
    pb.TASK_TRANSLATE: "translate",
}
_TASK_ENUM = {"transcribe": pb.TASK_TRANSCRIBE, "translate": pb.TASK_TRANSLATE}


def add_to_server(server: grpc.aio.Server, runtime: TranscriptionRuntime) -> None:
    pb_grpc.add_TranscriptionServiceServicer_to_server(_Servicer(runtime), server)


def requested_options(message: pb.TranscriptionOptions) -> RequestedOptions:
    if message.task not in _TASKS:
        raise SensoriumError(Reason.INVALID_REQUEST, f"unknown task {message.task}")
    return RequestedOptions(
        language=message.language, task=_TASKS[message.task], beam_size=message.beam_size,
        word_timestamps=message.word_timestamps,
        vad_filter=message.vad_filter if message.HasField("vad_filter") else None,
        initial_prompt=message.initial_prompt, hotwords=message.hotwords,
        temperatures=tuple(message.temperatures),
        condition_on_previous_text=(message.condition_on_previous_text
                                    if message.HasField("condition_on_previous_text") else None),
        batched=message.batched, batch_size=message.batch_size,
    )


async def decode_request(
    runtime: TranscriptionRuntime, source: AudioSource, message: pb.TranscriptionOptions
) -> tuple[DecodedAudio, Options]:
    """Validate the options first (cheap), then decode the audio."""
    options = runtime.resolve_options(requested_options(message))
    decoded = await runtime.decode(source, allow_truncated=message.allow_truncated)
    return decoded, options


async def transcript_messages(
    runtime: TranscriptionRuntime, decoded: DecodedAudio, options: Options, *,
    deadline: float | None, started: float,
) -> AsyncGenerator[pb.StreamTranscribeResponse, None]:
    """Info, then each segment as the worker emits it, then the summary (its time counted
    from `started`, a `time.perf_counter()` value taken when the call began)."""
    count = 0
    pieces = runtime.transcribe(decoded, options, deadline=deadline)
    async with contextlib.aclosing(pieces):
        async for piece in pieces:
            if isinstance(piece, Info):
                yield pb.StreamTranscribeResponse(info=_info(piece))
            elif isinstance(piece, Segment):
                count += 1
                yield pb.StreamTranscribeResponse(segment=_segment(piece))
    seconds = time.perf_counter() - started
    yield pb.StreamTranscribeResponse(summary=_summary(count, seconds, decoded.duration))


async def transcribe_content(
    runtime: TranscriptionRuntime, content: bytes, message: pb.TranscriptionOptions,
    deadline: float | None,
) -> pb.TranscribeResponse:
    """The unary call's response for an audio file's bytes."""
    started = time.perf_counter()
    check_size(len(content), runtime.settings.max_audio_bytes, "audio file", _SIZE_SETTING)
    with runtime.budget.hold(len(content)):
        decoded, options = await decode_request(runtime, content, message)
    response = pb.TranscribeResponse()
    messages = transcript_messages(runtime, decoded, options, deadline=deadline, started=started)
    async with contextlib.aclosing(messages):
        async for item in messages:
            kind = item.WhichOneof("result")
            if kind == "info":
                response.info.CopyFrom(item.info)
            elif kind == "segment":
                response.segments.append(item.segment)
            elif kind == "summary":
                response.summary.CopyFrom(item.summary)
    ensure_unary_fits(response, "transcript", "StreamTranscribe")
    return response


class _Servicer(pb_grpc.TranscriptionServiceServicer):
    def __init__(self, runtime: TranscriptionRuntime) -> None:
        self.runtime = runtime

    async def Transcribe(
        self, request: pb.TranscribeRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.TranscribeResponse:
        return await transcribe_content(self.runtime, request.content, request.options,
                                        deadline_of(context))

    async def StreamTranscribe(
        self,
        requests: AsyncIterator[pb.StreamTranscribeRequest],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[pb.StreamTranscribeResponse]:
        started = time.perf_counter()
        header, chunks = await split_stream(requests)
        async with spool_chunks(
            chunks, declared_size=header.upload.size_bytes, filename=header.upload.filename,
            budget=self.runtime.budget, limit=self.runtime.settings.max_audio_bytes,
            what="audio file", setting=_SIZE_SETTING,
        ) as upload:
            decoded, options = await decode_request(self.runtime, str(upload.path), header.options)
        messages = transcript_messages(self.runtime, decoded, options, deadline=deadline_of(context),
                                       started=started)
        async with contextlib.aclosing(messages):
            async for message in messages:
                yield message


def _info(info: Info) -> pb.TranscriptionInfo:
    options = info.options
    return pb.TranscriptionInfo(
        language=info.language, language_probability=info.language_probability,
        duration_seconds=info.duration, duration_after_vad_seconds=info.duration_after_vad,
        model=info.model, batched=options.batched, vad_filter=options.vad_filter,
        condition_on_previous_text=options.condition_on_previous_text,
        task=_TASK_ENUM[options.task], declared_duration_seconds=info.declared_duration or 0.0,
        truncated=info.truncated,
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
