"""The embedding service's gRPC face: protobuf in and out, the `EmbeddingRuntime` behind.

The `*_response` functions and `stream_embed` make the responses without any gRPC context, so
the in-process CLI gives exactly what a server would. A request's content counts against the
process's byte budget while it is worked on.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Iterable
from typing import Any

import grpc

from sensorium.embedding.runtime import EmbeddingRuntime, ImageOutcome, TextOutcome
from sensorium.embedding.v1 import embedding_service_pb2 as pb
from sensorium.embedding.v1 import embedding_service_pb2_grpc as pb_grpc
from sensorium.errors import Reason, SensoriumError
from sensorium.hosting import deadline_of
from sensorium.status import item_error
from sensorium.type.v1 import embedding_pb2

_SCORING = {"softmax": pb.SCORING_FUNCTION_SOFTMAX, "sigmoid": pb.SCORING_FUNCTION_SIGMOID}


def add_to_server(server: grpc.aio.Server, runtime: EmbeddingRuntime) -> None:
    pb_grpc.add_EmbeddingServiceServicer_to_server(_Servicer(runtime), server)


def space_message(runtime: EmbeddingRuntime, normalized: bool = True) -> embedding_pb2.EmbeddingSpace:
    space = runtime.space
    return embedding_pb2.EmbeddingSpace(
        model=space.model, pretrained=space.pretrained, weights_sha256=space.weights_sha256,
        dimension=space.dimension, normalized=normalized,
    )


def _strict(runtime: EmbeddingRuntime, options: pb.EmbedOptions) -> bool | None:
    if options.truncation == pb.TRUNCATION_MODE_UNSPECIFIED:
        return None  # the runtime's setting
    return bool(options.truncation == pb.TRUNCATION_MODE_REJECT)


def _size(payloads: Iterable[bytes | str]) -> int:
    return sum(len(p) for p in payloads)


def _vector(runtime: EmbeddingRuntime, values: Any, normalized: bool) -> embedding_pb2.Vector:
    return embedding_pb2.Vector(values=values.tolist(), space=space_message(runtime, normalized))


def _text_result(runtime: EmbeddingRuntime, outcome: TextOutcome, normalized: bool) -> pb.TextEmbedding:
    if outcome.error is not None:
        return pb.TextEmbedding(error=item_error(outcome.error))
    return pb.TextEmbedding(vector=_vector(runtime, outcome.vector, normalized),
                            truncated=outcome.truncated, token_count=outcome.token_count)


def _image_result(runtime: EmbeddingRuntime, outcome: ImageOutcome, normalized: bool) -> pb.ImageEmbedding:
    if outcome.error is not None:
        return pb.ImageEmbedding(error=item_error(outcome.error))
    return pb.ImageEmbedding(vector=_vector(runtime, outcome.vector, normalized),
                             width=outcome.width, height=outcome.height)


async def embed_texts_response(
    runtime: EmbeddingRuntime, request: pb.EmbedTextsRequest, deadline: float | None
) -> pb.EmbedTextsResponse:
    normalized = not request.options.unnormalized
    with runtime.budget.hold(_size(request.texts)):
        outcomes = await runtime.embed_texts(list(request.texts), strict=_strict(runtime, request.options),
                                             normalize=normalized, deadline=deadline)
    return pb.EmbedTextsResponse(results=[_text_result(runtime, o, normalized) for o in outcomes])


async def embed_images_response(
    runtime: EmbeddingRuntime, request: pb.EmbedImagesRequest, deadline: float | None
) -> pb.EmbedImagesResponse:
    normalized = not request.options.unnormalized
    with runtime.budget.hold(_size(request.images)):
        outcomes = await runtime.embed_images(list(request.images), normalize=normalized, deadline=deadline)
    return pb.EmbedImagesResponse(results=[_image_result(runtime, o, normalized) for o in outcomes])


async def score_response(
    runtime: EmbeddingRuntime, request: pb.ScoreRequest, deadline: float | None
) -> pb.ScoreResponse:
    with runtime.budget.hold(_size([*request.images, *request.texts])):
        rows = await runtime.score(list(request.images), list(request.texts), deadline=deadline)
    return pb.ScoreResponse(
        rows=[pb.ScoreRow(error=item_error(row.error)) if row.error is not None
              else pb.ScoreRow(similarities=row.similarities, probabilities=row.probabilities)
              for row in rows],
        scoring_function=_SCORING[runtime.scoring], space=space_message(runtime),
    )


def space_response(runtime: EmbeddingRuntime) -> pb.GetEmbeddingSpaceResponse:
    assert runtime.plan is not None
    return pb.GetEmbeddingSpaceResponse(
        space=space_message(runtime), context_length=runtime.context_length,
        scoring_function=_SCORING[runtime.scoring],
        max_image_pixels=runtime.settings.max_image_pixels,
        max_image_bytes=runtime.settings.max_image_bytes, device=runtime.plan.device,
    )


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
    normalized = not request.options.unnormalized
    outcome: TextOutcome | ImageOutcome
    try:
        if kind == "text":
            with runtime.budget.hold(len(request.text)):
                outcome = await runtime.embed_text(request.text, strict=_strict(runtime, request.options),
                                                   normalize=normalized, deadline=deadline)
        elif kind == "image":
            with runtime.budget.hold(len(request.image)):
                outcome = await runtime.embed_image(request.image, normalize=normalized, deadline=deadline)
        else:
            outcome = ImageOutcome(error=SensoriumError(
                Reason.INPUT_EMPTY, "the item has neither `text` nor `image`; set one"))
    except SensoriumError as error:
        if error.reason != Reason.GPU_OUT_OF_MEMORY:
            raise
        outcome = ImageOutcome(error=error)  # in a stream, only this item fails
    if outcome.error is not None:
        return pb.StreamEmbedResponse(id=request.id, error=item_error(outcome.error))
    truncated = outcome.truncated if isinstance(outcome, TextOutcome) else False
    return pb.StreamEmbedResponse(
        id=request.id, vector=_vector(runtime, outcome.vector, normalized), truncated=truncated
    )


class _Servicer(pb_grpc.EmbeddingServiceServicer):
    def __init__(self, runtime: EmbeddingRuntime) -> None:
        self.runtime = runtime

    async def EmbedTexts(
        self, request: pb.EmbedTextsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.EmbedTextsResponse:
        return await embed_texts_response(self.runtime, request, deadline_of(context))

    async def EmbedImages(
        self, request: pb.EmbedImagesRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.EmbedImagesResponse:
        return await embed_images_response(self.runtime, request, deadline_of(context))

    async def Score(
        self, request: pb.ScoreRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ScoreResponse:
        return await score_response(self.runtime, request, deadline_of(context))

    async def GetEmbeddingSpace(
        self, request: pb.GetEmbeddingSpaceRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.GetEmbeddingSpaceResponse:
        return space_response(self.runtime)

    async def StreamEmbed(
        self, requests: AsyncIterator[pb.StreamEmbedRequest],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[pb.StreamEmbedResponse]:
        answers = stream_embed(self.runtime, requests, deadline_of(context))
        async with contextlib.aclosing(answers):
            async for answer in answers:
                yield answer
