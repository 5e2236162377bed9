"""The one batching engine of the model services: an asyncio front, model worker threads behind.

Callers on the event loop `submit` items (or `submit_many`: a request's items, one future for
all of them); a bounded queue holds them; each model worker thread takes up to `max_batch_size`
items — waiting at most `max_wait` seconds after the oldest queued item arrived for others to
join, and only while recent traffic says others will come: a lone caller never waits for a batch
that will not fill — runs the model once on the list and hands every caller its own result. A
full queue refuses at once (`OVERLOADED`, with a retry estimate) instead of growing. Callers
that were cancelled or whose deadline passed are dropped before the model sees them, and a
batch whose model call raises fails only the callers in that batch.

A batcher built with `run_stream` instead of `run_batch` runs one item at a time per worker and
streams what the model emits (transcript segments) to that item's caller as it is produced.
Whisper has no cross-request batching, so this is the same loop with batches of one.

Model code runs only in the worker threads: never on the event loop, where it would stall every
client. The batcher knows nothing about gRPC, Prometheus or devices.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Literal, Protocol, TypeVar

from sensorium import tracing
from sensorium.errors import Reason, SensoriumError

log = logging.getLogger("sensorium.batching")

T = TypeVar("T")
R = TypeVar("R")

RunBatch = Callable[[list[T]], Sequence[R]]
"""A model over a batch: one result per item, in the items' order."""

Emit = Callable[[R], None]
"""Hands one streamed piece to the caller; raises `StreamCancelled` once the caller is gone."""

RunStream = Callable[[T, Emit[R], Callable[[], bool]], None]
"""A streaming model: `run_stream(item, emit, cancelled)` calls `emit` per piece as it is made and
should check `cancelled()` before each expensive step."""

DropReason = Literal["overloaded", "cancelled", "expired", "shutdown"]

# Used for the retry estimate until the first batch has been timed.
_DEFAULT_BATCH_SECONDS = 1.0
# Weight of the newest batch duration in the moving average behind the retry estimate.
_EWMA_WEIGHT = 0.2
# Clients back off further on repeated refusals; an hour-long hint helps nobody.
_MIN_RETRY_SECONDS, _MAX_RETRY_SECONDS = 0.05, 60.0


class Clock(Protocol):
    """Time as the batcher sees it; tests inject a fake one to control max-wait and deadlines."""

    def now(self) -> float:
        """Seconds on a monotonic scale; deadlines given to `submit` are on this scale."""
        ...

    def wait(self, condition: threading.Condition, timeout: float | None) -> None:
        """Block on `condition` (held by the caller) until notified or `timeout` seconds pass.

        Spurious wake-ups are fine: the batcher re-checks its state after every wait.
        """
        ...


class MonotonicClock:
    """The real clock: `time.monotonic`."""

    def now(self) -> float:
        return time.monotonic()

    def wait(self, condition: threading.Condition, timeout: float | None) -> None:
        condition.wait(timeout)


class BatchObserver(Protocol):
    """Metrics hooks. Called from the event loop and from worker threads, sometimes while the
    batcher's lock is held: implementations must be fast, thread-safe, and must not call back
    into the batcher (Prometheus metrics are all three)."""

    def queue_depth(self, batcher: str, depth: int) -> None:
        """Items now waiting for a worker."""
        ...

    def batch_done(self, batcher: str, size: int, model_seconds: float, failed: bool) -> None:
        """One model call finished: items in it, seconds it took, whether it raised."""
        ...

    def dropped(self, batcher: str, reason: DropReason) -> None:
        """One item never reached the model: refused, cancelled, expired, or shut down."""
        ...


class NullObserver:
    """The default observer: records nothing."""

    def queue_depth(self, batcher: str, depth: int) -> None:
        pass

    def batch_done(self, batcher: str, size: int, model_seconds: float, failed: bool) -> None:
        pass

    def dropped(self, batcher: str, reason: DropReason) -> None:
        pass


class StreamCancelled(Exception):
    """Raised by `emit` once the stream's consumer is gone, its deadline passed, or the batcher
    shuts down without draining: the model function stops within one piece even if it never
    checks `cancelled()`. The batcher catches it; model code should let it propagate."""


