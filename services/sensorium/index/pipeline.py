"""The index job's pipeline: files in, rows out.

    per file, at most `files_in_flight` at once: hash + sniff -> the kind table's producer
    (extract / transcribe / read -> chunk -> embed -> rows) -> writer

Files are worked on concurrently so that one file's extraction (PDF worker processes) or
decoding overlaps the model's batches of another's; the embedding runtime's Batcher merges the
items of every file in flight into full batches. Memory stays bounded by the files in flight,
not by the size of the folder: rows go to the writer as each piece of a file is embedded, and
the writer flushes a part every `rows_per_part` rows.

Every writer call happens on the event loop's thread (the writer is not thread-safe); the
blocking work (hashing, chunking with the tokenizer) runs in threads.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from sensorium.embedding.api import EMBEDDING, EmbeddingEngine, ImageOutcome, TextOutcome
from sensorium.engines import Engines, EnginesUnavailable
from sensorium.errors import Reason, SensoriumError, explain
from sensorium.index.inputs import JobError
from sensorium.index.kinds import KINDS, FileKind, ModelMismatch
from sensorium.index.layout import EmbeddingSpace, Passage, Row
from sensorium.index.progress import Progress, Tally
from sensorium.index.sniff import NotRegularFile, Sniffed, hash_and_sniff
from sensorium.index.writer import INNER_SEPARATOR, FileStat, IndexWriter, Work
from sensorium.settings import Settings

log = logging.getLogger("sensorium.index")
T = TypeVar("T")

EMBED_BATCH = 64
"""Items per embedding call: big enough for the Batcher to fill its batches across files,
small enough that a file's rows do not wait on another file's long list."""
OVERLOAD_ATTEMPTS = 6
"""Attempts at a call refused for overload before the file is recorded as a retryable error."""
WAIT_OUT = frozenset({Reason.OVERLOADED, Reason.NOT_READY, Reason.GPU_OUT_OF_MEMORY})
REMOTE_EMBED_CALLS = 4
"""Embedding calls in flight to a server: a few keep its batches full."""


@dataclass(frozen=True)
class ModelFacts:
    """What the index's manifest records about the embedding model."""

    space: EmbeddingSpace
    context_length: int


async def waiting_out_overload(call: Callable[[], Awaitable[T]],
                               may_retry: Callable[[], bool] = lambda: True) -> T:
    """`call()`, again after the delay the engine asked for while it is overloaded (and
    `may_retry()` says another try cannot repeat what the first did)."""
    for attempt in range(OVERLOAD_ATTEMPTS):
        try:
            return await call()
        except SensoriumError as error:
            if error.reason not in WAIT_OUT or attempt == OVERLOAD_ATTEMPTS - 1 or not may_retry():
                raise
            delay = error.retry_after_seconds or 0.5 * 2**attempt
            log.debug("engine busy, waiting", extra={"reason": error.reason.name, "seconds": delay})
            await asyncio.sleep(min(delay, 30.0))
    raise AssertionError("unreachable")


