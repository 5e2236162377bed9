"""Functions the document pool's tests run in its workers in place of `engine.parse`, to crash,
hang or exhaust memory from outside the shipped code. Workers import this module by name (it
must stay importable from tests/support, which pytest puts on sys.path)."""

from __future__ import annotations

import os
import signal
import time
from typing import Any


def crash(*_args: Any, **_kwargs: Any) -> None:
    os.kill(os.getpid(), signal.SIGSEGV)


def hang(*_args: Any, **_kwargs: Any) -> None:
    time.sleep(60)


def allocate(megabytes: int) -> int:
    ballast = bytearray(megabytes * 1024 * 1024)
    return len(ballast)
