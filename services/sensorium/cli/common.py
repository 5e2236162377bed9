"""What the client commands share: connection flags, the engines they run on, failures."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sensorium.exits import Exit

if TYPE_CHECKING:
    from sensorium.engines import Engines
    from sensorium.settings import ServiceName

# The engines and the settings are imported where they are used: a repeated `sensorium search`
# that the query process answers imports this module, and neither of those (~0.2 s).


class CliError(Exception):
    """A failure to report in one line, with its exit status."""

    def __init__(self, message: str, code: int = Exit.FAILED) -> None:
        super().__init__(message)
        self.code = code


def add_client_flags(parser: argparse.ArgumentParser, *, json_help: str | None = None) -> None:
    """--json (when `json_help`), --server, --timeout, TLS and --token-file."""
    if json_help is not None:
        parser.add_argument("--json", action="store_true", help=json_help)
    parser.add_argument("--server", metavar="HOST:PORT",
                        help="a running server; default: run the service in this process")
    parser.add_argument("--timeout", type=float, default=None, help="deadline in seconds")
    add_tls_flags(parser)
    add_token_flag(parser)


PROTOBUF_JSON = "print the full response in protobuf's JSON mapping"


def add_token_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--token-file", type=Path, metavar="FILE",
                        help="file whose first line is the bearer token the server expects "
                        "(SENSORIUM_AUTH__TOKENS_FILE on the server); with --server")


def add_tls_flags(parser: argparse.ArgumentParser) -> None:
    tls = parser.add_argument_group(
        "TLS (with --server)", "any of these connects with TLS; mutual TLS needs --tls-cert and --tls-key"
    )
    tls.add_argument("--tls", action="store_true",
                     help="connect with TLS, trusting the system's certificate authorities")
    tls.add_argument("--tls-ca", type=Path, metavar="FILE",
                     help="PEM CA certificate to trust instead of the system's")
    tls.add_argument("--tls-cert", type=Path, metavar="FILE", help="PEM client certificate")
    tls.add_argument("--tls-key", type=Path, metavar="FILE", help="PEM key of --tls-cert")
    tls.add_argument("--insecure", action="store_true",
                     help="allow --token-file over plaintext (the link is protected otherwise)")


def security(args: argparse.Namespace) -> dict[str, Any]:
    """`Client` keyword arguments from the TLS and token flags."""
    if (args.tls_cert is None) != (args.tls_key is None):
        raise CliError("--tls-cert and --tls-key go together", Exit.USAGE)
    token = None
    if getattr(args, "token_file", None) is not None:
        lines = args.token_file.read_text(encoding="utf-8").splitlines()
        token = lines[0].strip() if lines else ""
        if not token:
            raise CliError(f"{args.token_file}: the first line must be the token", Exit.USAGE)
    return {"tls": args.tls, "tls_ca": args.tls_ca, "tls_cert": args.tls_cert,
            "tls_key": args.tls_key, "token": token, "insecure": args.insecure}


def remote_only(args: argparse.Namespace) -> dict[str, Any]:
    """The connection flags, refused without --server (they would be silently ignored)."""
    flags = security(args)
    if not args.server and any(flags.values()):
        raise CliError("--tls* and --token-file apply to a remote server: add --server HOST:PORT",
                       Exit.USAGE)
    return flags


@contextlib.asynccontextmanager
async def open_engines(args: argparse.Namespace, service: ServiceName) -> AsyncIterator[Engines]:
    """The engines of `--server`, or `service`'s runtime in this process (started on first use)."""
    from sensorium import logs
    from sensorium.engines import InProcessEngines, RemoteEngines
    from sensorium.settings import Settings

    flags = remote_only(args)
    settings = Settings()
    if args.server:
        from sensorium.client import Client

        async with RemoteEngines(Client(args.server, timeout=args.timeout, **flags), settings) as engines:
            yield engines
        return
    from sensorium.runtimes import Runtimes

    # Engine logs would interleave with the output; failures surface as errors.
    logs.configure("CRITICAL", settings.log_format)
    async with InProcessEngines(Runtimes(settings, [service])) as engines:
        yield engines


def reader_gone() -> int:
    """The reader of stdout went away (`sensorium pdf x.pdf | head`): stop quietly, like other
    tools (stdout to /dev/null, so that the interpreter's last flush fails no more)."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return Exit.BROKEN_PIPE


def deadline(args: argparse.Namespace) -> float | None:
    """--timeout as a deadline on the `time.monotonic()` scale (a remote call has the client's)."""
    return None if args.timeout is None else time.monotonic() + args.timeout


def clock(seconds: float) -> str:
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes):02d}:{rest:05.2f}"
