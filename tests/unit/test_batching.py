"""The batching engine, driven by a fake clock: timing is asserted by moving time, not sleeping."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import pytest

from sensorium.batching import (
    Batcher,
    BatchObserver,
    DropReason,
    StreamCancelled,
    split_on_error,
)
from sensorium.errors import Reason, SensoriumError


class FakeClock:
    """Time moves only when a test calls `advance`; waiting workers are woken then."""

    def __init__(self) -> None:
        self._now = 1000.0
        self._lock = threading.Lock()
        self._conditions: set[threading.Condition] = set()
        self.timed_waits = 0  # waits that had a max-wait timeout, ever
        self.waiting = 0  # threads blocked in wait() now

    def now(self) -> float:
        return self._now

    def wait(self, condition: threading.Condition, timeout: float | None) -> None:
        with self._lock:
            self._conditions.add(condition)
            self.waiting += 1
            if timeout is not None:
                self.timed_waits += 1
        try:
            condition.wait()  # real time plays no part: only advance() or new work wakes it
        finally:
            with self._lock:
                self.waiting -= 1

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds
            conditions = list(self._conditions)
        for condition in conditions:
            with condition:
                condition.notify_all()


class Gate:
    """A model that blocks inside its call until the test opens the gate."""

    def __init__(self) -> None:
        self.opened = threading.Event()
        self.batches: list[list[Any]] = []
        self.entered = 0

    def __call__(self, items: list[Any]) -> list[Any]:
        self.batches.append(list(items))
        self.entered += 1
        assert self.opened.wait(10), "test never opened the gate"
        return [f(x) for x in items]


class Recorder:
    def __init__(self) -> None:
        self.depths: list[int] = []
        self.batches: list[tuple[int, float, bool]] = []
        self.drops: list[DropReason] = []

    def queue_depth(self, batcher: str, depth: int) -> None:
        self.depths.append(depth)

    def batch_done(self, batcher: str, size: int, model_seconds: float, failed: bool) -> None:
        self.batches.append((size, model_seconds, failed))

    def dropped(self, batcher: str, reason: DropReason) -> None:
        self.drops.append(reason)


def f(x: Any) -> Any:
    return ("f", x)


async def until(predicate: Callable[[], bool], what: str = "condition") -> None:
    """Yield to the loop and the workers until `predicate` holds (a sync point, not a timing)."""
    deadline = time.monotonic() + 10
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.001)


def batcher_threads(name: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(f"sensorium-{name}-")]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def closing() -> AsyncIterator[list[Batcher[Any, Any]]]:
    """Batchers appended here are closed (without draining) after the test, whatever happens."""
    batchers: list[Batcher[Any, Any]] = []
    yield batchers
    for batcher in batchers:
        await batcher.close(drain=False)


def make(
    closing: list[Batcher[Any, Any]],
    run_batch: Callable[[list[Any]], Sequence[Any]] | None = None,
    **kwargs: Any,
) -> Batcher[Any, Any]:
    kwargs.setdefault("name", "test")
    batcher: Batcher[Any, Any] = Batcher(run_batch=run_batch, **kwargs)
    batcher.start()
    closing.append(batcher)
    return batcher


# ---- batching ---------------------------------------------------------------------------------


async def test_concurrent_submits_coalesce_into_full_batches(clock, closing):
    batches: list[list[int]] = []

    def model(items: list[int]) -> list[Any]:
        batches.append(items)
        return [f(x) for x in items]

    # The clock never moves, so only full batches can run: coalescing, not the timer. Recent
    # traffic of four at once first: without it the first caller is a lone one, which the
    # worker may run at once (it never waits for company nobody brought lately), before the
    # other fifteen are queued.
    batcher = make(closing, model, max_batch_size=4, max_wait=1.0, queue_size=64, clock=clock)
    await company(batcher, clock, count=4)
    batches.clear()
    results = await asyncio.gather(*(batcher.submit(i) for i in range(16)))

    assert results == [f(i) for i in range(16)]
    assert [len(b) for b in batches] == [4, 4, 4, 4]
    assert sorted(x for b in batches for x in b) == list(range(16))


async def company(batcher: Batcher[Any, Any], clock: FakeClock, count: int = 2) -> int:
    """Recent traffic of `count` items at once (so later items expect company); returns the
    clock's timed waits so far. One request queues them together: they run without waiting."""
    warm = [("warm", i) for i in range(count)]
    assert await batcher.submit_many(warm) == [f(x) for x in warm]
    await until(lambda: clock.waiting == 1, "the worker to wait again")
    return clock.timed_waits


