"""Write one shard of an index: rows and passages into Parquet parts, outcomes into the ledger.

The job drives an `IndexWriter` like this (one writer per shard; shards need no coordination):

```python
with IndexWriter(out_dir, Shard.parse("0/2"), manifest) as writer:
    plan = writer.plan(FileStat.of(p) for p in paths if shard.owns(p))   # no file is read
    for stat in plan.todo:
        sha256, sniffed = hash_and_sniff(stat.path)           # one read of the file
        work = writer.begin(stat, sha256, sniffed.kind)
        if work is None:
            continue                                          # duplicate, or content unchanged
        if sniffed.kind is None:
            writer.skip(work, sniffed.reason, sniffed.message); continue
        try:
            for page in pages_of(stat.path):
                page_text = Passage("pdf_text", page.text, page=page.number)
                (passage,) = writer.add_passages(work, [page_text])
                writer.add_rows(work, rows_of(page, passage))  # Row(..., passage=passage)
            writer.finish(work)
        except SensoriumError as error:
            writer.fail(work, error.reason, error.message)   # transient reasons: retried next run
```

Passages are the text of the units a person thinks in (a page, a stretch of a transcript), whole:
what full-text search ranks. Rows are the pieces that were embedded (CLIP-sized chunks, images),
what vector search ranks; a row names the passage its text came from (`Row.passage`, an ordinal
`add_passages` returned), so a search can tell which page or stretch a vector hit is in.

Crash safety. Rows (and passages) are buffered and written as parts of at most
`rows_per_part` rows, by atomic rename; entries of finished files are then written as a
ledger segment the same way (`ledger.py` explains why only entries make rows live). Killed at
any moment, a shard keeps every file whose entry was committed, and loses only files in flight
or finished since the last commit (at most `rows_per_part` rows or `commit_seconds` ago); their
orphan rows in parts are never live, and the rerun does those files again.

Resume. An unchanged path (same size and mtime as its entry, whose outcome was final) is not
even read: `plan` puts it in `unchanged`. Otherwise `begin` decides by content: the same
content as the path's own entry keeps that entry's rows (only the stat is refreshed); the same
content as another path's makes this one a `duplicate` (or copies its skip or error); new
content is indexed. The manifest pins the embedding space and options, so the resume key is in
effect (content hash, space fingerprint, options); an index written with another manifest is
refused (`IndexMismatchError`) rather than mixed.

Files inside files. A file found inside another (a mail's attachment) has an entry of its own
at `<file>!/<name>`, begun with `begin(..., parent=work)` while its parent's work is open. It is
never listed, so `plan` leaves it to its parent: it stands while the parent stands (unchanged,
or the same content), is retired with it (removed), and when the parent is indexed anew, the
inner files it no longer holds are retired when it ends. Inner files take no part in finding
duplicates (they are always indexed themselves, and never stand for another path's content):
an inner file can be redone only by redoing its parent, so no listed file may depend on one.
"""

from __future__ import annotations

import dataclasses
import fcntl
import functools
import os
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq

from sensorium.errors import Reason
from sensorium.index import ledger
from sensorium.index.kinds import row_kinds
from sensorium.index.layout import (
    BBOX_TYPE,
    PASSAGE_SCHEMA,
    FileStatus,
    IndexBusyError,
    IndexLayoutError,
    Manifest,
    Passage,
    Row,
    Shard,
    agreed_manifest,
    ledger_seq,
    remove_temporaries,
    row_schema,
    seq_name,
    shard_of_dir,
    write_atomic,
    write_manifest,
)
from sensorium.index.ledger import Entry

INNER_SEPARATOR = "!/"
"""Between a file's path and the name of a file inside it: "inbox/dues.eml!/report.docx"."""

TRANSIENT_REASONS = frozenset(
    {Reason.OVERLOADED, Reason.GPU_OUT_OF_MEMORY, Reason.NOT_READY, Reason.SHUTTING_DOWN}
)
"""Reasons worth another try on the next run (the server was busy or away), by default."""


@dataclass(frozen=True)
class FileStat:
    """An input file as listed, before it is read."""

    path: str
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: str | os.PathLike[str]) -> FileStat:
        """Stat `path` (OSError when it cannot be)."""
        info = os.stat(path)
        return cls(os.fspath(path), info.st_size, info.st_mtime_ns)


