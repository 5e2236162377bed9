"""The parser of every command, and the one place failures become a line and an exit status."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys
from collections.abc import Sequence

import pydantic

from sensorium.cli.common import CliError, reader_gone
from sensorium.engines import EnginesUnavailable, RemoteError
from sensorium.errors import SensoriumError, ServiceStartError, explain
from sensorium.exits import Exit
from sensorium.registry import SERVICES

_BEFORE = ("sensorium.cli.serve", "sensorium.cli.health")
_AFTER = ("sensorium.cli.index", "sensorium.cli.search", "sensorium.cli.models")


def main(argv: Sequence[str] | None = None) -> int:
    from sensorium.client import ClientError

    arguments = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(arguments[0] if arguments else None)
    args = parser.parse_args(arguments)
    if not hasattr(args, "run"):
        parser.print_help()
        return Exit.USAGE
    try:
        result: int = asyncio.run(args.run(args))
        return result
    except ClientError as exc:
        return _fail(str(exc.details))
    except RemoteError as exc:
        return _fail(exc.status)
    except SensoriumError as exc:
        from sensorium.status import code_of

        return _fail(f"{code_of(exc).name} {exc.reason.name}: {explain(exc, 'operator')}")
    except EnginesUnavailable as exc:
        return _fail(str(exc))
    except CliError as exc:
        return _fail(str(exc), exc.code)
    except ServiceStartError as exc:
        return _fail(f"cannot start the service: {exc}", Exit.CONFIG)
    except pydantic.ValidationError as exc:
        problems = "; ".join(_validation_lines(exc))
        return _fail(f"invalid settings: {problems}", Exit.USAGE)
    except BrokenPipeError:
        return reader_gone()
    except OSError as exc:
        return _fail(f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": "))
    except KeyboardInterrupt:
        return Exit.INTERRUPTED


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """Every command's parser; only `command`'s when its module is `sensorium.cli.COMMAND` (a
    repeated `sensorium search` then imports none of the other commands' wire code: ~0.5 s)."""
    parser = argparse.ArgumentParser(
        prog="sensorium",
        description="Sensorium: gRPC services that make files searchable (PDF text, Whisper "
        "transcripts, CLIP vectors). Run `sensorium COMMAND --help` for each command.",
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    modules = [*_BEFORE, *(m for spec in SERVICES.values() for m in spec.commands), *_AFTER]
    if command is not None and f"sensorium.cli.{command}" in modules:
        modules = [f"sensorium.cli.{command}"]
    for name in modules:
        importlib.import_module(name).add_parser(commands)
    return parser


def _fail(message: str, code: int = Exit.FAILED) -> int:
    print(f"sensorium: error: {message}", file=sys.stderr)
    return code


def _validation_lines(exc: pydantic.ValidationError) -> list[str]:
    lines = []
    for error in exc.errors():
        where = "__".join(str(part) for part in error["loc"]).upper()
        prefix = f"SENSORIUM_{where}: " if where else ""
        lines.append(prefix + error["msg"].removeprefix("Value error, "))
    return lines
