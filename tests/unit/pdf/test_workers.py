"""The PDF worker pool: real worker processes, crashes, hangs, recycling, limits, shutdown."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import multiprocessing
import os
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

import pdf_faults
from enginekit import extract_document, worker_pids
from sensorium.errors import Reason, SensoriumError
from sensorium.pdf.api import DocumentInfo, ExtractOptions, ImageResult, Item, PageResult
from sensorium.pdf.extractor import Limits
from sensorium.pdf.workers import PdfWorkerPool, _Lane
from sensorium.settings import PdfSettings

PoolFactory = Callable[..., PdfWorkerPool]


@pytest.fixture
def restarts() -> list[str]:
    return []


@pytest.fixture
async def make_pool(restarts: list[str]) -> AsyncIterator[PoolFactory]:
    pools: list[PdfWorkerPool] = []

    def make(*, faults: bool = True, workers: int = 2, **settings: Any) -> PdfWorkerPool:
        values: dict[str, Any] = {"timeout_seconds": 30.0, **settings}
        injected = {"page_extractor": pdf_faults.extract_page} if faults else {}
        pool = PdfWorkerPool(PdfSettings(**values), workers=workers, on_worker_restart=restarts.append,
                             **injected)
        pools.append(pool)
        return pool

    yield make
    for pool in pools:
        await pool.close()


async def items_of(
    pool: PdfWorkerPool, path: Path, options: ExtractOptions | None = None
) -> AsyncIterator[Item]:
    """The pool's items one by one (it yields each task's items as one list)."""
    async with contextlib.aclosing(pool.extract(path, options or ExtractOptions())) as results:
        async for result in results:
            if isinstance(result, list):
                for item in result:
                    yield item
            else:
                yield result


async def collect(pool: PdfWorkerPool, path: Path, options: ExtractOptions | None = None) -> list[Item]:
    return [item async for item in items_of(pool, path, options)]


def pages_of(items: list[Item]) -> list[PageResult]:
    return [item for item in items if isinstance(item, PageResult)]


async def pages_until_error(pool: PdfWorkerPool, path: Path) -> tuple[list[int], SensoriumError]:
    """Page numbers received before the extraction failed, and its error."""
    received: list[int] = []
    try:
        async for item in items_of(pool, path):
            if isinstance(item, PageResult):
                received.append(item.page_number)
    except SensoriumError as error:
        return received, error
    raise AssertionError(f"no error after {len(received)} pages")


def address_space_limit(pid: int) -> str:
    limits = Path(f"/proc/{pid}/limits").read_text().splitlines()
    return next(line for line in limits if line.startswith("Max address space"))


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie, finished but not yet reaped, counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


async def wait_gone(pids: set[int], seconds: float = 5.0) -> set[int]:
    deadline = time.monotonic() + seconds
    while (left := {pid for pid in pids if alive(pid)}) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return left


# --- extraction through the pool --------------------------------------------------------------


async def test_pool_extracts_like_the_extractor(make_pool: PoolFactory, make_text_pdf: Any) -> None:
    path = make_text_pdf(40)  # first task, then growing chunks on both workers
    pool = make_pool()
    items = await collect(pool, path)
    local = list(extract_document(path, ExtractOptions(), Limits()))
    assert isinstance(items[0], DocumentInfo) and items[0].page_count == 40
    assert items == local


async def test_pool_yields_each_tasks_pages_together(make_pool: PoolFactory, make_text_pdf: Any) -> None:
    """The servicer sends each list as one message: the first must be small (the first page
    reaches the caller at once), later ones larger (fewer messages per page)."""
    results = [r async for r in make_pool().extract(make_text_pdf(100), ExtractOptions())]
    assert isinstance(results[0], DocumentInfo)
    chunks = [[item.page_number for item in chunk] for chunk in results[1:] if isinstance(chunk, list)]
    assert len(chunks) == len(results) - 1
    assert [n for chunk in chunks for n in chunk] == list(range(1, 101))
    assert len(chunks[0]) <= 4 < max(len(chunk) for chunk in chunks)


async def recording_pool(
    make_pool: PoolFactory, monkeypatch: pytest.MonkeyPatch
) -> tuple[PdfWorkerPool, list[tuple[str, int]]]:
    """A warm 2-worker pool, and the (document name, lane number) of every extraction task it
    schedules from now on."""
    pool = make_pool()
    await pool.warm_up()
    scheduled: list[tuple[str, int]] = []
    schedule = pool._schedule

    def recording(lane: Any, function: Any, args: tuple[Any, ...], timeout: float | None) -> Any:
        scheduled.append((Path(args[0]).name, pool._lanes.index(lane)))
        return schedule(lane, function, args, timeout)

    monkeypatch.setattr(pool, "_schedule", recording)
    return pool, scheduled


async def test_a_document_alone_spreads_over_the_idle_workers(
    make_pool: PoolFactory, make_text_pdf: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    pool, scheduled = await recording_pool(make_pool, monkeypatch)
    assert len(pages_of(await collect(pool, make_text_pdf(200)))) == 200
    assert {lane for _, lane in scheduled} == {0, 1}


async def test_a_document_does_not_queue_behind_a_busy_worker(
    make_pool: PoolFactory, make_text_pdf: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    pool, scheduled = await recording_pool(make_pool, monkeypatch)
    slow = asyncio.ensure_future(collect(pool, make_text_pdf(1, title="sensorium-test:sleep=3")))
    while not scheduled:
        await asyncio.sleep(0.01)
    busy = scheduled[0][1]
    long = make_text_pdf(100)
    assert len(pages_of(await collect(pool, long))) == 100
    assert not slow.done(), "the sleeping document outlasts the long one"
    lanes = {lane for name, lane in scheduled if name == long.name}
    assert lanes == {1 - busy}
    assert len([name for name, _ in scheduled if name == long.name]) > 3  # several chunks
    slow.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await slow


def test_lane_choice_keeps_a_document_on_its_workers_unless_one_is_idle() -> None:
    """The routing rule on its own, with lanes whose load is set by unfinished futures."""

    def lane(load: int) -> Any:
        made = _Lane(pool=None)
        made.futures = {concurrent.futures.Future() for _ in range(load)}
        return made

    pool = PdfWorkerPool.__new__(PdfWorkerPool)
    a, b, c = pool._lanes = [lane(1), lane(3), lane(2)]
    # Every worker busy: the document's own lane, while it has fewer than 2 chunks there.
    assert pool._next_lane([b], Counter({b: 1})) is b
    assert pool._next_lane([b], Counter({b: 2})) is None
    assert pool._next_lane([b, c], Counter({b: 1, c: 1})) is c  # the less loaded of its own
    # An idle worker takes the chunk: its own first (the document is open there), else any.
    a.futures.clear()
    assert pool._next_lane([b], Counter({b: 2})) is a
    c.futures.clear()
    assert pool._next_lane([b, c], Counter({b: 2})) is c


async def test_pool_streams_images_after_their_page(make_pool: PoolFactory, images_pdf: Path) -> None:
    items = await collect(make_pool(), images_pdf, ExtractOptions(include_images=True))
    kinds = [type(item) for item in items]
    assert kinds == [DocumentInfo, PageResult, ImageResult, ImageResult, PageResult]


async def test_page_range(make_pool: PoolFactory, make_text_pdf: Any) -> None:
    items = await collect(make_pool(), make_text_pdf(50), ExtractOptions(first_page=7, last_page=31))
    assert [p.page_number for p in pages_of(items)] == list(range(7, 32))


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        (ExtractOptions(password="wrong"), Reason.PDF_PASSWORD_INCORRECT),
        (ExtractOptions(), Reason.PDF_PASSWORD_REQUIRED),
    ],
)
async def test_password_errors_cross_the_process_boundary(
    make_pool: PoolFactory, make_encrypted_pdf: Any, options: ExtractOptions, reason: Reason
) -> None:
    with pytest.raises(SensoriumError) as excinfo:
        await collect(make_pool(), make_encrypted_pdf("pässwörd"), options)
    assert excinfo.value.reason == reason


async def test_encrypted_document_through_the_pool(make_pool: PoolFactory, make_encrypted_pdf: Any) -> None:
    items = await collect(make_pool(), make_encrypted_pdf("pässwörd"), ExtractOptions(password="pässwörd"))
    assert [p.text for p in pages_of(items)] == ["Secret text"]


async def test_document_errors(make_pool: PoolFactory, make_text_pdf: Any, tmp_path: Path) -> None:
    pool = make_pool(max_document_bytes=5000)
    with pytest.raises(SensoriumError) as excinfo:
        await collect(pool, make_text_pdf(3), ExtractOptions(first_page=4))
    assert excinfo.value.reason == Reason.PAGE_OUT_OF_RANGE
    (tmp_path / "junk.pdf").write_bytes(b"not a pdf")
    with pytest.raises(SensoriumError) as excinfo:
        await collect(pool, tmp_path / "junk.pdf")
    assert excinfo.value.reason == Reason.PDF_UNREADABLE
    with pytest.raises(SensoriumError) as excinfo:
        await collect(pool, make_text_pdf(60, lines=30))
    assert excinfo.value.reason == Reason.INPUT_TOO_LARGE
    assert pool.pending == 0


async def test_first_page_arrives_early(make_pool: PoolFactory, dense_1000_pdf: Path) -> None:
    pool = make_pool()
    await pool.warm_up()
    started = time.monotonic()
    first_page = None
    numbers = []
    async for item in items_of(pool, dense_1000_pdf):
        if isinstance(item, PageResult):
            first_page = first_page or time.monotonic() - started
            numbers.append(item.page_number)
    total = time.monotonic() - started
    assert numbers == list(range(1, 1001))
    assert first_page is not None
    assert first_page <= 0.10 * total, f"first page after {first_page:.3f} s of {total:.3f} s"


# --- isolation: crashes, hangs, memory ------------------------------------------------------------


async def test_a_crash_fails_only_its_document(
    make_pool: PoolFactory, make_text_pdf: Any, restarts: list[str]
) -> None:
    pool = make_pool()
    crashing = make_text_pdf(2, title="sensorium-test:segfault")
    healthy = make_text_pdf(30)
    crashed, served = await asyncio.gather(
        collect(pool, crashing), collect(pool, healthy), return_exceptions=True
    )
    assert isinstance(crashed, SensoriumError) and crashed.reason == Reason.PARSER_CRASH
    assert crashed.metadata["exit_code"] == "-11"
    assert isinstance(served, list) and len(pages_of(served)) == 30
    assert "crash" in restarts
    # The pool heals: both workers serve again.
    again = await asyncio.gather(*(collect(pool, healthy) for _ in range(3)))
    assert all(len(pages_of(items)) == 30 for items in again)


async def test_a_crash_in_a_later_chunk(make_pool: PoolFactory, make_text_pdf: Any) -> None:
    path = make_text_pdf(40, title="sensorium-test:segfault@page=30")
    received, error = await pages_until_error(make_pool(), path)
    assert error.reason == Reason.PARSER_CRASH
    assert received == list(range(1, len(received) + 1)) and 0 < len(received) < 30


async def test_a_hang_is_killed_at_the_time_limit(
    make_pool: PoolFactory, make_text_pdf: Any, restarts: list[str]
) -> None:
    pool = make_pool(timeout_seconds=1.0)
    hanging = make_text_pdf(2, title="sensorium-test:sleep=60")
    started = time.monotonic()
    hung, served = await asyncio.gather(
        collect(pool, hanging), collect(pool, make_text_pdf(10)), return_exceptions=True
    )
    assert time.monotonic() - started < 10
    assert isinstance(hung, SensoriumError) and hung.reason == Reason.PROCESSING_LIMIT
    assert hung.setting == "pdf.timeout_seconds"
    assert isinstance(served, list) and len(pages_of(served)) == 10
    assert restarts == ["timeout"]
    assert len(pages_of(await collect(pool, make_text_pdf(3)))) == 3


async def test_the_time_limit_spans_the_whole_document(make_pool: PoolFactory, make_text_pdf: Any) -> None:
    path = make_text_pdf(40, title="sensorium-test:sleep=60@page=20")
    received, error = await pages_until_error(make_pool(timeout_seconds=1.0), path)
    assert error.reason == Reason.PROCESSING_LIMIT
    assert received == list(range(1, len(received) + 1)) and 0 < len(received) < 20


async def test_memory_limit(make_pool: PoolFactory, make_text_pdf: Any) -> None:
    pool = make_pool(workers=1, worker_memory_mb=512)
    await pool.warm_up()
    (pid,) = worker_pids(pool)
    assert str(512 * 1024 * 1024) in address_space_limit(pid)
    with pytest.raises(SensoriumError) as excinfo:
        await collect(pool, make_text_pdf(1, title="sensorium-test:allocate=2048"))
    assert excinfo.value.reason == Reason.PROCESSING_LIMIT
    assert excinfo.value.setting == "pdf.worker_memory_mb"
    assert len(pages_of(await collect(pool, make_text_pdf(2)))) == 2


async def test_the_shipped_pool_has_no_fault_hooks(make_pool: PoolFactory, make_text_pdf: Any) -> None:
    pool = make_pool(faults=False)
    items = await collect(pool, make_text_pdf(2, title="sensorium-test:segfault"))
    assert isinstance(items[0], DocumentInfo) and items[0].title == "sensorium-test:segfault"
    assert len(pages_of(items)) == 2


# --- recycling, admission, shutdown ------------------------------------------------------------


async def test_workers_are_recycled(make_pool: PoolFactory, make_text_pdf: Any, restarts: list[str]) -> None:
    pool = make_pool(workers=1, recycle_after_documents=2)
    path = make_text_pdf(1)  # one task per document
    seen: set[int] = set()
    for _ in range(5):
        await collect(pool, path)
        seen |= worker_pids(pool)
    assert len(seen) == 3  # documents 1-2, 3-4, 5
    assert restarts == ["recycled", "recycled"]


async def test_overload_is_refused_with_a_retry_delay(make_pool: PoolFactory, make_text_pdf: Any) -> None:
    pool = make_pool(max_pending_documents=1)
    slow = pool.extract(make_text_pdf(1, title="sensorium-test:sleep=60"), ExtractOptions())
    first = asyncio.ensure_future(slow.__anext__())
    while pool.pending == 0:
        await asyncio.sleep(0.01)
    with pytest.raises(SensoriumError) as excinfo:
        await collect(pool, make_text_pdf(1))
    error = excinfo.value
    assert error.reason == Reason.OVERLOADED and error.setting == "pdf.max_pending_documents"
    assert error.retry_after_seconds is not None and error.retry_after_seconds > 0
    first.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await first
    await slow.aclose()
    assert pool.pending == 0
    assert len(pages_of(await collect(pool, make_text_pdf(2)))) == 2


async def test_a_caller_leaving_early_frees_its_slot(make_pool: PoolFactory, make_text_pdf: Any) -> None:
    pool = make_pool()
    async with contextlib.aclosing(items_of(pool, make_text_pdf(200))) as items:
        async for item in items:
            if isinstance(item, PageResult) and item.page_number == 3:
                break
    assert pool.pending == 0
    assert len(pages_of(await collect(pool, make_text_pdf(5)))) == 5


async def test_close_leaves_no_processes(make_pool: PoolFactory, make_text_pdf: Any) -> None:
    pool = make_pool()
    await pool.warm_up()
    await collect(pool, make_text_pdf(20))
    pids = worker_pids(pool)
    assert pids and all(alive(pid) for pid in pids)
    await pool.close()
    assert await wait_gone(pids) == set()
    assert not [p for p in multiprocessing.active_children() if p.name == "pebble_pool_worker"]
    with pytest.raises(SensoriumError) as excinfo:
        await collect(pool, make_text_pdf(1))
    assert excinfo.value.reason == Reason.SHUTTING_DOWN
    await pool.close()  # idempotent


async def test_close_fails_documents_in_flight(make_pool: PoolFactory, make_text_pdf: Any) -> None:
    pool = make_pool()
    hanging = asyncio.ensure_future(collect(pool, make_text_pdf(1, title="sensorium-test:sleep=60")))
    while pool.pending == 0:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.2)  # let the task reach a worker
    started = time.monotonic()
    await pool.close()
    with pytest.raises(SensoriumError) as excinfo:
        await hanging
    assert excinfo.value.reason == Reason.SHUTTING_DOWN
    assert time.monotonic() - started < 10


async def test_pool_heals_after_an_idle_worker_is_killed(make_pool: PoolFactory, make_text_pdf: Any) -> None:
    # The kernel's OOM killer may pick an idle worker; pebble then marks its whole pool broken.
    pool = make_pool()
    await pool.warm_up()
    for pid in worker_pids(pool):
        os.kill(pid, signal.SIGKILL)
    await asyncio.sleep(0.5)  # pebble's manager notices within 0.1 s
    assert len(pages_of(await collect(pool, make_text_pdf(3)))) == 3