async def test_lone_item_runs_once_max_wait_has_passed_not_before(clock, closing):
    gate = Gate()
    gate.opened.set()
    batcher = make(closing, gate, max_batch_size=8, max_wait=0.010, clock=clock)
    waits = await company(batcher, clock)
    runs = len(gate.batches)

    task = asyncio.create_task(batcher.submit("only"))
    await until(lambda: clock.timed_waits == waits + 1 and clock.waiting == 1, "the max-wait timer")
    clock.advance(0.009)
    # The worker wakes, sees 1 ms left, and waits again without running the model.
    await until(lambda: clock.timed_waits == waits + 2 and clock.waiting == 1, "a second wait")
    assert len(gate.batches) == runs
    assert not task.done()

    clock.advance(0.002)
    assert await task == f("only")
    assert gate.batches[runs:] == [["only"]]


async def test_a_lone_caller_without_recent_company_never_waits(clock, closing):
    gate = Gate()
    gate.opened.set()
    batcher = make(closing, gate, max_batch_size=8, max_wait=10.0, clock=clock)
    # No one else came lately: the item runs at once although max_wait is 10 s.
    assert await batcher.submit("alone") == f("alone")
    assert clock.timed_waits == 0
    # Company came (two callers at once): a lone item now waits for more ...
    waits = await company(batcher, clock)
    task = asyncio.create_task(batcher.submit("waits"))
    await until(lambda: clock.timed_waits == waits + 1, "the max-wait timer")
    assert not task.done()
    clock.advance(10.0)
    assert await task == f("waits")
    # ... until the traffic is old news (the peak is kept for max(1 s, 100 x max_wait)).
    clock.advance(1000.0)
    waits = clock.timed_waits
    assert await batcher.submit("alone again") == f("alone again")
    assert clock.timed_waits == waits


async def test_max_wait_counts_from_the_oldest_item(clock, closing):
    gate = Gate()
    gate.opened.set()
    batcher = make(closing, gate, max_batch_size=8, max_wait=0.010, clock=clock)
    waits = await company(batcher, clock, 3)
    runs = len(gate.batches)

    first = asyncio.create_task(batcher.submit(1))
    await until(lambda: clock.waiting == 1 and clock.timed_waits == waits + 1)
    clock.advance(0.006)
    await until(lambda: clock.timed_waits == waits + 2 and clock.waiting == 1)
    second = asyncio.create_task(batcher.submit(2))
    await until(lambda: batcher.queue_depth == 2)
    clock.advance(0.005)  # 11 ms after the first item, 5 ms after the second

    assert await asyncio.gather(first, second) == [f(1), f(2)]
    assert gate.batches[runs:] == [[1, 2]]


async def test_one_request_of_many_items_is_batched_and_answered_in_order(clock, closing):
    gate = Gate()
    gate.opened.set()
    batcher = make(closing, gate, max_batch_size=4, clock=clock)
    assert await batcher.submit_many(list(range(10))) == [f(i) for i in range(10)]
    assert sorted(x for b in gate.batches for x in b) == list(range(10))
    assert all(len(b) <= 4 for b in gate.batches)


