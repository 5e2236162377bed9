"""The index on disk: rows, files table, resume, duplicates, changes, errors, shards."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from indexkit import DIMENSION, MANIFEST, SPACE, Job, files_table, live_rows, rows_for, snapshot, write

from sensorium.errors import Reason
from sensorium.index.layout import (
    SCHEMA_VERSION,
    EmbeddingSpace,
    IndexBusyError,
    IndexLayoutError,
    IndexMismatchError,
    Manifest,
    Shard,
    row_schema,
)
from sensorium.index.reader import IndexReader
from sensorium.index.writer import FileStat, IndexWriter, Row


def test_rows_and_files_table_have_the_documented_schema(src, tmp_path):
    a = write(src, "a.pdf", "alpha")
    write(src, "b.pdf", "")
    out = tmp_path / "index"
    Job(out).run(sorted(src.iterdir()))
    shard_dir = out / "shard-0-of-1"
    (part,) = sorted((shard_dir / "rows").glob("*.parquet"))
    table = pq.read_table(part)
    assert table.schema == row_schema(DIMENSION)
    assert table.schema.field("vector").type == pa.list_(
        pa.field("item", pa.float32(), nullable=False), DIMENSION
    )
    row = table.to_pylist()[0]
    data = a.read_bytes()
    assert row["content_sha256"] == hashlib.sha256(data).hexdigest()
    assert (row["path"], row["kind"], row["page"], row["space"]) == (str(a), "pdf_text", 1, SPACE.id)
    assert row["bbox"] == {"x0": 1.0, "y0": 0.0, "x1": 3.0, "y1": 1.0}
    assert row["text"] == "alpha part 0" and row["start_seconds"] is None
    assert row["mtime"].timestamp() == pytest.approx(a.stat().st_mtime)  # the file's, on every row
    assert row["section"] is row["cells"] is row["title"] is row["taken_at"] is None
    assert np.allclose(row["vector"], rows_for(data)[0].vector, atol=1e-6)

    files = pq.read_table(shard_dir / "files.parquet").to_pylist()
    by_path = {f["path"]: f for f in files}
    assert by_path[str(a)]["status"] == "indexed" and by_path[str(a)]["rows"] == len(rows_for(data))
    assert by_path[str(a)]["size"] == 5 and by_path[str(a)]["mtime"].timestamp() == pytest.approx(
        a.stat().st_mtime
    )
    empty = by_path[str(src / "b.pdf")]
    assert (empty["status"], empty["reason"], empty["content_sha256"]) == ("skipped", "INPUT_EMPTY", None)

    manifest = json.loads((shard_dir / "manifest.json").read_text())
    assert manifest["space"] == {
        "model": "test-model",
        "pretrained": "test-tag",
        "weights_sha256": "ab" * 32,
        "dimension": DIMENSION,
        "normalized": True,
    }
    assert manifest["options"] == {"chunk_overlap_tokens": 10, "min_image_side": 64}
    assert manifest["schema_version"] == SCHEMA_VERSION == 2 and manifest["shard"] == {"index": 0, "count": 1}


def test_a_rerun_on_an_unchanged_tree_reads_nothing_and_writes_nothing(src, tmp_path):
    for i in range(6):
        write(src, f"{i}.pdf", f"file {i}")
    write(src, "bad.pdf", "BAD")
    out = tmp_path / "index"
    Job(out).run(
        sorted(src.iterdir()), fail=lambda d: (Reason.PDF_UNREADABLE, False) if d == b"BAD" else None
    )
    before, rows = snapshot(out), live_rows(out)
    job = Job(out).run(sorted(src.iterdir()))
    assert job.begun == [] and job.plan.todo == [] and len(job.plan.unchanged) == 7
    assert snapshot(out) == before
    assert live_rows(out) == rows


def test_a_changed_file_is_reindexed_and_its_old_rows_retired(src, tmp_path):
    a = write(src, "a.pdf", "first version", mtime=10**18)
    write(src, "b.pdf", "other")
    out = tmp_path / "index"
    Job(out).run(sorted(src.iterdir()))
    write(src, "a.pdf", "second version", mtime=2 * 10**18)
    job = Job(out).run(sorted(src.iterdir()))
    assert job.embedded == [str(a)]
    texts = {row["text"].split(" part")[0] for row in live_rows(out) if row["path"] == str(a)}
    assert texts == {"second version"}
    assert files_table(out)[str(a)]["content_sha256"] == hashlib.sha256(b"second version").hexdigest()


def test_a_deleted_files_rows_are_retired_and_it_leaves_the_files_table(src, tmp_path):
    a = write(src, "a.pdf", "doomed")
    b = write(src, "b.pdf", "stays")
    out = tmp_path / "index"
    Job(out).run(sorted(src.iterdir()))
    a.unlink()
    job = Job(out).run(sorted(src.iterdir()))
    assert job.plan.removed == [str(a)] and job.begun == []
    assert {row["path"] for row in live_rows(out)} == {str(b)}
    assert set(files_table(out)) == {str(b)}


def test_a_touched_file_keeps_its_rows_without_embedding_again(src, tmp_path):
    a = write(src, "a.pdf", "same words", mtime=10**18)
    out = tmp_path / "index"
    Job(out).run([a])
    unit = files_table(out)[str(a)]["unit"]
    rows = live_rows(out)
    write(src, "a.pdf", "same words", mtime=3 * 10**18)
    job = Job(out).run([a])
    assert job.begun == [str(a)] and job.embedded == []
    assert files_table(out)[str(a)]["unit"] == unit
    assert files_table(out)[str(a)]["mtime"].timestamp() == 3 * 10**9
    assert live_rows(out) == rows
    assert Job(out).run([a]).begun == []  # the new mtime was recorded


def test_identical_content_is_embedded_once_and_later_paths_are_duplicates(src, tmp_path):
    paths = [write(src, name, "twins") for name in ("a.pdf", "b.pdf", "c.pdf")]
    out = tmp_path / "index"
    job = Job(out).run(paths)
    assert job.embedded == [str(paths[0])]
    files = files_table(out)
    assert files[str(paths[0])]["status"] == "indexed"
    for path in paths[1:]:
        assert files[str(path)]["status"] == "duplicate" and files[str(path)]["duplicate_of"] == str(paths[0])
    assert {row["path"] for row in live_rows(out)} == {str(paths[0])}
    # A later run adding one more copy does not embed it either.
    d = write(src, "d.pdf", "twins")
    job = Job(out).run([*paths, d])
    assert job.embedded == [] and files_table(out)[str(d)]["status"] == "duplicate"


def test_when_the_original_goes_a_duplicate_takes_over(src, tmp_path):
    a = write(src, "a.pdf", "twins")
    b = write(src, "b.pdf", "twins")
    out = tmp_path / "index"
    Job(out).run([a, b])
    a.unlink()
    job = Job(out).run([b])
    assert job.embedded == [str(b)]
    assert files_table(out)[str(b)]["status"] == "indexed"
    assert {row["path"] for row in live_rows(out)} == {str(b)}


def test_when_the_original_changes_its_duplicate_is_indexed_and_the_original_anew(src, tmp_path):
    a = write(src, "a.pdf", "twins", mtime=10**18)
    b = write(src, "b.pdf", "twins", mtime=10**18)
    out = tmp_path / "index"
    Job(out).run([a, b])
    write(src, "a.pdf", "no longer a twin", mtime=2 * 10**18)
    job = Job(out).run([a, b])
    assert sorted(job.embedded) == [str(a), str(b)]
    rows = live_rows(out)
    assert {(r["path"], r["text"].split(" part")[0]) for r in rows} == {
        (str(a), "no longer a twin"),
        (str(b), "twins"),
    }


def test_a_duplicate_of_a_file_in_flight_is_recorded_when_that_file_ends(src, tmp_path):
    a = write(src, "a.pdf", "same")
    b = write(src, "b.pdf", "same")
    sha = hashlib.sha256(b"same").hexdigest()
    out = tmp_path / "index"
    with IndexWriter(out, Shard(), MANIFEST) as writer:
        work = writer.begin(FileStat.of(a), sha, "pdf")
        assert work is not None
        assert writer.begin(FileStat.of(b), sha, "pdf") is None  # waits for a
        writer.fail(work, Reason.PDF_PASSWORD_REQUIRED, "encrypted")
    files = files_table(out)
    assert files[str(b)]["status"] == "error" and files[str(b)]["reason"] == "PDF_PASSWORD_REQUIRED"
    assert files[str(b)]["duplicate_of"] == str(a)


def test_bad_input_errors_are_final_and_transient_ones_retried(src, tmp_path):
    bad = write(src, "bad.pdf", "corrupt")
    busy = write(src, "busy.pdf", "busy server")
    out = tmp_path / "index"

    def fail(data: bytes) -> tuple[Reason, bool] | None:
        return {b"corrupt": (Reason.PDF_UNREADABLE, False), b"busy server": (Reason.OVERLOADED, True)}.get(
            data
        )

    Job(out).run([bad, busy], fail=fail)
    files = files_table(out)
    assert (files[str(bad)]["status"], files[str(bad)]["retryable"]) == ("error", False)
    assert (files[str(busy)]["status"], files[str(busy)]["retryable"]) == ("error", True)
    job = Job(out).run([bad, busy])  # the server is back
    assert job.begun == [str(busy)]
    assert files_table(out)[str(busy)]["status"] == "indexed"


def test_transient_reasons_are_retried_by_default(src, tmp_path):
    a = write(src, "a.pdf", "x")
    out = tmp_path / "index"
    with IndexWriter(out, Shard(), MANIFEST) as writer:
        for reason, retryable in [
            (Reason.OVERLOADED, True),
            (Reason.NOT_READY, True),
            (Reason.AUDIO_UNDECODABLE, False),
        ]:
            work = writer.begin(FileStat.of(a), hashlib.sha256(reason.name.encode()).hexdigest())
            assert work is not None
            writer.fail(work, reason, "x")
            assert writer._ready[-1].retryable is retryable


def test_rows_of_a_file_that_fails_midway_never_become_live(src, tmp_path):
    a = write(src, "a.pdf", "good")
    b = write(src, "b.pdf", "half")
    out = tmp_path / "index"
    with IndexWriter(out, Shard(), MANIFEST, rows_per_part=2) as writer:
        for path in (a, b):
            work = writer.begin(FileStat.of(path), hashlib.sha256(path.read_bytes()).hexdigest(), "pdf")
            assert work is not None
            writer.add_rows(work, rows_for(b"x" * 3) * 2)  # 2+ rows: some reach a part
            if path == b:
                writer.fail(work, Reason.PDF_PAGE_FAILED, "page 3 failed")
            else:
                writer.finish(work)
    assert {row["path"] for row in live_rows(out)} == {str(a)}
    every_row = pa.concat_tables(pq.read_table(p) for p in (out / "shard-0-of-1" / "rows").glob("*.parquet"))
    assert str(b) in every_row.column("path").to_pylist()  # written, but an orphan


def test_parts_roll_every_n_rows_and_a_file_may_span_parts(src, tmp_path):
    out = tmp_path / "index"
    with IndexWriter(out, Shard(), MANIFEST, rows_per_part=3) as writer:
        a = write(src, "a.pdf", "long")
        work = writer.begin(FileStat.of(a), "ff" * 32, "pdf")
        assert work is not None
        vector = np.ones(DIMENSION)
        writer.add_rows(work, [Row("pdf_text", vector, text=str(i), page=i + 1) for i in range(8)])
        writer.finish(work)
    parts = sorted((out / "shard-0-of-1" / "rows").glob("*.parquet"))
    assert [pq.read_metadata(p).num_rows for p in parts] == [3, 3, 2]
    entry = files_table(out)[str(a)]
    assert entry["parts"] == [p.name for p in parts] and entry["rows"] == 8
    assert [row["page"] for row in live_rows(out)] == list(range(1, 9))


def test_finished_files_are_committed_after_commit_seconds(src, tmp_path):
    now = [0.0]
    out = tmp_path / "index"
    writer = IndexWriter(out, Shard(), MANIFEST, rows_per_part=1000, commit_seconds=30, clock=lambda: now[0])
    for i, seconds in enumerate([1.0, 31.0]):
        now[0] = seconds
        path = write(src, f"{i}.pdf", f"file {i}")
        work = writer.begin(FileStat.of(path), hashlib.sha256(path.read_bytes()).hexdigest(), "pdf")
        assert work is not None
        writer.add_rows(work, rows_for(path.read_bytes()))
        writer.finish(work)
        committed = {e.path for _, e in IndexReader(out).entries()}
        assert committed == (set() if seconds < 30 else {str(src / "0.pdf"), str(src / "1.pdf")})
    writer.abandon()


def test_an_index_of_another_space_or_options_is_refused(src, tmp_path):
    a = write(src, "a.pdf", "x")
    out = tmp_path / "index"
    Job(out).run([a])
    other_model = Manifest(EmbeddingSpace("RN50", "openai", "cd" * 32, DIMENSION), MANIFEST.options)
    with pytest.raises(IndexMismatchError, match=r"model 'test-model' \(index\) vs 'RN50' \(now\)"):
        IndexWriter(out, Shard(), other_model)
    other_options = Manifest(SPACE, {**MANIFEST.options, "chunk_overlap_tokens": 20})
    with pytest.raises(IndexMismatchError, match=r"option chunk_overlap_tokens 10 \(index\) vs 20 \(now\)"):
        IndexWriter(out, Shard(), other_options)
    with pytest.raises(IndexMismatchError, match="different shard counts"):
        IndexWriter(out, Shard(0, 2), MANIFEST)
    # A hand-made mix of shards is refused by readers too.
    Job(tmp_path / "other", Shard(1, 2), other_model).run([a])
    (tmp_path / "other" / "shard-1-of-2").rename(out / "shard-1-of-1-x")
    (out / "shard-1-of-1-x").rename(out / "shard-0-of-2")
    with pytest.raises(IndexMismatchError):
        IndexReader(out)


def test_shards_write_their_own_files_and_together_cover_one_run(src, tmp_path):
    paths = [write(src, f"{i}.pdf", f"file number {i}") for i in range(20)]
    whole = tmp_path / "whole"
    Job(whole).run(paths)
    sharded = tmp_path / "sharded"
    jobs = [Job(sharded, Shard(i, 2)).run(paths) for i in range(2)]
    assert all(job.embedded for job in jobs)  # both shards got work
    assert set(jobs[0].embedded).isdisjoint(jobs[1].embedded)
    assert sorted(p.name for p in sharded.iterdir()) == ["shard-0-of-2", "shard-1-of-2"]
    assert live_rows(sharded) == live_rows(whole)
    assert IndexReader(sharded).files().num_rows == 20


def test_one_writer_per_shard(tmp_path):
    out = tmp_path / "index"
    with IndexWriter(out, Shard(0, 2), MANIFEST):
        with pytest.raises(IndexBusyError, match="one writer per shard"):
            IndexWriter(out, Shard(0, 2), MANIFEST)
        IndexWriter(out, Shard(1, 2), MANIFEST).close()  # another shard is fine
    IndexWriter(out, Shard(0, 2), MANIFEST).close()  # released


def test_a_folder_that_is_not_an_index_is_not_written_into(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(IndexLayoutError, match="holds no Sensorium index"):
        IndexWriter(tmp_path, Shard(), MANIFEST)
    with pytest.raises(IndexLayoutError, match="holds no Sensorium index"):
        IndexReader(tmp_path)


def test_vectors_of_the_wrong_dimension_or_kind_are_refused_when_added(src, tmp_path):
    a = write(src, "a.pdf", "x")
    with IndexWriter(tmp_path / "index", Shard(), MANIFEST) as writer:
        work = writer.begin(FileStat.of(a), "aa" * 32, "pdf")
        assert work is not None
        with pytest.raises(ValueError, match="3-d vector; the index's space is 8-d"):
            writer.add_rows(work, [Row("image", np.ones(3))])
        with pytest.raises(ValueError, match="row kind 'video': choose from audio, document_image, "
                                             "document_text, image, image_text, "):
            writer.add_rows(work, [Row("video", np.ones(DIMENSION))])  # type: ignore[arg-type]


def test_shard_parsing_and_ownership():
    assert Shard.parse("1/3") == Shard(1, 3)
    for text, problem in [("3/3", "0 <= I < N"), ("x", "write it as I/N"), ("1/0", "0 <= I < N"),
                          ("-1/2", "write it as I/N")]:
        with pytest.raises(ValueError, match=problem):
            Shard.parse(text)
    paths = [f"/data/file-{i}.pdf" for i in range(300)]
    owners = [[s for s in range(3) if Shard(s, 3).owns(p)] for p in paths]
    assert all(len(o) == 1 for o in owners)  # every path in exactly one shard
    counts = [sum(o == [s] for o in owners) for s in range(3)]
    assert min(counts) > 60  # spread across shards


def test_an_index_of_an_older_schema_is_refused_with_the_way_out(src, tmp_path):
    out = tmp_path / "index"
    Job(out).run([write(src, "a.pdf", "alpha")])
    manifest = out / "shard-0-of-1" / "manifest.json"
    data = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**data, "schema_version": SCHEMA_VERSION - 1}))
    with pytest.raises(IndexLayoutError, match="Rebuild the index in a new directory"):
        Job(out).run([src / "a.pdf"])


# --- files inside files (a mail's attachments) ---------------------------------------------------


def _attachments(data: bytes) -> list[tuple[str, bytes]]:
    """A "mail" lists its attachments after its first line: `name=content` per line."""
    lines = data.decode().splitlines()[1:]
    return [(name, content.encode()) for name, _, content in (line.partition("=") for line in lines)]


def test_attachments_are_files_of_their_own_under_their_mail(src, tmp_path):
    mail = write(src, "dues.eml", "mail body\nreport.docx=quarterly report\nnotes.txt=tide tables")
    out = tmp_path / "index"
    job = Job(out).run([mail], inner=_attachments)
    inner = [f"{mail}!/report.docx", f"{mail}!/notes.txt"]
    assert job.embedded == [str(mail), *inner]
    files = files_table(out)
    assert set(files) == {str(mail), *inner}
    assert files[inner[0]]["status"] == "indexed" and files[inner[0]]["size"] == len("quarterly report")
    assert files[inner[0]]["mtime"] == files[str(mail)]["mtime"]
    texts = {row["path"]: row["text"] for row in live_rows(out)}
    assert texts[inner[0]].startswith("quarterly report") and texts[inner[1]].startswith("tide tables")


def test_a_rerun_over_an_unchanged_mail_neither_redoes_nor_retires_its_attachments(src, tmp_path):
    mail = write(src, "dues.eml", "mail body\na.txt=alpha\nb.txt=beta", mtime=10**18)
    out = tmp_path / "index"
    Job(out).run([mail], inner=_attachments)
    before, rows, files = snapshot(out), live_rows(out), files_table(out)
    job = Job(out).run([mail], inner=_attachments)
    assert job.begun == [] and job.plan.removed == [] and job.plan.unchanged == [FileStat.of(mail)]
    assert snapshot(out) == before and live_rows(out) == rows
    # Touched, same content: the mail's entry stands, so do its attachments'.
    write(src, "dues.eml", "mail body\na.txt=alpha\nb.txt=beta", mtime=2 * 10**18)
    job = Job(out).run([mail], inner=_attachments)
    assert job.begun == [str(mail)] and job.embedded == []
    assert live_rows(out) == rows and set(files_table(out)) == set(files)


def test_a_changed_mail_keeps_what_it_still_holds_and_retires_the_rest(src, tmp_path):
    mail = write(src, "dues.eml", "first\nkept.txt=same words\ngone.txt=old words", mtime=10**18)
    out = tmp_path / "index"
    Job(out).run([mail], inner=_attachments)
    kept_unit = files_table(out)[f"{mail}!/kept.txt"]["unit"]
    write(src, "dues.eml", "second\nkept.txt=same words\nnew.txt=new words", mtime=2 * 10**18)
    job = Job(out).run([mail], inner=_attachments)
    assert job.embedded == [str(mail), f"{mail}!/new.txt"]  # the unchanged attachment is not redone
    files = files_table(out)
    assert set(files) == {str(mail), f"{mail}!/kept.txt", f"{mail}!/new.txt"}
    assert files[f"{mail}!/kept.txt"]["unit"] == kept_unit
    paths = {row["path"] for row in live_rows(out)}
    assert paths == {str(mail), f"{mail}!/kept.txt", f"{mail}!/new.txt"}


def test_an_attachments_passages_live_and_go_with_it(src, tmp_path):
    mail = write(src, "dues.eml", "mail body\nreport.txt=quarterly report", mtime=10**18)
    out = tmp_path / "index"
    Job(out).run([mail], inner=_attachments)
    passages = [p for table in IndexReader(out).live_passages() for p in table.to_pylist()]
    assert [(p["path"], p["text"]) for p in passages] == [(f"{mail}!/report.txt", "quarterly report")]
    assert {r["passage"] for r in live_rows(out) if r["path"] == f"{mail}!/report.txt"} == {0}
    mail.unlink()
    Job(out).run([], inner=_attachments)
    assert [p for table in IndexReader(out).live_passages() for p in table.to_pylist()] == []


def test_a_deleted_or_failing_mail_takes_its_attachments_with_it(src, tmp_path):
    mail = write(src, "a.eml", "mail a\nx.txt=ex", mtime=10**18)
    other = write(src, "b.eml", "mail b\ny.txt=why", mtime=10**18)
    out = tmp_path / "index"
    Job(out).run([mail, other], inner=_attachments)
    mail.unlink()
    job = Job(out).run([other], inner=_attachments)
    assert sorted(job.plan.removed) == [str(mail), f"{mail}!/x.txt"]
    write(src, "b.eml", "BROKEN\ny.txt=why", mtime=2 * 10**18)
    Job(out).run([other], inner=_attachments,
                 fail=lambda d: (Reason.DOCUMENT_UNREADABLE, False) if d.startswith(b"BROKEN") else None)
    assert set(files_table(out)) == {str(other)} and files_table(out)[str(other)]["status"] == "error"
    assert live_rows(out) == []


def test_attachments_take_no_part_in_duplicates(src, tmp_path):
    """An attachment can be redone only with its mail: no listed file may stand on it."""
    mail = write(src, "m.eml", "mail\nreport.txt=shared words")
    copy = write(src, "report.txt", "shared words")
    out = tmp_path / "index"
    Job(out).run([mail, copy], inner=_attachments)
    files = files_table(out)
    assert files[str(copy)]["status"] == files[f"{mail}!/report.txt"]["status"] == "indexed"
    mail.unlink()
    Job(out).run([copy], inner=_attachments)
    assert set(files_table(out)) == {str(copy)}
    assert {row["path"] for row in live_rows(out)} == {str(copy)}


def test_an_attachment_recorded_as_an_error_goes_with_its_mail(src, tmp_path):
    mail = write(src, "m.eml", "mail\ninner.eml=BAD")
    out = tmp_path / "index"
    Job(out).run([mail], inner=_attachments)
    entry = files_table(out)[f"{mail}!/inner.eml"]
    assert (entry["status"], entry["reason"], entry["content_sha256"]) == ("error", "PROCESSING_LIMIT", None)
    assert Job(out).run([mail], inner=_attachments).begun == []
    mail.unlink()
    Job(out).run([], inner=_attachments)
    assert files_table(out) == {}


def test_a_listed_file_in_a_folder_named_with_a_bang_is_no_attachment(src, tmp_path):
    (src / "odd!").mkdir()
    plain = write(src / "odd!", "a.txt", "plain words")
    out = tmp_path / "index"
    Job(out).run([plain])
    plain.unlink()
    assert Job(out).run([]).plan.removed == [str(plain)]


def test_passages_are_written_beside_rows_and_live_through_the_ledger(src, tmp_path):
    from sensorium.index.layout import PASSAGE_SCHEMA
    from sensorium.index.writer import Passage

    out = tmp_path / "index"
    kept, failed = write(src, "kept.pdf", "kept"), write(src, "failed.pdf", "failed")
    with IndexWriter(out, Shard(), MANIFEST, rows_per_part=3) as writer:
        works = {}
        for stat in writer.plan([FileStat.of(kept), FileStat.of(failed)]).todo:
            work = writer.begin(stat, hashlib.sha256(Path(stat.path).read_bytes()).hexdigest(), "pdf")
            assert work is not None
            works[Path(stat.path).name] = work
            pages = writer.add_passages(work, [Passage("pdf_text", f"page {n} of {stat.path}", page=n)
                                               for n in (1, 2)])
            assert pages == [0, 1]
            writer.add_rows(work, [Row("pdf_text", np.ones(DIMENSION), text=f"chunk {n}", page=n + 1,
                                       passage=n) for n in pages])
            with pytest.raises(ValueError, match="names passage 2; the file has 2"):
                writer.add_rows(work, [Row("pdf_text", np.ones(DIMENSION), passage=2)])
        writer.finish(works["kept.pdf"])
        writer.fail(works["failed.pdf"], Reason.PDF_UNREADABLE, "broken")
    reader = IndexReader(out)
    (unit,) = reader.live_units().values()
    assert (unit.passages, unit.path) == (2, str(kept)) and unit.passage_parts
    (passages,) = list(reader.live_passages())
    assert passages.schema == PASSAGE_SCHEMA
    assert [(p["ordinal"], p["page"], p["text"]) for p in passages.to_pylist()] == [
        (0, 1, f"page 1 of {kept}"), (1, 2, f"page 2 of {kept}")]
    rows = pa.concat_tables(reader.live_rows()).to_pylist()
    assert [(r["passage"], r["text"]) for r in rows] == [(0, "chunk 0"), (1, "chunk 1")]
    files = pq.read_table(out / "shard-0-of-1" / "files.parquet").to_pylist()
    assert {f["path"]: f["passages"] for f in files} == {str(kept): 2, str(failed): 0}
