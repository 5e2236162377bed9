"""Worker processes for parsers and decoders fed hostile input: killable, recycled, memory-capped.

The PDF pool (`sensorium.pdf.workers`), the document engine's pool and the media runtime (video
frames, text in images) share this machinery:

- each worker is a "lane": a `pebble.ProcessPool` of one process, so a caller can choose the
  worker a task goes to (the PDF pool keeps a document's page chunks on the worker that has it
  open); `WorkerPool.run` sends a task to the least loaded lane;
- a task has a wall-clock timeout; past it pebble kills the worker and the task fails with
  PROCESSING_LIMIT; a CPU-time limit armed per task (RLIMIT_CPU) is the kernel's backstop;
- a worker that crashes (segfault, abort) fails only the task it was running (PARSER_CRASH);
  pebble starts a replacement, and a pool broken beyond that is rebuilt;
- workers exit after `recycle_after` tasks, returning memory the parsers leaked or fragmented;
- each worker's address space is capped (RLIMIT_AS);
- at most `max_pending` tasks (documents) are admitted at once; more get OVERLOADED with a
  retry delay estimated from recent task times;
- a caller that goes away (cancellation) has its running task's worker killed and replaced at
  once, so an abandoned video decode does not keep a core busy to the time limit.

Workers start through a "forkserver" that has already imported the worker modules of every
service in the process: forking the server process itself is unsafe (gRPC's threads), and
"spawn" would pay Python's start-up and the imports on every restart. A process has one
forkserver, started with the first worker, and its preload list cannot change after that; so
the list is one per process (`add_preload`): `Runtimes` adds every hosted service's modules before
any pool starts (the registry's `worker_modules`), and each pool adds its own.

Messages name the service ("PDF", "document", "media"), its settings group and what it works
on ("document", "file"), so the same failure reads right in each.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import math
import multiprocessing
import resource
import signal
import time
from collections.abc import Callable, Sequence
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing.context import ForkServerContext
from typing import Any, Protocol

import pebble

from sensorium import logs
from sensorium.errors import Reason, SensoriumError

# Pebble's manager threads poll every `sleep_unit` (0.1 s by default): that is how late a
# recycled or crashed worker is replaced and a timed-out task killed, while documents wait.
# 20 ms costs a few wake-ups a second and removes ~0.2 s stalls at every worker recycle.
pebble.CONSTS.sleep_unit = 0.02

CLOSE_TIMEOUT_SECONDS = 10.0

_preload: dict[str, None] = dict.fromkeys(["__main__", __name__])
"""The modules this process's forkserver imports before it forks a worker (ordered, unique).
"__main__" avoids every new worker re-importing the program's main module (`sensorium`'s CLI:
grpc, pydantic, ...), ~0.2 s a restart."""


def add_preload(modules: Sequence[str]) -> None:
    """Have the forkserver import `modules` too. Call it before the first worker starts (a
    pool calls it for its own modules; `Runtimes` for every hosted service's): once the
    forkserver runs, workers fork from it as it is, and a module added later is imported by
    each worker itself."""
    _preload.update(dict.fromkeys(modules))


def forkserver_context() -> ForkServerContext:
    """The "forkserver" context, with this process's preload list."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(list(_preload))  # read when the forkserver starts
    return context


@dataclass(frozen=True)
class PoolLimits:
    """What a pool guarantees, from the service's settings."""

    timeout_seconds: float
    """Wall-clock limit of one task (the PDF pool: of one document, across its tasks)."""
    memory_mb: int
    """RLIMIT_AS of each worker in MiB; 0 = unlimited."""
    recycle_after: int
    """Tasks after which a worker is replaced."""
    max_pending: int
    """Tasks (documents, files) admitted at once."""


@dataclass(frozen=True)
class Wording:
    """How failures are worded for one service."""

    service: str
    """"PDF", "document"."""
    settings: str
    """The settings group its limits live in: "pdf", "document"."""
    crash_advice: str
    """What to do about a file that crashed the parser."""
    timeout_advice: str
    """What to do about a file that took too long."""
    verb: str = "reading"
    """What a worker does to a document: "extracting", "reading"."""
    item: str = "document"
    """What a task works on, in messages: "document", "file"."""
    timeout_setting: str = "timeout_seconds"
    memory_setting: str = "worker_memory_mb"
    pending_setting: str = "max_pending_documents"
    """The names, in the settings group, of the limits the pool enforces."""


# ---------------------------------------------------------------------------------------------
# Worker side: these run in the worker processes.


@dataclass
class WorkerState:
    memory_mb: int = 0
    cpu_seconds: float = 0.0
    tasks: int = 0


state = WorkerState()
"""This worker process's settings and task count."""


def init_worker(
    memory_mb: int, cpu_seconds: float, log_config: tuple[str, str] | None,
    setup: Callable[..., None] | None = None, setup_args: tuple[Any, ...] = (),
) -> None:
    """Pebble initializer; it must never raise (a worker failing here breaks the pool).
    `setup(*setup_args)` does the service's own preparation (it must not raise either)."""
    state.memory_mb, state.cpu_seconds = memory_mb, cpu_seconds
    if log_config is not None:  # the server's log format, so a worker's lines read like the rest
        with contextlib.suppress(Exception):
            level, fmt = log_config
            logs.configure(level, "json" if fmt == "json" else "text")
    if setup is not None:
        with contextlib.suppress(Exception):
            setup(*setup_args)
    if memory_mb > 0:
        limit = memory_mb * 1024 * 1024
        with contextlib.suppress(ValueError, OSError):
            _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
            if hard != resource.RLIM_INFINITY:
                limit = min(limit, hard)
            resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def arm_cpu_limit() -> None:
    """Let this task use at most `cpu_seconds` of CPU from now (RLIMIT_CPU counts the whole
    process life, so it is re-armed per task). The server's wall-clock timeout normally stops a
    task first; this is the kernel's backstop should the server's timer not, e.g. when its own
    event loop is stalled. Past it the kernel sends SIGXCPU, which ends the worker."""
    if state.cpu_seconds <= 0:
        return
    usage = resource.getrusage(resource.RUSAGE_SELF)
    soft = math.ceil(usage.ru_utime + usage.ru_stime + state.cpu_seconds) + 1
    with contextlib.suppress(ValueError, OSError):
        _old, hard = resource.getrlimit(resource.RLIMIT_CPU)
        if hard != resource.RLIM_INFINITY:
            soft = min(soft, hard)
        resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def ping(seconds: float) -> None:
    """A task that only proves the worker runs (warm-up)."""
    time.sleep(seconds)
    state.tasks += 1


@dataclass(frozen=True)
class CallResult:
    """What `call` returns from a worker: the function's value and the worker's bookkeeping."""

    value: Any
    started_at: float
    worker_tasks: int


def call(
    function: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], memory_setting: str
) -> CallResult:
    """Run `function(*args, **kwargs)` as one task of this worker (what `WorkerPool.run`
    schedules)."""
    started_at = time.monotonic()
    state.tasks += 1
    arm_cpu_limit()
    try:
        value = function(*args, **kwargs)
    except MemoryError:
        raise SensoriumError(
            Reason.PROCESSING_LIMIT,
            f"reading the file needs more memory than the limit of {state.memory_mb} MiB per "
            "worker; send a smaller or simpler file",
            {"limit_mb": str(state.memory_mb)}, setting=memory_setting,
        ) from None
    return CallResult(value, started_at, state.tasks)


