"""The index job: files in, rows out (`sensorium index`).

    listing -> plan (the writer skips what is unchanged) -> per file, at most `files_in_flight`
    at once: hash + sniff -> extract / transcribe / read -> chunk -> embed -> rows -> writer

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
import os
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sensorium.errors import Reason, SensoriumError, explain
from sensorium.index.backends import EMBED_BATCH, Embedded, Engines, EnginesUnavailable, ModelFacts
from sensorium.index.chunking import TextChunk, chunk_page, window_transcript
from sensorium.index.layout import SCHEMA_VERSION, EmbeddingSpace, Manifest, RowKind, Shard
from sensorium.index.sniff import FileKind, hash_and_sniff
from sensorium.index.writer import FileStat, IndexWriter, Row, Work
from sensorium.pdf.extractor import ImageResult, PageResult
from sensorium.settings import ServiceName, Settings

if TYPE_CHECKING:
    from sensorium.device import DeviceGate
    from sensorium.runtimes import Runtimes

log = logging.getLogger("sensorium.index")

EXIT_CONFIG, EXIT_OUTPUT, EXIT_TRANSIENT = 3, 4, 5
"""Exit codes of `sensorium index` besides 0 (it ran) and 2 (bad usage): the configuration is
wrong (settings, a model that does not load, an index of another model); the output cannot be
used (not writable, locked, not an index); worth retrying (the server is unreachable)."""


class JobError(Exception):
    """The job cannot run or go on; `code` is its exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


# --- inputs ------------------------------------------------------------------------------


def list_inputs(paths: Sequence[Path], manifest: Path | None, exclude: Path | None = None) -> list[str]:
    """Every file under `paths` and those `manifest` lists (one path per line; blank lines and
    lines starting with # are ignored), sorted, each once; `exclude` (the output) is not
    walked. A path that does not exist is a configuration error: a typo must not look like an
    empty folder (and would retire that folder's rows)."""
    wanted = list(paths)
    if manifest is not None:
        try:
            lines = manifest.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise JobError(f"cannot read the manifest {manifest}: {exc.strerror}", EXIT_CONFIG) from None
        wanted += [Path(line.strip()) for line in lines if line.strip() and not line.lstrip().startswith("#")]
    skip = os.path.realpath(exclude) if exclude is not None else None
    found: set[str] = set()
    for path in wanted:
        if path.is_dir():
            for root, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if os.path.realpath(os.path.join(root, d)) != skip)
                found.update(os.path.join(root, name) for name in files)
        elif path.is_file():
            found.add(str(path))
        else:
            raise JobError(f"{path}: no such file or folder (check the path; nothing was indexed)",
                           EXIT_CONFIG)
    return sorted(found)


def resolve_shard(flag: str | None, settings: Settings, environ: dict[str, str] | None = None) -> Shard:
    """`--shard I/N`; else JOB_COMPLETION_INDEX of SENSORIUM_INDEX__SHARD_COUNT (an Indexed
    Job); else the one shard."""
    environ = dict(os.environ) if environ is None else environ
    if flag:
        try:
            return Shard.parse(flag)
        except ValueError as exc:
            raise JobError(f"--shard {flag}: {exc}", 2) from None
    count = settings.index.shard_count
    index_text = environ.get("JOB_COMPLETION_INDEX")
    if index_text is None:
        if count > 1:
            raise JobError(
                f"SENSORIUM_INDEX__SHARD_COUNT is {count} but this is no Indexed Job "
                "(JOB_COMPLETION_INDEX is unset): pass --shard I/N", EXIT_CONFIG)
        return Shard(0, 1)
    try:
        index = int(index_text)
        return Shard(index, count)
    except ValueError:
        raise JobError(
            f"JOB_COMPLETION_INDEX={index_text} is not a shard of SENSORIUM_INDEX__SHARD_COUNT="
            f"{count}: set the setting to the Job's completions", EXIT_CONFIG) from None