@dataclass(frozen=True)
class Work:
    """A file being indexed: returned by `begin`, ended by `finish`, `skip` or `fail`."""

    file: FileStat
    content_sha256: str
    kind: str | None
    unit: str
    inner: bool = False
    """The file is inside another (see the module docstring)."""


@dataclass
class Plan:
    """What a run has to do, decided from the listing alone."""

    todo: list[FileStat] = field(default_factory=list)
    """Files to read, hash and `begin`."""
    unchanged: list[FileStat] = field(default_factory=list)
    """Files whose entry stands: same size and mtime, a final outcome. Nothing to do."""
    removed: list[str] = field(default_factory=list)
    """Paths indexed before and not listed now: their rows are retired."""


@dataclass
class Summary:
    """What a writer did in its run (counts of entries it committed)."""

    statuses: dict[str, int] = field(default_factory=dict)
    """Entries committed, by status ("removed" for paths dropped from the index)."""
    rows: int = 0
    """Rows written into parts (including rows of files that failed after some rows)."""
    parts: int = 0
    """Row part files written."""
    passages: int = 0
    """Passages written into passage parts."""
    passage_parts: int = 0
    """Passage part files written."""


_CONTENT_STATUSES = (FileStatus.INDEXED, FileStatus.SKIPPED, FileStatus.ERROR)


@dataclass(frozen=True, slots=True)
class _Buffered:
    unit: str
    ordinal: int
    work: Work
    row: Row
    vector: npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class _BufferedPassage:
    unit: str
    ordinal: int
    work: Work
    passage: Passage


