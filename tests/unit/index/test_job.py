"""The index job's own logic with fake engines: listing, shards, what becomes of failures, and
how many files are in flight. The real engines are proven end to end in
tests/e2e/test_index_job.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from sensorium.embedding.api import EMBEDDING, ImageOutcome, SpaceInfo, TextOutcome
from sensorium.embedding.api import Space as ModelSpace
from sensorium.engines import Engines, EnginesUnavailable
from sensorium.errors import Reason, SensoriumError
from sensorium.exits import Exit
from sensorium.index.inputs import JobError, list_inputs, resolve_shard
from sensorium.index.job import JobRequest, files_in_flight, manifest_for, run_job
from sensorium.index.layout import EmbeddingSpace, Shard
from sensorium.index.pipeline import ModelFacts, Pipeline
from sensorium.index.progress import Tally
from sensorium.index.reader import IndexReader
from sensorium.index.writer import FileStat, IndexWriter
from sensorium.media.api import MEDIA, ImageText, TextStatus
from sensorium.pdf.api import PDF, PageResult
from sensorium.settings import Settings

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64  # sniffs as an image; the fake "decodes" anything
EXIT_CONFIG = Exit.CONFIG


class FakeEmbedding:
    """Embeds an image to a vector from its bytes; `broken` bytes fail as the item's error,
    `crash` bytes raise a bug, `unreachable` stops the server."""

    def __init__(self, *, delay: float = 0.0) -> None:
        self.delay = delay
        self.in_flight = 0
        self.most_in_flight = 0

    async def describe(self) -> SpaceInfo:
        return SpaceInfo(ModelSpace("fake", "", "0" * 64, 4), 77, "softmax", 1, 1, "cpu")

    def count_tokens(self, text: str) -> int:
        return len(text.split()) + 2

    async def embed_texts(self, texts: Sequence[str], **_: object) -> list[object]:
        raise AssertionError("no texts in these tests")

    async def embed_images(self, images: Sequence[bytes], **_: object) -> list[ImageOutcome]:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay)
            outcomes: list[ImageOutcome] = []
            for data in images:
                if data.endswith(b"broken"):
                    error = SensoriumError(Reason.IMAGE_UNDECODABLE, "cannot decode")
                    outcomes.append(ImageOutcome(error=error))
                elif data.endswith(b"crash"):
                    raise KeyError("a bug")
                elif data.endswith(b"unreachable"):
                    raise EnginesUnavailable("the server at h:1 cannot be used")
                else:
                    outcomes.append(ImageOutcome(np.ones(4, dtype=np.float32) / 2))
            return outcomes
        finally:
            self.in_flight -= 1


class FakePdf:
    async def extract(self, path: Path, options: object) -> AsyncIterator[list]:  # type: ignore[type-arg]
        raise SensoriumError(Reason.PDF_UNREADABLE, "not a PDF")
        yield []  # pragma: no cover


class FakeMedia:
    """Hands an image file's bytes back as its preview: the fake embedding sees the file."""

    async def read_image_text(self, path: Path, options: object) -> ImageText:
        return ImageText([], TextStatus.SKIPPED, preview=await asyncio.to_thread(Path(path).read_bytes))


class FakeEngines(Engines):
    """The one seam with fake engines: embedding as above, images read as they are, every PDF
    unreadable."""

    local = True

    def __init__(self, *, delay: float = 0.0) -> None:
        self.embedding = FakeEmbedding(delay=delay)
        self.opens = self.closes = 0

    @property
    def most_in_flight(self) -> int:
        return self.embedding.most_in_flight

    async def open(self, key):  # type: ignore[no-untyped-def]
        if key == EMBEDDING:
            self.opens += 1
            return self.embedding
        if key == PDF:
            return FakePdf()
        if key == MEDIA:
            return FakeMedia()
        raise AssertionError(f"no {key.name} in these tests")

    async def close(self) -> None:
        self.closes += 1


def _run(folder: Path, out: Path, engines: FakeEngines, files_in_flight: int = 4) -> Tally:
    settings = Settings(index={"commit_seconds": 0.01})
    info = asyncio.run(engines.embedding.describe())
    facts = ModelFacts(EmbeddingSpace.of(info.space), info.context_length)
    tally = Tally()
    with IndexWriter(out, Shard(), manifest_for(facts, settings)) as writer:
        plan = writer.plan(FileStat.of(p) for p in list_inputs([folder], None))
        pipeline = Pipeline(engines, writer, settings, facts, tally, files_in_flight=files_in_flight)
        asyncio.run(pipeline.run(plan.todo))
    return tally