# ---------------------------------------------------------------------------------------------
# Server side.


class TaskResult(Protocol):
    """What the pool reads from every task's result."""

    @property
    def worker_tasks(self) -> int: ...


class Lane:
    """One worker process, in a pebble pool of its own so that tasks can be sent to it."""

    def __init__(self, pool: pebble.ProcessPool) -> None:
        self.pool = pool
        self.futures: set[pebble.ProcessFuture[Any]] = set()  # touched on the event loop only

    def load(self) -> int:
        """Tasks scheduled on this lane and not finished."""
        self.futures = {future for future in self.futures if not future.done()}
        return len(self.futures)


class WorkerPool:
    """Lanes of worker processes, consumed from asyncio.

    `on_worker_restart(reason)` is called whenever a worker is replaced: "crash", "timeout",
    "cancelled" (its task's caller went away) or "recycled"; runtimes turn it into a metric.
    `initargs` are `init_worker`'s arguments after the memory and CPU limits and log config:
    (setup, setup_args). This module imports nothing of gRPC or Prometheus.
    """

    def __init__(
        self,
        limits: PoolLimits,
        wording: Wording,
        *,
        workers: int,
        preload: Sequence[str] = (),
        setup: Callable[..., None] | None = None,
        setup_args: tuple[Any, ...] = (),
        on_worker_restart: Callable[[str], None] | None = None,
        log_config: tuple[str, str] | None = None,
    ) -> None:
        self.workers = max(1, workers)
        self.limits = limits
        self.wording = wording
        add_preload(preload)
        self._initargs = (limits.memory_mb, limits.timeout_seconds, log_config, setup, setup_args)
        self._on_worker_restart = on_worker_restart or (lambda reason: None)
        self._pending = 0
        self._closed = False
        self._seconds_per_task = 1.0  # moving average, for the OVERLOADED retry delay
        self._lanes = [Lane(self._new_pool()) for _ in range(self.workers)]

    @property
    def pending(self) -> int:
        """Tasks (documents) admitted and not finished."""
        return self._pending

    def _new_pool(self) -> pebble.ProcessPool:
        # Workers fork from a server that has already imported the parsers and the main module:
        # restarts cost milliseconds (see `add_preload`).
        return pebble.ProcessPool(
            max_workers=1,
            max_tasks=self.limits.recycle_after,
            initializer=init_worker,
            initargs=self._initargs,
            context=forkserver_context(),
        )

    async def warm_up(self) -> None:
        """Start the workers (and the forkserver) now, so the first request is not slow."""
        futures = [self._schedule(lane, ping, (0.05,), None) for lane in self._lanes]
        await asyncio.gather(*(asyncio.wrap_future(f) for f in futures))

    async def run(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """`function(*args, **kwargs)` in a worker, as one admitted task with the pool's time limit.
        `function` and its arguments and result must pickle; it must be importable by name."""
        self._admit()
        begun = time.monotonic()
        lane = min(self._lanes, key=Lane.load)
        task = (function, args, kwargs, f"{self.wording.settings}.{self.wording.memory_setting}")
        future = self._schedule(lane, call, task, self.limits.timeout_seconds)
        try:
            result: CallResult = await self._result(future, lane)
            elapsed = time.monotonic() - begun
            self._seconds_per_task += 0.1 * (elapsed - self._seconds_per_task)
            return result.value
        finally:
            if not future.done():
                if future.running():
                    self._on_worker_restart("cancelled")
                future.cancel()
            self._pending -= 1

    def _admit(self) -> None:
        """Count a task (document) in, or refuse it; pair with `self._pending -= 1`."""
        if self._closed:
            raise SensoriumError(
                Reason.SHUTTING_DOWN,
                f"the {self.wording.service} service is shutting down; retry on another server",
            )
        if self._pending >= self.limits.max_pending:
            raise self._overloaded()
        self._pending += 1

    async def close(self) -> None:
        """Stop every worker; tasks in work fail with SHUTTING_DOWN. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for lane in self._lanes:
            for future in list(lane.futures):
                future.cancel()
            lane.pool.stop()
        await asyncio.gather(
            *(asyncio.to_thread(lane.pool.join, CLOSE_TIMEOUT_SECONDS) for lane in self._lanes)
        )

    def _schedule(
        self, lane: Lane, function: Callable[..., Any], args: tuple[Any, ...], timeout: float | None
    ) -> pebble.ProcessFuture[Any]:
        try:
            future = lane.pool.schedule(function, args, timeout=timeout)
        except RuntimeError:
            # Pebble marks a whole pool broken in rare races (a worker dying before its task
            # was acknowledged); replace it rather than fail every later request.
            if self._closed:
                raise SensoriumError(
                    Reason.SHUTTING_DOWN,
                    f"the {self.wording.service} service is shutting down; retry elsewhere",
                ) from None
            self._replace_pool(lane)
            future = lane.pool.schedule(function, args, timeout=timeout)
        lane.futures.add(future)
        return future

    def _replace_pool(self, lane: Lane) -> None:
        broken, lane.pool = lane.pool, self._new_pool()
        broken.stop()
        # Joining waits for the old manager threads; nothing here needs to wait for it.
        asyncio.get_running_loop().run_in_executor(None, broken.join, CLOSE_TIMEOUT_SECONDS)

    async def _result(self, future: pebble.ProcessFuture[Any], lane: Lane) -> Any:
        service = self.wording.service
        waiter = asyncio.wrap_future(future)
        try:
            # asyncio.wait leaves `waiter` alone when this task is cancelled (awaiting it would
            # cancel the pebble future first), so a task still running is seen, counted, and
            # its worker killed by the cancel below.
            await asyncio.wait({waiter})
        except asyncio.CancelledError:
            if future.running():
                self._on_worker_restart("cancelled")
            future.cancel()
            task = asyncio.current_task()
            if self._closed and not (task and task.cancelling()):
                raise SensoriumError(
                    Reason.SHUTTING_DOWN,
                    f"the {service} service shut down while {self.wording.verb} this "
                    f"{self.wording.item}; retry elsewhere",
                ) from None
            raise
        try:
            result: TaskResult = waiter.result()
        except (asyncio.CancelledError, concurrent.futures.CancelledError):
            # The pool was closed under this task (close() cancels what is in work).
            raise SensoriumError(
                Reason.SHUTTING_DOWN,
                f"the {service} service shut down while {self.wording.verb} this "
                f"{self.wording.item}; retry elsewhere",
            ) from None
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
                f"the {service} parser crashed on this {self.wording.item} "
                f"(worker exit code {error.exitcode}); "
                f"the file is probably malformed: {self.wording.crash_advice}",
                {"exit_code": str(error.exitcode)},
            ) from None
        except BrokenProcessPool:
            self._on_worker_restart("crash")
            if not self._closed:
                self._replace_pool(lane)
            raise SensoriumError(
                Reason.PARSER_CRASH,
                f"a {service} worker process died while {self.wording.verb} this {self.wording.item}; "
                "if it happens "
                f"again with this file, {self.wording.crash_advice}",
            ) from None
        if result.worker_tasks >= self.limits.recycle_after:
            self._on_worker_restart("recycled")
        return result

    def _timed_out(self) -> SensoriumError:
        limit = self.limits.timeout_seconds
        return SensoriumError(
            Reason.PROCESSING_LIMIT,
            f"{self.wording.verb} the {self.wording.item} took longer than the limit of {limit:g} s; "
            f"{self.wording.timeout_advice}",
            {"limit_seconds": f"{limit:g}"},
            setting=f"{self.wording.settings}.{self.wording.timeout_setting}",
        )

    def _overloaded(self) -> SensoriumError:
        backlog = self._pending / self.workers
        retry = min(60.0, max(0.5, backlog * self._seconds_per_task))
        return SensoriumError(
            Reason.OVERLOADED,
            f"the {self.wording.service} service is busy "
            f"({self._pending} {self.wording.item}s in work, limit "
            f"{self.limits.max_pending}); retry after {retry:.1f} s",
            {"pending_documents": str(self._pending)},
            retry_after_seconds=retry, setting=f"{self.wording.settings}.{self.wording.pending_setting}",
        )