async def test_a_request_that_does_not_fit_is_refused_whole(clock, closing):
    gate = Gate()
    batcher = make(closing, gate, max_batch_size=1, queue_size=4, clock=clock)
    running = asyncio.create_task(batcher.submit("running"))
    await until(lambda: gate.entered == 1, "the model to block")
    queued = asyncio.create_task(batcher.submit_many(["a", "b"]))
    await until(lambda: batcher.queue_depth == 2)
    with pytest.raises(SensoriumError) as refused:
        await batcher.submit_many(["x", "y", "z"])  # 2 + 3 > 4: none of it is queued
    assert refused.value.reason is Reason.OVERLOADED and batcher.queue_depth == 2
    gate.opened.set()
    assert await running == f("running")
    assert await queued == [f("a"), f("b")]


async def test_a_failing_item_fails_its_request_and_withdraws_the_rest(clock, closing):
    def model(items: list[str]) -> list[Any]:
        if "boom" in items:
            raise ValueError("model exploded")
        return [f(x) for x in items]

    seen: list[list[str]] = []

    def recording(items: list[str]) -> list[Any]:
        seen.append(list(items))
        return model(items)

    gate_open = threading.Event()

    def slow_first(items: list[str]) -> list[Any]:
        if items == ["first"]:
            assert gate_open.wait(10)
        return recording(items)

    batcher = make(closing, slow_first, max_batch_size=1, clock=clock)
    first = asyncio.create_task(batcher.submit("first"))
    await until(lambda: batcher.queue_depth == 0 and not first.done(), "the model to block")
    request = asyncio.create_task(batcher.submit_many(["boom", "later", "later too"]))
    await until(lambda: batcher.queue_depth == 3)
    gate_open.set()
    with pytest.raises(ValueError, match="exploded"):
        await request
    assert await first == f("first")
    await until(lambda: batcher.queue_depth == 0)
    assert ["later"] not in seen[:2]  # withdrawn (at most one can already be in the model)


async def test_full_queue_refuses_at_once_with_a_retry_estimate(clock, closing):
    recorder = Recorder()
    timed = threading.Event()
    gate = Gate()

    def model(items: list[int]) -> list[Any]:
        if not timed.is_set():  # the first batch "takes" 2 s of clock time
            clock.advance(2.0)
            timed.set()
            return [f(x) for x in items]
        return gate(items)

    batcher = make(closing, model, max_batch_size=2, queue_size=4, clock=clock, observer=recorder)
    assert await batcher.submit(0) == f(0)

    running = asyncio.create_task(batcher.submit(1))
    await until(lambda: gate.entered == 1, "the model to block")
    queued = [asyncio.create_task(batcher.submit(i)) for i in range(2, 6)]
    await until(lambda: batcher.queue_depth == 4)

    with pytest.raises(SensoriumError) as refused:
        await batcher.submit(99)
    assert refused.value.reason is Reason.OVERLOADED
    # Four queued items are two batches of two; one batch took 2 s; one worker.
    assert refused.value.retry_after_seconds == pytest.approx(4.0)
    assert "overloaded" in recorder.drops
    # Callers with expensive work before they submit (decoding audio) ask first, and get the
    # same estimate.
    with pytest.raises(SensoriumError) as asked:
        batcher.check_capacity()
    assert asked.value.reason is Reason.OVERLOADED
    assert asked.value.retry_after_seconds == pytest.approx(4.0)

    gate.opened.set()
    assert await running == f(1)
    assert await asyncio.gather(*queued) == [f(i) for i in range(2, 6)]
    assert 99 not in {x for b in gate.batches for x in b}
    batcher.check_capacity()  # room again
    assert max(recorder.depths) == 4


