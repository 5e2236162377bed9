"""A plain HTTP/2 client that speaks just enough gRPC to hold a server's memory, if it lets it.

What the audit's probe did (issue 22): open gRPC streams on one connection with no token,
declare a large message in each stream's 5-byte gRPC prefix, send all of it but the last few
KiB, as fast as HTTP/2 flow control allows, then go idle with the streams open. A server that
reads a request before it decides whether to serve it grants flow-control window for the whole
message and holds it; one that decides from the headers answers at once and resets the stream,
so the client can send no more than the initial window.

Synchronous and socket-based (the `h2` library does the framing): run it in a thread or a
process beside an asyncio server. Test-only code.
"""

from __future__ import annotations

import os
import select
import socket
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.events
import h2.exceptions

FRAME = 16 * 1024
_PAYLOAD = memoryview(bytes(FRAME))


@dataclass
class Stream:
    """What happened to one stream."""

    method: str
    declared: int
    """Bytes the stream's gRPC prefix declared."""
    target: int
    """Bytes of the message the client meant to send (the rest is withheld)."""
    sent: int = 0
    """Message bytes the server's flow control let through."""
    status: int | None = None
    """grpc-status of the server's answer, if it answered."""
    reset: bool = False
    """The server reset the stream."""

    @property
    def done(self) -> bool:
        return self.status is not None or self.reset or self.sent >= self.target


@dataclass
class Probe:
    streams: list[Stream] = field(default_factory=list)


def open_streams(
    port: int, methods: Sequence[str], *, declared: int, withhold: int = 8 * 1024,
    metadata: Sequence[tuple[str, str]] = (), send_seconds: float = 30.0, idle_seconds: float = 0.0,
    host: str = "127.0.0.1", probe: Probe | None = None,
) -> Probe:
    """Open one stream per entry of `methods` on one connection to `host:port`, each declaring a
    `declared`-byte message and sending all but `withhold` bytes of it (as flow control allows,
    for at most `send_seconds`), then keep the connection open `idle_seconds`. `probe` (filled as
    it goes) lets another thread watch."""
    probe = probe or Probe()
    sock = socket.create_connection((host, port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True,
                                                                header_encoding="utf-8"))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    by_id: dict[int, Stream] = {}
    for method in methods:
        stream_id = conn.get_next_available_stream_id()
        headers = [(":method", "POST"), (":scheme", "http"), (":path", method),
                   (":authority", f"{host}:{port}"), ("content-type", "application/grpc"),
                   ("te", "trailers"), *metadata]
        conn.send_headers(stream_id, headers)
        stream = Stream(method, declared, max(declared - withhold, 0))
        by_id[stream_id] = stream
        probe.streams.append(stream)
        # The gRPC prefix: not compressed, then the message length (big-endian).
        conn.send_data(stream_id, struct.pack(">BI", 0, declared))
    sock.sendall(conn.data_to_send())
    try:
        deadline = time.monotonic() + send_seconds
        while time.monotonic() < deadline and not all(s.done for s in by_id.values()):
            for stream_id, stream in by_id.items():
                _send_some(conn, stream_id, stream)
            out = conn.data_to_send()
            if out:
                sock.sendall(out)
            _receive(sock, conn, by_id, timeout=0.05)
        idle_until = time.monotonic() + idle_seconds
        while time.monotonic() < idle_until:
            _receive(sock, conn, by_id, timeout=0.1)
    finally:
        sock.close()
    return probe


def _send_some(conn: h2.connection.H2Connection, stream_id: int, stream: Stream) -> None:
    while not stream.done:
        try:
            window = conn.local_flow_control_window(stream_id)
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            stream.reset = stream.reset or stream.status is None
            return
        size = min(window, FRAME, conn.max_outbound_frame_size, stream.target - stream.sent)
        if size <= 0:
            return
        try:
            conn.send_data(stream_id, _PAYLOAD[:size].tobytes())
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            stream.reset = True
            return
        stream.sent += size


def _receive(sock: socket.socket, conn: h2.connection.H2Connection, by_id: dict[int, Stream],
             timeout: float) -> None:
    readable, _, _ = select.select([sock], [], [], timeout)
    if not readable:
        return
    try:
        data = sock.recv(1 << 20)
    except OSError:
        data = b""
    if not data:
        for stream in by_id.values():
            if stream.status is None:
                stream.reset = True
        return
    for event in conn.receive_data(data):
        stream = by_id.get(getattr(event, "stream_id", 0) or 0)
        if isinstance(event, h2.events.ResponseReceived | h2.events.TrailersReceived) and stream:
            for name, value in event.headers:
                if name == "grpc-status":
                    stream.status = int(value)
        elif isinstance(event, h2.events.StreamReset) and stream:
            stream.reset = True
        elif isinstance(event, h2.events.DataReceived):
            conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
    out = conn.data_to_send()
    if out:
        sock.sendall(out)


def rss_bytes() -> int:
    """Resident memory of this process."""
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