class Pipeline:
    """Turns the files of a plan into rows (see the module docstring)."""

    def __init__(self, engines: Engines, writer: IndexWriter, settings: Settings, facts: ModelFacts,
                 tally: Tally, progress: Progress | None = None, *, files_in_flight: int = 4) -> None:
        self.engines = engines
        self.writer = writer
        self.settings = settings
        self.facts = facts
        self.tally = tally
        self.progress = progress
        self.files_in_flight = files_in_flight
        calls = settings.embedding.queue_size // EMBED_BATCH if engines.local else REMOTE_EMBED_CALLS
        # In this process the runtime refuses more items in work than its queue holds: stay inside it.
        self._embed_calls = asyncio.Semaphore(max(1, calls))
        self._embedding: EmbeddingEngine | None = None

    async def run(self, todo: Iterable[FileStat]) -> None:
        """Process every file; stops at the first `EnginesUnavailable` (after the files in
        flight are left for the next run)."""
        self._embedding = await self.engines.open(EMBEDDING)
        slots = asyncio.Semaphore(self.files_in_flight)
        tasks: set[asyncio.Task[None]] = set()
        failure: list[BaseException] = []

        def ended(task: asyncio.Task[None]) -> None:
            tasks.discard(task)
            slots.release()
            if not task.cancelled() and task.exception() is not None:
                failure.append(task.exception())  # type: ignore[arg-type]

        try:
            for stat in todo:
                await slots.acquire()
                if failure:
                    slots.release()
                    break
                task = asyncio.ensure_future(self._one(stat))
                tasks.add(task)
                task.add_done_callback(ended)
            while tasks and not failure:
                await asyncio.wait(set(tasks), return_when=asyncio.FIRST_EXCEPTION)
        finally:
            for task in list(tasks):
                task.cancel()
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
        if failure:
            raise failure[0]

    async def _one(self, stat: FileStat) -> None:
        try:
            await self._file(stat)
        finally:
            self.tally.done += 1
            if self.progress is not None:
                self.progress.file_done()

    async def _file(self, stat: FileStat) -> None:
        path = Path(stat.path)
        try:
            sha256, sniffed = await asyncio.to_thread(hash_and_sniff, path)
        except NotRegularFile as exc:
            # Replaced by a link or a FIFO since it was listed: never followed, never read.
            self._count("error", None, Reason.UNSUPPORTED_TYPE)
            self.writer.fail(stat, Reason.UNSUPPORTED_TYPE,
                             f"{exc.strerror}; Sensorium indexes regular files only", retryable=False)
            return
        except OSError as exc:
            # Unreadable now (permissions, a file that vanished): tried again next run.
            self._count("error", None, Reason.INVALID_REQUEST)
            self.writer.fail(stat, Reason.INVALID_REQUEST, f"cannot read the file: {exc.strerror}",
                             retryable=True)
            return
        work = self.writer.begin(stat, sha256, sniffed.kind)
        if work is None:
            self._count("duplicate", sniffed.kind, None)
            return
        await self._index(work, sniffed, path, inner=False)

    async def _index(self, work: Work, sniffed: Sniffed, path: Path, *, inner: bool) -> None:
        """Produce the rows of a begun file (its bytes at `path`) and end its work."""
        if sniffed.kind is None:
            reason = sniffed.reason or Reason.UNSUPPORTED_TYPE
            self._count("skipped", None, reason)
            self.writer.skip(work, reason, sniffed.message)
            return
        kind = KINDS[sniffed.kind]
        note = None
        file = _File(self, work, kind, path, sniffed.mime, inner=inner)
        try:
            await self._produce(file)
        except RowCapReached as capped:
            note = (capped.error.reason, explain(capped.error, "operator"))
        except SensoriumError as error:
            if error.reason is Reason.UNSUPPORTED_TYPE:
                # The engine does not read this file here (legacy Office without LibreOffice):
                # skipped, and tried again by the next run, which may have what it lacked.
                self._count("skipped", kind.name, error.reason)
                self.writer.skip(work, error.reason, explain(error, "operator"), retryable=True)
                return
            self._count("error", kind.name, error.reason)
            self.writer.fail(work, error.reason, explain(error, "operator"))
            return
        except (EnginesUnavailable, JobError, ModelMismatch, asyncio.CancelledError):
            raise  # the job stops; this file stays in flight, for the next run
        except Exception as exc:
            # A bug of ours, not the user's file: logged with its traceback, tried again next run.
            log.exception("indexing a file failed unexpectedly", extra={"path": work.file.path})
            self._count("error", kind.name, Reason.INTERNAL_ERROR)
            self.writer.fail(work, Reason.INTERNAL_ERROR, f"internal error: {type(exc).__name__}",
                             retryable=True)
            return
        if note is None and file.limit is not None:
            note = (file.limit.reason, explain(file.limit, "operator"))
        self._count("indexed", kind.name, None)
        self.writer.finish(work, note)

    async def inner_file(self, parent: _File, name: str, data: bytes, error: SensoriumError | None) -> None:
        """Index a file found inside `parent` as a file of its own (see `FileWork.add_inner_file`).

        Its bytes go to a temporary file named like it (its extension tells Markdown or CSV
        among text); its files-table entry is at `<parent>!/<name>`, with the parent's mtime.
        """
        stat = FileStat(f"{parent.name}{INNER_SEPARATOR}{name}", len(data), parent.work.file.mtime_ns)
        if parent.inner and error is None:
            error = SensoriumError(
                Reason.PROCESSING_LIMIT,
                f"{name!r} is inside a file that is itself inside another; files inside files are "
                "indexed one level deep only", {"limit_depth": "1"})
        if error is not None:
            self._count("error", None, error.reason)
            self.writer.fail(stat, error.reason, explain(error, "operator"), parent=parent.work)
            return
        with tempfile.TemporaryDirectory(prefix="sensorium-inner-") as folder:
            path = Path(folder) / (_safe_name(name) or "file")
            await asyncio.to_thread(path.write_bytes, data)
            sha256, sniffed = await asyncio.to_thread(hash_and_sniff, path)
            work = self.writer.begin(stat, sha256, sniffed.kind, parent=parent.work)
            if work is None:
                return  # the same content as this attachment's own entry: it stands
            await self._index(work, sniffed, path, inner=True)

    async def _produce(self, file: _File) -> None:
        """The kind's producer; a file refused for overload before it made any row (a busy PDF
        pool or transcription queue) is tried again after the engine's delay."""
        await waiting_out_overload(lambda: file.kind.produce(file), lambda: not file.added)

    def _count(self, status: str, kind: str | None, reason: Reason | None) -> None:
        self.tally.statuses[status] += 1
        if kind is not None:
            self.tally.kinds[kind] += 1
        if reason is not None and status == "error":
            self.tally.errors[reason.name] += 1

    def add(self, work: Work, rows: Sequence[Row]) -> None:
        if rows:
            self.writer.add_rows(work, rows)
            for row in rows:
                self.tally.rows[row.kind] += 1

    def count_tokens(self, text: str) -> int:
        assert self._embedding is not None
        return self._embedding.count_tokens(text)

    async def embed(self, items: Sequence[Any], what: str) -> list[TextOutcome | ImageOutcome]:
        """The outcomes of `items` (texts or images) in order, in calls of EMBED_BATCH."""
        embedding = self._embedding
        assert embedding is not None

        async def call(batch: Sequence[Any]) -> Sequence[TextOutcome | ImageOutcome]:
            async with self._embed_calls:
                if what == "text":
                    return await waiting_out_overload(lambda: embedding.embed_texts(batch))
                return await waiting_out_overload(lambda: embedding.embed_images(batch))

        batches = [items[i:i + EMBED_BATCH] for i in range(0, len(items), EMBED_BATCH)]
        answers = await asyncio.gather(*(call(batch) for batch in batches))
        return [outcome for answer in answers for outcome in answer]

    async def vectors(self, items: Sequence[Any], what: str) -> list[Any]:
        """Vectors of `items` in order; None for an item that failed alone (logged: one bad
        embedded image does not fail its document)."""
        vectors: list[Any] = []
        for outcome in await self.embed(items, what) if items else []:
            if outcome.error is not None:
                log.info("an item was not embedded", extra={
                    "item": what, "reason": outcome.error.reason.name, "detail": outcome.error.message})
                vectors.append(None)
            else:
                vectors.append(outcome.vector)
        return vectors


