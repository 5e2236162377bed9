"""A fourth engine that lives outside the package, added through the public extension points
only (`sensorium.registry.register`, `sensorium.index.kinds.register`): it reads "postcards",
a made-up format recognised by its own magic header, and gives the index a new row kind.

    POSTCARD/1
    to: Ada
    from: Charles
    The engine needs no steam today.

Each file holds postcards separated by a line of `---`. `register()` adds the service `toy`
(its runtime, a CLI command `sensorium postcards FILE`, no gRPC face) and the file kind
`postcard` (rows of kind `postcard`); `unregister()` takes them away again. What it needs of
each layer is what docs/architecture.md lists for a new engine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sensorium import settings
from sensorium.cli.common import add_client_flags, open_engines
from sensorium.contract import EngineKey, RuntimeContext
from sensorium.errors import Reason, SensoriumError
from sensorium.index import kinds
from sensorium.index.layout import Row
from sensorium.registry import SERVICES, ServiceSpec
from sensorium.registry import register as register_service

MAGIC = b"POSTCARD/1\n"


# --- the engine (pure library code) and its domain types ---------------------------------------


@dataclass(frozen=True)
class Postcard:
    number: int
    """1-based, in the file."""
    sender: str
    recipient: str
    message: str


def read_postcards(data: bytes) -> list[Postcard]:
    if not data.startswith(MAGIC):
        raise SensoriumError(Reason.UNSUPPORTED_TYPE, "not a postcard file (no POSTCARD/1 header)")
    cards = []
    for number, chunk in enumerate(data[len(MAGIC):].decode().split("\n---\n"), 1):
        fields: dict[str, str] = {}
        lines = chunk.strip().splitlines()
        while lines and ":" in lines[0] and lines[0].split(":", 1)[0] in ("to", "from"):
            key, value = lines.pop(0).split(":", 1)
            fields[key] = value.strip()
        cards.append(Postcard(number, fields.get("from", ""), fields.get("to", ""), " ".join(lines)))
    return cards


# --- the interface of the one seam, its key, and the runtime -------------------------------------


class PostcardEngine:
    """What the front ends call (the runtime is its in-process implementation)."""

    async def read(self, path: str | os.PathLike[str]) -> list[Postcard]:
        raise NotImplementedError


TOY: EngineKey[PostcardEngine] = EngineKey("toy")


class ToyRuntime(PostcardEngine):
    def __init__(self, context: RuntimeContext) -> None:
        self.context = context
        self.started = False

    async def start(self) -> None:
        self.started = True

    async def close(self, grace: float | None = None) -> None:
        self.started = False

    async def read(self, path: str | os.PathLike[str]) -> list[Postcard]:
        if not self.started:
            raise SensoriumError(Reason.NOT_READY, "the postcard reader is not started")
        return read_postcards(await asyncio.to_thread(Path(path).read_bytes))


# --- its CLI command ---------------------------------------------------------------------------


def add_parser(commands: Any) -> None:
    parser = commands.add_parser("postcards", help="read a postcard file",
                                 description="Print each postcard of FILE.")
    parser.add_argument("file", type=Path)
    add_client_flags(parser, json_help="nothing else: postcards are plain")
    parser.set_defaults(run=run)


async def run(args: argparse.Namespace) -> int:
    async with open_engines(args, "toy") as engines:
        engine = await engines.open(TOY)
        for card in await engine.read(args.file):
            print(f"#{card.number} from {card.sender} to {card.recipient}: {card.message}")
    return 0


# --- its row of the index's kind table ---------------------------------------------------------


async def index_postcards(work: kinds.FileWork) -> None:
    engine = await work.engines.open(TOY)
    cards = await engine.read(work.path)
    vectors = await work.embed_texts([card.message for card in cards])
    work.add([Row("postcard", vector, text=card.message, page=card.number)
              for card, vector in zip(cards, vectors, strict=True) if vector is not None])


SPEC = ServiceSpec(name="toy", summary="postcards (a test engine)", create_runtime=ToyRuntime,
                   commands=("toy_engine",))
KIND = kinds.FileKind(
    "postcard", "postcards", {"postcard": "one postcard's message (page = its number in the file)"},
    index_postcards, services=("toy",),
    sniff=lambda head, path: "text/x-postcard" if head.startswith(MAGIC) else None,
)


def register() -> None:
    register_service(SPEC)
    kinds.register(KIND)


def unregister() -> None:
    SERVICES.pop(SPEC.name, None)
    kinds.KINDS.pop(KIND.name, None)
    settings._REGISTERED.discard(SPEC.name)
