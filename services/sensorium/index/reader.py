"""Read an index back: its manifest, its files table and its live rows, across all shards.

A reader takes the ledger first and the parts second: an entry names only parts published
before it, so a reader running beside a writer sees a consistent index (the files committed so
far), never a half-written file. Rows and passages are read the same way.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from sensorium.index import ledger
from sensorium.index.layout import (
    PASSAGE_SCHEMA,
    FileStatus,
    IndexLayoutError,
    Manifest,
    Shard,
    agreed_manifest,
    row_schema,
    shard_dirs,
)
from sensorium.index.ledger import Entry


@dataclass(frozen=True)
class LiveUnit:
    """The rows and passages of one indexed file: where they are and how many."""

    unit: str
    shard: Shard
    parts: tuple[Path, ...]
    rows: int
    passage_parts: tuple[Path, ...] = ()
    passages: int = 0
    path: str = ""
    mtime_ns: int = 0
    """The file's modification time when it was indexed (or last seen unchanged)."""


class IndexReader:
    """A consistent view of the index in `directory` as of when it was made (`reload()` for a
    newer one). Raises IndexLayoutError when there is no index there, IndexMismatchError when
    its shards disagree."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.reload()

    def reload(self) -> None:
        manifest = agreed_manifest(self.directory)
        if manifest is None:
            raise IndexLayoutError(
                f"{self.directory} holds no Sensorium index (no shard-*/manifest.json); create one "
                "with `sensorium index PATH... --out DIR`"
            )
        self.manifest: Manifest = manifest
        self.schema = row_schema(manifest.space.dimension)
        self._shards = shard_dirs(self.directory)
        self._entries: dict[Shard, dict[str, Entry]] = {
            shard: ledger.read(path).entries for shard, path in self._shards.items()
        }

    @property
    def shards(self) -> list[Shard]:
        return list(self._shards)

    def entries(self) -> Iterator[tuple[Shard, Entry]]:
        """Every path's current entry (the files table), shard by shard."""
        for shard, entries in self._entries.items():
            for entry in entries.values():
                yield shard, entry

    def files(self) -> pa.Table:
        """The files table of the whole index (every shard), sorted by path."""
        listed = sorted((entry for _, entry in self.entries()), key=lambda e: e.path)
        return ledger.to_table(listed)

    def live_units(self) -> dict[str, LiveUnit]:
        """The units whose rows are live, by unit id."""
        live = {}
        for shard, entry in self.entries():
            if entry.status == FileStatus.INDEXED and entry.unit is not None:
                folder = self._shards[shard]
                live[entry.unit] = LiveUnit(
                    entry.unit,
                    shard,
                    tuple(folder / "rows" / p for p in entry.parts),
                    entry.rows,
                    tuple(folder / "passages" / p for p in entry.passage_parts),
                    entry.passages,
                    entry.path,
                    entry.mtime_ns,
                )
        return live

    def live_rows(
        self, units: Sequence[LiveUnit] | None = None, columns: Sequence[str] | None = None
    ) -> Iterator[pa.Table]:
        """The live rows, one table per part read (of `units` only, when given): rows of files
        in flight, changed or removed are left out. Memory: one part at a time."""
        chosen = list(self.live_units().values()) if units is None else list(units)
        yield from _read_units(((unit.unit, unit.parts) for unit in chosen), self.schema, columns)

    def live_passages(
        self, units: Sequence[LiveUnit] | None = None, columns: Sequence[str] | None = None
    ) -> Iterator[pa.Table]:
        """The live passages, like `live_rows`."""
        chosen = list(self.live_units().values()) if units is None else list(units)
        yield from _read_units(((unit.unit, unit.passage_parts) for unit in chosen), PASSAGE_SCHEMA, columns)

    def duplicates(self) -> dict[str, list[str]]:
        """Path -> the other paths whose content is the same (files-table `duplicate_of`)."""
        copies: dict[str, list[str]] = {}
        for _, entry in self.entries():
            if entry.duplicate_of is not None and entry.status == FileStatus.DUPLICATE:
                copies.setdefault(entry.duplicate_of, []).append(entry.path)
        return {path: sorted(paths) for path, paths in copies.items()}


def _read_units(
    units: Iterable[tuple[str, Sequence[Path]]], schema: pa.Schema, columns: Sequence[str] | None
) -> Iterator[pa.Table]:
    by_part: dict[Path, set[str]] = {}
    for unit, parts in units:
        for part in parts:
            by_part.setdefault(part, set()).add(unit)
    for part in sorted(by_part):
        table = pq.read_table(part, schema=schema)
        keep = pc.is_in(table.column("unit"), pa.array(sorted(by_part[part]), pa.string()))
        filtered = table.filter(keep)
        yield filtered if columns is None else filtered.select(list(columns))
