"""The search store: an embedded LanceDB copy of the index's live rows and passages, and the one
function that writes it, `update_store`.

```
DIR/.search/
  rows.lance/        the live rows: vectors (IVF_SQ index once large), text, file mtime
  passages.lance/    the live passages: full-text index (BM25) on their accent-folded words
  state.json         what the store holds: manifest fingerprint, format, units, vector index
  lock               held (flock) by the one process updating the store
```

The Parquet parts stay the source of truth: the store can be deleted at any time, and the next
update builds it again. Only `update_store` writes it — the index job after a run, or an explicit
command; searching never does (search.py), so an index on a read-only volume is searchable, and
a search's cost never includes maintenance.

`update_store` reconciles by unit (one indexed file): units no longer live (files changed,
removed, re-indexed) are deleted, units that became live are read from the parts their ledger
entries name and added, and a unit whose row or passage count in the store differs from its
entry's is replaced (an update killed half-way). Before it changes a table it records, in
`state.json`, every unit the tables may hold afterwards; so a reader that compares the state's
units with the ledger knows which units it must leave out (retired since) and which are missing
(not yet added), whatever moment it opened the store at.

Units indexed without passages (by a job that does not write them) are searched by their text
rows, each row its own passage, as before passages existed.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import math
import os
import shutil
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from sensorium.index.layout import PASSAGE_SCHEMA, IndexLayoutError, IndexStoreError, write_atomic
from sensorium.index.reader import IndexReader, LiveUnit
from sensorium.index.words import fold_accents
from sensorium.settings import IndexSettings

STORE_DIR = ".search"
ROWS = "rows"
PASSAGES = "passages"
STATE = "state.json"
STORE_FORMAT = 2
"""Version of the store's own layout (tables, columns, indexes); a store of another format is
rebuilt by the next update, and refused by search until then."""
_MTIME = pa.timestamp("us", tz="UTC")
_REST_CLIENT = "lance_namespace_urllib3_client"


def import_lancedb() -> Any:
    """`lancedb`, imported for a store on local disk.

    Why not a plain `import lancedb`: it imports the namespace package, whose REST client's
    package `__init__` imports every one of its API modules at once: 0.3-0.9 s, half of
    lancedb's import time and of a cold `sensorium search`, for servers a local store never
    talks to. Registered here as a bare package (its `__init__` not run), its submodules still
    import on demand, so anything that does use the REST client still gets it; nothing in lancedb
    or lance_namespace uses the names its `__init__` defines.
    """
    import importlib.util
    import sys
    import types

    if "lancedb" not in sys.modules and _REST_CLIENT not in sys.modules:
        spec = importlib.util.find_spec(_REST_CLIENT)
        if spec is not None and spec.submodule_search_locations is not None:
            package = types.ModuleType(spec.name)
            package.__path__ = list(spec.submodule_search_locations)
            package.__spec__ = spec
            sys.modules[spec.name] = package
    import lancedb

    return lancedb


class StoreNotReadyError(IndexStoreError):
    """The index has no search store yet, or one that does not match it."""


@dataclass(frozen=True)
class VectorIndexParams:
    """How the store's vector index (IVF_SQ) is built and queried; tuned in bench/search.py,
    results in docs/benchmarks.md."""

    min_rows: int = IndexSettings().vector_index_min_rows
    """Below this many rows there is no vector index: exact search over all vectors is fast
    enough and exact."""
    nprobes: int = IndexSettings().search_nprobes
    """IVF partitions searched per query (of sqrt(rows) partitions)."""
    refine_factor: int = IndexSettings().search_refine_factor
    """k x this candidates, found on 8-bit scalar-quantised codes, are re-ranked on the full
    float32 vectors; 0 = none (results ranked on the codes)."""

    @classmethod
    def from_settings(cls, settings: IndexSettings) -> VectorIndexParams:
        return cls(settings.vector_index_min_rows, settings.search_nprobes, settings.search_refine_factor)

    @staticmethod
    def partitions(rows: int) -> int:
        """IVF partitions for a table of `rows` rows: sqrt(rows), the usual balance between
        the cost of picking partitions and of scanning them (1,000 at a million rows)."""
        return max(1, math.isqrt(rows))


@dataclass
class UpdateStats:
    """What an update changed in the store."""

    rebuilt: bool = False
    units_added: int = 0
    units_removed: int = 0
    rows_added: int = 0
    passages_added: int = 0
    rows: int = 0
    """Rows in the store afterwards."""
    passages: int = 0
    """Passages in the store afterwards."""
    vector_index: bool = False
    """Whether the store has a vector index (it has none below VectorIndexParams.min_rows)."""
    seconds: float = 0.0


def store_path(index_dir: str | os.PathLike[str]) -> Path:
    """The store's folder; `IndexLayoutError` when it is a link or not a folder (a hostile index
    directory: updating it would write wherever the link points)."""
    path = Path(index_dir) / STORE_DIR
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        raise IndexLayoutError(
            f"{path} is a link or not a folder; the search store must be a folder of the index "
            "itself. Remove it (`sensorium index --update-store` builds it again from the parts)"
        )
    return path


def read_state(path: Path) -> dict[str, Any]:
    """The store's state.json ({} when there is none or it cannot be read)."""
    try:
        state: dict[str, Any] = json.loads((path / STATE).read_text())
    except (OSError, ValueError):
        return {}
    return state