def manifest_for(facts: ModelFacts, settings: Settings) -> Manifest:
    """The manifest of an index this job writes: the space, and every option that changes rows."""
    options: dict[str, Any] = {
        "context_length": facts.context_length,
        "chunk_overlap_tokens": settings.index.chunk_overlap_tokens,
        "min_image_side": settings.index.min_image_side,
        "transcription_model": settings.transcription.model,
        "ocr": settings.pdf.ocr,
        "ocr_language": settings.pdf.ocr_language,
    }
    space = facts.space
    return Manifest(EmbeddingSpace(space.model, space.pretrained, space.weights_sha256, space.dimension),
                    options, SCHEMA_VERSION)


# --- progress ----------------------------------------------------------------------------


@dataclass
class Tally:
    """What the job did, for the progress line and the summary."""

    listed: int = 0
    todo: int = 0
    unchanged: int = 0
    removed: int = 0
    done: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    kinds: Counter[str] = field(default_factory=Counter)
    rows: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    started: float = field(default_factory=time.monotonic)

    def to_json(self, out: Path, shard: Shard, parts: int) -> dict[str, Any]:
        seconds = time.monotonic() - self.started
        total_rows = sum(self.rows.values())
        return {
            "index": str(out),
            "shard": str(shard),
            "files": {
                "listed": self.listed, "unchanged": self.unchanged, "removed": self.removed,
                "processed": self.done, "by_status": dict(self.statuses), "by_kind": dict(self.kinds),
            },
            "rows": {"total": total_rows, "by_kind": dict(self.rows)},
            "parts_written": parts,
            "errors": dict(self.errors),
            "seconds": round(seconds, 3),
            "files_per_second": round(self.done / seconds, 3) if seconds else 0.0,
            "rows_per_second": round(total_rows / seconds, 3) if seconds else 0.0,
        }


class Progress:
    """A progress bar (files, rate, ETA, errors) on a terminal; a log line every
    `every` seconds otherwise (a Kubernetes pod's log)."""

    def __init__(self, tally: Tally, *, bar: bool, every: float = 10.0) -> None:
        self.tally = tally
        self.every = every
        self._last = time.monotonic()
        self._bar: Any = None
        if bar:
            from tqdm import tqdm

            self._bar = tqdm(total=tally.todo, unit="file", dynamic_ncols=True, leave=True)

    def file_done(self) -> None:
        tally = self.tally
        if self._bar is not None:
            self._bar.set_postfix(rows=sum(tally.rows.values()), errors=sum(tally.errors.values()),
                                  refresh=False)
            self._bar.update(1)
            return
        now = time.monotonic()
        if now - self._last >= self.every:
            self._last = now
            rate = tally.done / max(now - tally.started, 1e-9)
            left = (tally.todo - tally.done) / rate if rate else 0.0
            log.info("indexing", extra={
                "files_done": tally.done, "files_todo": tally.todo, "files_per_second": round(rate, 2),
                "eta_seconds": round(left), "rows": sum(tally.rows.values()),
                "errors": sum(tally.errors.values())})

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


# --- the pipeline ------------------------------------------------------------------------