class _State(enum.Enum):
    NEW = "new"
    OPEN = "open"
    DRAINING = "draining"
    CLOSED = "closed"


@dataclass
class _Done:
    """End of a stream: `error` is None when the model finished normally."""

    error: BaseException | None = None


class _Request(Generic[R]):
    """One caller's items: a single future settles when the last of them has its result (or the
    first fails), so a request costs one future and one wake-up, however many items it has."""

    __slots__ = ("future", "left", "results")

    def __init__(self, future: asyncio.Future[list[R]], size: int) -> None:
        self.future = future
        self.results: list[Any] = [None] * size
        self.left = size


@dataclass(eq=False, slots=True)  # identity equality: `deque.remove` must find this entry
class _Entry(Generic[T, R]):
    item: T
    loop: asyncio.AbstractEventLoop
    enqueued_at: float
    deadline: float | None
    request: _Request[R] | None = None
    index: int = 0
    """The item's place in its request's results."""
    sink: asyncio.Queue[R | _Done] | None = None
    # Written by the event loop, read by workers; both under the batcher's lock, except the
    # reads of `emit`/`cancelled`, where a stale False only delays the stop by one piece.
    cancelled: bool = False
    abort_error: BaseException | None = None
    # The caller's trace (`tracing.capture()`; None while tracing is off), so the worker can
    # record the item's queue wait and model time in it.
    trace: Any = None


class _Guarded:
    """Shields the batcher from a failing observer: a metrics bug must not strand callers."""

    def __init__(self, inner: BatchObserver) -> None:
        self._inner = inner

    def queue_depth(self, batcher: str, depth: int) -> None:
        try:
            self._inner.queue_depth(batcher, depth)
        except Exception:
            log.exception("batch observer failed")

    def batch_done(self, batcher: str, size: int, model_seconds: float, failed: bool) -> None:
        try:
            self._inner.batch_done(batcher, size, model_seconds, failed)
        except Exception:
            log.exception("batch observer failed")

    def dropped(self, batcher: str, reason: DropReason) -> None:
        try:
            self._inner.dropped(batcher, reason)
        except Exception:
            log.exception("batch observer failed")


def _post(loop: asyncio.AbstractEventLoop, callback: Callable[..., object], *args: Any) -> None:
    """Run `callback(*args)` on `loop` from any thread; a closed loop has no one left to tell."""
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(callback, *args)


def _settle(done: list[tuple[_Entry[Any, Any], bool, Any]]) -> None:
    # Runs on the loop. A future is already done when its caller was cancelled or failed meanwhile.
    for entry, ok, value in done:
        request = entry.request
        assert request is not None
        future = request.future
        if future.done():
            continue
        if ok:
            request.results[entry.index] = value
            request.left -= 1
            if request.left == 0:
                future.set_result(request.results)
        else:
            future.set_exception(value)


def _shutting_down(name: str) -> SensoriumError:
    return SensoriumError(
        Reason.SHUTTING_DOWN, f"the {name} service is shutting down; retry on another instance"
    )


def _expired() -> TimeoutError:
    return TimeoutError("the request's deadline passed before the model could run it")


