"""PDF worker faults on a real server, caused from outside the worker: a worker SIGKILLed or
SIGSTOPped while it holds a document, a document that keeps crashing workers, and the kernel's
CPU-time backstop. The faulty request fails with its reason and is not retried; requests in
flight and queued beside it complete; the pool heals."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from pathlib import Path

import grpc
import pytest
from prometheus_client import REGISTRY

import testkit
from sensorium.client import Client, ClientError
from sensorium.pdf.remote import PdfClient


@pytest.fixture
async def pdf_server(start_server):
    async def start(**pdf: object) -> Client:
        settings = {"workers": 2, "timeout_seconds": 20, **pdf}
        server = await start_server(services=["pdf"], pdf=settings,
                                    factories={"pdf": testkit.pdf_runtime_with_faults})
        return Client(f"127.0.0.1:{server.port}")

    return start


def _restarts(reason: str) -> float:
    return REGISTRY.get_sample_value("sensorium_worker_restarts_total",
                                     {"service": "pdf", "reason": reason}) or 0.0


async def _pid_from(pidfile: Path, timeout: float = 20) -> int:
    deadline = time.monotonic() + timeout
    while not pidfile.exists() or not pidfile.read_text():
        assert time.monotonic() < deadline, "the worker never took the document"
        await asyncio.sleep(0.02)
    pid = int(pidfile.read_text())
    pidfile.unlink()
    return pid


def _normal(count: int) -> list[bytes]:
    return [testkit.make_pdf([f"doc {i} page {p}" for p in range(3)]) for i in range(count)]


def _texts(results: list[object]) -> list[str]:
    return [r.pages[0].text.strip() for r in results]  # type: ignore[attr-defined]


@pytest.mark.parametrize("how", ["SIGKILL", "SIGSTOP"])
async def test_a_worker_killed_or_stopped_from_outside_fails_only_its_request(pdf_server, tmp_path, how):
    client = await pdf_server(timeout_seconds=3)
    pidfile = tmp_path / "worker.pid"
    victim = asyncio.ensure_future(
        PdfClient(client).extract_document(
            testkit.make_pdf(["x"], title=f"sensorium-test:pidfile={pidfile}")))
    pid = await _pid_from(pidfile)
    # Others are in flight and queued (more documents than the one worker left) when it dies.
    others = [asyncio.ensure_future(PdfClient(client).extract_document(d)) for d in _normal(6)]
    await asyncio.sleep(0.2)
    crashes, timeouts = _restarts("crash"), _restarts("timeout")
    os.kill(pid, getattr(signal, how))
    try:
        with pytest.raises(ClientError) as failed:
            await victim
        results = await asyncio.gather(*others)
    finally:
        if how == "SIGSTOP":
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    if how == "SIGKILL":
        assert (failed.value.details.code, failed.value.details.reason) == (
            grpc.StatusCode.INTERNAL, "PARSER_CRASH")
        assert _restarts("crash") == crashes + 1
    else:  # a stopped worker is a hung one: killed at the document's time limit
        assert failed.value.details.reason == "PROCESSING_LIMIT"
        assert failed.value.details.metadata["setting"] == "SENSORIUM_PDF__TIMEOUT_SECONDS"
        assert _restarts("timeout") == timeouts + 1
    assert _texts(results) == [f"doc {i} page 0" for i in range(6)]
    await asyncio.sleep(0.5)
    assert not pidfile.exists(), "the server retried the document that killed its worker"
    # The pool healed: two workers serve again, concurrently.
    again = await asyncio.gather(*(PdfClient(client).extract_document(d) for d in _normal(4)))
    assert _texts(again) == [f"doc {i} page 0" for i in range(4)]


async def test_a_document_that_crashed_workers_twice_is_refused_at_once(pdf_server):
    client = await pdf_server(crash_quarantine_seconds=60)
    crashing = testkit.make_pdf(["x"], title="sensorium-test:segfault")
    crashes = _restarts("crash")
    for _ in range(2):
        with pytest.raises(ClientError) as crashed:
            await PdfClient(client).extract_document(crashing)
        assert crashed.value.details.reason == "PARSER_CRASH"
    started = time.monotonic()
    with pytest.raises(ClientError) as refused:
        await PdfClient(client).extract_document(crashing)
    assert time.monotonic() - started < 1.0
    details = refused.value.details
    assert (details.code, details.reason) == (grpc.StatusCode.INTERNAL, "PARSER_CRASH")
    assert "refused" in details.message and int(details.metadata["quarantined_seconds"]) > 50
    assert _restarts("crash") == crashes + 2  # the third try never reached a worker
    # Other documents, even of the same size, are unaffected.
    same_size_other = testkit.make_pdf(["y"], title="sensorium-test:segfaulT")
    assert len(same_size_other) == len(crashing)
    assert (await PdfClient(client).extract_document(same_size_other)).pages[0].text.strip() == "y"


async def test_the_quarantine_can_be_switched_off(pdf_server):
    client = await pdf_server(crash_quarantine_seconds=0)
    crashing = testkit.make_pdf(["x"], title="sensorium-test:segfault")
    crashes = _restarts("crash")
    for _ in range(3):
        with pytest.raises(ClientError):
            await PdfClient(client).extract_document(crashing)
    assert _restarts("crash") == crashes + 3


async def test_each_task_runs_under_a_cpu_time_limit_armed_for_it(pdf_server, tmp_path):
    # RLIMIT_CPU counts the process's whole life: the pool re-arms it per task to the CPU time
    # used so far plus the document's time limit, as the kernel's backstop to the wall clock.
    client = await pdf_server(workers=1, timeout_seconds=7)
    for _ in range(3):
        await PdfClient(client).extract_document(testkit.make_pdf(["warm"]))
    pidfile = tmp_path / "worker.pid"
    victim = asyncio.ensure_future(
        PdfClient(client).extract_document(
            testkit.make_pdf(["x"], title=f"sensorium-test:pidfile={pidfile}")))
    pid = await _pid_from(pidfile)
    limits = Path(f"/proc/{pid}/limits").read_text()
    (line,) = [row for row in limits.splitlines() if row.startswith("Max cpu time")]
    soft = int(line.split()[3])
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    used = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime
    assert used + 7 <= soft <= used + 7 + 2
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(ClientError):
        await victim


async def test_a_worker_ended_by_its_cpu_time_limit_is_a_processing_limit(pdf_server):
    client = await pdf_server(timeout_seconds=30)
    timeouts = _restarts("timeout")
    with pytest.raises(ClientError) as stopped:
        await PdfClient(client).extract_document(testkit.make_pdf(["x"], title="sensorium-test:cpulimit"))
    assert stopped.value.details.reason == "PROCESSING_LIMIT"
    assert _restarts("timeout") == timeouts + 1
    assert (await PdfClient(client).extract_document(
        testkit.make_pdf(["after"]))).pages[0].text.strip() == "after"
