"""A shard's ledger: which files are done, and which rows stand for each.

The ledger is the commit record of a shard. Each commit of the writer appends one segment
(`ledger/NNNNNNNN.parquet`, files-table columns) holding the entries decided since the last
one; an entry for a path replaces any earlier entry for it. A row of a part is **live** only
while the latest entry of some path names the row's `unit` with status `indexed`: rows of a
file still in flight when the writer was killed, of a changed file's previous content, or of a
deleted file are in no such entry, so no reader ever returns them.

At the end of a run the segments are folded into `files.parquet` (the files table), which
records in its schema metadata the last segment it covers; later segments fold on top of it,
so deleting the covered segments afterwards is safe in any order.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from sensorium.index.layout import (
    FILES_SCHEMA,
    LEDGER_SEQ_KEY,
    FileStatus,
    IndexLayoutError,
    ledger_seq,
    seq_name,
    write_atomic,
)


@dataclass(slots=True)
class Entry:
    """One row of the files table: the latest word on one path."""

    path: str
    size: int
    mtime_ns: int
    status: FileStatus
    content_sha256: str | None = None
    kind: str | None = None
    reason: str | None = None
    message: str | None = None
    retryable: bool = False
    unit: str | None = None
    rows: int = 0
    parts: list[str] = field(default_factory=list)
    duplicate_of: str | None = None
    passages: int = 0
    passage_parts: list[str] = field(default_factory=list)

    def same_stat(self, size: int, mtime_ns: int) -> bool:
        """Whether a file of this size and mtime is unchanged (mtimes compared to the µs)."""
        return self.size == size and self.mtime_ns // 1000 == mtime_ns // 1000

    @property
    def final(self) -> bool:
        """Whether a rerun leaves this path alone while its size and mtime are unchanged."""
        return self.status != FileStatus.REMOVED and not self.retryable


def to_table(entries: Iterable[Entry]) -> pa.Table:
    listed = list(entries)
    columns: dict[str, list[object]] = {name: [] for name in FILES_SCHEMA.names}
    for entry in listed:
        for name in FILES_SCHEMA.names:
            columns[name].append(getattr(entry, "mtime_ns" if name == "mtime" else name))
    # mtime is kept to the microsecond: Python's datetime (hence pyarrow's to_pylist) has no
    # nanoseconds, and stat comparisons are made at that resolution.
    columns["mtime"] = [ns // 1000 for ns in columns["mtime"]]  # type: ignore[operator]
    arrays = [
        pa.array(columns[f.name], pa.int64()).cast(f.type)
        if f.name == "mtime"
        else pa.array(columns[f.name], f.type)
        for f in FILES_SCHEMA
    ]
    return pa.Table.from_arrays(arrays, schema=FILES_SCHEMA)


def from_table(table: pa.Table) -> Iterator[Entry]:
    """The entries of a files table or ledger segment. Raises IndexLayoutError for a part name
    the writer never makes: readers join part names to the shard's rows/ folder, and a name
    such as "../../x.parquet" or "/x.parquet" would make search read any Parquet file."""
    mtimes = [us * 1000 for us in table.column("mtime").cast(pa.int64()).to_pylist()]
    columns = {name: table.column(name).to_pylist() for name in FILES_SCHEMA.names if name != "mtime"}
    for i, mtime in enumerate(mtimes):
        values = {name: column[i] for name, column in columns.items()}
        values["status"] = FileStatus(values["status"])
        foreign = [part for part in values["parts"] if ledger_seq(part) is None]
        if foreign:
            raise IndexLayoutError(
                f"the ledger entry of {values['path']!r} names part {foreign[0]!r}, which no index "
                "writer makes (parts are NNNNNNNN.parquet in the shard's rows/ folder): the index "
                "was altered; remove it and index again"
            )
        yield Entry(mtime_ns=mtime, **values)


@dataclass
class LedgerState:
    """A shard's ledger folded: the latest entry per path, and the last sequence number seen."""

    entries: dict[str, Entry]
    last_seq: int
    segments: list[Path]
    """Segment files not yet folded into files.parquet."""
    snapshot_seq: int


def read(shard_dir: Path) -> LedgerState:
    """Fold `shard_dir`'s files.parquet and the ledger segments after it.

    A writer may fold and delete segments while this runs: when files.parquet was replaced
    meanwhile, or a segment vanished, the read starts again (the newer files.parquet covers
    what was deleted).
    """
    for _attempt in range(10):
        with contextlib.suppress(FileNotFoundError, _Replaced):
            return _read_once(shard_dir)
    return _read_once(shard_dir)


class _Replaced(Exception):
    """files.parquet changed during a read."""


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        info = path.stat()
    except FileNotFoundError:
        return None
    return info.st_ino, info.st_mtime_ns


def _read_once(shard_dir: Path) -> LedgerState:
    entries: dict[str, Entry] = {}
    snapshot_seq = 0
    files = shard_dir / "files.parquet"
    before = _identity(files)
    if before is not None:
        table = pq.read_table(files)
        snapshot_seq = int((table.schema.metadata or {}).get(LEDGER_SEQ_KEY, b"0"))
        entries = {entry.path: entry for entry in from_table(table)}
    segments = sorted(
        (seq, path)
        for path in (shard_dir / "ledger").glob("*.parquet")
        if (seq := ledger_seq(path.name)) is not None and seq > snapshot_seq
    )
    for _seq, path in segments:
        for entry in from_table(pq.read_table(path, schema=FILES_SCHEMA)):
            entries[entry.path] = entry
    if _identity(files) != before:
        raise _Replaced
    last = max([snapshot_seq, *(seq for seq, _ in segments)])
    return LedgerState(
        {path: entry for path, entry in entries.items() if entry.status != FileStatus.REMOVED},
        last,
        [path for _, path in segments],
        snapshot_seq,
    )


def write_segment(shard_dir: Path, seq: int, entries: Iterable[Entry]) -> None:
    table = to_table(entries)
    write_atomic(shard_dir / "ledger" / seq_name(seq), lambda handle: pq.write_table(table, handle))


def write_files_table(shard_dir: Path, state: LedgerState) -> None:
    """Fold the ledger into files.parquet (atomic), then delete the segments it covers."""
    ordered = sorted(state.entries.values(), key=lambda entry: entry.path)
    table = to_table(ordered).replace_schema_metadata({LEDGER_SEQ_KEY: str(state.last_seq).encode()})
    write_atomic(shard_dir / "files.parquet", lambda handle: pq.write_table(table, handle))
    for segment in state.segments:
        with contextlib.suppress(FileNotFoundError):
            segment.unlink()
