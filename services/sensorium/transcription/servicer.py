"""The transcription service's gRPC face: uploads spooled, the `TranscriptionRuntime` behind,
`transcription.wire` between.

Uploads are released once decoded; the decoded samples are held in the byte budget by the
runtime until the call ends.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator

import grpc

from sensorium.rpc import UnaryBudget, deadline_of, ensure_unary_fits
from sensorium.transcription import wire
from sensorium.transcription.api import Info, Options, Segment, TranscriptionSummary
from sensorium.transcription.audio import DecodedAudio
from sensorium.transcription.runtime import AudioSource, TranscriptionRuntime
from sensorium.transcription.v1 import transcription_service_pb2 as pb
from sensorium.transcription.v1 import transcription_service_pb2_grpc as pb_grpc
from sensorium.uploads import check_size, split_stream, spool_chunks

_SIZE_SETTING = "transcription.max_audio_bytes"
Context = grpc.aio.ServicerContext[object, object]


def add_to_server(server: grpc.aio.Server, runtime: TranscriptionRuntime) -> None:
    pb_grpc.add_TranscriptionServiceServicer_to_server(_Servicer(runtime), server)


async def decode_request(
    runtime: TranscriptionRuntime, source: AudioSource, message: pb.TranscriptionOptions
) -> tuple[DecodedAudio, Options]:
    """Validate the options first (cheap), then decode the audio."""
    options = runtime.resolve_options(wire.options_from_message(message))
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
                yield pb.StreamTranscribeResponse(info=wire.info_to_message(piece))
            elif isinstance(piece, Segment):
                count += 1
                yield pb.StreamTranscribeResponse(segment=wire.segment_to_message(piece))
    summary = TranscriptionSummary.of(count, time.perf_counter() - started, decoded.duration)
    yield pb.StreamTranscribeResponse(summary=wire.summary_to_message(summary))


async def transcribe_content(
    runtime: TranscriptionRuntime, content: bytes, message: pb.TranscriptionOptions,
    deadline: float | None,
) -> pb.TranscribeResponse:
    """The unary call's response for an audio file's bytes."""
    started = time.perf_counter()
    check_size(len(content), runtime.settings.max_audio_bytes, "audio file", _SIZE_SETTING)
    with runtime.budget.hold(len(content)):
        decoded, options = await decode_request(runtime, content, message)
    info: Info | None = None
    segments: list[Segment] = []
    budget = UnaryBudget("transcript", "StreamTranscribe")
    pieces = runtime.transcribe(decoded, options, deadline=deadline)
    async with contextlib.aclosing(pieces):  # leaving early stops the model
        async for piece in pieces:
            if isinstance(piece, Info):
                info = piece
            else:
                budget.add(wire.segment_to_message(piece))
                segments.append(piece)
    summary = TranscriptionSummary.of(len(segments), time.perf_counter() - started, decoded.duration)
    response = wire.transcript_response(info, segments, summary)
    ensure_unary_fits(response, "transcript", "StreamTranscribe")
    return response


class _Servicer(pb_grpc.TranscriptionServiceServicer):
    def __init__(self, runtime: TranscriptionRuntime) -> None:
        self.runtime = runtime

    async def Transcribe(self, request: pb.TranscribeRequest, context: Context) -> pb.TranscribeResponse:
        return await transcribe_content(self.runtime, request.content, request.options,
                                        deadline_of(context))

    async def StreamTranscribe(
        self, requests: AsyncIterator[pb.StreamTranscribeRequest], context: Context
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