class Pipeline:
    """Turns the files of a plan into rows (see the module docstring)."""

    def __init__(self, engines: Engines, writer: IndexWriter, settings: Settings, facts: ModelFacts,
                 tally: Tally, progress: Progress | None = None) -> None:
        self.engines = engines
        self.writer = writer
        self.settings = settings
        self.facts = facts
        self.tally = tally
        self.progress = progress
        index = settings.index
        workers = settings.pdf.workers or os.cpu_count() or 1
        self.files_in_flight = index.files_in_flight or max(4, 2 * workers)

    async def run(self, todo: Iterable[FileStat]) -> None:
        """Process every file; stops at the first `EnginesUnavailable` (after the files in
        flight are left for the next run)."""
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
        except OSError as exc:
            # Unreadable now (permissions, a file that vanished): tried again next run.
            self._count("error", None, Reason.INVALID_REQUEST)
            self.writer.fail(stat, Reason.INVALID_REQUEST, f"cannot read the file: {exc.strerror}",
                             retryable=True)
            return
        kind = sniffed.kind
        work = self.writer.begin(stat, sha256, kind.value if kind else None)
        if work is None:
            self._count("duplicate", kind, None)
            return
        if kind is None:
            reason = sniffed.reason or Reason.UNSUPPORTED_TYPE
            self._count("skipped", None, reason)
            self.writer.skip(work, reason, sniffed.message)
            return
        try:
            if kind is FileKind.PDF:
                await self._pdf(work, path)
            elif kind is FileKind.AUDIO:
                await self._audio(work, path)
            else:
                await self._image(work, path)
        except SensoriumError as error:
            self._count("error", kind, error.reason)
            self.writer.fail(work, error.reason, explain(error, "operator"))
            return
        except (EnginesUnavailable, JobError, asyncio.CancelledError):
            raise  # the job stops; this file stays in flight, for the next run
        except Exception as exc:
            # A bug of ours, not the user's file: logged with its traceback, tried again next run.
            log.exception("indexing a file failed unexpectedly", extra={"path": stat.path})
            self._count("error", kind, Reason.INTERNAL_ERROR)
            self.writer.fail(work, Reason.INTERNAL_ERROR, f"internal error: {type(exc).__name__}",
                             retryable=True)
            return
        self._count("indexed", kind, None)
        self.writer.finish(work)

    def _count(self, status: str, kind: FileKind | None, reason: Reason | None) -> None:
        self.tally.statuses[status] += 1
        if kind is not None:
            self.tally.kinds[kind.value] += 1
        if reason is not None and status == "error":
            self.tally.errors[reason.name] += 1

    def _add(self, work: Work, rows: list[Row]) -> None:
        if rows:
            self.writer.add_rows(work, rows)
            for row in rows:
                self.tally.rows[row.kind.value] += 1

    # --- kinds ---

    async def _pdf(self, work: Work, path: Path) -> None:
        overlap = self.settings.index.chunk_overlap_tokens
        min_side = self.settings.index.min_image_side
        async for items in self.engines.extract_pdf(path):
            pages = [item for item in items if isinstance(item, PageResult) and item.error is None]
            chunks = await asyncio.to_thread(self._chunk_pages, pages, overlap)
            images = [item for item in items if isinstance(item, ImageResult) and item.error is None
                      and item.data and min(item.width, item.height) >= min_side]
            for item in items:
                if isinstance(item, PageResult | ImageResult) and item.error is not None:
                    log.info("part of a PDF not indexed", extra={
                        "path": str(path), "page": item.page_number, "reason": item.error.reason.name,
                        "detail": item.error.message})
            text_vectors, image_vectors = await asyncio.gather(
                self._embed_texts([c.text for c in chunks]), self._embed_images([i.data for i in images]))
            rows = [Row(RowKind.PDF_TEXT, v, text=c.text, page=c.page, bbox=c.bbox)
                    for c, v in zip(chunks, text_vectors, strict=True) if v is not None]
            rows += [Row(RowKind.PDF_IMAGE, v, page=i.page_number, bbox=_box(i.bbox))
                     for i, v in zip(images, image_vectors, strict=True) if v is not None]
            self._add(work, rows)

    def _chunk_pages(self, pages: list[PageResult], overlap: int) -> list[TextChunk]:
        return [chunk for page in pages for chunk in chunk_page(
            page.page_number, page.blocks, text=page.text, count_tokens=self.engines.count_tokens,
            context_length=self.facts.context_length, overlap_tokens=overlap)]

    async def _audio(self, work: Work, path: Path) -> None:
        transcript = await self.engines.transcribe(path)
        expected = self.writer.manifest.options.get("transcription_model")
        if transcript.model and expected and transcript.model != expected:
            raise JobError(
                f"the transcripts come from {transcript.model} but the index records "
                f"{expected} (SENSORIUM_TRANSCRIPTION__MODEL): set it as the server has it",
                EXIT_CONFIG)
        windows = await asyncio.to_thread(
            window_transcript, transcript.segments, count_tokens=self.engines.count_tokens,
            context_length=self.facts.context_length)
        vectors = await self._embed_texts([w.text for w in windows])
        self._add(work, [Row(RowKind.AUDIO, v, text=w.text, start_seconds=w.start_seconds,
                             end_seconds=w.end_seconds)
                         for w, v in zip(windows, vectors, strict=True) if v is not None])

    async def _image(self, work: Work, path: Path) -> None:
        data = await asyncio.to_thread(path.read_bytes)
        (outcome,) = await self.engines.embed_images([data])
        if isinstance(outcome, SensoriumError):
            raise outcome  # the file is the one item: its error is the file's
        self._add(work, [Row(RowKind.IMAGE, outcome)])

    async def _embed_texts(self, texts: list[str]) -> list[Any]:
        return await self._embed(texts, self.engines.embed_texts, "text")

    async def _embed_images(self, images: list[bytes]) -> list[Any]:
        return await self._embed(images, self.engines.embed_images, "image")

    async def _embed(self, items: list[Any], embed: Any, what: str) -> list[Any]:
        """Vectors of `items` in order, in calls of EMBED_BATCH; None for an item that failed
        alone (logged: one bad embedded image does not fail its document)."""
        batches = [items[i:i + EMBED_BATCH] for i in range(0, len(items), EMBED_BATCH)]
        answers: list[list[Embedded]] = await asyncio.gather(*(embed(b) for b in batches))
        vectors: list[Any] = []
        for answer in answers:
            for outcome in answer:
                if isinstance(outcome, SensoriumError):
                    log.info("an item was not embedded", extra={"item": what, "reason": outcome.reason.name,
                                                                "detail": outcome.message})
                    vectors.append(None)
                else:
                    vectors.append(outcome)
        return vectors


