"""No work before authentication, and bounds at the transport (issue 22, the high item).

The probe of the audit: a plain HTTP/2 client without a token opens gRPC streams, declares large
messages and sends nearly all of them, then idles. The server must answer from the headers alone,
before it reads any message, so its memory stays where it was.
"""

from __future__ import annotations

import asyncio
import gc
import threading

import grpc
import pytest

import h2probe
import testkit
from sensorium import transport
from sensorium.client import Client, ClientError
from sensorium.pdf.remote import PdfClient

PDF = "/sensorium.pdf.v1.PdfService/"
MiB = 1024 * 1024
TOKEN = "9f1c2e7d4b6a8c0e1f3a5b7c9d2e4f6a8b0c1d3e5f7a9b2c4d6e8f0a1b3c5d7e"
UNAUTHENTICATED = 16


def _tokens(tmp_path):
    path = tmp_path / "tokens"
    path.write_text(f"{TOKEN}\n")
    path.chmod(0o600)
    return path


async def _watch(run, *args, **kwargs) -> tuple[h2probe.Probe, int]:
    """Run the probe in a thread while sampling this process's RSS (the server's: it runs on this
    event loop); the probe and the peak RSS growth."""
    gc.collect()
    baseline = h2probe.rss_bytes()
    peak = baseline
    probe = h2probe.Probe()
    done = threading.Event()

    def target() -> None:
        try:
            run(*args, probe=probe, **kwargs)
        finally:
            done.set()

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    while not done.is_set():
        peak = max(peak, h2probe.rss_bytes())
        await asyncio.sleep(0.05)
    thread.join()
    return probe, peak - baseline


@pytest.mark.slow
async def test_a_tokenless_slow_upload_holds_no_memory(start_server, tmp_path):
    """8 ExtractDocument streams on one connection, each declaring 60 MiB and sending all but
    8 KiB, then idle: the server refuses each from its headers and never takes the bodies."""
    server = await start_server(services=["pdf"], pdf={"workers": 1},
                                auth={"tokens_file": _tokens(tmp_path)})
    probe, growth = await _watch(h2probe.open_streams, server.port, [PDF + "ExtractDocument"] * 8,
                                 declared=60 * MiB, send_seconds=20, idle_seconds=2)
    # Before the fix each stream got window for its whole message: 480 MiB held, no answer.
    assert growth < 64 * MiB, f"server RSS grew {growth / MiB:.0f} MiB"
    assert max(s.sent for s in probe.streams) < 4 * MiB, [s.sent for s in probe.streams]
    assert [s.status for s in probe.streams] == [UNAUTHENTICATED] * 8


async def _watch_all(*runs) -> tuple[list[h2probe.Probe], int]:
    """Several probes at once, each on its own connection and thread; their peak RSS growth."""
    gc.collect()
    baseline = h2probe.rss_bytes()
    peak = baseline
    probes = [h2probe.Probe() for _ in runs]
    threads = [threading.Thread(target=run, kwargs={"probe": probe}, daemon=True)
               for run, probe in zip(runs, probes, strict=True)]
    for thread in threads:
        thread.start()
    while any(thread.is_alive() for thread in threads):
        peak = max(peak, h2probe.rss_bytes())
        await asyncio.sleep(0.05)
    return probes, peak - baseline


@pytest.mark.slow
async def test_64_tokenless_streams_just_under_the_caps_hold_no_memory(start_server, tmp_path):
    """64 unary calls each just under ExtractDocument's cap, and 64 streams each opening with a
    message just under the transport's limit: all refused from their headers, memory flat."""
    limit = 32 * MiB
    server = await start_server(services=["pdf"], pdf={"workers": 1}, max_receive_message_bytes=limit,
                                auth={"tokens_file": _tokens(tmp_path)})
    unary_cap = transport.unary_limit(PDF + "ExtractDocument", limit)
    assert unary_cap == 8 * MiB

    def unary(probe):
        h2probe.open_streams(server.port, [PDF + "ExtractDocument"] * 64, declared=unary_cap - 16,
                             withhold=0, send_seconds=20, idle_seconds=1, probe=probe)

    def streaming(probe):
        h2probe.open_streams(server.port, [PDF + "StreamExtractDocument"] * 64, declared=limit - 16,
                             withhold=0, send_seconds=20, idle_seconds=1, probe=probe)

    probes, growth = await _watch_all(unary, streaming)
    assert growth < 64 * MiB, f"server RSS grew {growth / MiB:.0f} MiB"
    for probe in probes:
        assert len(probe.streams) == 64
        assert {s.status for s in probe.streams} == {UNAUTHENTICATED}
        assert sum(s.sent for s in probe.streams) < 16 * MiB


async def test_a_unary_request_over_its_methods_cap_is_refused_with_the_stream_to_use(
        start_server, tmp_path):
    server = await start_server(services=["pdf"], pdf={"workers": 1},
                                auth={"tokens_file": _tokens(tmp_path)})
    cap = transport.unary_limit(PDF + "ExtractDocument", server.settings.max_receive_message_bytes)
    async with Client(f"127.0.0.1:{server.port}", token=TOKEN, insecure=True) as client:
        with pytest.raises(ClientError) as error:
            await PdfClient(client).extract_document(b"%PDF-1.7\n" + bytes(cap))
        details = error.value.details
        assert (details.code, details.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INPUT_TOO_LARGE")
        assert "StreamExtractDocument" in details.message
        assert details.metadata["limit_bytes"] == str(cap)
        # Just under the cap, the call is read and answered by the service.
        with pytest.raises(ClientError) as error:
            await PdfClient(client).extract_document(b"not a pdf" + bytes(cap - 10_000))
        assert error.value.details.reason == "PDF_UNREADABLE"


async def test_64_honest_clients_share_one_connection_and_the_stream_bound_holds(start_server):
    """64 concurrent calls over one connection (what 64 clients in one process share) are all
    served under the default bound; past the bound the excess is refused (UNAVAILABLE, which a
    client retries) while the calls within it are served."""
    service = testkit.SlowService()
    server = await start_server(hosted=[service], transport={"max_streams_per_connection": 80})
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        call = channel.unary_unary("/sensorium.test.Slow/Sleep")
        assert await call(b"0", timeout=30) == b"done"  # the connection (and its SETTINGS) first
        answers = await asyncio.gather(*(call(b"0.1", timeout=30) for _ in range(64)))
        assert answers == [b"done"] * 64
        crowd = await asyncio.gather(*(call(b"0.3", timeout=30) for _ in range(200)),
                                     return_exceptions=True)
    served = [a for a in crowd if a == b"done"]
    refused = [a for a in crowd if isinstance(a, grpc.aio.AioRpcError)]
    assert len(served) + len(refused) == 200 and 64 <= len(served) < 200
    assert {a.code() for a in refused} == {grpc.StatusCode.UNAVAILABLE}