class Batcher(Generic[T, R]):
    """Coalesces concurrent calls into model batches run on dedicated worker threads.

    Give exactly one of `run_batch` (value results: `submit`) or `run_stream` (streamed results:
    `submit_stream`, one item at a time per worker). `R` is the result of one item, or one piece
    of its stream. Call `start()` before submitting and `await close()` when done.
    """

    def __init__(
        self,
        name: str,
        *,
        run_batch: RunBatch[T, R] | None = None,
        run_stream: RunStream[T, R] | None = None,
        max_batch_size: int = 1,
        max_wait: float = 0.0,
        queue_size: int = 64,
        queue_setting: str = "",
        workers: int = 1,
        clock: Clock | None = None,
        observer: BatchObserver | None = None,
    ) -> None:
        if (run_batch is None) == (run_stream is None):
            raise ValueError("give exactly one of run_batch and run_stream")
        if run_stream is not None and max_batch_size != 1:
            raise ValueError("a streaming batcher runs one item at a time: max_batch_size=1")
        if max_batch_size < 1 or queue_size < 1 or workers < 1 or max_wait < 0:
            raise ValueError("max_batch_size, queue_size and workers must be >= 1, max_wait >= 0")
        self.name = name
        self._run_batch = run_batch
        self._run_stream = run_stream
        self._max_batch_size = max_batch_size
        self._max_wait = max_wait
        self._queue_size = queue_size
        self._queue_setting = queue_setting  # the settings path of queue_size, for OVERLOADED
        self._workers = workers
        self._clock: Clock = clock if clock is not None else MonotonicClock()
        self._observer: BatchObserver = _Guarded(observer if observer is not None else NullObserver())
        # One lock guards the queue, the state and the running set; workers wait on it.
        self._cond = threading.Condition(threading.Lock())
        self._queue: deque[_Entry[T, R]] = deque()
        self._running: set[_Entry[T, R]] = set()
        self._state = _State.NEW
        self._threads: list[threading.Thread] = []
        self._batch_seconds: float | None = None
        # Items in the model now, and the most items queued or in the model seen lately: the
        # company a queued item can expect. A lone caller then never waits `max_wait`.
        self._in_model = 0
        self._peak = 0
        self._peak_since = 0.0
        self._peak_window = max(1.0, 100 * max_wait)

    # ---- the asyncio front -----------------------------------------------------------------

    @property
    def clock(self) -> Clock:
        """The clock deadlines are measured on (`clock.now() + seconds_left`)."""
        return self._clock

    @property
    def accepting(self) -> bool:
        """True between `start()` and `close()`."""
        return self._state is _State.OPEN

    @property
    def queue_depth(self) -> int:
        with self._cond:
            return len(self._queue)

    def check_capacity(self) -> None:
        """Raise OVERLOADED now if the queue is full: for callers with expensive work to do
        (decoding audio) before they submit, which the queue would refuse anyway."""
        with self._cond:
            if len(self._queue) >= self._queue_size:
                raise self._overloaded_locked()

    def overloaded(self) -> SensoriumError:
        """The OVERLOADED error this batcher gives now, with its retry estimate: for callers
        that bound their own work in front of the queue (preprocessing)."""
        with self._cond:
            self._observer.dropped(self.name, "overloaded")
            return self._overloaded_locked()

    def start(self) -> None:
        """Start the worker threads."""
        with self._cond:
            if self._state is not _State.NEW:
                raise RuntimeError(f"batcher {self.name} was already started")
            self._state = _State.OPEN
            for index in range(self._workers):
                thread = threading.Thread(
                    target=self._worker, name=f"sensorium-{self.name}-{index}", daemon=True
                )
                self._threads.append(thread)
                thread.start()

    async def submit(self, item: T, deadline: float | None = None) -> R:
        """The model's result for `item`.

        Raises `SensoriumError` OVERLOADED (queue full), NOT_READY (not started) or SHUTTING_DOWN;
        `TimeoutError` when `deadline` (on `self.clock`) passes before the model runs the item;
        or whatever the model raised for the batch the item was in.
        """
        return (await self.submit_many([item], deadline))[0]

    async def submit_many(self, items: Sequence[T], deadline: float | None = None) -> list[R]:
        """The model's results for `items`, in order: one request, one future.

        All or nothing: the items are queued together (OVERLOADED if they do not fit, unless the
        queue is empty), and the first failure fails the request and withdraws its other items.
        Raises as `submit` does.
        """
        if self._run_batch is None:
            raise TypeError(f"batcher {self.name} streams: use submit_stream")
        if not items:
            return []
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[R]] = loop.create_future()
        request: _Request[R] = _Request(future, len(items))
        trace = tracing.capture()
        entries = [_Entry(item, loop, 0.0, deadline, request, index, trace=trace)
                   for index, item in enumerate(items)]
        self._enqueue(entries)
        try:
            return await future
        except BaseException:
            if request.left:
                self._withdraw_many(entries)
            raise

    def submit_stream(self, item: T, deadline: float | None = None) -> ResultStream[R]:
        """Queue `item` now (refusals raise here, as for `submit`) and return its stream.

        Iterate the stream for the pieces; leaving it early — `aclose()`, the end of an
        `async with` block, or cancellation while waiting — stops the model within one piece.
        Prefer `async with batcher.submit_stream(x) as stream:`: a handler cancelled while busy
        elsewhere (writing to its client) then stops the model too.
        """
        if self._run_stream is None:
            raise TypeError(f"batcher {self.name} does not stream: use submit")
        loop = asyncio.get_running_loop()
        sink: asyncio.Queue[R | _Done] = asyncio.Queue()
        entry = _Entry(item, loop, 0.0, deadline, sink=sink, trace=tracing.capture())
        self._enqueue([entry])
        return ResultStream(self, entry, sink)

    async def close(self, drain: bool = True, grace: float | None = None) -> None:
        """Stop accepting work, then wait for the worker threads to exit.

        drain=True: queued items still run. drain=False: queued items fail with SHUTTING_DOWN at
        once and running streams are stopped; a batch already in the model finishes (a model
        call cannot be interrupted). If draining takes longer than `grace` (real seconds), the
        rest is failed as with drain=False. New calls fail with SHUTTING_DOWN from the start.
        """
        with self._cond:
            if self._state is _State.NEW:
                self._state = _State.CLOSED
                return
            if self._state is _State.OPEN:
                self._state = _State.DRAINING
            if not drain:
                self._abort_locked()
            self._cond.notify_all()
        joined = asyncio.gather(*(asyncio.to_thread(t.join) for t in self._threads))
        try:
            await asyncio.wait_for(asyncio.shield(joined), grace)
        except TimeoutError:
            log.warning("%s: drain took longer than %ss; failing the rest", self.name, grace)
            with self._cond:
                self._abort_locked()
                self._cond.notify_all()
            await joined
        with self._cond:
            self._state = _State.CLOSED

    def _enqueue(self, entries: list[_Entry[T, R]]) -> None:
        with self._cond:
            if self._state is _State.NEW:
                raise SensoriumError(
                    Reason.NOT_READY, f"the {self.name} model is not loaded yet; retry shortly"
                )
            if self._state is not _State.OPEN:
                self._observer.dropped(self.name, "shutdown")
                raise _shutting_down(self.name)
            now = self._clock.now()
            deadline = entries[0].deadline
            if deadline is not None and now >= deadline:
                self._observer.dropped(self.name, "expired")
                raise _expired()
            before = len(self._queue)
            if before and before + len(entries) > self._queue_size:
                self._observer.dropped(self.name, "overloaded")
                raise self._overloaded_locked()
            for entry in entries:
                entry.enqueued_at = now
            self._queue.extend(entries)
            depth = len(self._queue)
            busy = depth + self._in_model
            if busy >= self._peak or now - self._peak_since > self._peak_window:
                self._peak, self._peak_since = busy, now
            self._observer.queue_depth(self.name, depth)
            # Waiting workers care about two moments only: a first item starts the max-wait
            # timer, a full batch ends it. Waking them on every item would rescan for nothing.
            if before == 0 or depth >= self._max_batch_size:
                self._cond.notify_all()

    def _withdraw(self, entry: _Entry[T, R]) -> None:
        """The caller is gone: drop its queued item, or make a running stream stop."""
        self._withdraw_many([entry])

    def _withdraw_many(self, entries: list[_Entry[T, R]]) -> None:
        with self._cond:
            removed = 0
            for entry in entries:
                entry.cancelled = True
                try:
                    self._queue.remove(entry)
                except ValueError:
                    continue  # already taken by a worker (or finished)
                removed += 1
                self._observer.dropped(self.name, "cancelled")
            if removed:
                self._observer.queue_depth(self.name, len(self._queue))

    def _overloaded_locked(self) -> SensoriumError:
        retry = self._retry_after_locked()
        return SensoriumError(
            Reason.OVERLOADED,
            f"the {self.name} queue is full ({self._queue_size} waiting); retry in {retry:g} s",
            retry_after_seconds=retry, setting=self._queue_setting,
        )

    def _retry_after_locked(self) -> float:
        # The time the workers need to work through what is queued now.
        per_batch = self._batch_seconds if self._batch_seconds is not None else _DEFAULT_BATCH_SECONDS
        batches = math.ceil(len(self._queue) / self._max_batch_size)
        seconds = batches * per_batch / self._workers
        return round(min(max(seconds, _MIN_RETRY_SECONDS), _MAX_RETRY_SECONDS), 3)

    def _abort_locked(self) -> None:
        error = _shutting_down(self.name)
        while self._queue:
            entry = self._queue.popleft()
            self._observer.dropped(self.name, "shutdown")
            self._fail(entry, error)
        self._observer.queue_depth(self.name, 0)
        for entry in self._running:
            if entry.sink is not None and not entry.cancelled:
                entry.abort_error = error
                entry.cancelled = True

    # ---- the worker threads ----------------------------------------------------------------

    def _worker(self) -> None:
        while (batch := self._next_batch()) is not None:
            if self._run_stream is not None:
                self._stream_one(self._run_stream, batch[0])
            else:
                assert self._run_batch is not None
                self._run_one_batch(self._run_batch, batch)

    def _next_batch(self) -> list[_Entry[T, R]] | None:
        """Block until a batch is due; None when the batcher is closing and nothing is left."""
        with self._cond:
            while True:
                if not self._queue:
                    if self._state is not _State.OPEN:
                        return None
                    self._clock.wait(self._cond, None)
                    continue
                # Draining: run what is left without waiting for batches to fill. Otherwise wait
                # for company only while recent traffic brings it (see `_peak`).
                expected = min(self._max_batch_size, self._expected_locked())
                if self._state is _State.OPEN and len(self._queue) < expected:
                    left = self._queue[0].enqueued_at + self._max_wait - self._clock.now()
                    if left > 0:
                        self._clock.wait(self._cond, left)
                        continue
                batch = self._take_locked()
                if batch:
                    self._in_model += len(batch)
                    return batch

    def _expected_locked(self) -> int:
        if self._clock.now() - self._peak_since > self._peak_window:
            return len(self._queue) + self._in_model  # the peak is stale: nobody came lately
        return self._peak

    def _take_locked(self) -> list[_Entry[T, R]]:
        now = self._clock.now()
        batch: list[_Entry[T, R]] = []
        while self._queue and len(batch) < self._max_batch_size:
            entry = self._queue.popleft()
            if entry.deadline is not None and now >= entry.deadline:
                self._observer.dropped(self.name, "expired")
                self._fail(entry, _expired())
            else:
                batch.append(entry)
        self._observer.queue_depth(self.name, len(self._queue))
        if self._run_stream is not None:
            self._running.update(batch)
        return batch

    def _run_one_batch(self, run_batch: RunBatch[T, R], batch: list[_Entry[T, R]]) -> None:
        start = self._clock.now()
        start_ns = time.time_ns()
        try:
            results = list(run_batch([entry.item for entry in batch]))
            if len(results) != len(batch):
                raise RuntimeError(
                    f"{self.name} model returned {len(results)} results for {len(batch)} items"
                )
        except Exception as exc:
            log.warning("%s: a batch of %d items failed: %r", self.name, len(batch), exc)
            self._record(len(batch), start, failed=True)
            self._trace(batch, start_ns, failed=True)
            for entry in batch:
                self._fail(entry, exc)
            return
        self._record(len(batch), start, failed=False)
        self._trace(batch, start_ns, failed=False)
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Entry[T, R], bool, Any]]] = {}
        for entry, result in zip(batch, results, strict=True):
            by_loop.setdefault(entry.loop, []).append((entry, True, result))
        # One wake-up of each event loop per batch, not one per item.
        for loop, done in by_loop.items():
            _post(loop, _settle, done)

    def _stream_one(self, run_stream: RunStream[T, R], entry: _Entry[T, R]) -> None:
        sink = entry.sink
        assert sink is not None

        def stopped() -> bool:
            if entry.cancelled:
                return True
            if entry.deadline is not None and self._clock.now() >= entry.deadline:
                entry.abort_error = _expired()
                entry.cancelled = True
                return True
            return False

        def emit(piece: R) -> None:
            if stopped():
                raise StreamCancelled
            # Unbounded, but bounded by one item's output (a transcript), not by traffic; blocking
            # the model worker on a slow reader would stall every other caller instead.
            _post(entry.loop, sink.put_nowait, piece)

        start = self._clock.now()
        start_ns = time.time_ns()
        failed = False
        end: _Done
        try:
            run_stream(entry.item, emit, stopped)
            end = _Done(entry.abort_error)
        except StreamCancelled:
            end = _Done(entry.abort_error)
        except Exception as exc:
            log.warning("%s: a stream failed: %r", self.name, exc)
            failed, end = True, _Done(exc)
        with self._cond:
            self._running.discard(entry)
        self._record(1, start, failed=failed)
        self._trace([entry], start_ns, failed=failed)
        _post(entry.loop, sink.put_nowait, end)

    def _record(self, size: int, start: float, *, failed: bool) -> None:
        """The model is done with `size` items (before their callers hear of it)."""
        seconds = max(self._clock.now() - start, 0.0)
        self._observer.batch_done(self.name, size, seconds, failed)
        with self._cond:
            self._in_model -= size
            previous = self._batch_seconds
            self._batch_seconds = (
                seconds if previous is None else previous + _EWMA_WEIGHT * (seconds - previous)
            )

    def _trace(self, batch: list[_Entry[T, R]], start_ns: int, *, failed: bool) -> None:
        if any(entry.trace is not None for entry in batch):
            tracing.record_batch(self.name, [entry.trace for entry in batch], start_ns,
                                 time.time_ns(), failed)

    def _fail(self, entry: _Entry[T, R], error: BaseException) -> None:
        if entry.request is not None:
            _post(entry.loop, _settle, [(entry, False, error)])
        elif entry.sink is not None:
            _post(entry.loop, entry.sink.put_nowait, _Done(error))


