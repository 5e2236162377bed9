"""Worker processes for work that can crash, hang or bloat on hostile input (FFmpeg decoding a
video, OCR models on a huge image): one task per input, in killable, recycled, memory-capped
processes.

What `WorkerPool` guarantees, as the PDF pool does (`sensorium.pdf.workers`, which shares the
process limits below and adds its own page chunking):
- each task has a wall-clock budget (`timeout_seconds`), counted from when it starts running;
  past it the worker is killed and the task fails with PROCESSING_LIMIT; the kernel's CPU-time
  limit is the backstop should the server's timer not fire (SIGXCPU);
- a worker that crashes (segfault, abort, killed) fails only the task it was running
  (PARSER_CRASH); pebble starts a replacement, and a pool broken beyond that is rebuilt;
- workers exit after `recycle_after_tasks` tasks, returning leaked or fragmented memory;
- each worker's address space is capped at `memory_mb` (RLIMIT_AS); a task that runs out
  fails with PROCESSING_LIMIT and the worker lives on;
- at most `max_pending` tasks are admitted at once; more get OVERLOADED with a retry delay;
- a caller that goes away (cancellation) frees its worker at once.

Workers start through a "forkserver" that has already imported the modules named in
`preload`: forking the server process itself is unsafe (gRPC's threads), and "spawn" would pay
Python's start-up and the imports on every restart.

Task functions must be importable top-level functions; arguments and results cross the process
boundary by pickling, so large inputs go by path, not by value.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import multiprocessing
import os
import resource
import signal
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing.context import ForkServerContext
from typing import Any, TypeVar

import pebble

from sensorium import logs
from sensorium.errors import Reason, SensoriumError

T = TypeVar("T")
_CLOSE_TIMEOUT_SECONDS = 10.0


def limit_memory(memory_mb: int) -> None:
    """Cap this process's address space at `memory_mb` MiB (0: no cap), never above the hard
    limit it inherited."""
    if memory_mb <= 0:
        return
    limit = memory_mb * 1024 * 1024
    with contextlib.suppress(ValueError, OSError):
        _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def arm_cpu_limit(cpu_seconds: float) -> None:
    """Let this process use at most `cpu_seconds` of CPU from now (0: no limit). RLIMIT_CPU
    counts the whole process life, so it is re-armed per task. The server's wall-clock timeout
    normally stops a task first; this is the kernel's backstop should the server's timer not,
    e.g. when its own event loop is stalled. Past it the kernel sends SIGXCPU, which ends the
    worker."""
    if cpu_seconds <= 0:
        return
    usage = resource.getrusage(resource.RUSAGE_SELF)
    soft = math.ceil(usage.ru_utime + usage.ru_stime + cpu_seconds) + 1
    with contextlib.suppress(ValueError, OSError):
        _old, hard = resource.getrlimit(resource.RLIMIT_CPU)
        if hard != resource.RLIM_INFINITY:
            soft = min(soft, hard)
        resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def forkserver_context(preload: Sequence[str]) -> ForkServerContext:
    """A "forkserver" context whose server imports `preload` (and the program's main module:
    without it every new worker would re-import `sensorium`'s CLI, ~0.2 s a restart). The
    preload list is ignored if this process's forkserver already runs."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["__main__", *preload])
    return context


# ---------------------------------------------------------------------------------------------
# Worker side.


@dataclass
class _WorkerState:
    memory_mb: int = 0
    cpu_seconds: float = 0.0
    tasks: int = 0


_worker = _WorkerState()


@dataclass(frozen=True)
class _Done:
    value: Any
    pid: int
    worker_tasks: int  # tasks this worker has run, this one included


def _init_worker(memory_mb: int, cpu_seconds: float, log_config: tuple[str, str] | None) -> None:
    """Pebble initializer; it must never raise (a worker failing here breaks the pool)."""
    _worker.memory_mb, _worker.cpu_seconds = memory_mb, cpu_seconds
    if log_config is not None:  # the server's log format, so a worker's lines read like the rest
        with contextlib.suppress(Exception):
            level, fmt = log_config
            logs.configure(level, "json" if fmt == "json" else "text")
    limit_memory(memory_mb)


def _run(function: Callable[..., Any], args: tuple[Any, ...], setting_prefix: str) -> _Done:
    _worker.tasks += 1
    arm_cpu_limit(_worker.cpu_seconds)
    try:
        value = function(*args)
    except MemoryError:
        raise SensoriumError(
            Reason.PROCESSING_LIMIT,
            f"this input needs more memory than the limit of {_worker.memory_mb} MiB per worker; "
            "send a smaller file",
            {"limit_mb": str(_worker.memory_mb)}, setting=f"{setting_prefix}.worker_memory_mb",
        ) from None
    return _Done(value, os.getpid(), _worker.tasks)


def _ping(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


# ---------------------------------------------------------------------------------------------
# Server side.


@dataclass(frozen=True)
class PoolLimits:
    """A pool's size and limits (from the settings group named by `setting_prefix`)."""

    workers: int = 1
    timeout_seconds: float = 300.0
    """Wall-clock limit per task."""
    memory_mb: int = 2048
    """Address-space limit per worker in MiB; 0 = unlimited."""
    recycle_after_tasks: int = 500
    max_pending: int = 64
    """Tasks queued or running at once; more are refused with OVERLOADED."""
    setting_prefix: str = "media"
    """The settings group errors name ("media" -> "media.timeout_seconds")."""


class WorkerPool:
    """Runs tasks in worker processes (see the module docstring); consumed on an event loop.

    `what` names the work in error messages ("decoding the video"); `on_worker_restart(reason)`
    is called whenever a worker is replaced: "crash", "timeout", "cancelled" or "recycled".
    """

    def __init__(
        self,
        limits: PoolLimits,
        *,
        what: str,
        preload: Sequence[str] = (),
        on_worker_restart: Callable[[str], None] | None = None,
        log_config: tuple[str, str] | None = None,
    ) -> None:
        self.limits = limits
        self.workers = max(1, limits.workers)
        self._what = what
        self._preload = [__name__, *preload]
        self._initargs = (limits.memory_mb, limits.timeout_seconds, log_config)
        self._on_worker_restart = on_worker_restart or (lambda reason: None)
        self._pending = 0
        self._closed = False
        self._seconds_per_task = 1.0  # moving average, for the OVERLOADED retry delay
        self.worker_pids_seen: set[int] = set()
        """Worker processes that ran a task (for tests and diagnostics)."""
        self._futures: set[pebble.ProcessFuture[Any]] = set()  # touched on the event loop only
        self._pool = self._new_pool()

    @property
    def pending(self) -> int:
        """Tasks admitted and not finished."""
        return self._pending

    def _new_pool(self) -> pebble.ProcessPool:
        return pebble.ProcessPool(
            max_workers=self.workers,
            max_tasks=self.limits.recycle_after_tasks,
            initializer=_init_worker,
            initargs=self._initargs,
            context=forkserver_context(self._preload),
        )

    async def warm_up(self) -> None:
        """Start the workers (and the forkserver) now, so the first task is not slow."""
        futures = [self._schedule(_ping, (0.05,), None) for _ in range(self.workers)]
        self.worker_pids_seen.update(await asyncio.gather(*(asyncio.wrap_future(f) for f in futures)))

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        """`function(*args)` in a worker process; its result, or the `SensoriumError` it raised.

        Raises `SensoriumError`: OVERLOADED, SHUTTING_DOWN, PROCESSING_LIMIT (time or memory),
        PARSER_CRASH (the worker died). A cancelled caller's task is stopped and its worker
        replaced.
        """
        if self._closed:
            raise SensoriumError(Reason.SHUTTING_DOWN, "the server is shutting down; retry on another one")
        if self._pending >= self.limits.max_pending:
            raise self._overloaded()
        self._pending += 1
        begun = time.monotonic()
        future = self._schedule(
            _run, (function, args, self.limits.setting_prefix), self.limits.timeout_seconds
        )
        try:
            # Shielded, so that a cancelled caller leaves the task to the `finally` below, which
            # can still tell whether it was running (and its worker is killed and replaced).
            done = await self._result(future, asyncio.shield(asyncio.wrap_future(future)))
        finally:
            if not future.done():
                if future.running():
                    self._on_worker_restart("cancelled")
                future.cancel()
            self._pending -= 1
        self._seconds_per_task += 0.1 * (time.monotonic() - begun - self._seconds_per_task)
        value: T = done.value
        return value

    async def close(self) -> None:
        """Stop every worker; tasks in work fail with SHUTTING_DOWN. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for future in list(self._futures):
            future.cancel()
        self._pool.stop()
        await asyncio.to_thread(self._pool.join, _CLOSE_TIMEOUT_SECONDS)

    def _schedule(
        self, function: Callable[..., Any], args: tuple[Any, ...], timeout: float | None
    ) -> pebble.ProcessFuture[Any]:
        try:
            future = self._pool.schedule(function, args, timeout=timeout)
        except RuntimeError:
            # Pebble marks a whole pool broken in rare races (a worker dying before its task
            # was acknowledged); replace it rather than fail every later task.
            if self._closed:
                raise SensoriumError(
                    Reason.SHUTTING_DOWN, "the server is shutting down; retry elsewhere"
                ) from None
            self._replace_pool()
            future = self._pool.schedule(function, args, timeout=timeout)
        self._futures = {each for each in self._futures if not each.done()}
        self._futures.add(future)
        return future

    def _replace_pool(self) -> None:
        broken, self._pool = self._pool, self._new_pool()
        broken.stop()
        # Joining waits for the old manager threads; nothing here needs to wait for it.
        asyncio.get_running_loop().run_in_executor(None, broken.join, _CLOSE_TIMEOUT_SECONDS)

    async def _result(self, future: pebble.ProcessFuture[Any], waiting: Awaitable[_Done]) -> _Done:
        try:
            done: _Done = await waiting
        except TimeoutError:
            self._on_worker_restart("timeout")
            raise self._timed_out() from None
        except pebble.ProcessExpired as error:
            if error.exitcode == -signal.SIGXCPU:  # the kernel's CPU-time backstop
                self._on_worker_restart("timeout")
                raise self._timed_out() from None
            self._on_worker_restart("crash")
            raise SensoriumError(
                Reason.PARSER_CRASH,
                f"the worker process died while {self._what} (exit code {error.exitcode}); the "
                "file is probably malformed: do not retry it as is",
                {"exit_code": str(error.exitcode)},
            ) from None
        except BrokenProcessPool:
            self._on_worker_restart("crash")
            if not self._closed:
                self._replace_pool()
            raise SensoriumError(
                Reason.PARSER_CRASH, f"a worker process died while {self._what}; do not retry it as is"
            ) from None
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if self._closed and not (task and task.cancelling()):
                raise SensoriumError(
                    Reason.SHUTTING_DOWN, f"the server shut down while {self._what}; retry elsewhere"
                ) from None
            raise
        self.worker_pids_seen.add(done.pid)
        if done.worker_tasks >= self.limits.recycle_after_tasks:
            self._on_worker_restart("recycled")
        return done

    def _timed_out(self) -> SensoriumError:
        limit = self.limits.timeout_seconds
        return SensoriumError(
            Reason.PROCESSING_LIMIT,
            f"{self._what} took longer than the limit of {limit:g} s; send a shorter or smaller file",
            {"limit_seconds": f"{limit:g}"}, setting=f"{self.limits.setting_prefix}.timeout_seconds",
        )

    def _overloaded(self) -> SensoriumError:
        retry = min(60.0, max(0.5, self._pending / self.workers * self._seconds_per_task))
        return SensoriumError(
            Reason.OVERLOADED,
            f"the server is busy ({self._pending} files in work, limit {self.limits.max_pending}); "
            f"retry after {retry:.1f} s",
            {"pending_documents": str(self._pending)},
            retry_after_seconds=retry, setting=f"{self.limits.setting_prefix}.max_pending",
        )
