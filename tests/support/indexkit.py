"""Helpers for the index tests: a stand-in job that turns files into deterministic rows."""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from sensorium.errors import Reason
from sensorium.index.layout import EmbeddingSpace, Manifest, Shard
from sensorium.index.reader import IndexReader
from sensorium.index.writer import FileStat, IndexWriter, Passage, Plan, Row, Summary, Work

DIMENSION = 8
SPACE = EmbeddingSpace("test-model", "test-tag", "ab" * 32, DIMENSION)
MANIFEST = Manifest(SPACE, {"chunk_overlap_tokens": 10, "min_image_side": 64})


def rows_for(data: bytes) -> list[Row]:
    """Rows that follow from the content alone: 1-4 PDF text rows with a page and a bbox."""
    digest = hashlib.sha256(data).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "big"))
    rows = []
    for i in range(1 + digest[0] % 4):
        vector = rng.standard_normal(DIMENSION)
        rows.append(
            Row(
                "pdf_text",
                vector / np.linalg.norm(vector),
                text=f"{data.decode()} part {i}",
                page=i + 1,
                bbox=(1.0, 2.0 * i, 3.0, 2.0 * i + 1),
            )
        )
    return rows


class Job:
    """Runs IndexWriter over a folder the way the real job does; records what it began."""

    def __init__(
        self, out: Path, shard: Shard | None = None, manifest: Manifest = MANIFEST, **options: Any
    ) -> None:
        shard = shard or Shard()
        self.out, self.shard, self.manifest, self.options = out, shard, manifest, options
        self.begun: list[str] = []
        self.embedded: list[str] = []
        self.plan = Plan()
        self.summary = Summary()

    def run(
        self, files: Iterable[Path], fail: Callable[[bytes], tuple[Reason, bool] | None] = lambda _: None,
        inner: Callable[[bytes], list[tuple[str, bytes]]] = lambda _: [],
    ) -> Job:
        """`inner(data)` lists the files inside a file (name, bytes), indexed as the pipeline
        does a mail's attachments; an inner file whose bytes are b"BAD" is recorded as an error
        without being read (as a nested attachment is)."""
        self.begun, self.embedded = [], []
        with IndexWriter(self.out, self.shard, self.manifest, **self.options) as writer:
            self.plan = writer.plan(FileStat.of(p) for p in files if self.shard.owns(str(p)))
            for stat in self.plan.todo:
                data = Path(stat.path).read_bytes()
                self.begun.append(stat.path)
                if not data:
                    writer.skip(stat, Reason.INPUT_EMPTY, "the file is empty")
                    continue
                work = writer.begin(stat, hashlib.sha256(data).hexdigest(), "pdf")
                if work is None:
                    continue
                failure = fail(data)
                if failure is not None:
                    writer.fail(work, failure[0], f"failed: {failure[0].name}", retryable=failure[1])
                    continue
                self.embedded.append(stat.path)
                writer.add_rows(work, rows_for(data))
                for name, content in inner(data):
                    self._inner(writer, work, name, content)
                writer.finish(work)
        self.summary = writer.close()
        return self

    def _inner(self, writer: IndexWriter, parent: Work, name: str, data: bytes) -> None:
        stat = FileStat(f"{parent.file.path}!/{name}", len(data), parent.file.mtime_ns)
        self.begun.append(stat.path)
        if data == b"BAD":
            writer.fail(stat, Reason.PROCESSING_LIMIT, "nested too deep", parent=parent)
            return
        work = writer.begin(stat, hashlib.sha256(data).hexdigest(), "pdf", parent=parent)
        if work is None:
            return
        self.embedded.append(stat.path)
        # Its text is one passage, as a document attachment's section is.
        (passage,) = writer.add_passages(work, [Passage("pdf_text", data.decode(errors="replace"), page=1)])
        writer.add_rows(work, [dataclasses.replace(row, passage=passage) for row in rows_for(data)])
        writer.finish(work)


def live_rows(out: Path) -> list[dict[str, Any]]:
    """The index's live rows, vectors rounded, sorted: comparable whatever the part layout."""
    rows = []
    for table in IndexReader(out).live_rows():
        for row in table.to_pylist():
            row.pop("unit")
            row["vector"] = tuple(round(x, 5) for x in row["vector"])
            rows.append(row)
    return sorted(rows, key=lambda r: (r["path"], r["ordinal"]))


def files_table(out: Path) -> dict[str, dict[str, Any]]:
    return {row["path"]: row for row in IndexReader(out).files().to_pylist()}


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under `folder` with its size and mtime: to prove a run wrote nothing."""
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def write(folder: Path, name: str, content: str, mtime: int | None = None) -> Path:
    path = folder / name
    path.write_text(content)
    if mtime is not None:
        os.utime(path, ns=(mtime, mtime))
    return path
