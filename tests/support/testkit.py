"""Shared test helpers: a test-only service, settings for in-process servers, test data."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from sensorium.errors import Reason, SensoriumError
from sensorium.hosting import HostedService
from sensorium.settings import Settings

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data"
"""Files the tests read that they do not generate (sources and licences in its README.md)."""
JFK = DATA / "jfk.flac"
"""11 s of human speech; its words are `speechkit.JFK_TEXT`."""


def pdf_runtime_with_faults(context: Any) -> Any:
    """A PDF runtime whose workers act on `sensorium-test:` titles (see `pdf_faults`)."""
    import pdf_faults
    from sensorium.pdf.runtime import PdfRuntime

    return PdfRuntime(context, page_extractor=pdf_faults.extract_page)


def test_settings(**overrides: Any) -> Settings:
    """Settings for an in-process server on loopback with ephemeral ports and no delays."""
    values: dict[str, Any] = {
        "address": "127.0.0.1:0", "health_port": 0, "metrics_port": -1,
        "shutdown_delay_seconds": 0.0, "shutdown_grace_seconds": 5.0, "services": [],
    }
    values.update(overrides)
    return Settings(**values)


class SlowService(HostedService):
    """A test-only service speaking raw bytes, to exercise the server without a real engine.

    /sensorium.test.Slow/Sleep  sleeps float(request) seconds off the event loop, answers b"done"
    /sensorium.test.Slow/Crash  raises an unexpected exception whose text must not leak
    /sensorium.test.Slow/Fail   raises SensoriumError(Reason[request])
    /sensorium.test.Slow/Echo   streams back each request message
    /sensorium.test.Slow/Hold   b"SECONDS:PAYLOAD": spools PAYLOAD as an upload (against `budget`,
                                which the test sets to the server's) and holds it SECONDS
    """

    name = "slow"
    full_name = "sensorium.test.Slow"
    SECRET = "/srv/secret/path.py line 42"

    def __init__(self, start_delay: float = 0.0, fail_start: str = "") -> None:
        super().__init__()
        self.start_delay = start_delay
        self.fail_start = fail_start
        self.started = threading.Event()
        self.in_flight = 0
        self.finished = 0
        self.budget: Any = None

    def method_paths(self) -> set[str]:
        return {f"/{self.full_name}/{m}" for m in ("Sleep", "Crash", "Fail", "Echo", "Hold")}

    async def start(self) -> None:
        from sensorium.errors import ServiceStartError

        await asyncio.sleep(self.start_delay)
        if self.fail_start:
            raise ServiceStartError(self.fail_start)

    def register(self, server: grpc.aio.Server) -> None:
        async def sleep(request: bytes, context: Any) -> bytes:
            self.in_flight += 1
            self.started.set()
            try:
                await asyncio.to_thread(time.sleep, float(request.decode() or 0))
            finally:
                self.in_flight -= 1
            self.finished += 1
            return b"done"

        async def crash(request: bytes, context: Any) -> bytes:
            raise RuntimeError(f"boom in {self.SECRET}")

        async def fail(request: bytes, context: Any) -> bytes:
            raise SensoriumError(Reason[request.decode()], "you asked for it", {"k": "v"},
                                 retry_after_seconds=2.5 if request == b"OVERLOADED" else None)

        async def echo(requests: Any, context: Any) -> Any:
            async for request in requests:
                yield request

        async def hold(request: bytes, context: Any) -> bytes:
            from sensorium.uploads import spool_bytes

            seconds, _, payload = request.partition(b":")
            async with spool_bytes(payload, budget=self.budget, limit=1 << 30, what="payload",
                                   setting="none") as upload:
                await asyncio.sleep(float(seconds))
            return f"held {upload.size}".encode()

        handlers = {
            "Hold": grpc.unary_unary_rpc_method_handler(hold),
            "Sleep": grpc.unary_unary_rpc_method_handler(sleep),
            "Crash": grpc.unary_unary_rpc_method_handler(crash),
            "Fail": grpc.unary_unary_rpc_method_handler(fail),
            "Echo": grpc.stream_stream_rpc_method_handler(echo),
        }
        server.add_generic_rpc_handlers(
            [grpc.method_handlers_generic_handler(self.full_name, handlers)]
        )


def repeated_form_pdf(repeats: int, line: str = "the same words drawn again and again " * 3) -> bytes:
    """A one-page PDF of a few KB whose page draws one form object (a line of text) `repeats`
    times: the audit's "small file, unbounded text" case (its deflated content stream is tiny,
    its text grows with `repeats`)."""
    import zlib

    form = f"BT /F1 10 Tf 20 700 Td ({line}) Tj ET".encode()
    content = zlib.compress(b"q /X0 Do Q\n" * repeats, 9)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
        b" /Resources << /XObject << /X0 5 0 R >> >> >>",
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(content) + content + b"\nendstream",
        b"<< /Type /XObject /Subtype /Form /BBox [0 0 612 792] /Resources << /Font << /F1 6 0 R >> >>"
        b" /Length %d >>\nstream\n" % len(form) + form + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.7\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def make_pdf(
    pages: list[str], *, title: str = "", user_password: str = "", image_pixels: int = 0
) -> bytes:
    """A PDF with one text page per entry; optionally encrypted (AES-256) and with an image of
    `image_pixels` x `image_pixels` on the first page."""
    import pymupdf

    doc = pymupdf.open()
    for text in pages:
        page = doc.new_page()
        page.insert_textbox(pymupdf.Rect(36, 36, 560, 800), text, fontsize=6)
    if image_pixels:
        pixmap = pymupdf.Pixmap(pymupdf.csRGB, pymupdf.IRect(0, 0, image_pixels, image_pixels), False)
        pixmap.clear_with(200)
        doc[0].insert_image(pymupdf.Rect(100, 400, 300, 600), pixmap=pixmap)
    if title:
        doc.set_metadata({"title": title})
    options: dict[str, Any] = {}
    if user_password:
        options = {"encryption": pymupdf.PDF_ENCRYPT_AES_256, "user_pw": user_password,
                   "owner_pw": user_password + "-owner"}
    data: bytes = doc.tobytes(**options)
    return data


def make_r6_pdf(pages: int, *, user_password: str, owner_password: str) -> bytes:
    """`pages` pages ("Page N") encrypted with AES-256, revision 6 (what qpdf and Acrobat
    write), with the page tree inside encrypted object streams: the layout where MuPDF sees no
    pages until the password is given (`open_document` authenticates first for it)."""
    import pymupdf

    doc = pymupdf.open()
    for number in range(1, pages + 1):
        doc.new_page().insert_text((72, 72), f"Page {number}")
    data: bytes = doc.tobytes(encryption=pymupdf.PDF_ENCRYPT_AES_256, user_pw=user_password,
                              owner_pw=owner_password, use_objstms=1)
    assert b"/R 6" in data and b"/V 5" in data
    return data


def make_page_tree_loop_pdf(text: str = "Potato") -> bytes:
    """One page showing `text`, whose page tree lists itself among its kids (a loop a naive
    reader follows forever)."""
    import pymupdf

    doc = pymupdf.open()
    doc.new_page().insert_text((72, 72), text, fontsize=24)
    pages = int(doc.xref_get_key(doc.pdf_catalog(), "Pages")[1].split()[0])
    kids = doc.xref_get_key(pages, "Kids")[1].strip("[]")
    doc.xref_set_key(pages, "Kids", f"[{kids} {pages} 0 R]")
    data: bytes = doc.tobytes()
    assert f"{pages} 0 R]".encode() in data
    return data


# --- The CLI in subprocesses (e2e tests) ------------------------------------------------------

SENSORIUM = [sys.executable, "-m", "sensorium.cli"]


def cli_env(**settings: str) -> dict[str, str]:
    """This process's environment without any SENSORIUM_* variable, plus `settings`. A query
    process that a test's `sensorium search` starts exits 10 s after its last search (unless
    `settings` say otherwise), not minutes after the test."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("SENSORIUM_")}
    return {**env, "SENSORIUM_INDEX__SEARCH_DAEMON_IDLE_SECONDS": "10", **settings}