class RowCapReached(Exception):
    """A file reached SENSORIUM_INDEX__MAX_ROWS_PER_FILE: its producer stops here."""

    def __init__(self, cap: int) -> None:
        super().__init__(cap)
        self.error = SensoriumError(
            Reason.PROCESSING_LIMIT,
            f"only the first {cap} rows of this file are indexed; the rest of it is not searchable",
            {"limit_rows": str(cap)}, setting="index.max_rows_per_file")


def _safe_name(name: str) -> str:
    """`name` as one harmless file name (attachment names come from the file's author)."""
    return "".join(c if c.isalnum() or c in "._- " else "_" for c in name)[-120:].lstrip(".- ")


class _File:
    """One file as its kind's producer sees it (`sensorium.index.kinds.FileWork`)."""

    def __init__(self, pipeline: Pipeline, work: Work, kind: FileKind, path: Path, mime: str = "",
                 *, inner: bool = False) -> None:
        self.pipeline, self.work, self.kind, self.path = pipeline, work, kind, path
        self.name = work.file.path
        self.mime = mime
        self.inner = inner
        self.engines = pipeline.engines
        self.settings = pipeline.settings
        self.context_length = pipeline.facts.context_length
        self.added = False
        self.rows = 0
        self.cap = pipeline.settings.index.max_rows_per_file
        self.limit: SensoriumError | None = None

    def cut_at_limit(self, error: SensoriumError) -> None:
        if self.limit is None:  # the first limit met is the one the files table shows
            self.limit = error

    def rows_left(self) -> int:
        return self.cap - self.rows

    def add_passages(self, passages: Sequence[Passage]) -> list[int]:
        for passage in passages:
            if passage.kind not in self.kind.rows:
                raise ValueError(f"the {self.kind.name} kind made a {passage.kind!r} passage; it "
                                 f"declares {', '.join(self.kind.rows)}")
        return self.pipeline.writer.add_passages(self.work, passages)

    def count_tokens(self, text: str) -> int:
        return self.pipeline.count_tokens(text)

    async def embed_texts(self, texts: Sequence[str]) -> list[Any]:
        return await self.pipeline.vectors(texts, "text")

    async def embed_images(self, images: Sequence[bytes]) -> list[Any]:
        return await self.pipeline.vectors(images, "image")

    async def embed_image(self, image: bytes) -> Any:
        (outcome,) = await self.pipeline.embed([image], "image")
        if outcome.error is not None:
            raise outcome.error
        return outcome.vector

    async def add_inner_file(self, name: str, data: bytes, error: SensoriumError | None = None) -> None:
        await self.pipeline.inner_file(self, name, data, error)

    def add(self, rows: Sequence[Row]) -> None:
        for row in rows:
            if row.kind not in self.kind.rows:
                raise ValueError(f"the {self.kind.name} kind made a {row.kind!r} row; it declares "
                                 f"{', '.join(self.kind.rows)}")
        self.added = self.added or bool(rows)
        kept = rows[:self.rows_left()]
        self.rows += len(kept)
        self.pipeline.add(self.work, kept)
        if len(kept) < len(rows):
            raise RowCapReached(self.cap)
