"""No work before authentication, and bounds at the transport (issue 22, the high item).

The probe of the audit: a plain HTTP/2 client without a token opens gRPC streams, declares large
messages and sends nearly all of them, then idles. The server must answer from the headers alone,
before it reads any message, so its memory stays where it was.
"""

from __future__ import annotations

import asyncio
import gc
import threading

import pytest

import h2probe

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
