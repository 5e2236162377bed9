"""A closed-loop load generator for benchmarking Sensorium (and anything else callable).

Closed loop means: ``C`` concurrent clients (asyncio tasks), each of which sends its next
request only when its previous one has returned. At most ``C`` requests are ever in flight,
so the offered load adapts to the service and the numbers measure capacity at concurrency C,
not behaviour under overload.

A run has a warm-up phase (results thrown away) followed by a measured phase that ends after
a duration or after a request count. The measured phase reports:

* ``requests`` (successful calls), ``errors`` by kind (gRPC status code name such as
  ``UNAVAILABLE``, otherwise the exception type name),
* throughput: requests/s, items/s (``items_per_call`` x requests/s, for batch calls) and
  MB/s (``bytes_per_call`` x requests/s, 1 MB = 10**6 bytes),
* latency of successful calls: mean, p50, p95, p99, max, exact percentiles from every recorded
  latency (linear interpolation between closest ranks, numpy's default method),
* wall time and the CPU time the measuring process spent in the phase.

The same machinery measures a plain synchronous baseline (for example the library called
in-process) via :func:`measure_sync`, and :func:`ratio` compares the two.

Usage::

    import harness

    async def call(i: int) -> None:
        await stub.Extract(make_request(i))

    result = await harness.run_closed_loop(call, concurrency=8, duration=10, warmup=2,
                                           name="pdf extract")
    base = await harness.measure_sync(lambda i: extract_in_process(i), concurrency=1,
                                      duration=10, warmup=2, name="in-process")
    print(harness.markdown_header())
    print(result.markdown_row())
    print(f"service/baseline = {harness.ratio(result, base):.2f}")

This module is a script-side library: benchmarks in ``bench/`` import it as ``harness``
(running ``python bench/x.py`` puts ``bench/`` on ``sys.path``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as _dt
import inspect
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, TextIO

__all__ = [
    "SENTENCES",
    "AsyncCall",
    "RunResult",
    "SyncCall",
    "add_common_args",
    "describe_machine",
    "error_kind",
    "espeak",
    "log",
    "machine_markdown",
    "markdown_header",
    "measure_sync",
    "percentile",
    "ratio",
    "run_closed_loop",
    "run_sync",
    "summarize",
    "write_json",
]

AsyncCall = Callable[[int], Awaitable[Any]]
SyncCall = Callable[[int], Any]

#: Columns of :func:`markdown_header` / :meth:`RunResult.markdown_row`.
_COLUMNS: tuple[str, ...] = (
    "case",
    "C",
    "requests",
    "errors",
    "req/s",
    "items/s",
    "MB/s",
    "p50 ms",
    "p95 ms",
    "p99 ms",
    "max ms",
    "wall s",
    "cpu s",
)


# --------------------------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------------------------


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0 <= q <= 100) of already sorted values.

    Linear interpolation between closest ranks (numpy's default ``linear`` method, and the same
    as ``statistics.quantiles(method="inclusive")``): rank ``(n - 1) * q / 100``. ``nan`` for
    an empty sequence.
    """
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile must be within [0, 100], got {q}")
    n = len(sorted_values)
    if n == 0:
        return math.nan
    if n == 1:
        return float(sorted_values[0])
    rank = (n - 1) * q / 100.0
    lo = math.floor(rank)
    hi = min(lo + 1, n - 1)
    frac = rank - lo
    return float(sorted_values[lo]) + (float(sorted_values[hi]) - float(sorted_values[lo])) * frac


def error_kind(exc: BaseException) -> str:
    """How an error is counted: the gRPC status code name, else the exception type name."""
    code = getattr(exc, "code", None)
    if callable(code):
        try:
            value = code()
        except Exception:  # a non-gRPC exception with an unrelated code() method
            value = None
        name = getattr(value, "name", None)
        if isinstance(name, str):
            return name
    return type(exc).__name__