def split_on_error(run_batch: RunBatch[T, R], should_split: Callable[[Exception], bool]) -> RunBatch[T, R]:
    """`run_batch`, retried in halves when it raises an error `should_split` accepts.

    For GPU out-of-memory: a batch too large for the free memory still gets through in smaller
    pieces; an item that fails alone re-raises, for the caller to answer GPU_OUT_OF_MEMORY.
    """

    def run(items: list[T]) -> Sequence[R]:
        try:
            return run_batch(items)
        except Exception as exc:
            if len(items) < 2 or not should_split(exc):
                raise
        half = len(items) // 2
        return [*run(items[:half]), *run(items[half:])]

    return run


class ResultStream(Generic[R]):
    """The pieces of one streamed item, in the order the model emitted them.

    Ends when the model finishes; raises what the model raised, SHUTTING_DOWN, or `TimeoutError`
    for a passed deadline. Closing it early stops the model within one piece.
    """

    def __init__(
        self, batcher: Batcher[Any, R], entry: _Entry[Any, R], sink: asyncio.Queue[R | _Done]
    ) -> None:
        self._batcher = batcher
        self._entry = entry
        self._sink = sink
        self._finished = False

    def __aiter__(self) -> ResultStream[R]:
        return self

    async def __anext__(self) -> R:
        if self._finished:
            raise StopAsyncIteration
        try:
            piece = await self._sink.get()
        except asyncio.CancelledError:
            self.cancel()
            raise
        if isinstance(piece, _Done):
            self._finished = True
            if piece.error is not None:
                raise piece.error
            raise StopAsyncIteration
        return piece

    def cancel(self) -> None:
        """Give up on the rest: a queued item never runs, a running one stops within one piece."""
        if not self._finished:
            self._finished = True
            self._batcher._withdraw(self._entry)

    async def aclose(self) -> None:
        self.cancel()

    async def __aenter__(self) -> ResultStream[R]:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.cancel()