async def test_cancelled_and_expired_callers_never_reach_the_model(clock, closing):
    recorder = Recorder()
    gate = Gate()
    batcher = make(closing, gate, max_batch_size=8, clock=clock, observer=recorder)

    first = asyncio.create_task(batcher.submit("first"))
    await until(lambda: gate.entered == 1)
    kept = asyncio.create_task(batcher.submit("kept"))
    cancelled = asyncio.create_task(batcher.submit("cancelled"))
    expiring = asyncio.create_task(batcher.submit("expiring", deadline=clock.now() + 1.0))
    await until(lambda: batcher.queue_depth == 3)

    cancelled.cancel()
    await until(lambda: batcher.queue_depth == 2, "the cancelled item to leave the queue")
    clock.advance(1.5)  # past the deadline, while the model is still busy
    gate.opened.set()

    assert await first == f("first")
    assert await kept == f("kept")
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    with pytest.raises(TimeoutError):
        await expiring
    assert gate.batches == [["first"], ["kept"]]
    assert sorted(recorder.drops) == ["cancelled", "expired"]


async def test_a_deadline_already_passed_is_refused_at_submit(clock, closing):
    gate = Gate()
    batcher = make(closing, gate, clock=clock)
    with pytest.raises(TimeoutError):
        await batcher.submit(1, deadline=clock.now())
    assert batcher.queue_depth == 0
    assert gate.batches == []


async def test_a_failing_batch_fails_only_its_own_callers(clock, closing):
    gate = Gate()

    def model(items: list[str]) -> list[Any]:
        if "boom" in items:
            raise ValueError("model exploded")
        return gate(items)

    batcher = make(closing, model, max_batch_size=2, clock=clock)
    first = asyncio.create_task(batcher.submit("a"))
    await until(lambda: gate.entered == 1)
    # While "a" runs, these queue up as two batches: [b, boom] and [c, d].
    tasks = [asyncio.create_task(batcher.submit(x)) for x in ("b", "boom", "c", "d")]
    await until(lambda: batcher.queue_depth == 4)
    gate.opened.set()

    results = await asyncio.gather(first, *tasks, return_exceptions=True)
    assert results[0] == f("a")
    assert isinstance(results[1], ValueError)
    assert isinstance(results[2], ValueError)
    assert results[3:] == [f("c"), f("d")]


async def test_a_wrong_number_of_results_fails_the_batch(closing):
    batcher = make(closing, lambda items: items[:-1], max_batch_size=4)
    with pytest.raises(RuntimeError, match="returned 0 results for 1 items"):
        await batcher.submit(1)


async def test_many_concurrent_callers_each_get_their_own_result(closing):
    recorder = Recorder()
    batches: list[list[int]] = []
    rng = random.Random(7)

    def model(items: list[int]) -> list[int]:
        batches.append(items)
        time.sleep(rng.random() * 0.002)  # uneven model time mixes up the workers' batches
        return [x * x + 1 for x in items]

    # The real clock here: many callers, three workers, batches of up to 16.
    batcher = make(
        closing,
        model,
        max_batch_size=16,
        max_wait=0.002,
        queue_size=256,
        workers=3,
        observer=recorder,
    )

    async def caller(x: int) -> None:
        await asyncio.sleep(rng.random() * 0.01)
        assert await batcher.submit(x) == x * x + 1

    await asyncio.gather(*(caller(x) for x in range(200)))
    assert all(1 <= len(b) <= 16 for b in batches)
    assert sorted(x for b in batches for x in b) == list(range(200))
    assert len(batches) < 200  # at least some coalescing
    assert sum(size for size, _, _ in recorder.batches) == 200


async def test_the_model_never_runs_on_the_event_loop_thread(closing):
    threads: set[int] = set()

    def model(items: list[int]) -> list[int]:
        threads.add(threading.get_ident())
        return items

    batcher = make(closing, model, max_batch_size=4, workers=2)
    await asyncio.gather(*(batcher.submit(i) for i in range(20)))
    assert threads
    assert threading.get_ident() not in threads


async def test_submit_before_start_is_not_ready():
    batcher: Batcher[int, int] = Batcher("idle", run_batch=lambda items: items)
    with pytest.raises(SensoriumError) as error:
        await batcher.submit(1)
    assert error.value.reason is Reason.NOT_READY
    await batcher.close()