@dataclass(frozen=True)
class RunResult:
    """The measured phase of one closed-loop run. Latencies are in seconds."""

    name: str
    concurrency: int
    requests: int  # successful calls
    errors: Mapping[str, int]  # kind -> count, see error_kind()
    wall_s: float
    cpu_s: float  # CPU time of the measuring process (all threads) during the phase
    latency_mean_s: float
    latency_p50_s: float
    latency_p95_s: float
    latency_p99_s: float
    latency_max_s: float
    max_in_flight: int  # highest number of concurrent calls observed, never above concurrency
    items_per_call: float = 1.0
    bytes_per_call: float = 0.0
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def throughput_rps(self) -> float:
        """Successful requests per second of wall time."""
        return self.requests / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def items_per_s(self) -> float:
        return self.throughput_rps * self.items_per_call

    @property
    def mb_per_s(self) -> float:
        """Payload throughput in MB/s (10**6 bytes), from ``bytes_per_call``."""
        return self.throughput_rps * self.bytes_per_call / 1e6

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["errors"] = dict(self.errors)
        d["extra"] = dict(self.extra)
        d["error_count"] = self.error_count
        d["throughput_rps"] = self.throughput_rps
        d["items_per_s"] = self.items_per_s
        d["mb_per_s"] = self.mb_per_s
        return d

    def markdown_row(self) -> str:
        """One row of the table started by :func:`markdown_header`."""
        errors = ", ".join(f"{k} {v}" for k, v in sorted(self.errors.items())) if self.errors else "0"
        cells = [
            self.name,
            str(self.concurrency),
            str(self.requests),
            errors,
            _fmt(self.throughput_rps),
            _fmt(self.items_per_s) if self.items_per_call != 1.0 else "",
            _fmt(self.mb_per_s) if self.bytes_per_call else "",
            _fmt(self.latency_p50_s * 1e3),
            _fmt(self.latency_p95_s * 1e3),
            _fmt(self.latency_p99_s * 1e3),
            _fmt(self.latency_max_s * 1e3),
            f"{self.wall_s:.2f}",
            f"{self.cpu_s:.2f}",
        ]
        return "| " + " | ".join(cells) + " |"

    def summary_line(self) -> str:
        """A one-line human summary (used for progress output)."""
        parts = [
            f"{self.requests} ok",
            f"{self.error_count} err",
            f"{self.throughput_rps:,.0f} req/s",
        ]
        if self.items_per_call != 1.0:
            parts.append(f"{self.items_per_s:,.1f} items/s")
        if self.bytes_per_call:
            parts.append(f"{self.mb_per_s:,.1f} MB/s")
        parts.append(
            f"p50/p95/p99/max {self.latency_p50_s * 1e3:.3g}/{self.latency_p95_s * 1e3:.3g}/"
            f"{self.latency_p99_s * 1e3:.3g}/{self.latency_max_s * 1e3:.3g} ms"
        )
        parts.append(f"wall {self.wall_s:.2f}s cpu {self.cpu_s:.2f}s")
        return ", ".join(parts)


def markdown_header() -> str:
    """Header and separator lines of the Markdown results table."""
    head = "| " + " | ".join(_COLUMNS) + " |"
    sep = "|" + "|".join("---" if c == "case" else "--:" for c in _COLUMNS) + "|"
    return head + "\n" + sep


def _fmt(x: float) -> str:
    """Three significant digits, no scientific notation for the usual benchmark ranges."""
    if math.isnan(x):
        return "n/a"
    if x == 0:
        return "0"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    if abs(x) >= 1:
        return f"{x:.2f}"
    return f"{x:.3g}"


def summarize(
    name: str,
    concurrency: int,
    latencies_s: Sequence[float],
    errors: Mapping[str, int],
    wall_s: float,
    *,
    cpu_s: float = 0.0,
    max_in_flight: int = 0,
    items_per_call: float = 1.0,
    bytes_per_call: float = 0.0,
    extra: Mapping[str, Any] | None = None,
) -> RunResult:
    """Build a :class:`RunResult` from raw latencies (of successful calls) and error counts."""
    lat = sorted(latencies_s)
    return RunResult(
        name=name,
        concurrency=concurrency,
        requests=len(lat),
        errors=dict(errors),
        wall_s=wall_s,
        cpu_s=cpu_s,
        latency_mean_s=(sum(lat) / len(lat)) if lat else math.nan,
        latency_p50_s=percentile(lat, 50),
        latency_p95_s=percentile(lat, 95),
        latency_p99_s=percentile(lat, 99),
        latency_max_s=lat[-1] if lat else math.nan,
        max_in_flight=max_in_flight,
        items_per_call=items_per_call,
        bytes_per_call=bytes_per_call,
        extra=dict(extra or {}),
    )


