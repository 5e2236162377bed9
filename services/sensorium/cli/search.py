"""`sensorium search --index DIR QUERY`: the best rows of an index for a text or an image."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from sensorium import logs
from sensorium.cli.common import CliError, add_client_flags, clock, open_engines
from sensorium.errors import SensoriumError
from sensorium.exits import Exit
from sensorium.index.kinds import row_kinds
from sensorium.settings import Settings

Mode = Literal["hybrid", "vector", "text"]


def add_parser(commands: Any) -> None:
    search = commands.add_parser(
        "search", help="search an index folder by text or by image",
        description="Print the files of the index that best match QUERY (or --image), best first: "
        "each with its best places (page, section, cells, time range), a snippet with the matched words "
        "highlighted, and the other files holding the same passage. Words match as people write "
        'them (stems, accents folded); "quoted phrases" match as phrases. The query is embedded '
        "with the index's model, in this process or by --server. Searching never writes the "
        "index: `sensorium index` keeps its search store current.",
    )
    search.add_argument("query", nargs="?", default="", metavar="QUERY", help="what to look for")
    search.add_argument("--index", type=Path, required=True, metavar="DIR", help="the index folder")
    search.add_argument("-k", type=int, default=10, help="how many results (default 10)")
    search.add_argument("--offset", type=int, default=0, help="skip this many results (the next page)")
    search.add_argument("--mode", choices=("hybrid", "vector", "text"), default=None,
                        help="hybrid: meaning and words, fused by rank (default for a text query); "
                        "vector: meaning only (CLIP; default and only mode for --image); text: "
                        "words only (BM25 over pages and passages; needs no model)")
    search.add_argument("--kind", action="append", choices=list(row_kinds()),
                        help="keep only results of this kind (repeatable)")
    search.add_argument("--path", metavar="GLOB", help='keep only files whose path matches, e.g. "*.pdf"')
    search.add_argument("--modified-after", type=_date, metavar="DATE",
                        help="keep only files modified at or after DATE (YYYY-MM-DD or an ISO time; "
                        "local time unless it says otherwise)")
    search.add_argument("--modified-before", type=_date, metavar="DATE",
                        help="keep only files modified before DATE")
    search.add_argument("--min-score", type=float, default=None,
                        help="drop results scoring lower (in the mode's own score)")
    search.add_argument("--chunks", action="store_true",
                        help="print the raw rows (chunks, images, windows) instead of one result per file")
    search.add_argument("--image", type=Path, metavar="FILE", help="find files like this image")
    search.add_argument("--json", action="store_true",
                        help="print JSON Lines, one object per result: path, kind, score, page, "
                        "start_seconds, end_seconds (of the best place), places, files, snippet, "
                        "highlights ([start, end] character offsets in snippet), and a document's "
                        "section, cells, title and author where set; with --chunks, "
                        "the index's column names (without the vector) plus score")
    add_client_flags(search)
    search.set_defaults(run=run)


def _date(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date: write YYYY-MM-DD or an ISO "
                                         "time such as 2026-03-01T14:00") from None


async def run(args: argparse.Namespace) -> int:
    from sensorium.index.layout import IndexStoreError
    from sensorium.index.search import Filters, SearchStore

    query: str = args.query.strip()
    if not query and args.image is None:
        raise CliError("give a QUERY, or --image FILE", Exit.USAGE)
    if args.image is not None and query:
        raise CliError("search by QUERY or by --image, not both", Exit.USAGE)
    default: Mode = "vector" if args.image is not None else "hybrid"
    mode: Mode = args.mode or default
    if args.image is not None and mode != "vector":
        raise CliError("--image searches by meaning only: use --mode vector (the default)", Exit.USAGE)
    if args.k < 1 or args.offset < 0:
        raise CliError("-k must be at least 1 and --offset at least 0", Exit.USAGE)
    settings = Settings()
    logs.configure("WARNING", settings.log_format)
    try:
        store = await asyncio.to_thread(SearchStore, args.index)
    except IndexStoreError as exc:
        raise CliError(str(exc), Exit.CONFIG) from None
    if store.lag:
        print(f"sensorium: {store.lag.describe()}", file=sys.stderr)
    vector = None
    if mode != "text":
        vector = await _query_vector(args, store.reader.manifest, query)
    filters = Filters(args.kind, args.path, args.modified_after, args.modified_before)
    if args.chunks:
        hits = await asyncio.to_thread(store.search, query_text=query or None, query_vector=vector,
                                       mode=mode, k=args.offset + args.k, filters=filters)
        _print_hits(hits[args.offset:], query, args.json)
        found = bool(hits[args.offset:])
    else:
        results = await asyncio.to_thread(
            store.search_files, query_text=query or None, query_vector=vector, mode=mode, k=args.k,
            offset=args.offset, filters=filters, min_score=args.min_score)
        _print_results(results, args.json)
        found = bool(results)
    if not found and not args.json:
        print("no results", file=sys.stderr)
    return Exit.OK


def _where(page: int | None, start: float | None, end: float | None, section: str | None = None,
           cells: str | None = None) -> str:
    """Where in the file, for a person: 'page 2', 'page 3 Results', 'Budget A1:C40',
    'Introduction > Methods', '00:01.50-00:04.00'."""
    parts = [f"page {page}"] if page is not None else []
    parts += [value for value in (section, cells) if value]
    if not parts and start is not None and end is not None:
        parts.append(f"{clock(start)}-{clock(end)}")
    return " ".join(parts)


def _print_results(results: list[Any], as_json: bool) -> None:
    bold = sys.stdout.isatty()
    for result in results:
        if as_json:
            print(json.dumps(result.to_json(), separators=(",", ":")))
            continue
        best = result.places[0] if result.places else None
        where = _where(result.page, result.start_seconds, result.end_seconds,
                       best.section if best else None, best.cells if best else None)
        print(f"{result.score:.4f}  {result.kind:<9} {result.path}{'  ' + where if where else ''}")
        if result.snippet:
            print(f"        {_highlighted(result.snippet, result.highlights, bold)}")
        more = [_where(p.page, p.start_seconds, p.end_seconds, p.section, p.cells) for p in result.places[1:]]
        if any(more):
            print(f"        also {', '.join(m for m in more if m)}")
        if result.files:
            print(f"        same in {', '.join(result.files)}")


def _highlighted(snippet: str, spans: Any, bold: bool) -> str:
    """The snippet with its matched words in bold on a terminal, between ** otherwise."""
    start, end = ("\033[1m", "\033[0m") if bold else ("**", "**")
    out, last = [], 0
    for first, after in spans:
        out += [snippet[last:first], start, snippet[first:after], end]
        last = after
    return "".join([*out, snippet[last:]])


def _print_hits(hits: list[Any], query: str, as_json: bool) -> None:
    for hit in hits:
        if as_json:
            print(json.dumps(hit.to_json(), separators=(",", ":")))
            continue
        where = _where(hit.page, hit.start_seconds, hit.end_seconds, hit.section, hit.cells)
        print(f"{hit.score:.4f}  {hit.kind:<9} {hit.path}{'  ' + where if where else ''}")
        snippet = hit.snippet(query or None)
        if snippet:
            print(f"        {snippet}")


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
