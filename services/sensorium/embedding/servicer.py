"""The embedding service's gRPC face: the `EmbeddingRuntime` behind, `embedding.wire` between.

A request's content counts against the process's byte budget while it is worked on (the
runtime holds it).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator

import grpc

from sensorium.embedding import wire
from sensorium.embedding.api import ImageOutcome, TextOutcome
from sensorium.embedding.runtime import EmbeddingRuntime
from sensorium.embedding.v1 import embedding_service_pb2 as pb
from sensorium.embedding.v1 import embedding_service_pb2_grpc as pb_grpc
from sensorium.errors import Reason, SensoriumError
from sensorium.rpc import deadline_of

Context = grpc.aio.ServicerContext[object, object]


def add_to_server(server: grpc.aio.Server, runtime: EmbeddingRuntime) -> None:
    pb_grpc.add_EmbeddingServiceServicer_to_server(_Servicer(runtime), server)


async def stream_embed(
    runtime: EmbeddingRuntime, requests: AsyncIterator[pb.StreamEmbedRequest], deadline: float | None
) -> AsyncGenerator[pb.StreamEmbedResponse, None]:
    """One answer per item, in the order they are done; at most `max_items_per_request` items in
    work at once (past it the stream stops reading, which slows the sender)."""
    answers: asyncio.Queue[pb.StreamEmbedResponse | BaseException | None] = asyncio.Queue()
    window = asyncio.Semaphore(runtime.settings.max_items_per_request)
    pending: set[asyncio.Task[None]] = set()

    async def answer(request: pb.StreamEmbedRequest) -> None:
        try:
            await answers.put(await _stream_item(runtime, request, deadline))
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            await answers.put(exc)
        finally:
            window.release()

    async def read() -> None:
        try:
            async for request in requests:
                await window.acquire()
                task = asyncio.ensure_future(answer(request))
                pending.add(task)
                task.add_done_callback(pending.discard)
            if pending:
                await asyncio.wait(set(pending))
            await answers.put(None)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            await answers.put(exc)

    reader = asyncio.ensure_future(read())
    try:
        while (message := await answers.get()) is not None:
            if isinstance(message, BaseException):
                raise message
            yield message
    finally:
        reader.cancel()
        for task in list(pending):
            task.cancel()


async def _stream_item(
    runtime: EmbeddingRuntime, request: pb.StreamEmbedRequest, deadline: float | None
) -> pb.StreamEmbedResponse:
    kind = request.WhichOneof("input")
    strict, normalized = wire.options_from_message(request.options)
    outcome: TextOutcome | ImageOutcome
    try:
        if kind == "text":
            outcome = await runtime.embed_text(request.text, strict=strict, normalize=normalized,
                                               deadline=deadline)
        elif kind == "image":
            outcome = await runtime.embed_image(request.image, normalize=normalized, deadline=deadline)
        else:
            outcome = ImageOutcome(error=SensoriumError(
                Reason.INPUT_EMPTY, "the item has neither `text` nor `image`; set one"))
    except SensoriumError as error:
        if error.reason != Reason.GPU_OUT_OF_MEMORY:
            raise
        outcome = ImageOutcome(error=error)  # in a stream, only this item fails
    return wire.stream_answer(request.id, outcome, runtime.space, normalized)


class _Servicer(pb_grpc.EmbeddingServiceServicer):
    def __init__(self, runtime: EmbeddingRuntime) -> None:
        self.runtime = runtime

    async def EmbedTexts(self, request: pb.EmbedTextsRequest, context: Context) -> pb.EmbedTextsResponse:
        strict, normalized = wire.options_from_message(request.options)
        outcomes = await self.runtime.embed_texts(list(request.texts), strict=strict, normalize=normalized,
                                                  deadline=deadline_of(context))
        return wire.texts_response(outcomes, self.runtime.space, normalized)

    async def EmbedImages(self, request: pb.EmbedImagesRequest, context: Context) -> pb.EmbedImagesResponse:
        _, normalized = wire.options_from_message(request.options)
        outcomes = await self.runtime.embed_images(list(request.images), normalize=normalized,
                                                   deadline=deadline_of(context))
        return wire.images_response(outcomes, self.runtime.space, normalized)

    async def Score(self, request: pb.ScoreRequest, context: Context) -> pb.ScoreResponse:
        scores = await self.runtime.score(list(request.images), list(request.texts),
                                          deadline=deadline_of(context))
        return wire.scores_to_message(scores)

    async def GetEmbeddingSpace(
        self, request: pb.GetEmbeddingSpaceRequest, context: Context
    ) -> pb.GetEmbeddingSpaceResponse:
        return wire.space_info_to_message(await self.runtime.describe())

    async def StreamEmbed(
        self, requests: AsyncIterator[pb.StreamEmbedRequest], context: Context
    ) -> AsyncIterator[pb.StreamEmbedResponse]:
        answers = stream_embed(self.runtime, requests, deadline_of(context))
        async with contextlib.aclosing(answers):
            async for answer in answers:
                yield answer
