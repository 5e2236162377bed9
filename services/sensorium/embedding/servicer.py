"""The embedding service: gRPC messages in and out, open_clip behind the Batcher.

Every item (a text or an image) is decoded / tokenized in the preprocessing thread pool, then
submitted to the Batcher on its own, so single-image calls from many clients are embedded
together, and the model thread only ever sees ready tensors. Results come back raw and are
L2-normalized here unless the caller asks otherwise.

Per-item errors (empty, undecodable or too large images, over-long texts in strict mode) are
fields of the results, and the other items succeed; a request of only bad items still answers
OK. Call-level failures: no items or too many (INVALID_ARGUMENT), a full queue (OVERLOADED),
GPU out of memory on a single item (RESOURCE_EXHAUSTED; in a stream, that item's error),
shutting down (UNAVAILABLE).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc

from sensorium import metrics
from sensorium.batching import Batcher, split_on_error
from sensorium.device import (
    DeviceError,
    DevicePlan,
    is_cuda_library_error,
    is_cuda_oom,
    resolve_device,
    thread_counts,
)
from sensorium.embedding.v1 import embedding_service_pb2 as pb
from sensorium.embedding.v1 import embedding_service_pb2_grpc as pb_grpc
from sensorium.errors import Reason, SensoriumError, item_error
from sensorium.hosting import HostedService, ServiceStartError
from sensorium.settings import Settings
from sensorium.type.v1 import embedding_pb2
from sensorium.uploads import ByteBudget

log = logging.getLogger("sensorium.embedding")
T = TypeVar("T")

# Failures that belong to one item: the others in the same request still succeed.
ITEM_REASONS = frozenset({
    Reason.INPUT_EMPTY, Reason.INPUT_TOO_LARGE, Reason.IMAGE_UNDECODABLE, Reason.IMAGE_TOO_LARGE,
    Reason.TEXT_TOO_LONG,
})
_SCORING = {"softmax": pb.SCORING_FUNCTION_SOFTMAX, "sigmoid": pb.SCORING_FUNCTION_SIGMOID}


@dataclass(frozen=True)
class Outcome:
    """One item's result: a vector (raw) or an item error, with what the item reported."""

    vector: Any = None
    error: SensoriumError | None = None
    width: int = 0
    height: int = 0
    truncated: bool = False
    token_count: int = 0