def _box(bbox: Any) -> tuple[float, float, float, float] | None:
    return None if bbox is None else (bbox.x0, bbox.y0, bbox.x1, bbox.y1)



# --- the job -----------------------------------------------------------------------------


@dataclass(frozen=True)
class JobRequest:
    """What `sensorium index` was asked (its flags); everything else comes from the settings."""

    inputs: list[Path]
    out: Path
    shard: Shard
    manifest: Path | None = None
    server: str | None = None
    """HOST:PORT of a deployment to call; None: the runtimes run in this process."""
    client_options: dict[str, Any] = field(default_factory=dict)
    """`sensorium.client.Client` keywords (TLS, token, timeout) for `server`."""
    progress_bar: bool = False


async def run_job(request: JobRequest, settings: Settings, engines: Engines | None = None) -> dict[str, Any]:
    """Run the job; the summary (see `Tally.to_json`). Raises `JobError` with its exit code.

    `engines`: engines to use and leave open, for a caller that runs several jobs on models it
    loaded once (bench/index.py); None: made from the request (`--server` or in-process),
    started and closed here."""
    from sensorium.errors import ServiceStartError
    from sensorium.index.layout import IndexBusyError, IndexLayoutError, IndexMismatchError

    tally = Tally()
    files = [path for path in list_inputs(request.inputs, request.manifest, exclude=request.out)
             if request.shard.owns(path)]
    owned = engines is None
    engines = engines if engines is not None else await _engines(request, settings)
    try:
        try:
            await engines.start()
            facts = await engines.describe()
        except ServiceStartError as exc:
            raise JobError(f"cannot start the models: {exc}", EXIT_CONFIG) from None
        except SensoriumError as exc:
            raise JobError(f"the embedding model cannot be used: {exc.message}", EXIT_CONFIG) from None
        except EnginesUnavailable as exc:
            raise JobError(f"{exc}; nothing was indexed, rerun when it answers", EXIT_TRANSIENT) from None
        manifest = manifest_for(facts, settings)
        index = settings.index
        try:
            writer = IndexWriter(request.out, request.shard, manifest, rows_per_part=index.rows_per_part,
                                 commit_seconds=index.commit_seconds)
        except IndexMismatchError as exc:
            raise JobError(f"{exc} (to change the model, the options or the shard count, index "
                           "into a new folder)",
                           EXIT_CONFIG) from None
        except (IndexBusyError, IndexLayoutError) as exc:
            raise JobError(str(exc), EXIT_OUTPUT) from None
        except OSError as exc:
            raise JobError(f"cannot write the index at {request.out}: {exc.strerror}",
                           EXIT_OUTPUT) from None
        with writer:
            stats = []
            for path in files:
                try:
                    stats.append(FileStat.of(path))
                except OSError:
                    continue  # gone since it was listed: as if it had not been listed
            plan = writer.plan(stats)
            tally.listed, tally.todo = len(stats), len(plan.todo)
            tally.unchanged, tally.removed = len(plan.unchanged), len(plan.removed)
            log.info("index plan", extra={"shard": str(request.shard), "listed": tally.listed,
                                          "todo": tally.todo, "unchanged": tally.unchanged,
                                          "removed": tally.removed})
            progress = Progress(tally, bar=request.progress_bar)
            try:
                await Pipeline(engines, writer, settings, facts, tally, progress).run(plan.todo)
            except EnginesUnavailable as exc:
                raise JobError(f"{exc}; what finished is saved, rerun to go on", EXIT_TRANSIENT) from None
            finally:
                progress.close()
        summary = writer.close()
        return tally.to_json(request.out, request.shard, summary.parts)
    finally:
        if owned:
            await engines.close()