def run_cli(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`sensorium ARGS...` as a user runs it; output captured as text."""
    return subprocess.run([*SENSORIUM, *args], capture_output=True, text=True, timeout=timeout,
                          env=env, check=False)


@dataclass
class ServeProcess:
    """A running `sensorium serve`, with the ports it logged."""

    process: subprocess.Popen[str]
    port: int
    health_port: int
    metrics_port: int | None
    log: str

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"


# The server's own "ready" (every service started), not one service's "service ready".
_READY = re.compile(r" sensorium\.server ready( |$)")


@contextlib.contextmanager
def serve(
    env: dict[str, str], timeout: float = 120, command: list[str] | None = None
) -> Iterator[ServeProcess]:
    """Start `sensorium serve` (or `command`, which must end by exec'ing it and write what it
    says to stderr) on ephemeral loopback ports, wait for "ready", stop it with SIGTERM on exit
    and check that it exits 0."""
    env = {"SENSORIUM_ADDRESS": "127.0.0.1:0", "SENSORIUM_HEALTH_PORT": "0",
           "SENSORIUM_METRICS_PORT": "0", "SENSORIUM_SHUTDOWN_DELAY_SECONDS": "0", **env}
    process = subprocess.Popen(command or [*SENSORIUM, "serve"], env=env, stderr=subprocess.PIPE,
                               text=True)
    assert process.stderr is not None
    lines: list[str] = []
    ports: tuple[str, ...] = ()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        lines.append(line)
        if match := re.search(r" listening port=(\d+) health_port=(\d+) metrics_port=(\S+)", line):
            ports = match.groups()
        if _READY.search(line) or not line:
            break
    try:
        assert ports and any(_READY.search(line) for line in lines), "".join(lines)
        metrics = None if ports[2] == "None" else int(ports[2])
        yield ServeProcess(process, int(ports[0]), int(ports[1]), metrics, "".join(lines))
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        code = process.wait(60)
    assert code == 0, f"sensorium serve exited {code}"


def make_scanned_pdf(text: str) -> bytes:
    """A one-page PDF whose page is only a picture of `text` (no text layer), as a scan is."""
    import pymupdf

    source = pymupdf.open()
    page = source.new_page(width=400, height=120)
    page.insert_text((20, 70), text, fontsize=32)
    picture = page.get_pixmap(dpi=200)
    doc = pymupdf.open()
    scanned = doc.new_page(width=400, height=120)
    scanned.insert_image(scanned.rect, pixmap=picture)
    data: bytes = doc.tobytes()
    return data