def test_invalid_configurations_are_refused():
    with pytest.raises(ValueError, match="exactly one"):
        Batcher("x")
    with pytest.raises(ValueError, match="one item at a time"):
        Batcher("x", run_stream=lambda item, emit, cancelled: None, max_batch_size=2)
    with pytest.raises(ValueError, match=">= 1"):
        Batcher("x", run_batch=lambda items: items, queue_size=0)


# ---- shutdown ---------------------------------------------------------------------------------


async def test_close_with_drain_runs_what_was_queued_and_stops_the_threads(clock):
    gate = Gate()
    batcher = Batcher("drain", run_batch=gate, max_batch_size=2, max_wait=5.0, clock=clock)
    batcher.start()
    assert len(batcher_threads("drain")) == 1

    running = asyncio.create_task(batcher.submit(1))  # no company lately: runs at once
    await until(lambda: gate.entered == 1)
    queued = asyncio.create_task(batcher.submit(2))  # 1 in the model: would wait 5 s for company
    await until(lambda: batcher.queue_depth == 1)

    closing = asyncio.create_task(batcher.close(drain=True))
    await until(lambda: not batcher.accepting)
    with pytest.raises(SensoriumError) as late:
        await batcher.submit(3)
    assert late.value.reason is Reason.SHUTTING_DOWN

    gate.opened.set()
    await closing
    # Draining does not wait for batches to fill: no clock advance was needed for item 2.
    assert await running == f(1)
    assert await queued == f(2)
    assert batcher_threads("drain") == []


async def test_close_without_drain_fails_the_queue_with_shutting_down(clock):
    gate = Gate()
    batcher = Batcher("abort", run_batch=gate, clock=clock)
    batcher.start()
    running = asyncio.create_task(batcher.submit(1))
    await until(lambda: gate.entered == 1)
    queued = [asyncio.create_task(batcher.submit(i)) for i in (2, 3)]
    await until(lambda: batcher.queue_depth == 2)

    closing = asyncio.create_task(batcher.close(drain=False))
    for task in queued:
        with pytest.raises(SensoriumError) as error:
            await task
        assert error.value.reason is Reason.SHUTTING_DOWN
    assert not closing.done()  # the batch in the model cannot be interrupted

    gate.opened.set()
    await closing
    assert await running == f(1)
    assert gate.batches == [[1]]
    assert batcher_threads("abort") == []


async def test_a_slow_drain_is_cut_off_after_the_grace_period():
    gate = Gate()
    batcher = Batcher("grace", run_batch=gate)
    batcher.start()
    running = asyncio.create_task(batcher.submit(1))
    await until(lambda: gate.entered == 1)
    queued = asyncio.create_task(batcher.submit(2))
    await until(lambda: batcher.queue_depth == 1)

    closing = asyncio.create_task(batcher.close(drain=True, grace=0.01))
    with pytest.raises(SensoriumError) as error:
        await queued
    assert error.value.reason is Reason.SHUTTING_DOWN
    gate.opened.set()
    await closing
    assert await running == f(1)


# ---- streams ----------------------------------------------------------------------------------


def make_stream(
    closing: list[Batcher[Any, Any]],
    run_stream: Callable[[Any, Callable[[Any], None], Callable[[], bool]], None],
    **kwargs: Any,
) -> Batcher[Any, Any]:
    kwargs.setdefault("name", "stream")
    batcher: Batcher[Any, Any] = Batcher(run_stream=run_stream, **kwargs)
    batcher.start()
    closing.append(batcher)
    return batcher