def ratio(service: RunResult, baseline: RunResult) -> float:
    """Service throughput divided by baseline throughput, both in items/s.

    With ``items_per_call == 1`` (the default) items/s equals requests/s, so this is the plain
    req/s ratio; with batch calls it compares the work done, not the number of calls.
    """
    base = baseline.items_per_s
    if base <= 0:
        raise ValueError(f"baseline {baseline.name!r} has no throughput")
    return service.items_per_s / base


# --------------------------------------------------------------------------------------------
# Closed loop
# --------------------------------------------------------------------------------------------


def log(msg: str, *, stream: TextIO | None = None) -> None:
    """A progress line on stderr, prefixed with the wall-clock time."""
    out = stream if stream is not None else sys.stderr
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=out, flush=True)


class _Phase:
    """Shared state of the workers of one phase."""

    def __init__(self, start_index: int) -> None:
        self.next_index = start_index
        self.latencies: list[float] = []
        self.errors: Counter[str] = Counter()
        self.in_flight = 0
        self.max_in_flight = 0


async def _run_phase(
    call: AsyncCall,
    concurrency: int,
    state: _Phase,
    *,
    duration: float | None,
    requests: int | None,
) -> tuple[float, float]:
    """Run C workers until the deadline or the request count; return wall and CPU seconds."""
    stop_index = state.next_index + requests if requests is not None else None
    clock = time.perf_counter

    async def worker() -> None:
        while True:
            if deadline is not None and clock() >= deadline:
                return
            i = state.next_index
            if stop_index is not None and i >= stop_index:
                return
            state.next_index = i + 1
            state.in_flight += 1
            state.max_in_flight = max(state.max_in_flight, state.in_flight)
            t0 = clock()
            try:
                await call(i)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                state.errors[error_kind(exc)] += 1
            else:
                state.latencies.append(clock() - t0)
            finally:
                state.in_flight -= 1

    cpu0 = time.process_time()
    t_start = clock()
    deadline = t_start + duration if duration is not None else None
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return clock() - t_start, time.process_time() - cpu0


async def _ticker(st: _Phase, label: str, interval: float) -> None:
    t0 = time.perf_counter()
    last = 0
    while True:
        await asyncio.sleep(interval)
        done = len(st.latencies)
        elapsed = time.perf_counter() - t0
        log(
            f"{label}: {elapsed:5.1f}s {done} ok {sum(st.errors.values())} err "
            f"({(done - last) / interval:,.0f} req/s over the last {interval:g}s)"
        )
        last = done


