"""Statistics and closed-loop behaviour of bench/harness.py (no timing assertions)."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import math
import statistics
import sys
import threading
from pathlib import Path
from types import ModuleType

import grpc
import pytest

_HARNESS_PATH = Path(__file__).resolve().parents[2] / "bench" / "harness.py"


def _load_harness() -> ModuleType:
    name = "sensorium_bench_harness"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, _HARNESS_PATH)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look the module up while the class is built
    spec.loader.exec_module(module)
    return module


h = _load_harness()


# ---------------------------------------------------------------------------- percentiles


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([1.0, 2.0, 3.0, 4.0, 5.0], 50, 3.0),
        ([1.0, 2.0, 3.0, 4.0], 50, 2.5),
        ([1.0, 2.0, 3.0, 4.0], 0, 1.0),
        ([1.0, 2.0, 3.0, 4.0], 100, 4.0),
        ([10.0, 20.0], 95, 19.5),
        ([7.0], 99, 7.0),
        (list(map(float, range(101))), 99, 99.0),
        (list(map(float, range(1, 11))), 95, 9.55),
    ],
)
def test_percentile_linear_interpolation(values, q, expected):
    assert h.percentile(values, q) == pytest.approx(expected)


def test_percentile_matches_statistics_quantiles_inclusive():
    values = sorted(((i * 7919) % 1000) / 3.0 for i in range(997))
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    for q in (1, 25, 50, 90, 95, 99):
        assert h.percentile(values, q) == pytest.approx(cuts[q - 1])


def test_percentile_empty_and_out_of_range():
    assert math.isnan(h.percentile([], 50))
    with pytest.raises(ValueError, match="percentile"):
        h.percentile([1.0], 101)


def test_summarize_sorts_and_computes_stats():
    r = h.summarize("x", 2, [0.004, 0.001, 0.003, 0.002], {}, wall_s=2.0, bytes_per_call=1e6)
    assert r.requests == 4
    assert r.latency_p50_s == pytest.approx(0.0025)
    assert r.latency_max_s == pytest.approx(0.004)
    assert r.latency_mean_s == pytest.approx(0.0025)
    assert r.throughput_rps == pytest.approx(2.0)
    assert r.mb_per_s == pytest.approx(2.0)
    assert r.items_per_s == pytest.approx(2.0)


def test_summarize_without_successes():
    r = h.summarize("x", 1, [], {"ValueError": 3}, wall_s=1.0)
    assert r.requests == 0
    assert r.error_count == 3
    assert math.isnan(r.latency_p99_s)
    assert r.throughput_rps == 0.0
    d = r.to_dict()
    assert d["errors"] == {"ValueError": 3}


# ---------------------------------------------------------------------------- errors


def test_error_kind_grpc_status_and_exception_type():
    assert h.error_kind(grpc.aio.AioRpcError(grpc.StatusCode.UNAVAILABLE)) == "UNAVAILABLE"
    assert h.error_kind(ValueError("boom")) == "ValueError"

    class Weird(Exception):
        def code(self) -> int:
            return 3

    assert h.error_kind(Weird()) == "Weird"


async def test_errors_are_counted_by_kind_and_not_as_throughput():
    async def call(i: int) -> None:
        await asyncio.sleep(0)
        if i % 5 == 0:
            raise grpc.aio.AioRpcError(grpc.StatusCode.RESOURCE_EXHAUSTED)
        if i % 5 == 1:
            raise ValueError(i)

    r = await h.run_closed_loop(call, concurrency=3, requests=50, duration=None, progress=False)
    assert r.errors == {"RESOURCE_EXHAUSTED": 10, "ValueError": 10}
    assert r.error_count == 20
    assert r.requests == 30
    assert "RESOURCE_EXHAUSTED 10" in r.markdown_row()


# ---------------------------------------------------------------------------- closed loop


async def test_closed_loop_never_exceeds_concurrency_and_uses_each_index_once():
    in_flight = 0
    peak = 0
    seen: list[int] = []

    async def call(i: int) -> None:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        seen.append(i)
        for _ in range(3):
            await asyncio.sleep(0)
        in_flight -= 1

    r = await h.run_closed_loop(
        call, concurrency=4, requests=40, duration=None, warmup_requests=8, progress=False
    )
    assert peak == 4  # all C clients were busy at once, and never more
    assert r.max_in_flight == 4
    assert r.requests == 40
    assert sorted(seen) == list(range(48))  # warm-up 0..7, then measured 8..47


async def test_closed_loop_duration_mode_stops():
    async def call(i: int) -> None:
        await asyncio.sleep(0.001)

    r = await h.run_closed_loop(call, concurrency=2, duration=0.05, progress=False)
    assert r.requests > 0
    assert r.max_in_flight <= 2
    assert r.wall_s > 0


async def test_concurrency_one_is_sequential():
    async def call(i: int) -> None:
        await asyncio.sleep(0)

    r = await h.run_closed_loop(call, concurrency=1, requests=10, duration=None, progress=False)
    assert r.max_in_flight == 1


async def test_run_closed_loop_rejects_bad_arguments():
    async def call(i: int) -> None:
        return None

    with pytest.raises(ValueError, match="concurrency"):
        await h.run_closed_loop(call, concurrency=0, progress=False)
    with pytest.raises(ValueError, match="duration"):
        await h.run_closed_loop(call, duration=None, progress=False)


async def test_measure_sync_threads_bounded_by_concurrency():
    lock = threading.Lock()
    state = {"now": 0, "peak": 0}
    barrier = threading.Barrier(3, timeout=5)

    def fn(i: int) -> int:
        with lock:
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
        if i < 3:
            barrier.wait()  # the first three calls must run at the same time
        with lock:
            state["now"] -= 1
        return i

    r = await h.measure_sync(fn, concurrency=3, requests=30, duration=None, progress=False)
    assert r.requests == 30
    assert state["peak"] == 3
    assert r.max_in_flight == 3


async def test_measure_sync_inline():
    calls: list[int] = []
    r = await h.measure_sync(calls.append, requests=5, duration=None, inline=True, progress=False)
    assert calls == [0, 1, 2, 3, 4]
    assert r.requests == 5
    with pytest.raises(ValueError, match="inline"):
        await h.measure_sync(calls.append, concurrency=2, inline=True, progress=False)


def test_run_sync_dispatches_sync_and_async():
    async def acall(i: int) -> None:
        return None

    assert h.run_sync(acall, requests=3, duration=None, progress=False).requests == 3
    assert h.run_sync(lambda i: i, requests=4, duration=None, progress=False).requests == 4


# ---------------------------------------------------------------------------- ratio, output


def test_ratio_uses_items_per_second():
    service = h.summarize("svc", 8, [0.01] * 300, {}, wall_s=1.0)
    baseline = h.summarize("base", 1, [0.01] * 100, {}, wall_s=1.0)
    assert h.ratio(service, baseline) == pytest.approx(3.0)
    batched = h.summarize("svc", 8, [0.01] * 50, {}, wall_s=1.0, items_per_call=4)
    assert h.ratio(batched, baseline) == pytest.approx(2.0)
    empty = h.summarize("base", 1, [], {}, wall_s=1.0)
    with pytest.raises(ValueError, match="no throughput"):
        h.ratio(service, empty)


def test_result_is_frozen_and_serialises(tmp_path):
    r = h.summarize("noop", 8, [0.001, 0.002], {"UNAVAILABLE": 1}, wall_s=1.0, extra={"k": 1})
    with pytest.raises(AttributeError):
        r.requests = 5  # type: ignore[misc]
    d = r.to_dict()
    assert d["throughput_rps"] == pytest.approx(2.0)
    assert d["extra"] == {"k": 1}
    header = h.markdown_header().splitlines()[0]
    assert header.count("|") == r.markdown_row().count("|")
    out = tmp_path / "r.json"
    h.write_json(out, [r, h.summarize("none", 1, [], {}, wall_s=1.0)], command="bench x")
    doc = json.loads(out.read_text())
    assert doc["command"] == "bench x"
    assert doc["results"][0]["name"] == "noop"
    assert doc["results"][1]["latency_p50_s"] is None
    assert "cores" in doc["machine"]


def test_describe_machine_fields():
    m = h.describe_machine()
    for key in ("cpu_model", "cores", "memory_gib", "python", "grpcio", "date"):
        assert key in m
    assert m["cores"] >= 1
    assert m["grpcio"] == grpc.__version__
    assert "usable cores" in h.machine_markdown(m)


def test_common_args():
    import argparse

    p = h.add_common_args(argparse.ArgumentParser(), concurrency=(1, 8), duration=3.0)
    ns = p.parse_args([])
    assert ns.concurrency == [1, 8]
    assert ns.duration == 3.0
    ns = p.parse_args(["-c", "2", "4", "--json", "o.json", "-n", "100"])
    assert ns.concurrency == [2, 4]
    assert ns.requests == 100
    assert str(ns.json) == "o.json"