class Segments:
    """A streaming model emitting `n` pieces for item `n`, one per permit the test grants."""

    def __init__(self, check_cancelled: bool = True, paced: bool = True) -> None:
        self.check_cancelled = check_cancelled
        self.paced = paced
        self.permits = threading.Semaphore(0)
        self.emitted: list[tuple[Any, int]] = []
        self.stopped_by: list[str] = []
        self.started: list[Any] = []
        self.threads: set[int] = set()

    def __call__(self, item: Any, emit: Callable[[Any], None], cancelled: Callable[[], bool]) -> None:
        self.started.append(item)
        self.threads.add(threading.get_ident())
        name, n = item
        try:
            for i in range(n):
                if self.paced:
                    assert self.permits.acquire(timeout=10), "test never granted a permit"
                if self.check_cancelled and cancelled():
                    self.stopped_by.append("cancelled()")
                    return
                self.emitted.append((name, i))
                emit((name, i))
        except StreamCancelled:
            self.stopped_by.append("emit")
            raise


async def test_a_stream_yields_its_pieces_in_order(closing):
    model = Segments(paced=False)
    batcher = make_stream(closing, model)
    pieces = [piece async for piece in batcher.submit_stream(("a", 5))]
    assert pieces == [("a", i) for i in range(5)]
    assert threading.get_ident() not in model.threads


async def test_cancelling_a_stream_stops_the_model_within_one_piece(closing):
    model = Segments()
    batcher = make_stream(closing, model)
    async with batcher.submit_stream(("a", 100)) as stream:
        model.permits.release()
        assert await anext(stream) == ("a", 0)
        model.permits.release()
        assert await anext(stream) == ("a", 1)
    # The consumer left; the model finds out at its next check.
    model.permits.release()
    await until(lambda: model.stopped_by == ["cancelled()"], "the model to stop")
    assert model.emitted == [("a", 0), ("a", 1)]


async def test_emit_stops_a_model_that_never_checks_cancelled(closing):
    model = Segments(check_cancelled=False)
    batcher = make_stream(closing, model)
    stream = batcher.submit_stream(("a", 100))
    model.permits.release()
    assert await anext(stream) == ("a", 0)
    await stream.aclose()
    model.permits.release()
    await until(lambda: model.stopped_by == ["emit"], "emit to raise")
    # The piece in flight when the consumer left is the last one made.
    assert model.emitted == [("a", 0), ("a", 1)]


async def test_a_consumer_cancelled_while_waiting_stops_the_model(closing):
    model = Segments()
    batcher = make_stream(closing, model)

    async def consume() -> list[Any]:
        return [piece async for piece in batcher.submit_stream(("a", 100))]

    task = asyncio.create_task(consume())
    await until(lambda: model.started == [("a", 100)])
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    model.permits.release()
    await until(lambda: model.stopped_by == ["cancelled()"])
    assert model.emitted == []


async def test_a_queued_stream_cancelled_before_its_turn_never_runs(closing):
    model = Segments()
    batcher = make_stream(closing, model)
    first = batcher.submit_stream(("first", 1))
    second = batcher.submit_stream(("second", 1))
    await until(lambda: model.started == [("first", 1)])
    await second.aclose()
    model.permits.release()
    assert [p async for p in first] == [("first", 0)]
    third = batcher.submit_stream(("third", 1))
    model.permits.release()
    assert [p async for p in third] == [("third", 0)]
    assert model.started == [("first", 1), ("third", 1)]


async def test_a_stream_error_reaches_its_consumer_after_the_pieces_made(closing):
    def model(item: int, emit: Callable[[int], None], cancelled: Callable[[], bool]) -> None:
        emit(1)
        if item == 0:
            raise SensoriumError(Reason.AUDIO_UNDECODABLE, "bad audio")

    batcher = make_stream(closing, model)
    stream = batcher.submit_stream(0)
    assert await anext(stream) == 1
    with pytest.raises(SensoriumError) as error:
        await anext(stream)
    assert error.value.reason is Reason.AUDIO_UNDECODABLE
    # The next stream is unaffected.
    assert [p async for p in batcher.submit_stream(1)] == [1]


