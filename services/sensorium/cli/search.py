"""`sensorium search --index DIR QUERY`: the best rows of an index for a text or an image."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from sensorium.cli.common import CliError, add_client_flags, clock, open_engines, reader_gone
from sensorium.exits import Exit

if TYPE_CHECKING:
    from sensorium.index.query import SearchRequest
    from sensorium.settings import Settings

# Light imports only at the top: `answer_quickly` runs before anything else of the command
# (see it); the settings, logging set-up and the query path are imported where they are used.

Mode = Literal["hybrid", "vector", "text"]


def add_parser(commands: Any) -> None:
    search = commands.add_parser(
        "search", help="search an index folder by text or by image",
        description="Print the files of the index that best match QUERY (or --image), best first: "
        "each with its best places (page, section, cells, time range), a snippet with the matched words "
        "highlighted, and the other files holding the same passage. Words match as people write "
        'them (stems, accents folded); "quoted phrases" match as phrases. The query is embedded '
        "with the index's model: by its ONNX text tower (`sensorium models embedding` exports "
        "it; a text-mode search loads no model), kept loaded between searches by a per-user "
        "query process that exits when idle; an --image by the model itself. With --server "
        "and --index, the server embeds the query; with --server alone, the server's search "
        "service answers over its own index. Searching never writes the index: `sensorium "
        "index` keeps its search store current.",
    )
    search.add_argument("query", nargs="?", default="", metavar="QUERY", help="what to look for")
    search.add_argument("--index", type=Path, metavar="DIR",
                        help="the index folder; without it, --server searches the server's index")
    search.add_argument("-k", type=int, default=10, help="how many results (default 10)")
    search.add_argument("--offset", type=int, default=0, help="skip this many results (the next page)")
    search.add_argument("--mode", choices=("hybrid", "vector", "text"), default=None,
                        help="hybrid: meaning and words, fused by rank (default for a text query); "
                        "vector: meaning only (CLIP; default and only mode for --image); text: "
                        "words only (BM25 over pages and passages; needs no model)")
    # No `choices`: the kind table imports pyarrow (~0.5 s), which a warm search never needs;
    # an unknown kind is refused with the list of kinds by whatever answers the query.
    search.add_argument("--kind", action="append", metavar="KIND",
                        help="keep only results of this kind (repeatable): pdf_text, pdf_image, "
                        "audio, image, ... (`sensorium index --help` lists every kind)")
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
    search.add_argument("--no-daemon", action="store_true",
                        help="answer in this process, not through the per-user query process "
                        "that keeps the text tower loaded between searches "
                        "(SENSORIUM_INDEX__SEARCH_DAEMON=false does the same for every search)")
    add_client_flags(search)
    search.set_defaults(run=run)


def _date(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date: write YYYY-MM-DD or an ISO "
                                         "time such as 2026-03-01T14:00") from None


def answer_quickly(arguments: list[str]) -> int | None:
    """`sensorium search ARGUMENTS` answered by the query process, when one for these settings
    is running, before the settings, gRPC or the engines are imported (most of a warm command's
    time: 0.38 s before, 0.14 s since, at 100,000 rows; docs/benchmarks.md): the exit status;
    None when the full command must answer (no process runs for these settings, a search it
    does not answer here: --server, --image, --no-daemon, or a refusal, which the full command
    reports in its own words).

    The process is keyed by every SENSORIUM_* variable (`query_daemon.daemon_key`), so one that
    answers was started under these very settings, valid and with the query process allowed;
    when none runs, the full command starts it (or answers in its own process)."""
    from sensorium.index import query_daemon
    from sensorium.index.query import QueryError

    parser = argparse.ArgumentParser(prog="sensorium")
    add_parser(parser.add_subparsers())
    args = parser.parse_args(arguments)
    registry = sys.modules.get("sensorium.registry")
    if registry is not None and not _built_in_only(registry.SERVICES):
        return None  # an engine registered in this process: its kinds are unknown to the process
    if args.index is None or args.server or args.image is not None or args.no_daemon:
        return None
    try:
        request = _request(args)
        items, lag = query_daemon.answer(args.index, request, start=False)
    except (CliError, QueryError, query_daemon.DaemonUnavailable, OSError):
        return None
    try:
        return _report(args, items, lag)
    except BrokenPipeError:
        return reader_gone()


def _built_in_only(services: Any) -> bool:
    from sensorium.settings import ALL_SERVICES

    return set(services) <= set(ALL_SERVICES)


def _request(args: argparse.Namespace) -> SearchRequest:
    """The request the arguments ask for; CliError (usage) for arguments that do not fit."""
    from sensorium.index.query import SearchRequest

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
    if args.index is None and not args.server:
        raise CliError("say where to search: --index DIR (an index folder), or --server HOST:PORT "
                       "(a server's search service)", Exit.USAGE)
    return SearchRequest(
        query=query, mode=mode, k=args.k, offset=args.offset,
        kinds=tuple(args.kind) if args.kind else None, path_glob=args.path,
        modified_after=args.modified_after, modified_before=args.modified_before,
        min_score=args.min_score, chunks=args.chunks,
    )


async def run(args: argparse.Namespace) -> int:
    from sensorium import logs
    from sensorium.index.query import QueryError
    from sensorium.settings import Settings

    request = _request(args)
    settings = Settings()
    logs.configure("WARNING", settings.log_format)
    try:
        if args.index is None:
            items, lag = await _served(args, request)
        elif args.image is not None or args.server:
            items, lag = await _embedded_elsewhere(args, request, settings)
        else:
            try:
                items, lag = await asyncio.to_thread(_fast, args, request, settings)
            except QueryError as exc:
                if exc.kind != "no_tower":
                    raise
                print(f"sensorium: {exc.message}; until then each search loads the model with "
                      "torch (seconds)", file=sys.stderr)
                items, lag = await _embedded_elsewhere(args, request, settings)
    except QueryError as exc:
        code = {"usage": Exit.USAGE, "index": Exit.CONFIG, "space": Exit.CONFIG}.get(exc.kind, Exit.FAILED)
        raise CliError(exc.message, code) from None
    return _report(args, items, lag)


def _report(args: argparse.Namespace, items: list[dict[str, Any]], lag: str) -> int:
    if lag:
        print(f"sensorium: {lag}", file=sys.stderr)
    if args.chunks:
        _print_hits(items, args.json)
    else:
        _print_results(items, args.json)
    if not items and not args.json:
        print("no results", file=sys.stderr)
    return Exit.OK


def _fast(args: argparse.Namespace, request: Any, settings: Settings) -> tuple[list[dict[str, Any]], str]:
    """The answer without torch: from the per-user query process when the settings allow it
    (started by the first search), else in this process with the exported text tower (a text
    mode query loads no model at all)."""
    from sensorium.index.query import QueryEngine
    from sensorium.registry import SERVICES

    # An engine registered from outside the package (its kinds) exists only in this process:
    # the query process would not know its kinds.
    if settings.index.search_daemon and not args.no_daemon and _built_in_only(SERVICES):
        from sensorium.index import query_daemon

        try:
            return query_daemon.answer(args.index, request)
        except query_daemon.DaemonUnavailable as exc:
            logging.getLogger("sensorium.search").warning("searching in this process: %s", exc)
    answer = QueryEngine(settings).answer(args.index, request)
    return answer.items(request.query), answer.lag


async def _embedded_elsewhere(
    args: argparse.Namespace, request: Any, settings: Settings
) -> tuple[list[dict[str, Any]], str]:
    """The query embedded by the embedding engine (torch in this process, or --server's), then
    searched here: for an image, with --server and a local --index, or without a text tower."""
    from sensorium.index.query import QueryEngine

    engine = QueryEngine(settings)
    store = await asyncio.to_thread(engine.store, args.index)
    vector = None
    if request.mode != "text":
        vector = await _query_vector(args, store.reader.manifest, request.query)
    answer = await asyncio.to_thread(engine.answer, args.index, request, vector)
    return answer.items(request.query), answer.lag


async def _served(args: argparse.Namespace, request: Any) -> tuple[list[dict[str, Any]], str]:
    """The answer of --server's search service (the index the server was given)."""
    from sensorium.search.api import SEARCH

    image = args.image.read_bytes() if args.image is not None else None
    async with open_engines(args, "search") as engines:
        engine = await engines.open(SEARCH)
        answer = await engine.search(request, image)
    return answer.items(request.query), answer.lag


def _where(page: int | None, start: float | None, end: float | None, section: str | None = None,
           cells: str | None = None) -> str:
    """Where in the file, for a person: 'page 2', 'page 3 Results', 'Budget A1:C40',
    'Introduction > Methods', '00:01.50-00:04.00'."""
    parts = [f"page {page}"] if page is not None else []
    parts += [value for value in (section, cells) if value]
    if not parts and start is not None and end is not None:
        parts.append(f"{clock(start)}-{clock(end)}")
    return " ".join(parts)


def _print_results(results: list[dict[str, Any]], as_json: bool) -> None:
    bold = sys.stdout.isatty()
    for result in results:
        if as_json:
            print(json.dumps(result, separators=(",", ":")))
            continue
        best = result["places"][0] if result["places"] else {}
        where = _where(result["page"], result["start_seconds"], result["end_seconds"],
                       best.get("section"), best.get("cells"))
        print(f"{result['score']:.4f}  {result['kind']:<9} {result['path']}{'  ' + where if where else ''}")
        if result["snippet"]:
            print(f"        {_highlighted(result['snippet'], result['highlights'], bold)}")
        more = [_where(p["page"], p["start_seconds"], p["end_seconds"], p.get("section"), p.get("cells"))
                for p in result["places"][1:]]
        if any(more):
            print(f"        also {', '.join(m for m in more if m)}")
        if result["files"]:
            print(f"        same in {', '.join(result['files'])}")


def _highlighted(snippet: str, spans: Any, bold: bool) -> str:
    """The snippet with its matched words in bold on a terminal, between ** otherwise."""
    start, end = ("\033[1m", "\033[0m") if bold else ("**", "**")
    out, last = [], 0
    for first, after in spans:
        out += [snippet[last:first], start, snippet[first:after], end]
        last = after
    return "".join([*out, snippet[last:]])


def _print_hits(hits: list[dict[str, Any]], as_json: bool) -> None:
    for hit in hits:
        if as_json:
            print(json.dumps({k: v for k, v in hit.items() if k != "snippet"}, separators=(",", ":")))
            continue
        where = _where(hit["page"], hit["start_seconds"], hit["end_seconds"], hit["section"], hit["cells"])
        print(f"{hit['score']:.4f}  {hit['kind']:<9} {hit['path']}{'  ' + where if where else ''}")
        if hit["snippet"]:
            print(f"        {hit['snippet']}")


async def _query_vector(args: argparse.Namespace, manifest: Any, query: str) -> Any:
    """The query embedded by the index's model, here or by --server."""
    from sensorium.embedding.api import EMBEDDING
    from sensorium.errors import SensoriumError
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
