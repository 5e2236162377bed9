"""Task functions for the worker pool's fault tests (`sensorium.workers`): they crash, hang,
allocate, or report the process they ran in. The pool's workers import this module by name:
it must stay importable from `tests/support` (pytest puts that on sys.path, and the
forkserver's children inherit it)."""

from __future__ import annotations

import os
import signal
import time

from sensorium.errors import Reason, SensoriumError


def pid() -> int:
    return os.getpid()


def segfault() -> None:
    os.kill(os.getpid(), signal.SIGSEGV)


def sleep(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


def allocate(mib: int) -> int:
    block = bytearray(mib * 1024 * 1024)
    return len(block)


def fail(reason: str) -> None:
    raise SensoriumError(Reason[reason], f"failed on purpose: {reason}")


def spin_past_cpu_limit() -> None:
    """Lower this worker's CPU limit to one second from now and spin, as a task would that
    outran the limit the pool arms (the kernel then ends it with SIGXCPU)."""
    import math
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    soft = math.ceil(usage.ru_utime + usage.ru_stime) + 1
    _old, hard = resource.getrlimit(resource.RLIMIT_CPU)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))
    while True:
        pass


def imported(modules: list[str]) -> list[bool]:
    """Whether each of `modules` was imported in this worker before the task ran (the
    forkserver's preload), without importing them."""
    import sys

    return [name in sys.modules for name in modules]
