"""Compaction of an index's parts: `sensorium index --compact`, and automatic at the end of a
run once the run's shard holds more than `SENSORIUM_INDEX__COMPACT_SMALL_PARTS` small row parts
(under half `SENSORIUM_INDEX__ROWS_PER_PART` rows).

A long-watched index accumulates small parts (each rerun commits its own) and dead rows (a
changed file's previous rows, a deleted file's, orphans of killed runs): they are never returned,
but they take space and every full read pays for them. Compacting a shard rewrites its live rows
and passages into as few parts as `SENSORIUM_INDEX__ROWS_PER_PART` allows, in their order, and
commits it like the writer does:

1. holding the shard's writer lock (no job writes the shard meanwhile; a job that is writing it
   makes compaction refuse with `IndexBusyError`);
2. the new parts are written by atomic rename under new sequence numbers;
3. one ledger segment re-states every live entry with its new parts (the commit: before it,
   readers see the old parts; after it, the new ones), and the ledger is folded into
   files.parquet;
4. then the old parts are deleted.

Units (and so rows' identities, ordinals and contents) do not change: the search store, which
holds rows by unit, is unaffected and results are identical before and after. Killed before
step 3, the new parts are orphans that the next compaction deletes; after it, leftover old parts
are unreferenced and deleted the same way.
"""

from __future__ import annotations

import fcntl
import functools
import os
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from sensorium.index import ledger
from sensorium.index.layout import (
    PASSAGE_SCHEMA,
    IndexBusyError,
    IndexLayoutError,
    Shard,
    agreed_manifest,
    ledger_seq,
    remove_temporaries,
    row_schema,
    seq_name,
    shard_dirs,
    write_atomic,
)


@dataclass
class CompactStats:
    """What compaction changed, over every shard it compacted."""

    parts_before: int = 0
    parts_after: int = 0
    bytes_before: int = 0
    bytes_after: int = 0
    rows_kept: int = 0
    rows_dropped: int = 0
    shards: int = 0

    def to_json(self) -> dict[str, int]:
        return dict(vars(self))