async def run_closed_loop(
    call: AsyncCall,
    *,
    concurrency: int = 1,
    duration: float | None = 10.0,
    requests: int | None = None,
    warmup: float = 0.0,
    warmup_requests: int | None = None,
    name: str = "",
    items_per_call: float = 1.0,
    bytes_per_call: float = 0.0,
    progress: bool = True,
    progress_interval: float = 5.0,
    extra: Mapping[str, Any] | None = None,
) -> RunResult:
    """Measure ``call`` with ``concurrency`` closed-loop clients.

    ``call(i)`` is awaited with a request index ``i`` that is unique within the run and counts
    up from 0 across warm-up and measurement (so the caller can vary inputs by index).

    The measured phase ends after ``requests`` calls when ``requests`` is given, else after
    ``duration`` seconds (requests already sent when the duration runs out are allowed to finish
    and are counted; wall time includes them). The warm-up phase, whose results are discarded,
    runs ``warmup`` seconds, or ``warmup_requests`` calls when that is given.

    Errors raised by ``call`` are counted by :func:`error_kind` and do not stop the run; their
    latencies are not recorded and they do not count towards throughput.
    """
    if concurrency < 1:
        raise ValueError("concurrency must be >= 1")
    if requests is None and duration is None:
        raise ValueError("give a duration or a request count")
    if requests is not None and requests < 0:
        raise ValueError("requests must be >= 0")
    label = name or getattr(call, "__name__", "call")
    next_index = 0

    if warmup_requests or warmup > 0:
        if progress:
            what = f"{warmup_requests} requests" if warmup_requests else f"{warmup:g}s"
            log(f"{label} C={concurrency}: warming up ({what})")
        w_state = _Phase(0)
        await _run_phase(
            call,
            concurrency,
            w_state,
            duration=None if warmup_requests else warmup,
            requests=warmup_requests or None,
        )
        next_index = w_state.next_index
        if progress and w_state.errors:
            log(f"{label} C={concurrency}: warm-up errors {dict(w_state.errors)}")

    if progress:
        what = f"{requests} requests" if requests is not None else f"{duration:g}s"
        log(f"{label} C={concurrency}: measuring ({what})")

    state = _Phase(next_index)
    ticker: asyncio.Task[None] | None = None
    if progress and (requests is not None or (duration or 0) > progress_interval):
        ticker = asyncio.create_task(_ticker(state, f"{label} C={concurrency}", progress_interval))
    try:
        wall, cpu = await _run_phase(
            call,
            concurrency,
            state,
            duration=None if requests is not None else duration,
            requests=requests,
        )
    finally:
        if ticker is not None:
            ticker.cancel()

    result = summarize(
        name=label,
        concurrency=concurrency,
        latencies_s=state.latencies,
        errors=state.errors,
        wall_s=wall,
        cpu_s=cpu,
        max_in_flight=state.max_in_flight,
        items_per_call=items_per_call,
        bytes_per_call=bytes_per_call,
        extra=extra,
    )
    if progress:
        log(f"{label} C={concurrency}: {result.summary_line()}")
    return result


async def measure_sync(
    fn: SyncCall,
    *,
    concurrency: int = 1,
    duration: float | None = 10.0,
    requests: int | None = None,
    warmup: float = 0.0,
    warmup_requests: int | None = None,
    name: str = "baseline",
    inline: bool = False,
    items_per_call: float = 1.0,
    bytes_per_call: float = 0.0,
    progress: bool = True,
    progress_interval: float = 5.0,
    extra: Mapping[str, Any] | None = None,
) -> RunResult:
    """Measure a plain synchronous callable ``fn(i)`` the same closed-loop way.

    By default each of the ``concurrency`` clients runs ``fn`` in its own thread of a dedicated
    pool of ``concurrency`` threads (a GIL-bound ``fn`` will not scale; one that releases the
    GIL, like most native libraries, will). ``inline=True`` calls ``fn`` directly on the event
    loop, which avoids the thread hop and is only allowed with ``concurrency == 1``.
    """
    if inline and concurrency != 1:
        raise ValueError("inline=True runs on the event loop and needs concurrency == 1")
    with contextlib.ExitStack() as stack:
        if inline:

            async def call(i: int) -> Any:
                return fn(i)

        else:
            loop = asyncio.get_running_loop()
            pool = stack.enter_context(
                ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="bench-baseline")
            )

            async def call(i: int) -> Any:
                return await loop.run_in_executor(pool, fn, i)

        return await run_closed_loop(
            call,
            concurrency=concurrency,
            duration=duration,
            requests=requests,
            warmup=warmup,
            warmup_requests=warmup_requests,
            name=name,
            items_per_call=items_per_call,
            bytes_per_call=bytes_per_call,
            progress=progress,
            progress_interval=progress_interval,
            extra=extra,
        )


def run_sync(call: AsyncCall | SyncCall, **kwargs: Any) -> RunResult:
    """Convenience for scripts without an event loop: ``asyncio.run`` one measurement.

    A coroutine function goes to :func:`run_closed_loop`, anything else to
    :func:`measure_sync`; keyword arguments are passed through.
    """
    if inspect.iscoroutinefunction(call):
        return asyncio.run(run_closed_loop(call, **kwargs))
    return asyncio.run(measure_sync(call, **kwargs))


# --------------------------------------------------------------------------------------------
# Machine description, CLI, output
# --------------------------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("model name", "Model", "cpu model"):
            return value.strip()
    return platform.processor() or platform.machine()


