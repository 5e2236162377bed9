"""The gRPC floor: what a do-nothing grpc.aio unary call costs on this machine.

A grpc.aio server with a generic raw-bytes handler (no protobuf, no serializers: bytes pass
straight through) runs in a subprocess (or in-process with --server inprocess); a grpc.aio
client in this process measures it with the closed-loop harness (bench/harness.py), all
clients sharing one channel unless --channels says otherwise.

Cases (request payload -> reply payload):

  noop      0 B     -> 0 B     /floor.Floor/Sink   the fixed cost of a call
  100B      100 B   -> 100 B   /floor.Floor/Echo   a small message each way
  1MiB-up   1 MiB   -> 0 B     /floor.Floor/Sink   upload-heavy: a file in, a small reply out
  1MiB-echo 1 MiB   -> 1 MiB   /floor.Floor/Echo   large both ways

MB/s counts payload bytes moved in both directions (10**6 bytes per MB), so 1MiB-echo moves
2 MiB per call. Every number here is an upper bound for a real Sensorium RPC of the
same shape: real services add protobuf (de)serialisation, validation and the actual work.

Examples:
  .venv/bin/python bench/grpc_floor.py                      # all cases, C=1 and C=8, ~1 min
  .venv/bin/python bench/grpc_floor.py --cases noop -c 1 2 4 8 16 -d 3
  .venv/bin/python bench/grpc_floor.py --json floor.json --quiet
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import harness  # bench/ is on sys.path when this file is run as a script

MiB = 1 << 20
MAX_MESSAGE = 64 * MiB
CHANNEL_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.max_send_message_length", MAX_MESSAGE),
    ("grpc.max_receive_message_length", MAX_MESSAGE),
]
SINK = "/floor.Floor/Sink"
ECHO = "/floor.Floor/Echo"


@dataclass(frozen=True)
class Case:
    name: str
    method: str
    request_bytes: int
    reply_bytes: int


CASES: dict[str, Case] = {
    c.name: c
    for c in (
        Case("noop", SINK, 0, 0),
        Case("100B", ECHO, 100, 100),
        Case("1MiB-up", SINK, MiB, 0),
        Case("1MiB-echo", ECHO, MiB, MiB),
    )
}


# --------------------------------------------------------------------------------------------
# Server
# --------------------------------------------------------------------------------------------


async def _sink(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
    return b""


async def _echo(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
    return request


async def start_server(tls: tuple[Path, Path] | None = None) -> tuple[grpc.aio.Server, int]:
    """A grpc.aio server on 127.0.0.1 (free port) with the raw-bytes Sink and Echo methods;
    with `tls` (certificate chain and key files, PEM) the port speaks TLS."""
    server = grpc.aio.server(options=CHANNEL_OPTIONS)
    handler = grpc.method_handlers_generic_handler(
        "floor.Floor",
        {
            # No request_deserializer / response_serializer: the handler sees and returns bytes.
            "Sink": grpc.unary_unary_rpc_method_handler(_sink),
            "Echo": grpc.unary_unary_rpc_method_handler(_echo),
        },
    )
    server.add_generic_rpc_handlers((handler,))
    if tls is not None:
        credentials = grpc.ssl_server_credentials([(tls[1].read_bytes(), tls[0].read_bytes())])
        port = server.add_secure_port("127.0.0.1:0", credentials)
    else:
        port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, port


async def _serve_forever(tls: tuple[Path, Path] | None = None) -> None:
    """--serve mode: print the port on stdout, serve until stdin closes or SIGTERM/SIGINT."""
    server, port = await start_server(tls)
    print(f"PORT {port}", flush=True)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # The parent holds our stdin open; EOF means it has gone (even if it died without cleanup).
    loop.run_in_executor(None, _wait_stdin_eof, loop, stop)
    await stop.wait()
    await server.stop(grace=None)


def _wait_stdin_eof(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    sys.stdin.buffer.read()
    loop.call_soon_threadsafe(stop.set)


class SubprocessServer:
    """The server in a child process (``python grpc_floor.py --serve``)."""

    def __init__(self, tls: tuple[Path, Path] | None = None) -> None:
        tls_args = ["--tls", str(tls[0]), str(tls[1])] if tls is not None else []
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--serve", *tls_args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if not line.startswith("PORT "):
            self.close()
            raise RuntimeError(f"server subprocess did not start (said {line!r})")
        self.port = int(line.split()[1])

    def cpu_seconds(self) -> float | None:
        """User + system CPU time of the server process so far (Linux /proc), else None."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        # After the ")" closing comm: fields[11] is utime, fields[12] stime (in clock ticks).
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# --------------------------------------------------------------------------------------------
# Client
# --------------------------------------------------------------------------------------------


