"""The embedding runtime: open_clip behind the Batcher, for every front end.

Every item (a text or an image) is decoded or tokenized in the preprocessing thread pool, then
submitted to the Batcher on its own, so single-image calls from many clients (or the index job's
many files) are embedded together, and the model thread only ever sees ready tensors. Vectors
come back L2-normalized unless the caller asks otherwise.

Per-item failures (empty, undecodable or too large images, over-long texts in strict mode) are
outcomes with an `error`, and the other items succeed. Call-level failures raise
`SensoriumError`: no items or too many (INVALID_REQUEST), a full queue (OVERLOADED), GPU out of
memory on a single item (GPU_OUT_OF_MEMORY), shutting down (SHUTTING_DOWN).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from sensorium import metrics, pins
from sensorium.batching import Batcher, split_on_error
from sensorium.contract import RuntimeContext
from sensorium.device import DevicePlan, is_cuda_oom, load_with_fallback, thread_counts
from sensorium.embedding import images
from sensorium.embedding.api import (
    EmbeddingEngine,
    ImageOutcome,
    ScoreRow,
    Scores,
    Scoring,
    Space,
    SpaceInfo,
    TextOutcome,
    Vector,
)
from sensorium.errors import ModelError, Reason, SensoriumError, ServiceStartError

if TYPE_CHECKING:  # torch is imported when the runtime starts, never before
    from sensorium.embedding.embedder import Embedder, Prepared

log = logging.getLogger("sensorium.embedding")
T = TypeVar("T")
Loader = Callable[[DevicePlan], "Embedder"]

ITEM_REASONS = frozenset({
    Reason.INPUT_EMPTY, Reason.INPUT_TOO_LARGE, Reason.IMAGE_UNDECODABLE, Reason.IMAGE_TOO_LARGE,
    Reason.TEXT_TOO_LONG,
})
"""Failures that belong to one item: the others in the same request still succeed."""


class EmbeddingRuntime:
    """CLIP embeddings of texts and images; `start()` before use, `close()` after."""

    def __init__(self, context: RuntimeContext, *, load: Loader | None = None) -> None:
        self.root = context.settings
        self.settings = context.settings.embedding
        self.budget = context.budget
        self._context = context
        self._load = load or self._load_engine
        self.engine: Embedder | None = None
        self.plan: DevicePlan | None = None
        self._batcher: Batcher[Prepared, Any] | None = None
        self._pool: ThreadPoolExecutor | None = None
        # Items admitted and not answered (preprocessing, queued or in the model): bounded by
        # the queue size, so overload is refused before any decoding work, in microseconds.
        self._in_work = 0

    # ---- life cycle ------------------------------------------------------------------------

    async def start(self) -> None:
        try:
            import torch  # noqa: F401 - fail here, with the fix, if the extra is missing
        except ImportError as exc:
            raise ServiceStartError(
                f"the embedding engine is not installed ({exc}); install sensorium[embedding]"
            ) from exc
        plan = await self._context.device.plan(self._context.cpus)
        try:
            engine, plan = await asyncio.to_thread(
                load_with_fallback, self.root.device, plan, self._load, what="embedding"
            )
        except ServiceStartError:
            raise
        except Exception as exc:
            log.exception("loading the embedding model failed")
            raise ServiceStartError(
                f"loading {self.settings.model}/{self.settings.pretrained} failed: {exc}"
            ) from exc
        counts = self._threads(plan)
        self.engine, self.plan = engine, plan
        self._pool = ThreadPoolExecutor(counts.preprocess_threads, thread_name_prefix="sensorium-embed-prep")
        self._batcher = Batcher(
            "embedding", run_batch=split_on_error(engine.encode_or_oom, is_cuda_oom),
            max_batch_size=self.settings.max_batch_size, max_wait=self.settings.max_wait_ms / 1000,
            queue_size=self.settings.queue_size, queue_setting="embedding.queue_size",
            observer=metrics.BatchMetrics(),
        )
        self._batcher.start()
        log.info("embedding runtime started", extra={
            "device": plan.device, "device_reason": plan.reason,
            "model_threads": counts.model_threads, "preprocess_threads": counts.preprocess_threads,
        })

    def _threads(self, plan: DevicePlan) -> Any:
        return thread_counts(plan.device, plan.cpu_threads, model_threads=self.settings.cpu_threads,
                             preprocess_threads=self.settings.preprocess_threads)

    def _load_engine(self, plan: DevicePlan) -> Embedder:
        """Load and warm up the model on `plan`'s device (blocking)."""
        import torch

        from sensorium.embedding.embedder import Embedder, EngineError

        # torch's intra-op pool is process-wide: sized once, from this service's CPU share.
        torch.set_num_threads(self._threads(plan).model_threads)
        try:
            engine = Embedder.load(self.settings.model, self.settings.pretrained, self.root.model_dir, plan)
        except EngineError as exc:
            raise ServiceStartError(str(exc)) from exc
        name = self.settings.model
        if self.settings.pretrained and ":" not in name:  # an open_clip name and its pretrained tag
            name = f"{name}/{self.settings.pretrained}"
        try:
            pins.check("embedding", name, engine.space.weights_sha256, self.settings.weights_sha256,
                       "SENSORIUM_EMBEDDING__WEIGHTS_SHA256")
        except ModelError as exc:
            raise ServiceStartError(str(exc)) from None
        return engine

    async def close(self, grace: float | None = None) -> None:
        if self._batcher is not None:
            await self._batcher.close(drain=True, grace=grace)
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

    # ---- what the model is ------------------------------------------------------------------

    @property
    def model(self) -> Embedder:
        if self.engine is None:
            raise SensoriumError(Reason.NOT_READY, "the embedding model is loading; retry shortly",
                                 retry_after_seconds=5.0)
        return self.engine

    @property
    def space(self) -> Space:
        """Model, pretrained tag, weights sha256 and dimension of every vector."""
        return self.model.space

    @property
    def context_length(self) -> int:
        """Tokens the text tower reads, start and end tokens included."""
        return self.model.context_length

    @property
    def scoring(self) -> Scoring:
        return self.model.scoring

    async def describe(self) -> SpaceInfo:
        model, plan = self.model, self.plan
        assert plan is not None  # set with the model
        return SpaceInfo(model.space, model.context_length, model.scoring, self.settings.max_image_pixels,
                         self.settings.max_image_bytes, plan.device)

    def count_tokens(self, text: str) -> int:
        """Tokens of `text` as the model counts them, start and end tokens included (blocking:
        a front end chunking long texts calls it in its own thread)."""
        return self.model.count_tokens(text)

    # ---- embedding ------------------------------------------------------------------------

    async def embed_texts(
        self, texts: Sequence[str], *, strict: bool | None = None, normalize: bool = True,
        deadline: float | None = None,
    ) -> list[TextOutcome]:
        """One outcome per text, in order. `strict` (default: the setting) refuses texts over
        the context instead of truncating them; `deadline` is on the `time.monotonic()` scale."""
        self.check_count(len(texts), "texts")
        with self.budget.hold(_size(texts)):
            return await gather_all([self._one_text(t, strict, normalize, deadline) for t in texts])

    async def embed_images(
        self, images: Sequence[bytes], *, normalize: bool = True, deadline: float | None = None
    ) -> list[ImageOutcome]:
        """One outcome per encoded image (JPEG, PNG, WebP, GIF, TIFF, BMP), in order."""
        self.check_count(len(images), "images")
        with self.budget.hold(_size(images)):
            return await gather_all([self._one_image(d, normalize, deadline) for d in images])

    async def embed_text(
        self, text: str, *, strict: bool | None = None, normalize: bool = True,
        deadline: float | None = None,
    ) -> TextOutcome:
        """One text on its own (a stream's item)."""
        with self.budget.hold(len(text)):
            return await self._one_text(text, strict, normalize, deadline)

    async def embed_image(
        self, data: bytes, *, normalize: bool = True, deadline: float | None = None
    ) -> ImageOutcome:
        """One image on its own (a stream's item)."""
        with self.budget.hold(len(data)):
            return await self._one_image(data, normalize, deadline)

    @contextlib.contextmanager
    def _admitted(self) -> Iterator[None]:
        batcher = self.batcher
        if self._in_work >= self.settings.queue_size:
            raise batcher.overloaded()
        self._in_work += 1
        try:
            yield
        finally:
            self._in_work -= 1

    async def _one_text(
        self, text: str, strict: bool | None, normalize: bool, deadline: float | None
    ) -> TextOutcome:
        with self._admitted():
            return await self._embed_text(text, strict, normalize, deadline)

    async def _one_image(self, data: bytes, normalize: bool, deadline: float | None) -> ImageOutcome:
        with self._admitted():
            return await self._embed_image(data, normalize, deadline)

    async def _embed_text(
        self, text: str, strict: bool | None, normalize: bool, deadline: float | None
    ) -> TextOutcome:
        engine = self.model
        strict = self.settings.strict_truncation if strict is None else strict
        try:
            item = await self._prepare(engine.prepare_text, text, strict=strict,
                                       max_chars=self.settings.max_text_chars)
        except SensoriumError as error:
            if error.reason not in ITEM_REASONS:
                raise
            return TextOutcome(error=error)
        vector = await self._submit(item, deadline)
        return TextOutcome(self._finish(vector, normalize), truncated=item.truncated,
                           token_count=item.token_count)

    async def _embed_image(self, data: bytes, normalize: bool, deadline: float | None) -> ImageOutcome:
        engine = self.model
        limits = {"max_bytes": self.settings.max_image_bytes, "max_pixels": self.settings.max_image_pixels}
        try:
            # What decoding will take is charged before a pixel is decoded (a 100 MP PNG is
            # 800 MB), from the header, read in a pool thread like the decoding itself.
            needed = await self._prepare(images.decoded_bytes, data, min_side=engine.image_side, **limits)
            with self.budget.hold(needed):
                item = await self._prepare(engine.prepare_image, data, **limits)
        except SensoriumError as error:
            if error.reason not in ITEM_REASONS:
                raise
            return ImageOutcome(error=error)
        vector = await self._submit(item, deadline)
        return ImageOutcome(self._finish(vector, normalize), width=item.width, height=item.height)

    async def score(
        self, images: Sequence[bytes], texts: Sequence[str], *, deadline: float | None = None
    ) -> Scores:
        """Each image against every text: cosine similarities and zero-shot probabilities
        (softmax over the logit scale for CLIP, sigmoid with bias for SigLIP). A bad text fails
        the call (it spoils every row); a bad image fails its row."""
        from sensorium.embedding.embedder import score

        self.check_count(len(images), "images")
        self.check_count(len(texts), "texts")
        work: list[Awaitable[ImageOutcome | TextOutcome]] = [
            *(self._one_image(data, False, deadline) for data in images),
            *(self._one_text(text, False, False, deadline) for text in texts),
        ]
        with self.budget.hold(_size([*images, *texts])):
            outcomes = await gather_all(work)
        image_outcomes, text_outcomes = outcomes[:len(images)], outcomes[len(images):]
        for index, text in enumerate(text_outcomes):
            if text.error is not None:
                raise SensoriumError(text.error.reason, f"text {index}: {text.error.message}",
                                     setting=text.error.setting)
        good = [o.vector for o in image_outcomes if o.error is None and o.vector is not None]
        computed: Iterator[tuple[list[float], list[float]]] = iter(())
        if good:
            engine = self.model
            similarities, probabilities = score(
                good, [t.vector for t in text_outcomes if t.vector is not None],
                logit_scale=engine.logit_scale, logit_bias=engine.logit_bias,
            )
            computed = iter(zip(similarities.tolist(), probabilities.tolist(), strict=True))
        rows = []
        for outcome in image_outcomes:
            if outcome.error is not None:
                rows.append(ScoreRow([], [], outcome.error))
            else:
                sims, probs = next(computed)
                rows.append(ScoreRow(sims, probs))
        return Scores(rows, self.scoring, self.space)

    def check_count(self, count: int, what: str) -> None:
        if count == 0:
            raise SensoriumError(Reason.INVALID_REQUEST, f"the request has no {what}; send at least one")
        limit = self.settings.max_items_per_request
        if count > limit:
            raise SensoriumError(
                Reason.INVALID_REQUEST,
                f"the request has {count} {what}; the limit is {limit} per call; split it",
                setting="embedding.max_items_per_request",
            )

    # ---- internals ------------------------------------------------------------------------

    async def _prepare(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: fn(*args, **kwargs))

    @property
    def batcher(self) -> Batcher[Prepared, Any]:
        if self._batcher is None:
            raise SensoriumError(Reason.NOT_READY, "the embedding model is loading; retry shortly",
                                 retry_after_seconds=5.0)
        return self._batcher

    async def _submit(self, item: Prepared, deadline: float | None) -> Vector:
        result = await self.batcher.submit(item, deadline)
        if isinstance(result, SensoriumError):  # GPU out of memory on this item alone
            raise result
        vector: Vector = result
        return vector

    @staticmethod
    def _finish(vector: Vector, normalize: bool) -> Vector:
        from sensorium.embedding.embedder import l2_normalize

        return l2_normalize(vector) if normalize else vector


def _size(payloads: Iterable[bytes | str]) -> int:
    return sum(len(p) for p in payloads)


if TYPE_CHECKING:
    _ENGINE: type[EmbeddingEngine] = EmbeddingRuntime  # mypy: the runtime is the in-process engine


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
