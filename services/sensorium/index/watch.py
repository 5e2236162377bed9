"""`sensorium index --watch`: keep an index current while files change.

The watch runs the index job once, then again after each batch of changes under the watched
paths: watchfiles (inotify on Linux) reports them, debounced (`SENSORIUM_INDEX__WATCH_DEBOUNCE_MS`:
a batch closes once that long passes without a new change, so a copy of a thousand files is one
rerun, not a thousand). A rerun is the job itself over the same paths with the models kept
loaded: unchanged files are skipped by their ledger entry (path, size, mtime), created and
modified files are indexed, deleted files' rows are retired and a moved file is both (its old
path retired, its new one indexed). The search store is brought up to date at the end of each
rerun (the job does). Changes made while a rerun works are collected by the watcher and make the next batch.

Where the system's inotify watch limit is reached (`fs.inotify.max_user_watches`), the watch
says so and falls back to rescanning every `SENSORIUM_INDEX__WATCH_RESCAN_SECONDS`.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

Summary = dict[str, Any]


class Watcher(Protocol):
    def __call__(self, *paths: Path, debounce: int, stop_event: asyncio.Event,
                 ignore: Sequence[Path]) -> AsyncIterator[set[tuple[Any, str]]]: ...


def watch_limit_reached(exc: BaseException) -> bool:
    """Whether `exc` is the system refusing more inotify watches (watchfiles reports the
    kernel's ENOSPC as "OS file watch limit reached")."""
    return isinstance(exc, OSError) and (
        exc.errno == errno.ENOSPC or "watch limit" in str(exc).lower()
    )


def watchfiles_watcher(*paths: Path, debounce: int, stop_event: asyncio.Event,
                       ignore: Sequence[Path]) -> AsyncIterator[set[tuple[Any, str]]]:
    """watchfiles' `awatch` over `paths`, changes under `ignore` (the index itself) left out."""
    from watchfiles import DefaultFilter, awatch

    return awatch(*paths, debounce=debounce, stop_event=stop_event,
                  watch_filter=DefaultFilter(ignore_paths=[str(p) for p in ignore]))


def status_line(summary: Summary, reason: str) -> str:
    """One line on what the last run did."""
    files = summary["files"]
    changed = files["processed"]
    return (f"{time.strftime('%H:%M:%S')} {reason}: {files['listed']} files in the index, "
            f"{changed} indexed, {files['removed']} removed, {summary['rows']['total']} new rows "
            f"({summary['seconds']:.1f} s); watching")


async def watch(
    roots: Sequence[Path], out: Path, run: Callable[[], Awaitable[Summary]], status: Callable[[str], None],
    *, debounce_ms: int, rescan_seconds: float, stop: asyncio.Event | None = None,
    watcher: Watcher = watchfiles_watcher,
) -> None:
    """Run `run` (the job) now and after every batch of changes under `roots` (nothing under
    `out`), reporting each with `status`, until `stop` is set; on the watch limit, every
    `rescan_seconds` instead."""
    stop = stop or asyncio.Event()
    status(status_line(await run(), "indexed"))
    try:
        async for changes in watcher(*roots, debounce=debounce_ms, stop_event=stop, ignore=[out]):
            status(status_line(await run(), f"{len(changes)} changes"))
    except OSError as exc:
        if not watch_limit_reached(exc):
            raise
        status(f"the system's limit of watched folders is reached ({exc}; raise "
               "fs.inotify.max_user_watches, e.g. sysctl fs.inotify.max_user_watches=524288): "
               f"rescanning every {rescan_seconds:g} s instead")
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):  # the interval passed
                await asyncio.wait_for(stop.wait(), timeout=rescan_seconds)
            if not stop.is_set():
                status(status_line(await run(), "rescanned"))