def make_call(channels: list[grpc.aio.Channel], case: Case) -> Callable[[int], Awaitable[bytes]]:
    payload = os.urandom(case.request_bytes)
    # _registered_method=True is what grpcio-tools' generated stubs pass (Sensorium's included).
    stubs: list[grpc.aio.UnaryUnaryMultiCallable[bytes, bytes]] = [
        ch.unary_unary(case.method, _registered_method=True)  # type: ignore[call-arg]
        for ch in channels
    ]
    n = len(stubs)

    async def call(i: int) -> bytes:
        reply: bytes = await stubs[i % n](payload)
        if len(reply) != case.reply_bytes:
            raise ValueError(f"reply of {len(reply)} B, expected {case.reply_bytes}")
        return reply

    call.__name__ = case.name
    return call


async def measure(args: argparse.Namespace) -> list[harness.RunResult]:
    sub: SubprocessServer | None = None
    inproc: grpc.aio.Server | None = None
    if args.server == "subprocess":
        sub = SubprocessServer()
        port = sub.port
    else:
        inproc, port = await start_server()
    if not args.quiet:
        harness.log(f"server ({args.server}) on 127.0.0.1:{port}")

    options = list(CHANNEL_OPTIONS)
    if args.channels > 1:
        # Otherwise channels with equal arguments share one connection (global subchannel pool).
        options.append(("grpc.use_local_subchannel_pool", 1))
    channels = [grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=options)]
    channels += [
        grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=options) for _ in range(args.channels - 1)
    ]
    results: list[harness.RunResult] = []
    try:
        for ch in channels:
            await asyncio.wait_for(ch.channel_ready(), timeout=10)
        for case_name in args.cases:
            case = CASES[case_name]
            call = make_call(channels, case)
            for c in args.concurrency:
                if args.warmup > 0:
                    if not args.quiet:
                        harness.log(f"{case.name} C={c}: warming up ({args.warmup:g}s)")
                    await harness.run_closed_loop(call, concurrency=c, duration=args.warmup, progress=False)
                srv0 = sub.cpu_seconds() if sub is not None else None
                t0 = time.perf_counter()
                r = await harness.run_closed_loop(
                    call,
                    concurrency=c,
                    duration=args.duration,
                    requests=args.requests,
                    name=case.name,
                    bytes_per_call=case.request_bytes + case.reply_bytes,
                    progress=not args.quiet,
                    extra={
                        "server": args.server,
                        "channels": args.channels,
                        "request_bytes": case.request_bytes,
                        "reply_bytes": case.reply_bytes,
                    },
                )
                elapsed = time.perf_counter() - t0
                srv1 = sub.cpu_seconds() if sub is not None else None
                if srv0 is not None and srv1 is not None:
                    # Sampled around the measured phase; a few ms of slack on either side.
                    extra = {**r.extra, "server_cpu_s": round(srv1 - srv0, 3)}
                    extra["server_cpu_pct"] = round(100 * (srv1 - srv0) / elapsed, 1)
                    r = _with_extra(r, extra)
                results.append(r)
    finally:
        for ch in channels:
            await ch.close()
        if inproc is not None:
            await inproc.stop(grace=None)
        if sub is not None:
            sub.close()
    return results


def _with_extra(r: harness.RunResult, extra: dict[str, Any]) -> harness.RunResult:
    return dataclasses.replace(r, extra=extra)


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="grpc_floor.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    harness.add_common_args(p, concurrency=(1, 8), duration=5.0, warmup=1.0)
    g = p.add_argument_group("gRPC floor")
    g.add_argument(
        "--cases",
        nargs="+",
        choices=list(CASES),
        default=list(CASES),
        help="which payload cases to run (default: all)",
    )
    g.add_argument(
        "--server",
        choices=("subprocess", "inprocess"),
        default="subprocess",
        help="run the server in a child process (default; client and server then do not "
        "share a GIL or an event loop) or in this process's event loop",
    )
    g.add_argument(
        "--channels",
        type=int,
        default=1,
        help="client channels (HTTP/2 connections), calls spread round-robin (default: 1)",
    )
    g.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    # --serve with TLS (certificate and key files): bench/overhead.py's floor under TLS.
    g.add_argument("--tls", nargs=2, type=Path, default=None, help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.serve:
        asyncio.run(_serve_forever(tuple(args.tls) if args.tls else None))
        return 0
    machine = harness.describe_machine()
    exe = Path(sys.executable)
    with contextlib.suppress(ValueError):  # ".venv/bin/python" when run from the repository
        exe = exe.relative_to(Path.cwd())
    command = shlex.join([str(exe), *sys.argv])
    results = asyncio.run(measure(args))

    extra_cols = "| server CPU % |"
    print(harness.machine_markdown(machine))
    print()
    print(f"Command: `{command}`")
    print()
    header = harness.markdown_header().splitlines()
    print(header[0] + extra_cols[1:])
    print(header[1] + "--:|")
    for r in results:
        pct = r.extra.get("server_cpu_pct")
        print(r.markdown_row() + f" {pct if pct is not None else ''} |")
    if args.json is not None:
        harness.write_json(args.json, results, machine=machine, command=command)
        if not args.quiet:
            harness.log(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
