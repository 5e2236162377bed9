"""A page extractor for PDF fault tests, handed to the worker pool (`page_extractor=`).

It acts on documents whose /Title is `sensorium-test:ACTION`, optionally suffixed `@page=N` to
act when page N (1-based) is extracted instead of the first page extracted:

- `segfault`: the worker process dies of SIGSEGV;
- `sleep=SECONDS`: the worker hangs that long;
- `allocate=MIB`: the worker allocates that much (memory cap tests);
- `pidfile=PATH`: the worker writes its process id to PATH and then waits up to 60 s, so a
  test can kill (SIGKILL) or stop (SIGSTOP) it from outside while it holds the document;
- `cpulimit`: the worker lowers its own CPU-time limit to one second from now and spins, as a
  task would that outran the limit the pool arms (the kernel then ends it with SIGXCPU).

Any other document is extracted normally. The pool runs it in its worker processes, which
import it by name: this module must stay importable from `tests/support` (pytest puts that on
sys.path, and the forkserver's children inherit it).
"""

from __future__ import annotations

import math
import os
import resource
import signal
import time
from pathlib import Path
from typing import Any

import pymupdf

from sensorium.pdf import extractor
from sensorium.pdf.extractor import ExtractOptions, ImageResult, Limits, PageResult

PREFIX = "sensorium-test:"


def extract_page(
    doc: pymupdf.Document, index: int, options: ExtractOptions, limits: Limits
) -> tuple[PageResult, list[ImageResult]]:
    _act(doc, index, options)
    return extractor.extract_page(doc, index, options, limits)


def _act(doc: pymupdf.Document, index: int, options: ExtractOptions) -> None:
    metadata: dict[str, Any] = doc.metadata or {}
    title = str(metadata.get("title") or "")
    if not title.startswith(PREFIX):
        return
    action, _, where = title.removeprefix(PREFIX).partition("@page=")
    target = int(where) - 1 if where else max(options.first_page - 1, 0)
    if index != target:
        return
    name, _, argument = action.partition("=")
    if name == "segfault":
        os.kill(os.getpid(), signal.SIGSEGV)
    elif name == "sleep":
        time.sleep(float(argument))
    elif name == "allocate":
        ballast = bytearray(int(argument) * 1024 * 1024)
        del ballast
    elif name == "cpulimit":
        _soft, hard = resource.getrlimit(resource.RLIMIT_CPU)
        resource.setrlimit(resource.RLIMIT_CPU, (math.ceil(time.process_time()) + 1, hard))
        while True:
            pass
    elif name == "pidfile":
        Path(argument).write_text(str(os.getpid()))
        time.sleep(60)