def test_listing_walks_folders_and_the_manifest_and_skips_the_output(tmp_path):
    (tmp_path / "in" / "deep").mkdir(parents=True)
    (tmp_path / "in" / "a.png").write_bytes(PNG)
    (tmp_path / "in" / "deep" / "b.png").write_bytes(PNG)
    (tmp_path / "in" / "out").mkdir()
    (tmp_path / "in" / "out" / "part.parquet").write_bytes(b"x")
    (tmp_path / "other.png").write_bytes(PNG)
    manifest = tmp_path / "list.txt"
    manifest.write_text(f"# extra files\n\n{tmp_path / 'other.png'}\n")
    found = list_inputs([tmp_path / "in"], manifest, exclude=tmp_path / "in" / "out")
    assert [Path(p).name for p in found] == ["a.png", "b.png", "other.png"]
    with pytest.raises(JobError) as missing:
        list_inputs([tmp_path / "typo"], None)
    assert missing.value.code == EXIT_CONFIG and "typo" in str(missing.value)


def test_the_shard_comes_from_the_flag_or_the_indexed_job():
    settings = Settings(index={"shard_count": 3})
    assert resolve_shard("1/2", settings, {}) == Shard(1, 2)
    assert resolve_shard(None, settings, {"JOB_COMPLETION_INDEX": "2"}) == Shard(2, 3)
    assert resolve_shard(None, Settings(), {}) == Shard(0, 1)
    with pytest.raises(JobError) as outside:
        resolve_shard(None, settings, {})  # a count of 3 but no Indexed Job: which shard?
    assert outside.value.code == EXIT_CONFIG
    with pytest.raises(JobError) as past:
        resolve_shard(None, settings, {"JOB_COMPLETION_INDEX": "3"})
    assert "SENSORIUM_INDEX__SHARD_COUNT" in str(past.value)


def test_item_errors_and_bugs_become_rows_of_the_files_table(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "good.png").write_bytes(PNG + b"good")
    (folder / "bad.png").write_bytes(PNG + b"broken")
    (folder / "bug.png").write_bytes(PNG + b"crash")
    (folder / "fake.pdf").write_bytes(b"%PDF-1.4 nothing")
    tally = _run(folder, tmp_path / "out", FakeEngines())
    files = {Path(r["path"]).name: r for r in IndexReader(tmp_path / "out").files().to_pylist()}
    assert files["good.png"]["status"] == "indexed" and files["good.png"]["rows"] == 1
    assert (files["bad.png"]["reason"], files["bad.png"]["retryable"]) == ("IMAGE_UNDECODABLE", False)
    # A bug of ours is not the user's bad file: tried again next run, and says so.
    assert (files["bug.png"]["reason"], files["bug.png"]["retryable"]) == ("INTERNAL_ERROR", True)
    assert files["fake.pdf"]["reason"] == "PDF_UNREADABLE"
    assert tally.errors == {"IMAGE_UNDECODABLE": 1, "INTERNAL_ERROR": 1, "PDF_UNREADABLE": 1}