class IndexWriter:
    """The one writer of one shard of the index in `directory` (see the module docstring).

    Not thread-safe: call it from one thread (the job's writer stage). Opening it refuses an
    index of another manifest (IndexMismatchError), a shard another process is writing
    (IndexBusyError), and a non-empty folder that is not an index (IndexLayoutError).
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        shard: Shard,
        manifest: Manifest,
        *,
        rows_per_part: int = 10_000,
        commit_seconds: float = 30.0,
        clock: Any = time.monotonic,
    ) -> None:
        if rows_per_part < 1:
            raise ValueError("rows_per_part must be at least 1")
        self.directory = Path(directory)
        self.shard = shard
        self.manifest = manifest
        self.rows_per_part = rows_per_part
        self.commit_seconds = commit_seconds
        self._clock = clock
        self._dir = self.directory / shard.name
        self._schema = row_schema(manifest.space.dimension)
        self._space_id = manifest.space.id
        self._lock = self._open()
        try:
            state = ledger.read(self._dir)
        except BaseException:
            self._lock.close()
            raise
        self._entries: dict[str, Entry] = state.entries
        self._seq = max(state.last_seq, self._last_part_seq())
        # Parent path -> the paths of the files inside it that have entries.
        self._inner: dict[str, set[str]] = {}
        for path in self._entries:
            if (parent := self._parent_of(path)) is not None:
                self._inner.setdefault(parent, set()).add(path)
        # Content hash -> the path whose outcome stands for that content (its own, not a copy).
        self._by_content: dict[str, str] = {
            e.content_sha256: p
            for p, e in self._entries.items()
            if e.content_sha256 and e.duplicate_of is None and e.status in _CONTENT_STATUSES and e.final
            and self._parent_of(p) is None
        }
        self._seen_inner: dict[str, set[str]] = {}  # unit of an open parent -> inner paths recorded
        self._works: dict[str, Work] = {}
        self._in_flight_by_content: dict[str, str] = {}  # content hash -> unit
        self._waiting: dict[str, list[tuple[FileStat, str | None]]] = {}  # unit -> duplicates
        self._ordinals: dict[str, int] = {}
        self._passage_ordinals: dict[str, int] = {}
        self._unit_parts: dict[str, list[str]] = {}
        self._unit_passage_parts: dict[str, list[str]] = {}
        self._ready: list[Entry] = []
        self._buffer: list[_Buffered] = []
        self._passages: list[_BufferedPassage] = []
        self._last_commit = self._clock()
        self._summary = Summary()
        self._closed = False
        self._broken = False

    # --- set-up ---------------------------------------------------------------------------

    def _open(self) -> IO[str]:
        self.directory.mkdir(parents=True, exist_ok=True)
        if self.directory.is_dir() and any(self.directory.iterdir()) and not self._looks_like_index():
            raise IndexLayoutError(
                f"{self.directory} is not empty and holds no Sensorium index; choose an empty or "
                "new directory for --out"
            )
        agreed_manifest(self.directory, self.manifest, self.shard.count)  # refuses another space or options
        for sub in ("rows", "passages", "ledger"):
            (self._dir / sub).mkdir(parents=True, exist_ok=True)
        # flock is released by the kernel when the process dies, so a killed writer leaves no
        # stale lock; the file's content is never written (an unchanged rerun writes nothing).
        lock = open(self._dir / "lock", "a")  # noqa: SIM115 - held for the writer's lifetime
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            raise IndexBusyError(
                f"shard {self.shard} of {self.directory} is being written by another process (it "
                f"holds {self._dir / 'lock'}); run one writer per shard: wait for it, or stop it"
            ) from None
        for folder in (self._dir, self._dir / "rows", self._dir / "passages", self._dir / "ledger"):
            remove_temporaries(folder)
        # Shards do not coordinate: two started at once with different settings both write a
        # manifest, and every reader (and the next writer) refuses the mix.
        if not (self._dir / "manifest.json").exists():
            write_manifest(self._dir, self.manifest, self.shard, {"created_at": time.time()})
        return lock

    def _looks_like_index(self) -> bool:
        return any(
            shard_of_dir(child.name) is not None or child.name == ".search"
            for child in self.directory.iterdir()
        )

    def _last_part_seq(self) -> int:
        parts = [*(self._dir / "rows").glob("*.parquet"), *(self._dir / "passages").glob("*.parquet")]
        return max((s for p in parts if (s := ledger_seq(p.name)) is not None), default=0)

    # --- planning -------------------------------------------------------------------------

    def plan(self, files: Iterable[FileStat]) -> Plan:
        """Sort the shard's listed files into work to do and entries that stand.

        `files` is the complete listing of this shard's inputs for the run: a path recorded in
        an earlier run and absent now is removed from the index (its rows retired).
        """
        plan = Plan()
        listed: dict[str, FileStat] = {}
        for stat in files:
            listed[stat.path] = stat
        # A file inside another goes with its outermost parent: kept while that is listed.
        removed = [path for path in self._entries if path not in listed and self._root_of(path) not in listed]
        changed = set(removed)
        for path, stat in listed.items():
            entry = self._entries.get(path)
            if entry is None or not entry.final or not entry.same_stat(stat.size, stat.mtime_ns):
                changed.add(path)
        for path, stat in listed.items():
            entry = self._entries.get(path)
            # A copy of another path's outcome stands only while that path stands.
            if path in changed or (entry is not None and entry.duplicate_of in changed):
                plan.todo.append(stat)
            else:
                plan.unchanged.append(stat)
        for stat in plan.todo:
            self._forget_content(stat.path)
        for path in removed:
            self._forget_content(path)
            old = self._entries[path]
            self._ready.append(Entry(path, old.size, old.mtime_ns, FileStatus.REMOVED))
        plan.removed = removed
        return plan

    def _parent_of(self, path: str) -> str | None:
        """The path of the file `path` is inside, when it is an inner file's (its parent has an
        entry; a listed file whose folder's name ends in "!" is no inner file)."""
        if INNER_SEPARATOR not in path:
            return None
        parent = path.rsplit(INNER_SEPARATOR, 1)[0]
        return parent if parent in self._entries or parent in self._inner else None

    def _root_of(self, path: str) -> str:
        while (parent := self._parent_of(path)) is not None:
            path = parent
        return path

    def _retire_inner(self, parent: str, keep: frozenset[str] | set[str] = frozenset()) -> None:
        """Retire the entries of the files inside `parent` (and inside them), but `keep`."""
        for path in sorted(self._inner.get(parent, set()) - set(keep)):
            self._retire_inner(path)
            old = self._latest(path)
            if old is not None and old.status != FileStatus.REMOVED:
                self._ready.append(Entry(path, old.size, old.mtime_ns, FileStatus.REMOVED))

    def _latest(self, path: str) -> Entry | None:
        """The path's entry as this run last recorded it, else as committed."""
        for entry in reversed(self._ready):
            if entry.path == path:
                return entry
        return self._entries.get(path)

    def _forget_inner(self, path: str) -> None:
        """`path` is gone from the index: it holds nothing, and its parent no longer holds it."""
        if not self._inner.get(path):
            self._inner.pop(path, None)
        if INNER_SEPARATOR in path:
            parent = path.rsplit(INNER_SEPARATOR, 1)[0]
            held = self._inner.get(parent)
            if held is not None:
                held.discard(path)
                if not held and parent not in self._entries:
                    del self._inner[parent]

    def _forget_content(self, path: str) -> None:
        entry = self._entries.get(path)
        if entry is not None and entry.content_sha256 and self._by_content.get(entry.content_sha256) == path:
            del self._by_content[entry.content_sha256]

    # --- one file -------------------------------------------------------------------------

    def begin(
        self, file: FileStat, content_sha256: str, kind: str | None = None, *, parent: Work | None = None
    ) -> Work | None:
        """Start on `file`, whose content hashes to `content_sha256` (hex) and was sniffed as
        `kind` (a name of the kind table, or None if skipped). `parent`: the open work of the
        file `file` is inside (see the module docstring).

        Returns None when there is nothing to embed: the content is the same as the path's
        recorded entry (kept), or as another path's (recorded as its duplicate, or with its
        skip or error; a duplicate of a file still in flight is recorded when that one ends).
        Otherwise the caller must end the returned Work with finish, skip or fail.
        """
        self._check_open()
        path = file.path
        if any(w.file.path == path for w in self._works.values()):
            raise ValueError(f"{path} was begun twice in one run")
        if parent is not None:
            return self._begin_inner(file, content_sha256, kind, parent)
        canonical = self._by_content.get(content_sha256)
        if canonical is not None and canonical != path:
            self._retire_inner(path)  # the content it held is another path's now
            self._record(self._copy_of(file, kind, self._entries_or_ready(canonical)))
            return None
        unit = self._in_flight_by_content.get(content_sha256)
        if unit is not None:
            self._retire_inner(path)
            self._waiting[unit].append((file, kind))
            return None
        previous = self._entries.get(path)
        if (
            previous is not None
            and previous.content_sha256 == content_sha256
            and previous.final
            and previous.duplicate_of is None
        ):
            # Same content (only touched or copied back): the recorded outcome and rows stand.
            self._record(dataclasses.replace(previous, size=file.size, mtime_ns=file.mtime_ns))
            if previous.status in _CONTENT_STATUSES:
                self._by_content[content_sha256] = path
            return None
        work = Work(file, content_sha256, kind, uuid.uuid4().hex)
        self._works[work.unit] = work
        self._in_flight_by_content[content_sha256] = work.unit
        self._waiting[work.unit] = []
        self._ordinals[work.unit] = 0
        self._passage_ordinals[work.unit] = 0
        self._unit_parts[work.unit] = []
        self._unit_passage_parts[work.unit] = []
        self._seen_inner[work.unit] = set()
        return work

    def _begin_inner(
        self, file: FileStat, content_sha256: str, kind: str | None, parent: Work
    ) -> Work | None:
        self._check_work(parent)
        path = file.path
        self._note_inner(parent, path)
        previous = self._entries.get(path)
        if previous is not None and previous.content_sha256 == content_sha256 and previous.final:
            # The parent changed, this file inside it did not: its outcome and rows stand.
            self._record(dataclasses.replace(previous, size=file.size, mtime_ns=file.mtime_ns))
            return None
        work = Work(file, content_sha256, kind, uuid.uuid4().hex, inner=True)
        self._works[work.unit] = work
        self._waiting[work.unit] = []
        self._ordinals[work.unit] = 0
        self._passage_ordinals[work.unit] = 0
        self._unit_parts[work.unit] = []
        self._unit_passage_parts[work.unit] = []
        self._seen_inner[work.unit] = set()
        return work

    def _note_inner(self, parent: Work, path: str) -> None:
        self._seen_inner[parent.unit].add(path)
        self._inner.setdefault(parent.file.path, set()).add(path)

    def add_passages(self, work: Work, passages: Iterable[Passage]) -> list[int]:
        """Add passages of `work`'s file (pages, stretches of a transcript); returns their
        ordinals, for the rows made from them (`Row.passage`). Like rows, they become live when
        the file is finished and that finish is committed."""
        self._check_work(work)
        known = row_kinds()
        ordinals = []
        for passage in passages:
            if passage.kind not in known:
                choices = ", ".join(sorted(known))
                raise ValueError(f"passage kind {passage.kind!r}: choose from {choices}")
            ordinal = self._passage_ordinals[work.unit]
            self._passage_ordinals[work.unit] = ordinal + 1
            self._passages.append(_BufferedPassage(work.unit, ordinal, work, passage))
            ordinals.append(ordinal)
        if len(self._passages) >= self.rows_per_part:
            self._commit()
        return ordinals

    def add_rows(self, work: Work, rows: Iterable[Row]) -> None:
        """Add rows of `work`'s file. They are written with the next part; they become live only
        when the file is finished and that finish is committed."""
        self._check_work(work)
        dimension = self.manifest.space.dimension
        known = row_kinds()
        for row in rows:
            if row.kind not in known:
                raise ValueError(f"row kind {row.kind!r}: choose from {', '.join(sorted(known))}")
            if row.passage is not None and not 0 <= row.passage < self._passage_ordinals[work.unit]:
                raise ValueError(
                    f"a row of {work.file.path} names passage {row.passage}; the file has "
                    f"{self._passage_ordinals[work.unit]} (add the passage before its rows)"
                )
            vector = np.asarray(row.vector, dtype=np.float32).reshape(-1)
            if vector.shape[0] != dimension:
                raise ValueError(
                    f"a row of {work.file.path} has a {vector.shape[0]}-d vector; the index's space "
                    f"is {dimension}-d"
                )
            ordinal = self._ordinals[work.unit]
            self._ordinals[work.unit] = ordinal + 1
            self._buffer.append(_Buffered(work.unit, ordinal, work, row, vector))
            if len(self._buffer) >= self.rows_per_part:
                self._commit()

    def finish(self, work: Work, note: tuple[Reason, str] | None = None) -> None:
        """`work`'s file is done: all its rows were added (none is fine: a PDF without text).
        `note` (a reason and a message) says what of it is not in the index, e.g. rows past the
        per-file cap; the file stays indexed."""
        self._check_work(work)
        rows = self._ordinals[work.unit]
        reason, message = (note[0].name, note[1]) if note is not None else (None, None)
        self._end(
            work,
            Entry(
                work.file.path,
                work.file.size,
                work.file.mtime_ns,
                FileStatus.INDEXED,
                work.content_sha256,
                work.kind,
                reason,
                message,
                unit=work.unit,
                rows=rows,
                passages=self._passage_ordinals[work.unit],
            ),
        )

    def skip(self, target: Work | FileStat, reason: Reason, message: str, *, retryable: bool = False,
             parent: Work | None = None) -> None:
        """Record that the file is not indexed (e.g. UNSUPPORTED_TYPE, INPUT_EMPTY). A FileStat
        records it without a content hash (a file skipped before it was read; `parent`: the
        open work of the file it is inside). `retryable` makes the next run try it again (the
        reason is this machine's, e.g. a converter not installed, not the file's)."""
        self._conclude(target, FileStatus.SKIPPED, reason, message, retryable=retryable, parent=parent)

    def fail(
        self, target: Work | FileStat, reason: Reason, message: str, *, retryable: bool | None = None,
        parent: Work | None = None,
    ) -> None:
        """Record that indexing the file failed. `retryable` (default: the reason is one of
        TRANSIENT_REASONS) makes the next run try it again; otherwise the error is final until
        the file changes. A FileStat records an error before the content was read (`parent`:
        the open work of the file it is inside)."""
        retry = reason in TRANSIENT_REASONS if retryable is None else retryable
        self._conclude(target, FileStatus.ERROR, reason, message, retryable=retry, parent=parent)

    def _conclude(
        self, target: Work | FileStat, status: FileStatus, reason: Reason, message: str, *, retryable: bool,
        parent: Work | None = None,
    ) -> None:
        if isinstance(target, Work):
            self._check_work(target)
            self._buffer = [item for item in self._buffer if item.unit != target.unit]
            self._passages = [item for item in self._passages if item.unit != target.unit]
            file = target.file
            entry = Entry(
                file.path,
                file.size,
                file.mtime_ns,
                status,
                target.content_sha256,
                target.kind,
                reason.name,
                message,
                retryable,
            )
            self._end(target, entry)
        else:
            self._check_open()
            if parent is not None:
                self._check_work(parent)
                self._note_inner(parent, target.path)
            else:
                self._retire_inner(target.path)  # unreadable now: nothing inside it stands
            self._record(
                Entry(
                    target.path,
                    target.size,
                    target.mtime_ns,
                    status,
                    None,
                    None,
                    reason.name,
                    message,
                    retryable,
                )
            )

    def _end(self, work: Work, entry: Entry) -> None:
        del self._works[work.unit]
        seen = self._seen_inner.pop(work.unit)
        # What it holds now stands; files it held before and not now are retired (all of them
        # when it is not indexed: its rows are gone, and so are those of the files inside it).
        self._retire_inner(work.file.path, keep=seen if entry.status == FileStatus.INDEXED else set())
        if work.inner:
            self._record(entry)
            self._ordinals.pop(work.unit)
            self._passage_ordinals.pop(work.unit)
            self._waiting.pop(work.unit)
            return
        del self._in_flight_by_content[work.content_sha256]
        self._record(entry)
        if entry.status in _CONTENT_STATUSES and entry.final:
            self._by_content[work.content_sha256] = work.file.path
        for file, kind in self._waiting.pop(work.unit):
            self._record(self._copy_of(file, kind, entry))
        self._ordinals.pop(work.unit)
        self._passage_ordinals.pop(work.unit)
        if self._clock() - self._last_commit >= self.commit_seconds:
            self._commit()

    def _copy_of(self, file: FileStat, kind: str | None, canonical: Entry) -> Entry:
        status = FileStatus.DUPLICATE if canonical.status == FileStatus.INDEXED else canonical.status
        return Entry(
            file.path,
            file.size,
            file.mtime_ns,
            status,
            canonical.content_sha256,
            kind or canonical.kind,
            canonical.reason,
            canonical.message,
            canonical.retryable,
            duplicate_of=canonical.path,
        )

    def _entries_or_ready(self, path: str) -> Entry:
        for entry in reversed(self._ready):
            if entry.path == path:
                return entry
        return self._entries[path]

    def _record(self, entry: Entry) -> None:
        self._ready.append(entry)

    # --- commits --------------------------------------------------------------------------

    def _commit(self) -> None:
        """Publish buffered rows as parts, then the ready entries as a ledger segment.

        State changes only after each file is safely renamed into place; if a write fails, the
        writer is marked broken and commits nothing more (the next run redoes what was lost).
        """
        self._last_commit = self._clock()
        if not self._buffer and not self._passages and not self._ready:
            return
        if self._broken:
            raise RuntimeError("an earlier commit failed; this writer can commit nothing more")
        self._broken = True
        while self._buffer:
            batch = self._buffer[: self.rows_per_part]
            name = seq_name(self._seq + 1)
            table = self._rows_table(batch)
            write_atomic(self._dir / "rows" / name, functools.partial(_write_parquet, table))
            self._seq += 1
            self._buffer = self._buffer[len(batch) :]
            self._summary.parts += 1
            self._summary.rows += len(batch)
            for unit in dict.fromkeys(item.unit for item in batch):
                self._unit_parts[unit].append(name)
        while self._passages:
            passages = self._passages[: self.rows_per_part]
            name = seq_name(self._seq + 1)
            table = _passages_table(passages)
            write_atomic(self._dir / "passages" / name, functools.partial(_write_parquet, table))
            self._seq += 1
            self._passages = self._passages[len(passages) :]
            self._summary.passage_parts += 1
            self._summary.passages += len(passages)
            for unit in dict.fromkeys(item.unit for item in passages):
                self._unit_passage_parts[unit].append(name)
        if self._ready:
            for entry in self._ready:
                if entry.unit is not None and entry.unit in self._unit_parts:
                    entry.parts = self._unit_parts.pop(entry.unit)
                    entry.passage_parts = self._unit_passage_parts.pop(entry.unit)
            ledger.write_segment(self._dir, self._seq + 1, self._ready)
            self._seq += 1
            for entry in self._ready:
                status = entry.status.value
                self._summary.statuses[status] = self._summary.statuses.get(status, 0) + 1
                if entry.status == FileStatus.REMOVED:
                    self._entries.pop(entry.path, None)
                    self._forget_inner(entry.path)
                else:
                    self._entries[entry.path] = entry
            self._ready = []
        for unit in [u for u in self._unit_parts if u not in self._works]:
            del self._unit_parts[unit]  # units that failed or were skipped: their rows are orphans
            del self._unit_passage_parts[unit]
        self._broken = False

    def _rows_table(self, batch: Sequence[_Buffered]) -> pa.Table:
        vectors = np.stack([item.vector for item in batch])
        bboxes = [
            None if item.row.bbox is None else dict(zip(("x0", "y0", "x1", "y1"), item.row.bbox, strict=True))
            for item in batch
        ]
        columns: dict[str, pa.Array] = {
            "unit": pa.array([item.unit for item in batch], pa.string()),
            "ordinal": pa.array([item.ordinal for item in batch], pa.int32()),
            "content_sha256": pa.array([item.work.content_sha256 for item in batch], pa.string()),
            "path": pa.array([item.work.file.path for item in batch], pa.string()),
            "kind": pa.array([str(item.row.kind) for item in batch], pa.string()),
            "page": pa.array([item.row.page for item in batch], pa.int32()),
            "bbox": pa.array(bboxes, BBOX_TYPE),
            "start_seconds": pa.array([item.row.start_seconds for item in batch], pa.float64()),
            "end_seconds": pa.array([item.row.end_seconds for item in batch], pa.float64()),
            "text": pa.array([item.row.text for item in batch], pa.string()),
            "section": pa.array([item.row.section for item in batch], pa.string()),
            "cells": pa.array([item.row.cells for item in batch], pa.string()),
            "title": pa.array([item.row.title for item in batch], pa.string()),
            "author": pa.array([item.row.author for item in batch], pa.string()),
            "taken_at": pa.array([item.row.taken_at for item in batch], pa.timestamp("us", tz="UTC")),
            # The file's, on every row: search filters by date without a join.
            "mtime": pa.array([item.work.file.mtime_ns // 1000 for item in batch],
                              pa.timestamp("us", tz="UTC")),
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), vectors.shape[1]),
            "space": pa.array([self._space_id] * len(batch), pa.string()),
            "passage": pa.array([item.row.passage for item in batch], pa.int32()),
        }
        return pa.Table.from_arrays([columns[f.name] for f in self._schema], schema=self._schema)

    # --- the end --------------------------------------------------------------------------

    def close(self) -> Summary:
        """Commit everything finished and fold the ledger into files.parquet. Files still in
        flight (begun, never ended) are left for the next run."""
        if self._closed:
            return self._summary
        try:
            if not self._broken:
                self._commit()
                state = ledger.read(self._dir)
                if state.segments:
                    ledger.write_files_table(self._dir, state)
        finally:
            self._closed = True
            self._lock.close()
        return self._summary

    def abandon(self) -> None:
        """Stop without committing what is buffered (as a kill would, but releasing the lock)."""
        self._closed = True
        self._lock.close()

    def __enter__(self) -> IndexWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        if kind is None or issubclass(kind, Exception):
            # On an exception, what finished is still committed: a rerun need not redo it.
            self.close()
        else:
            self.abandon()

    @property
    def entries(self) -> dict[str, Entry]:
        """The committed entry of each path of this shard (read-only use)."""
        return self._entries

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the writer is closed")

    def _check_work(self, work: Work) -> None:
        self._check_open()
        if self._works.get(work.unit) is not work:
            raise ValueError(f"{work.file.path}: this work was already ended, or is not this writer's")


def _passages_table(batch: Sequence[_BufferedPassage]) -> pa.Table:
    columns: dict[str, pa.Array] = {
        "unit": pa.array([item.unit for item in batch], pa.string()),
        "ordinal": pa.array([item.ordinal for item in batch], pa.int32()),
        "content_sha256": pa.array([item.work.content_sha256 for item in batch], pa.string()),
        "path": pa.array([item.work.file.path for item in batch], pa.string()),
        "kind": pa.array([str(item.passage.kind) for item in batch], pa.string()),
        "page": pa.array([item.passage.page for item in batch], pa.int32()),
        "start_seconds": pa.array([item.passage.start_seconds for item in batch], pa.float64()),
        "end_seconds": pa.array([item.passage.end_seconds for item in batch], pa.float64()),
        "section": pa.array([item.passage.section for item in batch], pa.string()),
        "text": pa.array([item.passage.text for item in batch], pa.string()),
    }
    return pa.Table.from_arrays([columns[f.name] for f in PASSAGE_SCHEMA], schema=PASSAGE_SCHEMA)


def _write_parquet(table: pa.Table, handle: IO[bytes]) -> None:
    pq.write_table(table, handle)
