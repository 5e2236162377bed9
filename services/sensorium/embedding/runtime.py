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
import functools
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from sensorium import metrics, pins
from sensorium.batching import Batcher, split_on_error
from sensorium.contract import RuntimeContext
from sensorium.device import DevicePlan, is_cuda_oom, load_with_fallback, thread_counts
from sensorium.embedding import images as image_files
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
    from sensorium.embedding.embedder import Embedder, ImageInput, Prepared
    from sensorium.embedding.model_process import ModelConfig, ModelProcess

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
        # The model runs in a process of its own unless a test injects its own loader.
        self._separate = load is None and self.settings.model_process
        self._process: ModelProcess | None = None
        self._model_config: ModelConfig | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._listener: Callable[[bool, SensoriumError | None], None] | None = None
        self._restarting: asyncio.Task[None] | None = None
        self._closing = False
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
        self._loop = asyncio.get_running_loop()
        try:
            if self._separate:
                engine, plan = await asyncio.to_thread(self._start_model_process, plan)
            else:
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
            "model_process": self._process.pid if self._process is not None else None,
        })

    def _start_model_process(self, plan: DevicePlan) -> tuple[Embedder, DevicePlan]:
        """Start the model process and build the front of its model here (blocking)."""
        import torch

        from sensorium.embedding.embedder import Embedder
        from sensorium.embedding.model_process import ModelConfig

        self._model_config = ModelConfig(
            self.settings.model, self.settings.pretrained, self.root.model_dir, self.root.device, plan,
            self._threads(plan).model_threads, self.settings.max_batch_size, self.root.log_level,
            self.root.log_format,
        )
        process = self._new_process()
        facts = process.start()
        try:
            self._check_pins(facts.space)
        except ServiceStartError:
            process.close()
            raise
        try:
            # Only preprocessing uses torch here: small tensors, one thread each.
            torch.set_num_threads(1)
            engine = Embedder.remote(facts, process, self.root.model_dir)
        except Exception as exc:
            process.close()
            raise ServiceStartError(f"the embedding model's preprocessing cannot be built: {exc}") from exc
        self._process = process
        return engine, facts.plan

    def _new_process(self) -> ModelProcess:
        from sensorium.embedding.model_process import ModelProcess

        assert self._model_config is not None
        return ModelProcess(self._model_config, on_exit=self._exited)

    def _exited(self, code: int) -> None:
        """The model process ended by itself (called from its watcher thread)."""
        if self._loop is not None and not self._closing:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nothing to restart
                self._loop.call_soon_threadsafe(self._restart_soon, code)

    def _restart_soon(self, code: int) -> None:
        if self._closing or self._restarting is not None:
            return
        log.error("the embedding model process exited with code %s; restarting it", code)
        metrics.WORKER_RESTARTS.labels("embedding", "crashed").inc()
        self._set_ready(False, SensoriumError(
            Reason.NOT_READY, "the embedding model process is restarting; retry shortly",
            retry_after_seconds=5.0))
        self._restarting = asyncio.get_running_loop().create_task(self._restart())

    async def _restart(self) -> None:
        delay = 1.0
        try:
            while not self._closing:
                process = self._new_process()
                try:
                    facts = await asyncio.to_thread(process.start)
                    try:  # the weights file may have been swapped since start-up
                        self._check_pins(facts.space)
                    except ServiceStartError:
                        await asyncio.to_thread(process.close, 0)
                        raise
                except ServiceStartError as exc:
                    log.error("restarting the embedding model process failed; retrying in %g s: %s",
                              delay, exc)
                    await asyncio.sleep(delay)
                    delay = min(2 * delay, 60.0)
                    continue
                if self._closing:
                    await asyncio.to_thread(process.close)
                    return
                old, self._process = self._process, process
                self.model.towers = process
                if old is not None:
                    await asyncio.to_thread(old.close, 0)
                log.info("embedding model process restarted", extra={"pid": process.pid})
                self._set_ready(True, None)
                return
        finally:
            self._restarting = None

    def watch(self, listener: Callable[[bool, SensoriumError | None], None]) -> None:
        """Call `listener(ready, problem)` when the service stops or starts being able to serve
        after start-up (its model process died and is being restarted, or is back)."""
        self._listener = listener

    def _set_ready(self, ready: bool, problem: SensoriumError | None) -> None:
        if self._listener is not None:
            self._listener(ready, problem)

    def _threads(self, plan: DevicePlan) -> Any:
        preprocess = self.settings.preprocess_threads
        if not preprocess and self._separate and not plan.is_cuda:
            # The model has a process of its own: decoding may take every CPU the model leaves
            # idle (the threads wait in Pillow and torch kernels, without the GIL).
            preprocess = plan.cpu_threads
        return thread_counts(plan.device, plan.cpu_threads, model_threads=self.settings.cpu_threads,
                             preprocess_threads=preprocess)

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
        self._check_pins(engine.space)
        return engine

    def _check_pins(self, space: Space) -> None:
        """Refuse weights other than the model's pin or the ones the operator named."""
        name = self.settings.model
        if self.settings.pretrained and ":" not in name:  # an open_clip name and its pretrained tag
            name = f"{name}/{self.settings.pretrained}"
        try:
            pins.check("embedding", name, space.weights_sha256, self.settings.weights_sha256,
                       "SENSORIUM_EMBEDDING__WEIGHTS_SHA256")
        except ModelError as exc:
            raise ServiceStartError(str(exc)) from None

    async def close(self, grace: float | None = None) -> None:
        self._closing = True
        if self._restarting is not None:
            self._restarting.cancel()
        if self._batcher is not None:
            closing = asyncio.ensure_future(self._batcher.close(drain=True, grace=grace))
            if self._process is not None and grace is not None:
                # The Batcher waits for the batch in the model however long it takes; a model
                # process that hangs would hold shutdown forever. Past the grace period and a
                # second for that batch, stop the process: the batch fails with NOT_READY.
                done, _ = await asyncio.wait({closing}, timeout=grace + HUNG_MODEL_MARGIN_SECONDS)
                if not done:
                    log.warning("the embedding model process did not finish its batch after the grace "
                                "period; killing it")
                    await asyncio.to_thread(self._process.close, 0)
            await closing
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        if self._process is not None:
            await asyncio.to_thread(self._process.close, 10.0 if grace is None else max(grace, 1.0))

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
            return await self._texts(texts, strict, normalize, deadline)

    async def embed_images(
        self, images: Sequence[bytes], *, normalize: bool = True, deadline: float | None = None
    ) -> list[ImageOutcome]:
        """One outcome per encoded image (JPEG, PNG, WebP, GIF, TIFF, BMP), in order."""
        self.check_count(len(images), "images")
        with self.budget.hold(_size(images)):
            return await self._images(images, normalize, deadline)

    async def embed_text(
        self, text: str, *, strict: bool | None = None, normalize: bool = True,
        deadline: float | None = None,
    ) -> TextOutcome:
        """One text on its own (a stream's item)."""
        with self.budget.hold(len(text)):
            return (await self._texts([text], strict, normalize, deadline))[0]

    async def embed_image(
        self, data: bytes, *, normalize: bool = True, deadline: float | None = None
    ) -> ImageOutcome:
        """One image on its own (a stream's item)."""
        with self.budget.hold(len(data)):
            return (await self._images([data], normalize, deadline))[0]

    @contextlib.contextmanager
    def _admitted(self, count: int) -> Iterator[None]:
        """Admit a request's items whole, or refuse it (a request larger than the whole queue
        is still admitted when nothing else is in work)."""
        batcher = self.batcher
        if self._in_work and self._in_work + count > self.settings.queue_size:
            raise batcher.overloaded()
        self._in_work += count
        try:
            yield
        finally:
            self._in_work -= count

    async def _texts(
        self, texts: Sequence[str], strict: bool | None, normalize: bool, deadline: float | None
    ) -> list[TextOutcome]:
        engine = self.model
        strict = self.settings.strict_truncation if strict is None else strict
        limit = self.settings.max_text_chars
        with self._admitted(len(texts)):
            if engine.fast_tokens and sum(len(t) for t in texts) <= INLINE_TEXT_CHARS:
                # Microseconds of Rust per text: a hop to a pool thread would cost more.
                prepared = [_item_or_error(engine.prepare_text, t, strict=strict, max_chars=limit)
                            for t in texts]
            else:
                prepared = await self._in_pool([
                    functools.partial(_item_or_error, engine.prepare_text, t, strict=strict, max_chars=limit)
                    for t in texts])
            vectors = iter(await self._submit([p for p in prepared if not isinstance(p, SensoriumError)],
                                              deadline))
            return [TextOutcome(error=p) if isinstance(p, SensoriumError)
                    else TextOutcome(_finish(next(vectors), normalize), truncated=p.truncated,
                                     token_count=p.token_count)
                    for p in prepared]

    async def _images(
        self, images: Sequence[bytes], normalize: bool, deadline: float | None
    ) -> list[ImageOutcome]:
        engine = self.model
        limits = {"max_bytes": self.settings.max_image_bytes, "max_pixels": self.settings.max_image_pixels}
        with self._admitted(len(images)):
            # What decoding will take is charged before a pixel is decoded (a 100 MP PNG is
            # 800 MB), from the headers, read in the pool threads like the decoding itself.
            needed = await self._in_pool([
                functools.partial(_item_or_error, image_files.decoded_bytes, data,
                                  min_side=engine.image_side, **limits)
                for data in images])
            with self.budget.hold(sum(n for n in needed if not isinstance(n, SensoriumError))):
                decoded = await self._in_pool([
                    functools.partial(_item_or_error, engine.prepare_image, data, **limits)
                    for data, n in zip(images, needed, strict=True) if not isinstance(n, SensoriumError)])
            ready = iter(decoded)
            prepared: list[ImageInput | SensoriumError] = [
                n if isinstance(n, SensoriumError) else next(ready) for n in needed]
            vectors = iter(await self._submit([p for p in prepared if not isinstance(p, SensoriumError)],
                                              deadline))
            return [ImageOutcome(error=p) if isinstance(p, SensoriumError)
                    else ImageOutcome(_finish(next(vectors), normalize), width=p.width, height=p.height)
                    for p in prepared]

    async def score(
        self, images: Sequence[bytes], texts: Sequence[str], *, deadline: float | None = None
    ) -> Scores:
        """Each image against every text: cosine similarities and zero-shot probabilities
        (softmax over the logit scale for CLIP, sigmoid with bias for SigLIP). A bad text fails
        the call (it spoils every row); a bad image fails its row."""
        from sensorium.embedding.embedder import score

        self.check_count(len(images), "images")
        self.check_count(len(texts), "texts")
        with self.budget.hold(_size([*images, *texts])):
            image_work = asyncio.ensure_future(self._images(images, False, deadline))
            try:
                text_outcomes = await self._texts(texts, False, False, deadline)
                image_outcomes = await image_work
            finally:
                image_work.cancel()  # a failed text fails the call: stop the images' work
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

    async def _in_pool(self, jobs: list[Callable[[], T]]) -> list[T]:
        """`jobs` run in the preprocessing threads, results in order."""
        loop = asyncio.get_running_loop()
        if len(jobs) == 1:
            return [await loop.run_in_executor(self._pool, jobs[0])]
        return list(await asyncio.gather(*(loop.run_in_executor(self._pool, job) for job in jobs)))

    @property
    def batcher(self) -> Batcher[Prepared, Any]:
        if self._batcher is None:
            raise SensoriumError(Reason.NOT_READY, "the embedding model is loading; retry shortly",
                                 retry_after_seconds=5.0)
        return self._batcher

    async def _submit(self, items: list[Prepared], deadline: float | None) -> list[Vector]:
        """Raw vectors of `items`: one request to the Batcher, however many items."""
        results = await self.batcher.submit_many(items, deadline)
        for result in results:
            if isinstance(result, SensoriumError):  # GPU out of memory on this item alone
                raise result
        return results


HUNG_MODEL_MARGIN_SECONDS = 1.0
"""How long past the shutdown grace period a batch still in the model process may run before the
process is killed and the batch fails: the grace period is what the operator allows, and a
process that never answers (hung in a driver, stopped) must not hold the pod until SIGKILL."""

INLINE_TEXT_CHARS = 4096
"""Texts of a request tokenized on the event loop when the Rust tokenizer serves the model and
they hold at most this many characters in all (tens of microseconds); longer ones (ftfy on
non-ASCII text costs ~1 us a character) go to the preprocessing threads."""


def _item_or_error(prepare: Callable[..., T], *args: Any, **kwargs: Any) -> T | SensoriumError:
    """`prepare(...)`, or the error that belongs to this item alone (others propagate)."""
    try:
        return prepare(*args, **kwargs)
    except SensoriumError as error:
        if error.reason not in ITEM_REASONS:
            raise
        return error


def _finish(vector: Vector, normalize: bool) -> Vector:
    if not normalize:
        return vector
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector


def _size(payloads: Iterable[bytes | str]) -> int:
    return sum(len(p) for p in payloads)


if TYPE_CHECKING:
    _ENGINE: type[EmbeddingEngine] = EmbeddingRuntime  # mypy: the runtime is the in-process engine