def state_matches(state: Mapping[str, Any], fingerprint: str) -> bool:
    """Whether a store with this state belongs to an index of this manifest fingerprint."""
    return state.get("fingerprint") == fingerprint and state.get("format") == STORE_FORMAT


def has_vector_index(table: Any) -> bool:
    return any(index.columns == ["vector"] for index in table.list_indices())


def update_store(
    index_dir: str | os.PathLike[str], *, params: VectorIndexParams | None = None, rebuild: bool = False
) -> UpdateStats:
    """Bring the search store of the index in `index_dir` up to date with its live rows and
    passages (see the module docstring); `rebuild` throws it away first. The index job calls
    it after a run; it is the only code that writes the store.

    Raises IndexLayoutError when `index_dir` holds no index.
    """
    return _Updater(Path(index_dir), params or VectorIndexParams()).run(rebuild=rebuild)


class _Updater:
    def __init__(self, index_dir: Path, params: VectorIndexParams) -> None:
        lancedb = import_lancedb()  # heavy: only for the commands that search or update

        self.reader = IndexReader(index_dir)
        self.params = params
        self.path = store_path(index_dir)
        self.path.mkdir(exist_ok=True)
        self.db = lancedb.connect(self.path)

    def run(self, *, rebuild: bool) -> UpdateStats:
        started = time.perf_counter()
        with self._locked():
            self.reader.reload()
            stats = UpdateStats()
            fingerprint = self.reader.manifest.fingerprint
            state = read_state(self.path)
            if rebuild or not state_matches(state, fingerprint):
                self._drop()
                state = {
                    "fingerprint": fingerprint,
                    "format": STORE_FORMAT,
                    "space_id": self.reader.manifest.space.id,
                    "units": {},
                }
                stats.rebuilt = True
            rows, passages = self._open_or_create()
            live = self.reader.live_units()
            stored = _unit_counts(rows)
            stored_passages = _unit_counts(passages)
            stale = [
                u
                for u in stored.keys() | stored_passages.keys()
                if u not in live or not _complete(live[u], stored.get(u, 0), stored_passages.get(u, 0))
            ]
            missing = [
                unit
                for u, unit in live.items()
                if u in stale or u not in stored.keys() | stored_passages.keys()
            ]
            # The intent first: every unit the tables may hold until this update is done.
            held = {u: n for u, n in state.get("units", {}).items()}
            held.update(
                {
                    u: [stored.get(u, 0), stored_passages.get(u, 0)]
                    for u in stored.keys() | stored_passages.keys()
                }
            )
            held.update({unit.unit: [unit.rows, unit.passages] for unit in missing})
            self._write_state({**state, "units": held})
            for batch in _batches(sorted(stale), 500):
                where = "unit IN (" + ", ".join(f"'{sql_id(u)}'" for u in batch) + ")"
                rows.delete(where)
                passages.delete(where)
            stats.units_removed = len(stale)
            stats.units_added = len(missing)
            stats.rows_added, stats.passages_added = self._add(rows, passages, missing)
            changed = bool(stale or missing)
            vector_rows = self._maintain(rows, passages, state, changed=changed)
            stats.rows = rows.count_rows()
            stats.passages = passages.count_rows()
            stats.vector_index = has_vector_index(rows)
            final = {unit.unit: [unit.rows, unit.passages] for unit in live.values()}
            self._write_state(
                {
                    **state,
                    "units": final,
                    "vector_index_rows": vector_rows,
                    "rows": stats.rows,
                    "passages": stats.passages,
                    "updated_at": time.time(),
                }
            )
            stats.seconds = time.perf_counter() - started
            return stats

    # --- tables ---

    def _open_or_create(self) -> tuple[Any, Any]:
        names = set(self.db.list_tables())
        rows = (
            self.db.open_table(ROWS)
            if ROWS in names
            else self.db.create_table(ROWS, schema=store_row_schema(self.reader.schema))
        )
        passages = (
            self.db.open_table(PASSAGES)
            if PASSAGES in names
            else self.db.create_table(PASSAGES, schema=STORE_PASSAGE_SCHEMA)
        )
        return rows, passages

    def _add(self, rows: Any, passages: Any, units: Sequence[LiveUnit]) -> tuple[int, int]:
        by_unit = {unit.unit: unit for unit in units}
        mtimes = {unit.unit: unit.mtime_ns // 1000 for unit in units}
        without = {unit.unit for unit in units if unit.passages == 0}
        added_rows = added_passages = 0
        # Few large adds: each add is a LanceDB commit (a version and a data file).
        for table in _grouped(self.reader.live_rows(list(by_unit.values())), 100_000):
            table = _with_mtime(table, mtimes)
            if without:
                own = pc.is_in(table.column("unit"), pa.array(sorted(without), pa.string()))
                passage = pc.if_else(own, table.column("ordinal"), table.column("passage"))
                table = table.set_column(table.schema.get_field_index("passage"), "passage", passage)
                fallback = table.filter(pc.and_(own, pc.is_valid(table.column("text"))))
                if fallback.num_rows:
                    passages.add(_store_passages(fallback.select([*PASSAGE_SCHEMA.names, "mtime"])))
                    added_passages += fallback.num_rows
            rows.add(table.cast(rows.schema))
            added_rows += table.num_rows
        with_passages = [unit for unit in units if unit.passages]
        for table in _grouped(self.reader.live_passages(with_passages), 100_000):
            passages.add(_store_passages(_with_mtime(table, mtimes)))
            added_passages += table.num_rows
        return added_rows, added_passages

    def _maintain(self, rows: Any, passages: Any, state: Mapping[str, Any], *, changed: bool) -> int:
        from lancedb.index import FTS, BTree, IvfSq

        for table in (rows, passages):
            if not any(index.columns == ["unit"] for index in table.list_indices()):
                table.create_index("unit", config=BTree(), replace=True)
        if not any(index.index_type == "FTS" for index in rows.list_indices()):
            rows.create_index("text", config=FTS(), replace=True)
        if not any(index.index_type == "FTS" for index in passages.list_indices()):
            # Positions: "quoted phrases" match as phrases.
            passages.create_index("words", config=FTS(with_position=True), replace=True)
        count = rows.count_rows()
        trained = int(state.get("vector_index_rows", 0))
        has_vector = has_vector_index(rows)
        # Partitions are trained once; after the table grew fourfold they are too few (and
        # too big), so the index is trained again, on the whole table.
        if count >= self.params.min_rows and (not has_vector or count > 4 * trained):
            config = IvfSq(distance_type="cosine", num_partitions=self.params.partitions(count))
            rows.create_index("vector", config=config, replace=True)
            trained = count
        elif changed:
            # Folds new rows into the existing indexes (no retraining), compacts small data
            # files, and drops files of versions older than an hour (a reader that opened the
            # store before this update keeps reading its version).
            rows.optimize(cleanup_older_than=timedelta(hours=1))
        if changed:
            passages.optimize(cleanup_older_than=timedelta(hours=1))
        return trained if has_vector_index(rows) else 0

    def _drop(self) -> None:
        for name in (ROWS, PASSAGES):
            with contextlib.suppress(FileNotFoundError, ValueError):
                self.db.drop_table(name)
            shutil.rmtree(self.path / f"{name}.lance", ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            (self.path / STATE).unlink()

    def _write_state(self, state: Mapping[str, Any]) -> None:
        text = json.dumps(state, sort_keys=True) + "\n"
        write_atomic(self.path / STATE, lambda handle: handle.write(text.encode()))

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        # One update at a time per index: two shards' jobs finishing together must not both
        # add a unit.
        with open(self.path / "lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def store_row_schema(rows: pa.Schema) -> pa.Schema:
    """The rows table: the parts' columns, the file's mtime among them (for filters)."""
    return rows if "mtime" in rows.names else rows.append(pa.field("mtime", _MTIME))


STORE_PASSAGE_SCHEMA = (
    PASSAGE_SCHEMA.append(pa.field("mtime", _MTIME))
    .append(pa.field("words", pa.string()))
    .append(pa.field("text_key", pa.string()))
)
"""The passages table: the parts' columns, the file's mtime, `words` (the text with accents
folded: what the full-text index reads) and `text_key` (identical passages share it)."""


def text_key(text: str) -> str:
    """A key two passages share when their texts are the same but for case and spacing."""
    return hashlib.sha256(" ".join(text.casefold().split()).encode()).hexdigest()[:16]


def _store_passages(table: pa.Table) -> pa.Table:
    texts = table.column("text").to_pylist()
    table = table.append_column("words", pa.array([fold_accents(t) for t in texts], pa.string()))
    table = table.append_column("text_key", pa.array([text_key(t) for t in texts], pa.string()))
    return table.select(STORE_PASSAGE_SCHEMA.names).cast(STORE_PASSAGE_SCHEMA)


def _with_mtime(table: pa.Table, mtimes: Mapping[str, int]) -> pa.Table:
    if "mtime" in table.column_names:  # rows carry their file's mtime already
        return table
    micros = [mtimes[unit] for unit in table.column("unit").to_pylist()]
    return table.append_column("mtime", pa.array(micros, pa.int64()).cast(_MTIME))


def _complete(unit: LiveUnit, rows: int, passages: int) -> bool:
    # A unit indexed without passages gets one per text row: only its rows can be counted.
    return rows == unit.rows and (unit.passages == 0 or passages == unit.passages)


def _grouped(tables: Iterator[pa.Table], rows: int) -> Iterator[pa.Table]:
    pending: list[pa.Table] = []
    count = 0
    for table in tables:
        pending.append(table)
        count += table.num_rows
        if count >= rows:
            yield pa.concat_tables(pending)
            pending, count = [], 0
    if count:
        yield pa.concat_tables(pending)


def _unit_counts(table: Any) -> dict[str, int]:
    if table.count_rows() == 0:
        return {}
    units = table.search().select(["unit"]).limit(None).to_arrow().column("unit")
    counts = pc.value_counts(units)
    return dict(zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True))


def sql_id(unit: str) -> str:
    """A unit id checked to be safe inside a SQL string literal."""
    if not unit.isalnum():
        raise ValueError(f"unexpected unit id {unit!r}")
    return unit


def _batches(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