def _memory_total_bytes() -> int | None:
    try:
        text = Path("/proc/meminfo").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return None


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def describe_machine() -> dict[str, Any]:
    """What the numbers were measured on: CPU, usable cores, memory, versions, date."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 0
    mem = _memory_total_bytes()
    return {
        "cpu_model": _cpu_model(),
        "cores": cores,
        "cpu_count": os.cpu_count(),
        "memory_gib": round(mem / 2**30, 1) if mem is not None else None,
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "grpcio": _version("grpcio"),
        "platform": platform.platform(),
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }


def machine_markdown(machine: Mapping[str, Any] | None = None) -> str:
    """The machine description as a Markdown bullet list."""
    m = dict(machine) if machine is not None else describe_machine()
    lines = [
        f"- CPU: {m.get('cpu_model')}, {m.get('cores')} usable cores "
        f"({m.get('cpu_count')} logical CPUs on the host)",
        f"- Memory: {m.get('memory_gib')} GiB",
        f"- Python {m.get('python')} ({m.get('python_implementation')}), grpcio {m.get('grpcio')}",
        f"- OS: {m.get('platform')}",
        f"- Date: {m.get('date')}",
    ]
    return "\n".join(lines)


def add_common_args(
    parser: argparse.ArgumentParser,
    *,
    concurrency: Sequence[int] = (1, 8),
    duration: float = 5.0,
    warmup: float = 1.0,
) -> argparse.ArgumentParser:
    """Add the flags every benchmark shares; the defaults are the caller's."""
    g = parser.add_argument_group("load (closed loop)")
    g.add_argument(
        "--concurrency",
        "-c",
        type=int,
        nargs="+",
        default=list(concurrency),
        metavar="C",
        help="number of concurrent clients, each sending its next request when the last one "
        "returns; several values run one measurement each (default: %(default)s)",
    )
    g.add_argument(
        "--duration",
        "-d",
        type=float,
        default=duration,
        metavar="SECONDS",
        help="length of each measured phase (default: %(default)s)",
    )
    g.add_argument(
        "--requests",
        "-n",
        type=int,
        default=None,
        metavar="N",
        help="measure N requests instead of a duration",
    )
    g.add_argument(
        "--warmup",
        "-w",
        type=float,
        default=warmup,
        metavar="SECONDS",
        help="warm-up before each measured phase, results discarded (default: %(default)s)",
    )
    g.add_argument(
        "--json",
        type=Path,
        default=None,
        metavar="OUT.json",
        help="also write machine description and all results as JSON to this file",
    )
    g.add_argument("--quiet", "-q", action="store_true", help="no progress output on stderr")
    return parser


def write_json(
    path: str | os.PathLike[str],
    results: Sequence[RunResult],
    *,
    machine: Mapping[str, Any] | None = None,
    command: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> None:
    """Write ``{"machine", "command", "results", ...extra}`` as JSON (NaN written as null)."""
    doc: dict[str, Any] = {
        "machine": dict(machine) if machine is not None else describe_machine(),
        "command": command if command is not None else " ".join(sys.argv),
        "results": [_nan_to_none(r.to_dict()) for r in results],
    }
    if extra:
        doc.update(extra)
    Path(path).write_text(json.dumps(doc, indent=2, sort_keys=False) + "\n")


def _nan_to_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in d.items()}


# --- speech ---------------------------------------------------------------------------------

SENTENCES = (
    "The quick brown fox jumps over the lazy dog.",
    "Please call Stella and ask her to bring these things with her from the store.",
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background.",
    "It is easy to tell the depth of a well.",
    "These days a chicken leg is a rare dish.",
    "Rice is often served in round bowls.",
    "The juice of lemons makes fine punch.",
    "The box was thrown beside the parked truck.",
    "Four hours of steady work faced us.",
)
"""Known sentences for the speech benchmarks (mostly Harvard sentences)."""


def espeak(path: Path, text: str, *, words_per_minute: int | None = None) -> Path:
    """`text` spoken by espeak-ng (US English) into the WAV file `path`; exits saying how to
    install espeak-ng when it is missing (benchmarks make their speech, they ship none)."""
    program = shutil.which("espeak-ng")
    if program is None:
        sys.exit("espeak-ng is needed (apt-get install espeak-ng)")
    speed = ["-s", str(words_per_minute)] if words_per_minute else []
    subprocess.run([program, "-v", "en-us", *speed, "-w", str(path), text], check=True)
    return path
