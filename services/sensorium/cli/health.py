"""`sensorium health`: a server's grpc.health.v1 status (exit 0 = SERVING), for probes."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from sensorium.cli.common import add_tls_flags, security
from sensorium.exits import Exit


def add_parser(commands: Any) -> None:
    health = commands.add_parser(
        "health", help="check a server's health (exit 0 = SERVING; for container health checks)",
        description="Ask a server's grpc.health.v1 service. Exit status: 0 SERVING, "
        "1 NOT_SERVING or unknown service, 2 unreachable.",
    )
    health.add_argument("--server", default=None,
                        help="HOST:PORT (default: 127.0.0.1 and SENSORIUM_HEALTH_PORT or 50052)")
    health.add_argument("--service", action="append", default=[],
                        help='service name, e.g. "sensorium.pdf.v1.PdfService" or "liveness"; '
                        'repeatable; exit 0 only when all are SERVING (default: the overall status)')
    health.add_argument("--json", action="store_true",
                        help='print one JSON object: {"server": "H:P", "services": {NAME: STATUS}} '
                        '("overall" names the overall status; SERVICE_UNKNOWN for a name the '
                        'server does not know), or {"server": "H:P", "error": "..."} when unreachable')
    health.add_argument("--timeout", type=float, default=3.0, help="seconds (default 3)")
    add_tls_flags(health)
    health.set_defaults(run=run)


async def run(args: argparse.Namespace) -> int:
    from sensorium.client import Client, ClientError

    target = args.server or f"127.0.0.1:{os.environ.get('SENSORIUM_HEALTH_PORT', '50052')}"
    statuses: dict[str, str] = {}  # "" is the overall status, as in grpc.health.v1
    try:
        async with Client(target, timeout=args.timeout, **security(args)) as client:
            for service in args.service or [""]:
                try:
                    statuses[service] = await client.health(service)
                except ClientError as exc:
                    if exc.details.code.name != "NOT_FOUND":
                        raise
                    statuses[service] = "SERVICE_UNKNOWN"
    except ClientError as exc:
        if args.json:
            print(json.dumps({"server": target, "error": f"unreachable ({exc.details})"}))
        else:
            print(f"{target}: unreachable ({exc.details})", file=sys.stderr)
        return Exit.USAGE
    if args.json:
        named = {service or "overall": status for service, status in statuses.items()}
        print(json.dumps({"server": target, "services": named}, indent=2))
    else:
        for service, status in statuses.items():
            shown = f"unknown service on {target}" if status == "SERVICE_UNKNOWN" else status
            print(f"{service or 'overall'}: {shown}")
    return Exit.OK if all(status == "SERVING" for status in statuses.values()) else Exit.FAILED
