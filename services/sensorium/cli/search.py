"""`sensorium search --index DIR QUERY`: the best rows of an index for a text or an image."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any, Literal

from sensorium import logs
from sensorium.cli.common import CliError, add_client_flags, open_engines
from sensorium.errors import SensoriumError
from sensorium.exits import Exit
from sensorium.index.kinds import row_kinds
from sensorium.settings import Settings

Mode = Literal["hybrid", "vector", "text"]


def add_parser(commands: Any) -> None:
    search = commands.add_parser(
        "search", help="search an index folder by text or by image",
        description="Print the best rows of the index for QUERY (or --image), best first, with "
        "where they come from (path, page or time range), a snippet and the score. The query is "
        "embedded with the index's model, in this process or by --server.",
    )
    search.add_argument("query", nargs="?", default="", metavar="QUERY", help="what to look for")
    search.add_argument("--index", type=Path, required=True, metavar="DIR", help="the index folder")
    search.add_argument("-k", type=int, default=10, help="how many hits (default 10)")
    search.add_argument("--mode", choices=("hybrid", "vector", "text"), default=None,
                        help="hybrid: meaning and words, fused by rank (default for a text query); "
                        "vector: meaning only (CLIP; default and only mode for --image); text: "
                        "words only (BM25; needs no model)")
    search.add_argument("--kind", action="append", choices=list(row_kinds()),
                        help="keep only hits of this kind (repeatable)")
    search.add_argument("--image", type=Path, metavar="FILE", help="find rows like this image")
    search.add_argument("--json", action="store_true",
                        help="print JSON Lines: one object per hit, the index's column names "
                        "(without the vector) plus score")
    add_client_flags(search)
    search.set_defaults(run=run)


async def run(args: argparse.Namespace) -> int:
    from sensorium.index.layout import IndexStoreError
    from sensorium.index.search import SearchStore

    query: str = args.query.strip()
    if not query and args.image is None:
        raise CliError("give a QUERY, or --image FILE", Exit.USAGE)
    if args.image is not None and query:
        raise CliError("search by QUERY or by --image, not both", Exit.USAGE)
    default: Mode = "vector" if args.image is not None else "hybrid"
    mode: Mode = args.mode or default
    if args.image is not None and mode != "vector":
        raise CliError("--image searches by meaning only: use --mode vector (the default)", Exit.USAGE)
    if args.k < 1:
        raise CliError("-k must be at least 1", Exit.USAGE)
    settings = Settings()
    logs.configure("WARNING", settings.log_format)
    try:
        store = await asyncio.to_thread(SearchStore, args.index)
    except IndexStoreError as exc:
        raise CliError(str(exc), Exit.CONFIG) from None
    vector = None
    if mode != "text":
        vector = await _query_vector(args, store.reader.manifest, query)
    hits = await asyncio.to_thread(store.search, query_text=query or None, query_vector=vector,
                                   mode=mode, k=args.k, kinds=args.kind)
    for hit in hits:
        if args.json:
            print(json.dumps(hit.to_json(), separators=(",", ":")))
            continue
        where = hit.where()
        print(f"{hit.score:.4f}  {hit.kind:<9} {hit.path}{'  ' + where if where else ''}")
        snippet = hit.snippet(query or None)
        if snippet:
            print(f"        {snippet}")
    if not hits and not args.json:
        print("no hits", file=sys.stderr)
    return Exit.OK


async def _query_vector(args: argparse.Namespace, manifest: Any, query: str) -> Any:
    """The query embedded by the index's model, here or by --server."""
    from sensorium.embedding.api import EMBEDDING
    from sensorium.index.layout import IndexMismatchError
    from sensorium.index.query import embed_query

    image = args.image.read_bytes() if args.image is not None else None
    async with open_engines(args, "embedding") as engines:
        engine = await engines.open(EMBEDDING)
        try:
            return await embed_query(engine, manifest, text=query, image=image)
        except IndexMismatchError as exc:
            raise CliError(str(exc), Exit.CONFIG) from None
        except SensoriumError as exc:
            if exc.reason.name in ("OVERLOADED", "NOT_READY", "SHUTTING_DOWN"):
                raise
            raise CliError(exc.message) from None