class EmbeddingService(HostedService):
    name = "embedding"
    full_name = "sensorium.embedding.v1.EmbeddingService"

    def __init__(self, settings: Settings, budget: ByteBudget) -> None:
        super().__init__()
        self.root = settings
        self.settings = settings.embedding
        self.budget = budget
        self.engine: Any = None  # sensorium.embedding.embedder.Embedder once started
        self.plan: DevicePlan | None = None
        self.batcher: Batcher[Any, Any] | None = None
        self.pool: ThreadPoolExecutor | None = None

    def register(self, server: grpc.aio.Server) -> None:
        pb_grpc.add_EmbeddingServiceServicer_to_server(_Servicer(self), server)

    async def start(self) -> None:
        try:
            import torch

            from sensorium.embedding.embedder import Embedder, EngineError
        except ImportError as exc:
            raise ServiceStartError(
                f"the embedding engine is not installed ({exc}); install sensorium[embedding]"
            ) from exc
        try:
            plan = resolve_device(self.root.device, libraries=("torch",))
        except DeviceError as exc:
            raise ServiceStartError(str(exc)) from exc
        counts = thread_counts(plan.device, plan.cpu_threads,
                               preprocess_threads=self.settings.preprocess_threads)
        torch.set_num_threads(counts.model_threads)
        model, pretrained, model_dir = self.settings.model, self.settings.pretrained, self.root.model_dir
        try:
            try:
                engine = await asyncio.to_thread(Embedder.load, model, pretrained, model_dir, plan)
            except Exception as exc:
                # `auto` may fall back to the CPU for a broken CUDA library (never for OOM).
                if not (self.root.device == "auto" and plan.is_cuda and is_cuda_library_error(exc)):
                    raise
                log.warning("CUDA failed at warm-up; the embedding model runs on the CPU: %s", exc)
                plan = plan.on_cpu(f"CUDA failed at warm-up: {exc}")
                torch.set_num_threads(thread_counts("cpu", plan.cpu_threads).model_threads)
                engine = await asyncio.to_thread(Embedder.load, model, pretrained, model_dir, plan)
        except EngineError as exc:
            raise ServiceStartError(str(exc)) from exc
        except Exception as exc:
            log.exception("loading the embedding model failed")
            raise ServiceStartError(f"loading {model}/{pretrained} failed: {exc}") from exc
        self.engine, self.plan = engine, plan
        self.pool = ThreadPoolExecutor(counts.preprocess_threads, thread_name_prefix="sensorium-embed-prep")
        self.batcher = Batcher(
            "embedding", run_batch=split_on_error(engine.encode_or_oom, is_cuda_oom),
            max_batch_size=self.settings.max_batch_size, max_wait=self.settings.max_wait_ms / 1000,
            queue_size=self.settings.queue_size, observer=metrics.BatchMetrics(),
        )
        self.batcher.start()
        log.info("embedding service started", extra={
            "device": plan.device, "device_reason": plan.reason,
            "model_threads": counts.model_threads, "preprocess_threads": counts.preprocess_threads,
        })

    async def stop(self) -> None:
        if self.batcher is not None:
            await self.batcher.close(drain=True, grace=self.root.shutdown_grace_seconds)
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)

    # ---- the work behind the RPCs --------------------------------------------------------

    def space(self, normalized: bool = True) -> embedding_pb2.EmbeddingSpace:
        space = self.engine.space
        return embedding_pb2.EmbeddingSpace(
            model=space.model, pretrained=space.pretrained, weights_sha256=space.weights_sha256,
            dimension=space.dimension, normalized=normalized,
        )

    def deadline(self, context: grpc.aio.ServicerContext[Any, Any]) -> float | None:
        assert self.batcher is not None
        remaining = context.time_remaining()
        return None if remaining is None else self.batcher.clock.now() + remaining

    async def _prepare(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.pool, lambda: fn(*args, **kwargs))

    async def embed_image(self, data: bytes, deadline: float | None) -> Outcome:
        try:
            item = await self._prepare(
                self.engine.prepare_image, data, max_bytes=self.settings.max_image_bytes,
                max_pixels=self.settings.max_image_pixels,
            )
        except SensoriumError as error:
            if error.reason not in ITEM_REASONS:
                raise
            return Outcome(error=error)
        return Outcome(await self._submit(item, deadline), width=item.width, height=item.height)

    async def embed_text(self, text: str, strict: bool, deadline: float | None) -> Outcome:
        try:
            item = await self._prepare(
                self.engine.prepare_text, text, strict=strict, max_chars=self.settings.max_text_chars
            )
        except SensoriumError as error:
            if error.reason not in ITEM_REASONS:
                raise
            return Outcome(error=error)
        vector = await self._submit(item, deadline)
        return Outcome(vector, truncated=item.truncated, token_count=item.token_count)

    async def _submit(self, item: Any, deadline: float | None) -> Any:
        assert self.batcher is not None
        result = await self.batcher.submit(item, deadline)
        if isinstance(result, SensoriumError):  # GPU out of memory on this item alone
            raise result
        return result

    def vector(self, raw: Any, normalized: bool) -> embedding_pb2.Vector:
        from sensorium.embedding.embedder import l2_normalize

        values = l2_normalize(raw) if normalized else raw
        return embedding_pb2.Vector(values=values.tolist(), space=self.space(normalized))

    def strict(self, options: pb.EmbedOptions) -> bool:
        if options.truncation == pb.TRUNCATION_MODE_UNSPECIFIED:
            return self.settings.strict_truncation
        return bool(options.truncation == pb.TRUNCATION_MODE_REJECT)

    def check_count(self, count: int, what: str) -> None:
        if count == 0:
            raise SensoriumError(Reason.INVALID_REQUEST, f"the request has no {what}; send at least one")
        if count > self.settings.max_items_per_request:
            raise SensoriumError(
                Reason.INVALID_REQUEST,
                f"the request has {count} {what}; the limit is {self.settings.max_items_per_request} "
                "(SENSORIUM_EMBEDDING__MAX_ITEMS_PER_REQUEST); split it, or use StreamEmbed",
            )

    @contextlib.asynccontextmanager
    async def holding(self, payloads: Iterable[bytes | str]) -> AsyncIterator[None]:
        """Count the request's content against the server-wide byte budget while it is worked on."""
        size = sum(len(p) for p in payloads)
        self.budget.take(size)
        try:
            yield
        finally:
            self.budget.give(size)


async def gather_all(awaitables: Sequence[Awaitable[T]]) -> list[T]:
    """All results in order; on the first failure the others are cancelled (their queued
    items leave the Batcher) and that failure is raised."""
    tasks = [asyncio.ensure_future(a) for a in awaitables]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in tasks:
            if task.done() and not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
        return [task.result() for task in tasks]
    finally:
        for task in tasks:
            task.cancel()