def small_parts(shard_dir: Path, rows_per_part: int) -> int:
    """How many of the shard's row parts hold fewer than half `rows_per_part` rows (from the
    Parquet footers: no data is read)."""
    return sum(1 for part in _parts(shard_dir / "rows")
               if pq.ParquetFile(part).metadata.num_rows < rows_per_part // 2)


def compact(index_dir: Path, *, rows_per_part: int, only: Shard | None = None) -> CompactStats:
    """Compact every shard of the index in `index_dir` (`only` that one), see the module
    docstring."""
    manifest = agreed_manifest(index_dir)
    if manifest is None:
        raise IndexLayoutError(f"{index_dir} holds no Sensorium index (no shard-*/manifest.json)")
    stats = CompactStats()
    schema = row_schema(manifest.space.dimension)
    for shard, folder in sorted(shard_dirs(index_dir).items(), key=lambda item: str(item[0])):
        if only is not None and shard != only:
            continue
        with _shard_lock(folder, str(shard), index_dir):
            _compact_shard(folder, schema, rows_per_part, stats)
        stats.shards += 1
    return stats


class _shard_lock:
    """The shard's writer lock (the file `IndexWriter` holds), taken without waiting."""

    def __init__(self, folder: Path, shard: str, index_dir: Path) -> None:
        self.path, self.shard, self.index_dir = folder / "lock", shard, index_dir

    def __enter__(self) -> None:
        self.handle = open(self.path, "a")
        try:
            fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.handle.close()
            raise IndexBusyError(
                f"shard {self.shard} of {self.index_dir} is being written by another process; "
                "compact it when that job has ended"
            ) from None

    def __exit__(self, *exc: object) -> None:
        self.handle.close()


def _compact_shard(folder: Path, schema: pa.Schema, rows_per_part: int, stats: CompactStats) -> None:
    for sub in ("rows", "passages", "ledger"):
        remove_temporaries(folder / sub)
    state = ledger.read(folder)
    old_rows = _parts(folder / "rows")
    old_passages = _parts(folder / "passages")
    stats.parts_before += len(old_rows)
    stats.bytes_before += sum(p.stat().st_size for p in [*old_rows, *old_passages])
    live = [e for e in state.entries.values() if e.unit is not None and (e.parts or e.passage_parts)]
    seq = max([state.last_seq, *(s for p in [*old_rows, *old_passages] if (s := ledger_seq(p.name)))])
    total_rows = sum(pq.ParquetFile(p).metadata.num_rows for p in old_rows)

    new_rows, seq, kept = _rewrite(folder / "rows", [(e.unit or "", e.parts) for e in live], schema,
                                   rows_per_part, seq)
    new_passages, seq, _ = _rewrite(folder / "passages", [(e.unit or "", e.passage_parts) for e in live],
                                    PASSAGE_SCHEMA, rows_per_part, seq)
    updated = [replace(e, parts=new_rows.get(e.unit or "", []),
                       passage_parts=new_passages.get(e.unit or "", [])) for e in live]
    if updated:
        ledger.write_segment(folder, seq + 1, updated)  # the commit
    after = ledger.read(folder)
    if after.segments:
        ledger.write_files_table(folder, after)
    referenced = {p for e in after.entries.values() for p in [*e.parts, *e.passage_parts]}
    for part in [*old_rows, *old_passages]:
        if part.name not in referenced:
            part.unlink(missing_ok=True)
    remaining_rows = _parts(folder / "rows")
    stats.parts_after += len(remaining_rows)
    stats.bytes_after += sum(p.stat().st_size for p in [*remaining_rows, *_parts(folder / "passages")])
    stats.rows_kept += kept
    stats.rows_dropped += total_rows - kept


def _parts(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.parquet") if ledger_seq(p.name) is not None)


def _rewrite(
    folder: Path, units: Iterable[tuple[str, list[str]]], schema: pa.Schema, rows_per_part: int, seq: int
) -> tuple[dict[str, list[str]], int, int]:
    """The live rows of `units` (in the order of their old parts) written into new parts of up to
    `rows_per_part` rows: unit -> its new parts, the last sequence number used, rows written."""
    by_part: dict[str, set[str]] = {}
    for unit, parts in units:
        for part in parts:
            by_part.setdefault(part, set()).add(unit)
    new_parts: dict[str, list[str]] = {}
    pending: list[pa.Table] = []
    pending_rows = 0
    written = 0

    def flush(limit: int) -> None:
        nonlocal pending, pending_rows, seq, written
        while pending_rows >= limit and pending_rows:
            table = pa.concat_tables(pending)
            chunk, rest = table.slice(0, rows_per_part), table.slice(rows_per_part)
            seq += 1
            name = seq_name(seq)
            write_atomic(folder / name, functools.partial(_write, chunk))
            for unit in dict.fromkeys(chunk.column("unit").to_pylist()):
                new_parts.setdefault(unit, []).append(name)
            written += chunk.num_rows
            pending, pending_rows = ([rest] if rest.num_rows else []), rest.num_rows

    for part in sorted(by_part, key=lambda name: ledger_seq(name) or 0):
        path = folder / part
        if not os.path.exists(path):
            raise IndexLayoutError(f"{path} is named by the ledger but missing: the index was altered; "
                                   "index again into a new folder")
        table = pq.read_table(path, schema=schema)
        keep = pc.is_in(table.column("unit"), pa.array(sorted(by_part[part]), pa.string()))
        live = table.filter(keep)
        pending.append(live)
        pending_rows += live.num_rows
        flush(rows_per_part)
    flush(1)
    return new_parts, seq, written


def _write(table: pa.Table, handle: object) -> None:
    pq.write_table(table, handle)
