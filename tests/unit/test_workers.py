"""The generic worker pool (`sensorium.workers.WorkerPool`, under the PDF, document and media
pools) with the media wording and tasks: real worker processes, crashes, hangs, the CPU-time
backstop, memory, recycling, admission, cancellation, shutdown."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

import mediakit
import pool_faults
from sensorium.errors import Reason, SensoriumError
from sensorium.media.text import TextOptions, read_image
from sensorium.media.video import FrameOptions, extract_frames
from sensorium.workers import PoolLimits, Wording, WorkerPool

PoolFactory = Callable[..., WorkerPool]
WORDING = Wording(service="media", settings="media", verb="decoding", item="file",
                  pending_setting="max_pending", crash_advice="do not retry it as is",
                  timeout_advice="send a shorter or smaller file")


@pytest.fixture
def restarts() -> list[str]:
    return []


@pytest.fixture
async def make_pool(restarts: list[str]) -> AsyncIterator[PoolFactory]:
    pools: list[WorkerPool] = []

    def make(workers: int = 2, **limits: Any) -> WorkerPool:
        values: dict[str, Any] = {"timeout_seconds": 30.0, "memory_mb": 2048, "recycle_after": 500,
                                  "max_pending": 64, **limits}
        pool = WorkerPool(PoolLimits(**values), WORDING, workers=workers, on_worker_restart=restarts.append)
        pools.append(pool)
        return pool

    yield make
    for pool in pools:
        await pool.close()


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


async def test_video_frames_in_a_worker_equal_those_in_process(make_pool: PoolFactory, tmp_path: Path):
    path = mediakit.scene_video(tmp_path / "clip.mp4", [0.0, 3.2, 7.5], 10.0)
    pool = make_pool()
    remote = await pool.run(extract_frames, path, FrameOptions())
    assert remote == extract_frames(path, FrameOptions())
    assert await pool.run(pool_faults.pid) != os.getpid()


async def test_errors_of_the_task_reach_the_caller(make_pool: PoolFactory, tmp_path: Path) -> None:
    path = tmp_path / "clip.mp4"
    path.write_bytes(b"\x00\x01 not a video at all" * 100)
    with pytest.raises(SensoriumError) as error:
        await make_pool().run(extract_frames, path, FrameOptions())
    assert error.value.reason is Reason.VIDEO_UNDECODABLE


async def test_text_of_an_image_file_in_a_worker(make_pool: PoolFactory, tmp_path: Path) -> None:
    shot = mediakit.screenshot(["Invoice 20418 is due on Friday"], size=18)
    path = tmp_path / "shot.png"
    shot.image.save(path)
    pool = make_pool(workers=1, memory_mb=2048)
    found = await pool.run(read_image, str(path), TextOptions(), max_bytes=1 << 24, max_pixels=1 << 26)
    assert found.has_text and mediakit.word_recall(shot.text, [found.text]) == 1.0


async def test_a_crash_fails_only_its_task(make_pool: PoolFactory, restarts: list[str]) -> None:
    pool = make_pool()
    crashed, served = await asyncio.gather(
        pool.run(pool_faults.segfault), pool.run(pool_faults.sleep, 0.2), return_exceptions=True
    )
    assert isinstance(crashed, SensoriumError) and crashed.reason is Reason.PARSER_CRASH
    assert crashed.metadata["exit_code"] == "-11" and "crashed on this file" in crashed.message
    assert isinstance(served, int)
    assert restarts == ["crash"]
    assert len(set(await asyncio.gather(*(pool.run(pool_faults.pid) for _ in range(4))))) >= 1


async def test_a_hang_is_killed_at_the_time_limit(make_pool: PoolFactory, restarts: list[str]) -> None:
    pool = make_pool(timeout_seconds=1.0)
    started = time.monotonic()
    with pytest.raises(SensoriumError) as error:
        await pool.run(pool_faults.sleep, 60)
    assert time.monotonic() - started < 10
    assert error.value.reason is Reason.PROCESSING_LIMIT and error.value.setting == "media.timeout_seconds"
    assert restarts == ["timeout"]
    assert isinstance(await pool.run(pool_faults.pid), int)


async def test_the_kernel_cpu_limit_is_a_timeout(make_pool: PoolFactory, restarts: list[str]) -> None:
    with pytest.raises(SensoriumError) as error:
        await make_pool().run(pool_faults.spin_past_cpu_limit)
    assert error.value.reason is Reason.PROCESSING_LIMIT
    assert restarts == ["timeout"]


async def test_memory_limit(make_pool: PoolFactory) -> None:
    pool = make_pool(workers=1, memory_mb=512)
    worker = await pool.run(pool_faults.pid)
    limits = Path(f"/proc/{worker}/limits").read_text()
    assert str(512 * 1024 * 1024) in next(line for line in limits.splitlines() if "address space" in line)
    with pytest.raises(SensoriumError) as error:
        await pool.run(pool_faults.allocate, 2048)
    assert error.value.reason is Reason.PROCESSING_LIMIT
    assert error.value.setting == "media.worker_memory_mb" and error.value.metadata["limit_mb"] == "512"
    assert await pool.run(pool_faults.allocate, 16) == 16 << 20  # the same worker goes on


async def test_workers_are_recycled(make_pool: PoolFactory, restarts: list[str]) -> None:
    pool = make_pool(workers=1, recycle_after=2)
    pids = [await pool.run(pool_faults.pid) for _ in range(5)]
    assert len(set(pids)) == 3 and restarts == ["recycled", "recycled"]


async def test_overload_is_refused_with_a_retry_delay(make_pool: PoolFactory) -> None:
    pool = make_pool(max_pending=1)
    slow = asyncio.ensure_future(pool.run(pool_faults.sleep, 60))
    while pool.pending == 0:
        await asyncio.sleep(0.01)
    with pytest.raises(SensoriumError) as error:
        await pool.run(pool_faults.pid)
    assert error.value.reason is Reason.OVERLOADED and error.value.setting == "media.max_pending"
    assert error.value.retry_after_seconds and error.value.retry_after_seconds > 0
    slow.cancel()
    with pytest.raises(asyncio.CancelledError):
        await slow
    assert pool.pending == 0


async def test_a_caller_that_goes_away_frees_its_worker(make_pool: PoolFactory, restarts: list[str]) -> None:
    pool = make_pool(workers=1)
    worker = await pool.run(pool_faults.pid)
    slow = asyncio.ensure_future(pool.run(pool_faults.sleep, 60))
    await asyncio.sleep(0.3)  # running in the worker
    slow.cancel()
    with pytest.raises(asyncio.CancelledError):
        await slow
    assert restarts == ["cancelled"]
    deadline = time.monotonic() + 5
    while alive(worker) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert not alive(worker)
    assert await pool.run(pool_faults.pid) != worker  # a fresh worker serves at once


async def test_close_fails_tasks_in_flight_and_leaves_no_processes(make_pool: PoolFactory) -> None:
    pool = make_pool()
    pids = set(await asyncio.gather(pool.run(pool_faults.sleep, 0.3), pool.run(pool_faults.sleep, 0.3)))
    assert len(pids) == 2
    hanging = asyncio.ensure_future(pool.run(pool_faults.sleep, 60))
    await asyncio.sleep(0.3)
    await pool.close()
    with pytest.raises(SensoriumError) as error:
        await hanging
    assert error.value.reason is Reason.SHUTTING_DOWN
    deadline = time.monotonic() + 5
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert not any(alive(pid) for pid in pids)
    assert not [p for p in multiprocessing.active_children() if p.name == "pebble_pool_worker"]
    with pytest.raises(SensoriumError) as error:
        await pool.run(pool_faults.pid)
    assert error.value.reason is Reason.SHUTTING_DOWN


async def test_the_pool_heals_after_its_idle_workers_are_killed(make_pool: PoolFactory) -> None:
    pool = make_pool()
    pids = set(await asyncio.gather(pool.run(pool_faults.sleep, 0.3), pool.run(pool_faults.sleep, 0.3)))
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    await asyncio.sleep(0.5)
    assert isinstance(await pool.run(pool_faults.pid), int)


PRELOAD_PROBE = """
import asyncio, sys
sys.path.insert(0, {support!r})
import pool_faults
from sensorium.runtimes import Runtimes
from sensorium.settings import Settings
from sensorium.workers import PoolLimits, Wording, WorkerPool

async def main():
    # The PDF and media runtimes in one process, as `sensorium serve` hosts them: whichever pool
    # starts the forkserver, it has imported both services' worker modules.
    Runtimes(Settings(services=["pdf", "media"], cpus=2))
    pool = WorkerPool(PoolLimits(30, 0, 10, 4), Wording("x", "x", "", ""), workers=1)
    try:
        print(await pool.run(pool_faults.imported, ["sensorium.pdf.workers", "sensorium.media.video"]))
    finally:
        await pool.close()

asyncio.run(main())
"""


def test_one_forkserver_preloads_every_hosted_services_worker_modules() -> None:
    import subprocess
    import sys

    support = str(Path(pool_faults.__file__).parent)
    done = subprocess.run([sys.executable, "-c", PRELOAD_PROBE.format(support=support)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["[True,", "True]"]