class _Servicer(pb_grpc.EmbeddingServiceServicer):
    def __init__(self, service: EmbeddingService) -> None:
        self.service = service

    async def EmbedTexts(
        self, request: pb.EmbedTextsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.EmbedTextsResponse:
        service = self.service
        service.check_count(len(request.texts), "texts")
        strict, deadline = service.strict(request.options), service.deadline(context)
        normalized = not request.options.unnormalized
        async with service.holding(request.texts):
            outcomes = await gather_all([service.embed_text(t, strict, deadline) for t in request.texts])
        return pb.EmbedTextsResponse(results=[
            pb.TextEmbedding(error=item_error(o.error)) if o.error else pb.TextEmbedding(
                vector=service.vector(o.vector, normalized), truncated=o.truncated,
                token_count=o.token_count,
            )
            for o in outcomes
        ])

    async def EmbedImages(
        self, request: pb.EmbedImagesRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.EmbedImagesResponse:
        service = self.service
        service.check_count(len(request.images), "images")
        deadline, normalized = service.deadline(context), not request.options.unnormalized
        async with service.holding(request.images):
            outcomes = await gather_all([service.embed_image(data, deadline) for data in request.images])
        return pb.EmbedImagesResponse(results=[
            pb.ImageEmbedding(error=item_error(o.error)) if o.error else pb.ImageEmbedding(
                vector=service.vector(o.vector, normalized), width=o.width, height=o.height,
            )
            for o in outcomes
        ])

    async def Score(
        self, request: pb.ScoreRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ScoreResponse:
        from sensorium.embedding.embedder import score

        service = self.service
        service.check_count(len(request.images), "images")
        service.check_count(len(request.texts), "texts")
        deadline = service.deadline(context)
        async with service.holding([*request.images, *request.texts]):
            work = [
                *(service.embed_image(data, deadline) for data in request.images),
                *(service.embed_text(text, False, deadline) for text in request.texts),
            ]
            outcomes = await gather_all(work)
        images, texts = outcomes[:len(request.images)], outcomes[len(request.images):]
        for index, text in enumerate(texts):
            if text.error is not None:  # a bad label spoils every row: the whole call fails
                raise SensoriumError(text.error.reason, f"text {index}: {text.error.message}")
        good = [o for o in images if o.error is None]
        rows: list[pb.ScoreRow] = []
        computed: Iterator[tuple[list[float], list[float]]] = iter(())
        if good:
            engine = service.engine
            similarities, probabilities = score(
                [o.vector for o in good], [t.vector for t in texts],
                logit_scale=engine.logit_scale, logit_bias=engine.logit_bias,
            )
            computed = iter(zip(similarities.tolist(), probabilities.tolist(), strict=True))
        for outcome in images:
            if outcome.error is not None:
                rows.append(pb.ScoreRow(error=item_error(outcome.error)))
            else:
                sims, probs = next(computed)
                rows.append(pb.ScoreRow(similarities=sims, probabilities=probs))
        return pb.ScoreResponse(
            rows=rows, scoring_function=_SCORING[service.engine.scoring], space=service.space(True)
        )

    async def GetEmbeddingSpace(
        self, request: pb.GetEmbeddingSpaceRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.GetEmbeddingSpaceResponse:
        service = self.service
        assert service.plan is not None
        return pb.GetEmbeddingSpaceResponse(
            space=service.space(True), context_length=service.engine.context_length,
            scoring_function=_SCORING[service.engine.scoring],
            max_image_pixels=service.settings.max_image_pixels,
            max_image_bytes=service.settings.max_image_bytes, device=service.plan.device,
        )

    async def StreamEmbed(
        self, requests: AsyncIterator[pb.StreamEmbedRequest],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[pb.StreamEmbedResponse]:
        service = self.service
        deadline = service.deadline(context)
        answers: asyncio.Queue[pb.StreamEmbedResponse | BaseException | None] = asyncio.Queue()
        # Backpressure: past this many unanswered items the stream stops reading requests.
        window = asyncio.Semaphore(service.settings.max_items_per_request)
        pending: set[asyncio.Task[None]] = set()

        async def answer(request: pb.StreamEmbedRequest) -> None:
            try:
                await answers.put(await self._stream_item(request, deadline))
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
        self, request: pb.StreamEmbedRequest, deadline: float | None
    ) -> pb.StreamEmbedResponse:
        service = self.service
        kind = request.WhichOneof("input")
        normalized = not request.options.unnormalized
        try:
            if kind == "text":
                async with service.holding([request.text]):
                    strict = service.strict(request.options)
                    outcome = await service.embed_text(request.text, strict, deadline)
            elif kind == "image":
                async with service.holding([request.image]):
                    outcome = await service.embed_image(request.image, deadline)
            else:
                outcome = Outcome(error=SensoriumError(
                    Reason.INPUT_EMPTY, "the item has neither `text` nor `image`; set one"))
        except SensoriumError as error:
            if error.reason != Reason.GPU_OUT_OF_MEMORY:
                raise
            outcome = Outcome(error=error)  # in a stream, only this item fails
        if outcome.error is not None:
            return pb.StreamEmbedResponse(id=request.id, error=item_error(outcome.error))
        return pb.StreamEmbedResponse(
            id=request.id, vector=service.vector(outcome.vector, normalized), truncated=outcome.truncated
        )


def create(settings: Settings, budget: ByteBudget) -> HostedService:
    return EmbeddingService(settings, budget)