async def test_a_stream_past_its_deadline_stops_with_timeout(clock, closing):
    model = Segments()
    batcher = make_stream(closing, model, clock=clock)
    stream = batcher.submit_stream(("a", 100), deadline=clock.now() + 10)
    model.permits.release()
    assert await anext(stream) == ("a", 0)
    clock.advance(11)
    model.permits.release()
    with pytest.raises(TimeoutError):
        await anext(stream)
    assert model.stopped_by == ["cancelled()"]


async def test_streams_run_one_at_a_time_per_worker(closing):
    model = Segments()
    batcher = make_stream(closing, model, workers=2)
    streams = [batcher.submit_stream((name, 1)) for name in ("a", "b", "c")]
    await until(lambda: len(model.started) == 2, "two workers busy")
    assert batcher.queue_depth == 1
    for _ in range(3):
        model.permits.release()
    results = [[p async for p in s] for s in streams]
    assert results == [[("a", 0)], [("b", 0)], [("c", 0)]]
    assert len(model.threads) == 2


async def test_close_without_drain_stops_running_streams_with_shutting_down():
    model = Segments()
    batcher: Batcher[Any, Any] = Batcher("stream-abort", run_stream=model)
    batcher.start()
    running = batcher.submit_stream(("a", 100))
    queued = batcher.submit_stream(("b", 1))
    model.permits.release()
    assert await anext(running) == ("a", 0)

    closing = asyncio.create_task(batcher.close(drain=False))
    with pytest.raises(SensoriumError) as error:
        await anext(queued)
    assert error.value.reason is Reason.SHUTTING_DOWN
    model.permits.release()
    with pytest.raises(SensoriumError) as error:
        await anext(running)
    assert error.value.reason is Reason.SHUTTING_DOWN
    await closing
    assert batcher_threads("stream-abort") == []
    assert model.started == [("a", 100)]


async def test_value_and_stream_calls_are_not_mixed_up():
    values: Batcher[int, int] = Batcher("v", run_batch=lambda items: items)
    streams: Batcher[int, int] = Batcher("s", run_stream=lambda item, emit, cancelled: None)
    values.start()
    streams.start()
    with pytest.raises(TypeError):
        values.submit_stream(1)
    with pytest.raises(TypeError):
        await streams.submit(1)
    await values.close()
    await streams.close()


async def test_the_observer_sees_depth_batches_and_model_time(clock, closing):
    recorder = Recorder()

    def model(items: list[int]) -> list[int]:
        clock.advance(0.25)
        return items

    observer: BatchObserver = recorder
    batcher = make(closing, model, max_batch_size=3, clock=clock, observer=observer)
    await asyncio.gather(*(batcher.submit(i) for i in range(3)))
    assert recorder.batches == [(3, pytest.approx(0.25), False)]
    assert recorder.depths[-1] == 0


async def test_split_on_error_retries_smaller_batches(closing):
    sizes: list[int] = []

    def model(items: list[int]) -> list[Any]:
        sizes.append(len(items))
        if len(items) > 2:
            raise RuntimeError("CUDA out of memory")
        if 13 in items:
            raise RuntimeError("CUDA out of memory")
        return [f(x) for x in items]

    run = split_on_error(model, lambda exc: "out of memory" in str(exc))
    assert run([1, 2, 3, 4, 5]) == [f(x) for x in (1, 2, 3, 4, 5)]
    assert sizes == [5, 2, 3, 1, 2]
    with pytest.raises(RuntimeError, match="out of memory"):
        run([12, 13])

    def broken(items: list[int]) -> list[Any]:
        raise ValueError("other")

    with pytest.raises(ValueError, match="other"):
        split_on_error(broken, lambda exc: True)([1, 2])

    batcher = make(closing, run, max_batch_size=8)
    assert await asyncio.gather(*(batcher.submit(i) for i in range(6))) == [f(i) for i in range(6)]
