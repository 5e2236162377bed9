"""Worker processes for parsers of untrusted files: what the PDF pool and the audio decoders share.

A parser of hostile input (MuPDF, FFmpeg) runs in a process of its own, out of the server
process that holds the TLS key, the tokens and every caller's connection:

- its address space is capped (`RLIMIT_AS`): a memory bomb fails in that worker only;
- each task gets a CPU-time budget (`RLIMIT_CPU`, re-armed per task, `arm_cpu_limit`): the
  kernel ends a spinning worker even if the server's wall-clock timer cannot;
- the server kills a task past its wall-clock limit (pebble), and a crash fails only the task
  it was running;
- workers are recycled after N tasks (leaks and state a file leaves behind).

Workers start through a "forkserver" that has imported the parser already: forking the server
itself is unsafe (gRPC's threads), and "spawn" would pay the imports on every restart. This
module imports nothing of gRPC; pdf/workers.py and transcription/decoding.py build on it.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import resource
import signal
from collections.abc import Callable, Sequence
from typing import Any

import pebble

# Pebble's manager threads poll every `sleep_unit` (0.1 s by default): that is how late a
# recycled or crashed worker is replaced and a timed-out task killed, while callers wait.
# 20 ms costs a few wake-ups a second and removes ~0.2 s stalls at every worker recycle.
pebble.CONSTS.sleep_unit = 0.02


def limit_memory(memory_mb: int) -> None:
    """Cap this process's address space at `memory_mb` MiB (0 = no cap). Never raises: it runs
    in pool initializers, where an exception would break the pool."""
    if memory_mb <= 0:
        return
    limit = memory_mb * 1024 * 1024
    with contextlib.suppress(ValueError, OSError):
        _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def arm_cpu_limit(cpu_seconds: float) -> None:
    """Let the task starting now use at most `cpu_seconds` of CPU (RLIMIT_CPU counts the whole
    process life, so it is re-armed per task). The server's wall-clock timeout normally stops a
    task first; this is the kernel's backstop should the server's timer not, e.g. when its own
    event loop is stalled. Past it the kernel sends SIGXCPU, which ends the worker."""
    if cpu_seconds <= 0:
        return
    usage = resource.getrusage(resource.RUSAGE_SELF)
    soft = math.ceil(usage.ru_utime + usage.ru_stime + cpu_seconds) + 1
    with contextlib.suppress(ValueError, OSError):
        _old, hard = resource.getrlimit(resource.RLIMIT_CPU)
        if hard != resource.RLIM_INFINITY:
            soft = min(soft, hard)
        resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


PRELOAD = ("__main__", "sensorium.pdf.workers", "sensorium.transcription.decoding")
"""What the forkserver imports before it forks workers. One forkserver serves every pool of a
process and starts with the first worker, so it imports the worker modules of every pool (the
forkserver skips those that do not import, e.g. PyMuPDF in a transcription-only install).
Without "__main__" here every new worker would re-import the program's main module
(`sensorium`'s CLI: grpc, pydantic, ...), ~0.2 s a restart."""


def new_pool(
    *, workers: int, recycle_after: int, initializer: Callable[..., None], initargs: Sequence[Any],
) -> pebble.ProcessPool:
    """A pebble pool of `workers` processes forked from the forkserver (`PRELOAD`)."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(list(PRELOAD))
    return pebble.ProcessPool(
        max_workers=workers, max_tasks=recycle_after, initializer=initializer,
        initargs=tuple(initargs), context=context,
    )


def killed_for_cpu(error: pebble.ProcessExpired) -> bool:
    """The kernel's CPU-time backstop (`arm_cpu_limit`) ended the worker."""
    return bool(error.exitcode == -signal.SIGXCPU)
