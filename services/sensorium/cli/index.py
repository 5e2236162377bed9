"""`sensorium index PATH... --out DIR`: files in, a searchable index folder out."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from sensorium import logs
from sensorium.cli.common import CliError, add_tls_flags, add_token_flag, remote_only
from sensorium.exits import Exit
from sensorium.index.kinds import described
from sensorium.settings import Settings


def add_parser(commands: Any) -> None:
    index = commands.add_parser(
        "index", help=f"index files ({described()}) into a searchable index folder",
        description="Walk PATHs (files and folders) and the --manifest list, recognise each "
        "file's type by its content, and write its rows (PDF text chunks and images, transcript "
        "windows, image files and the text read in them, video frames; all embedded with the same "
        "CLIP model) into the index folder --out. "
        "Rerunnable: unchanged files are skipped without reading them, changed ones reindexed, "
        "deleted ones retired; a killed job loses at most the files in flight. Models and limits "
        "come from the same SENSORIUM_* variables as the server (README). See docs/index.md.",
        epilog="exit status: 0 the job ran (files that could not be indexed are rows of the files "
        "table, with their reason); 2 bad usage; 3 bad configuration (settings, a model that does "
        "not load, an index of another model or options); 4 the output cannot be used (not "
        "writable, another job writes this shard, not an index); 5 worth retrying (the --server "
        "is unreachable); 130 interrupted.",
    )
    index.add_argument("paths", nargs="*", type=Path, metavar="PATH", help="files and folders to index")
    index.add_argument("--out", type=Path, required=True, metavar="DIR", help="the index folder")
    index.add_argument("--manifest", type=Path, metavar="FILE",
                       help="a file listing more paths, one per line (# starts a comment)")
    index.add_argument("--shard", metavar="I/N",
                       help="index only shard I of N (I from 0, by a hash of each path); default: "
                       "JOB_COMPLETION_INDEX of SENSORIUM_INDEX__SHARD_COUNT in a Kubernetes "
                       "Indexed Job, else the one shard")
    index.add_argument("--server", metavar="HOST:PORT",
                       help="call a running deployment instead of running the models here")
    index.add_argument("--json", action="store_true",
                       help="print the summary as one JSON object (files by status and kind, rows "
                       "by kind, errors by reason, seconds, rates)")
    index.add_argument("--timeout", type=float, default=None,
                       help="deadline in seconds of each call to --server")
    index.add_argument("--update-store", action="store_true",
                       help="only bring the index's search store up to date with its parts (no PATH "
                       "needed; every run ends with this, and searches never write the store): after "
                       "shards ran elsewhere, or to rebuild a store with --rebuild-store")
    index.add_argument("--rebuild-store", action="store_true",
                       help="with --update-store: throw the search store away and build it again")
    index.add_argument("--compact", action="store_true",
                       help="only compact the index of --out: merge its small parts and drop the rows "
                       "no file stands for any more (results stay the same; also done by a run once "
                       "SENSORIUM_INDEX__COMPACT_SMALL_PARTS small parts pile up)")
    index.add_argument("--watch", action="store_true",
                       help="keep the index current: index PATH..., then again after each batch of "
                       "changes under them (created, modified, moved, deleted files), with a "
                       "one-line status, until interrupted (Ctrl-C)")
    add_tls_flags(index)
    add_token_flag(index)
    index.set_defaults(run=run)


async def run(args: argparse.Namespace) -> int:
    from sensorium.index.inputs import JobError, resolve_shard
    from sensorium.index.job import JobRequest, run_job

    if args.rebuild_store and not args.update_store:
        raise CliError("--rebuild-store goes with --update-store", Exit.USAGE)
    if args.update_store:
        return await _update_store(args)
    if args.compact:
        return await _compact(args)
    if not args.paths and args.manifest is None:
        raise CliError("name the files or folders to index (PATH...), or --manifest FILE", Exit.USAGE)
    security = remote_only(args)
    settings = Settings()
    bar = sys.stderr.isatty()
    # With a bar, the log shows only problems; without (a pod's log), progress lines too.
    logs.configure("WARNING" if bar else settings.log_level, settings.log_format)
    try:
        request = JobRequest(
            inputs=list(args.paths), out=args.out, shard=resolve_shard(args.shard, settings),
            manifest=args.manifest, server=args.server,
            client_options={"timeout": args.timeout, **security}, progress_bar=bar,
        )
        if args.watch:
            return await _watch(request, settings)
        summary = await run_job(request, settings)
    except JobError as exc:
        raise CliError(str(exc), exc.code) from None
    if args.json:
        print(json.dumps(summary))
    else:
        _print_summary(summary)
    return Exit.OK


async def _watch(request: Any, settings: Settings) -> int:
    """Index, then keep indexing what changes, with the models loaded once."""
    from dataclasses import replace

    from sensorium.index.job import job_engines, run_job
    from sensorium.index.watch import watch

    if request.manifest is not None:
        raise CliError("--watch watches folders and files (PATH...), not a --manifest", Exit.USAGE)
    request = replace(request, progress_bar=False)
    tty = sys.stderr.isatty()

    def status(line: str) -> None:
        # On a terminal the line is rewritten in place; in a log, one line per update.
        print(("\r\033[K" if tty else "") + line, end="" if tty else "\n", file=sys.stderr, flush=True)

    engines = await job_engines(request, settings)
    try:
        await watch(request.inputs, request.out, lambda: run_job(request, settings, engines), status,
                    debounce_ms=settings.index.watch_debounce_ms,
                    rescan_seconds=settings.index.watch_rescan_seconds)
    finally:
        await engines.close()
    return Exit.OK


async def _compact(args: argparse.Namespace) -> int:
    import asyncio

    from sensorium.index.compact import compact
    from sensorium.index.layout import IndexBusyError, IndexLayoutError

    if args.paths or args.manifest is not None or args.watch:
        raise CliError("--compact takes no PATH: it compacts the index of --out", Exit.USAGE)
    settings = Settings()
    logs.configure(settings.log_level, settings.log_format)
    try:
        stats = await asyncio.to_thread(compact, args.out, rows_per_part=settings.index.rows_per_part)
    except IndexBusyError as exc:
        raise CliError(str(exc), Exit.OUTPUT) from None
    except IndexLayoutError as exc:
        raise CliError(str(exc), Exit.CONFIG) from None
    if args.json:
        print(json.dumps({"index": str(args.out), "compacted": stats.to_json()}))
    else:
        print(f"compacted {args.out}: {stats.parts_before} -> {stats.parts_after} row parts, "
              f"{stats.bytes_before:,} -> {stats.bytes_after:,} bytes, {stats.rows_dropped} dead rows "
              f"dropped, {stats.rows_kept} kept")
    return Exit.OK


async def _update_store(args: argparse.Namespace) -> int:
    import asyncio

    from sensorium.index.inputs import JobError
    from sensorium.index.job import refresh_store

    if args.paths or args.manifest is not None:
        raise CliError("--update-store takes no PATH: it updates the store of --out", Exit.USAGE)
    settings = Settings()
    logs.configure(settings.log_level, settings.log_format)
    try:
        store = await asyncio.to_thread(refresh_store, args.out, settings, rebuild=args.rebuild_store)
    except JobError as exc:
        raise CliError(str(exc), exc.code) from None
    if args.json:
        print(json.dumps({"index": str(args.out), "store": store}))
    else:
        print(f"search store of {args.out}: {store['rows']} rows, {store['passages']} passages "
              f"(+{store['files_added']} files, -{store['files_removed']}) in {store['seconds']:.1f} s")
    return Exit.OK


def _print_summary(summary: dict[str, Any]) -> None:
    files, rows = summary["files"], summary["rows"]
    statuses = ", ".join(f"{n} {s}" for s, n in sorted(files["by_status"].items())) or "none"
    kinds = ", ".join(f"{n} {k}" for k, n in sorted(files["by_kind"].items())) or "none"
    row_kinds = ", ".join(f"{n} {k}" for k, n in sorted(rows["by_kind"].items())) or "none"
    print(f"index {summary['index']} (shard {summary['shard']}): {files['listed']} files listed, "
          f"{files['unchanged']} unchanged, {files['removed']} removed, {files['processed']} processed "
          f"in {summary['seconds']:.1f} s")
    print(f"  files: {statuses}; by kind: {kinds}")
    print(f"  rows: {rows['total']} ({row_kinds})")
    if summary["errors"]:
        errors = ", ".join(f"{n} {r}" for r, n in sorted(summary["errors"].items()))
        print(f"  errors: {errors} (the files table says which files and why: docs/index.md)")
