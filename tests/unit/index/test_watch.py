"""The watch loop: a run at start, one per batch of changes (never for the index's own
writes), and periodic rescans when the system's watch limit is reached."""

from __future__ import annotations

import asyncio
import errno
from pathlib import Path
from typing import Any

import pytest

from sensorium.index.watch import watch, watch_limit_reached


def summary(listed: int) -> dict[str, Any]:
    return {"files": {"listed": listed, "processed": 1, "removed": 0}, "rows": {"total": 2}, "seconds": 0.1}


def test_each_batch_of_changes_reruns_the_job_and_the_index_itself_does_not(tmp_path):
    folder, out = tmp_path / "docs", tmp_path / "docs" / "index"
    out.mkdir(parents=True)
    lines: list[str] = []
    runs: list[int] = []

    async def scenario() -> None:
        stop = asyncio.Event()

        async def run() -> dict[str, Any]:
            runs.append(len(runs))
            return summary(len(runs))

        task = asyncio.create_task(watch([folder], out, run, lines.append, debounce_ms=100,
                                         rescan_seconds=60, stop=stop))
        await _until(lambda: len(runs) == 1)
        await asyncio.sleep(0.5)  # the watcher is set up
        (out / "part.parquet").write_bytes(b"the index writing itself")
        await asyncio.sleep(1.0)
        assert len(runs) == 1, "the index's own files are not changes to index"
        for name in ("a.txt", "b.txt", "c.txt"):
            (folder / name).write_text(name)
        await _until(lambda: len(runs) == 2)
        await asyncio.sleep(0.5)
        assert len(runs) == 2, "one batch, one run"
        (folder / "a.txt").rename(folder / "moved.txt")
        await _until(lambda: len(runs) == 3)
        stop.set()
        await asyncio.wait_for(task, 10)

    asyncio.run(scenario())
    assert "indexed: 1 files in the index" in lines[0]
    assert "3 changes" in lines[1] and lines[1].endswith("watching")


def test_past_the_watch_limit_it_says_so_and_rescans(tmp_path):
    lines: list[str] = []
    runs: list[int] = []

    def limited(*paths: Path, **options: Any) -> Any:
        async def changes() -> Any:
            raise OSError("OS file watch limit reached. about [...]")
            yield set()  # pragma: no cover - makes this an async generator

        return changes()

    async def scenario() -> None:
        stop = asyncio.Event()

        async def run() -> dict[str, Any]:
            runs.append(1)
            if len(runs) == 3:
                stop.set()
            return summary(len(runs))

        await asyncio.wait_for(watch([tmp_path], tmp_path / "index", run, lines.append, debounce_ms=100,
                                     rescan_seconds=0.05, stop=stop, watcher=limited), 10)

    asyncio.run(scenario())
    assert len(runs) == 3
    assert "limit of watched folders is reached" in lines[1]
    assert "fs.inotify.max_user_watches" in lines[1] and "rescanning every 0.05 s" in lines[1]
    assert "rescanned" in lines[2]


def test_other_errors_are_not_taken_for_the_watch_limit():
    assert watch_limit_reached(OSError(errno.ENOSPC, "No space left on device"))
    assert not watch_limit_reached(OSError(errno.EACCES, "Permission denied"))
    assert not watch_limit_reached(ValueError("watch limit"))


def test_another_failure_of_the_watcher_is_raised(tmp_path):
    def broken(*paths: Path, **options: Any) -> Any:
        async def changes() -> Any:
            raise PermissionError(errno.EACCES, "Permission denied")
            yield set()  # pragma: no cover

        return changes()

    async def run() -> dict[str, Any]:
        return summary(0)

    with pytest.raises(PermissionError):
        asyncio.run(watch([tmp_path], tmp_path / "i", run, lambda line: None, debounce_ms=1,
                          rescan_seconds=1, watcher=broken))


async def _until(condition: Any, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)