def test_an_unreachable_server_stops_the_job_and_records_no_error_for_it(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.png").write_bytes(PNG + b"a")
    (folder / "b.png").write_bytes(PNG + b"unreachable")
    with pytest.raises(EnginesUnavailable):
        _run(folder, tmp_path / "out", FakeEngines(), files_in_flight=1)
    files = {Path(r["path"]).name: r for r in IndexReader(tmp_path / "out").files().to_pylist()}
    assert files["a.png"]["status"] == "indexed"  # finished before: kept
    assert "b.png" not in files  # in flight: done by the next run, not an error row


def test_files_in_flight_are_bounded(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(20):
        (folder / f"{i:02d}.png").write_bytes(PNG + bytes([i]))
    engines = FakeEngines(delay=0.01)
    tally = _run(folder, tmp_path / "out", engines, files_in_flight=3)
    assert tally.statuses["indexed"] == 20
    assert 2 <= engines.most_in_flight <= 3  # overlapping, never more than asked


def test_engines_handed_to_the_job_are_used_and_left_open_for_the_next_run(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.png").write_bytes(PNG + b"a")
    engines = FakeEngines()
    settings = Settings(index={"commit_seconds": 0.01})

    async def twice() -> list[dict[str, object]]:
        return [await run_job(JobRequest([folder], tmp_path / f"out{i}", Shard()), settings, engines)
                for i in range(2)]

    first, second = asyncio.run(twice())
    assert first["rows"] == second["rows"] == {"total": 1, "by_kind": {"image": 1}}
    assert engines.opens >= 2 and engines.closes == 0  # a model loaded once serves both runs


def test_files_in_flight_follow_the_process_cpu_budget_not_the_machine(monkeypatch):
    """A 2-CPU pod on a 64-core node admits files for 2 CPUs, not 64."""
    monkeypatch.setattr("os.cpu_count", lambda: 64)
    monkeypatch.setattr("sensorium.runtimes.available_cpus", lambda: 2)
    assert files_in_flight(Settings()) == 4  # twice the budget, at least 4
    monkeypatch.setattr("sensorium.runtimes.available_cpus", lambda: 6)
    assert files_in_flight(Settings()) == 12
    assert files_in_flight(Settings(cpus=3)) == 6  # SENSORIUM_CPUS is the budget when set
    assert files_in_flight(Settings(pdf={"workers": 5})) == 10  # the PDF workers, when set
    assert files_in_flight(Settings(index={"files_in_flight": 7})) == 7


def test_a_file_replaced_by_a_link_after_the_listing_is_an_error_row_and_never_read(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.png").write_bytes(PNG + b"a")
    (folder / "b.png").write_bytes(PNG + b"b")
    settings = Settings(index={"commit_seconds": 0.01})
    engines = FakeEngines()
    info = asyncio.run(engines.embedding.describe())
    facts = ModelFacts(EmbeddingSpace.of(info.space), info.context_length)
    with IndexWriter(tmp_path / "out", Shard(), manifest_for(facts, settings)) as writer:
        plan = writer.plan(FileStat.of(p) for p in list_inputs([folder], None))
        (folder / "b.png").unlink()
        (folder / "b.png").symlink_to("/dev/zero")  # swapped between listing and reading
        asyncio.run(Pipeline(engines, writer, settings, facts, Tally()).run(plan.todo))
    files = {Path(r["path"]).name: r for r in IndexReader(tmp_path / "out").files().to_pylist()}
    assert files["a.png"]["status"] == "indexed"
    assert (files["b.png"]["status"], files["b.png"]["reason"], files["b.png"]["retryable"]) == (
        "error", "UNSUPPORTED_TYPE", False)


def test_a_file_past_the_row_cap_is_indexed_with_its_first_rows_and_says_so(tmp_path, monkeypatch):
    """A small file can draw the same text thousands of times: its rows stop at the cap, its
    producer is stopped, and the files table says the rest is not searchable."""
    from sensorium.index import kinds
    from sensorium.index.layout import Row

    produced: list[int] = []

    async def endless(work) -> None:  # 1,000 pieces, handed over in batches, as a PDF's pages
        for start in range(0, 1000, 10):
            produced.append(start)
            vectors = [np.ones(4, dtype=np.float32) / 2] * 10
            work.add([Row("echo", v, text=str(start + i)) for i, v in enumerate(vectors)])

    kind = kinds.FileKind("echoes", "echo files", {"echo": "an echo"}, endless,
                          sniff=lambda head, path: "text/x-echo" if head.startswith(b"ECHO") else None)
    monkeypatch.setitem(kinds.KINDS, "echoes", kind)
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "loud.echo").write_bytes(b"ECHO")
    settings = Settings(index={"commit_seconds": 0.01, "max_rows_per_file": 25})
    engines = FakeEngines()
    info = asyncio.run(engines.embedding.describe())
    facts = ModelFacts(EmbeddingSpace.of(info.space), info.context_length)
    with IndexWriter(tmp_path / "out", Shard(), manifest_for(facts, settings)) as writer:
        plan = writer.plan(FileStat.of(p) for p in list_inputs([folder], None))
        asyncio.run(Pipeline(engines, writer, settings, facts, Tally()).run(plan.todo))
    (entry,) = IndexReader(tmp_path / "out").files().to_pylist()
    assert (entry["status"], entry["rows"], entry["reason"]) == ("indexed", 25, "PROCESSING_LIMIT")
    assert "first 25 rows" in entry["message"] and "SENSORIUM_INDEX__MAX_ROWS_PER_FILE" in entry["message"]
    assert len(produced) == 3  # stopped at the batch that passed the cap, not after 100 batches


class CutPdf:
    """A PDF engine whose one page came back cut at the page's character limit."""

    async def extract(self, path: Path, options: object) -> AsyncIterator[list]:  # type: ignore[type-arg]
        limit = SensoriumError(Reason.PROCESSING_LIMIT, "page 1 has 6,000,000 characters of text, more than "
                               "the limit of 100,000 per page", {"limit_chars": "100000"},
                               setting="text.max_chars_per_page")
        yield [PageResult(1, "the same words " * 10, has_text_layer=True, limit=limit)]


class TextEmbedding(FakeEmbedding):
    async def embed_texts(self, texts: Sequence[str], **_: object) -> list[TextOutcome]:
        return [TextOutcome(np.ones(4, dtype=np.float32) / 2) for _ in texts]


def test_a_pdf_cut_at_a_text_limit_stays_indexed_and_its_entry_says_so(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "repeats.pdf").write_bytes(b"%PDF-1.7 the engine is faked")
    engines = FakeEngines()
    engines.embedding = TextEmbedding()
    engines.open = lambda key: _async(CutPdf() if key == PDF else engines.embedding)  # type: ignore[method-assign]
    _run(folder, tmp_path / "out", engines)
    (entry,) = IndexReader(tmp_path / "out").files().to_pylist()
    assert (entry["status"], entry["reason"]) == ("indexed", "PROCESSING_LIMIT") and entry["rows"] >= 1
    assert "100,000 per page" in entry["message"] and "SENSORIUM_TEXT__MAX_CHARS_PER_PAGE" in entry["message"]


async def _async(value: object) -> object:
    return value