async def _engines(request: JobRequest, settings: Settings) -> Any:
    from sensorium.index.backends import InProcessEngines, RemoteEngines

    if request.server:
        from sensorium.client import Client

        return RemoteEngines(Client(request.server, **request.client_options), settings)
    return InProcessEngines(await local_runtimes(settings))


JOB_SERVICES: list[ServiceName] = ["pdf", "transcription", "embedding"]


async def local_runtimes(settings: Settings, *, device: DeviceGate | None = None) -> Runtimes:
    """The runtimes of a job without `--server`, not yet started.

    The CPUs are split as for the server (`split_cpus`), but when the embedding model runs on
    the CPU and SENSORIUM_EMBEDDING__CPU_THREADS is unset, it gets every CPU of the process:
    there it is the slowest stage by far (CLIP ViT-B/32 on 1 core: ~3.5 images/s) while PDF
    extraction and Whisper wait on it, idle, most of the time (docs/benchmarks.md, Index job).
    PDF and transcription keep their shares. Deciding the device here resolves the process's
    one `DeviceGate` early, the gate the runtimes then use: probed once, warned about once.
    `device` replaces the gate (tests fake the machine).
    """
    from sensorium.device import DeviceError, DeviceGate
    from sensorium.registry import SERVICES
    from sensorium.runtimes import Runtimes, cpu_split

    gate = device or DeviceGate(
        settings.device, [library for name in JOB_SERVICES for library in SERVICES[name].libraries])
    budget = cpu_split(settings, JOB_SERVICES)
    if not settings.embedding.cpu_threads:
        try:
            on_cpu = not (await gate.plan(budget.shares["embedding"])).is_cuda
        except DeviceError:
            on_cpu = False  # device=cuda without CUDA: starting the model fails and says why
        if on_cpu:
            shares = {**budget.shares, "embedding": budget.cpus}
            log.info(
                "the embedding model runs on the CPU and gets all %d CPUs (the split gave it "
                "%d; pdf %d, transcription %d as split): it is the job's slowest stage there; "
                "SENSORIUM_EMBEDDING__CPU_THREADS=N sets its threads instead",
                budget.cpus, budget.shares["embedding"], shares["pdf"], shares["transcription"])
            budget = replace(budget, shares=shares)
    return Runtimes(settings, JOB_SERVICES, device=gate, cpu=budget)
