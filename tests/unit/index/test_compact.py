"""Compaction: live rows merged into fewer parts, dead rows dropped, the same search results,
less on disk; refused while a job writes the shard; automatic past the setting."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from query_kit import CAPTIONS, add_captions, caption_stat, manifest_of, remove_captions, shapes_tower
from sensorium.index.compact import compact, small_parts
from sensorium.index.job import JobRequest, _compact_if_due
from sensorium.index.layout import IndexBusyError, Shard
from sensorium.index.reader import IndexReader
from sensorium.index.search import Filters, SearchStore
from sensorium.index.store import update_store
from sensorium.index.writer import IndexWriter
from sensorium.settings import IndexSettings, Settings


@pytest.fixture(scope="module")
def tower():
    return shapes_tower()


def grown(out: Path, tower) -> Path:
    """An index as a long watch leaves it: one small part per run, changed and removed files."""
    for caption in CAPTIONS:
        add_captions(out, tower, [caption])
    add_captions(out, tower, ["a violet hexagon", "a grey star"])
    remove_captions(out, tower, [c for c in CAPTIONS if c not in ("a red circle", "a blue square")]
                    + ["a grey star"])
    return out


def answers(out: Path, tower) -> list[object]:
    store = SearchStore(out)
    found: list[object] = []
    for caption in [*CAPTIONS, "a grey star", "violet hexagon"]:
        vector = tower.embed(caption)
        for mode in ("hybrid", "vector", "text"):
            found.append([r.to_json() for r in store.search_files(
                query_text=caption, query_vector=vector, mode=mode, k=20)])
            found.append([h.to_json() for h in store.search(
                query_text=caption, query_vector=vector, mode=mode, k=20)])
        found.append([r.path for r in store.search_files(query_text=caption, mode="text", k=5,
                                                           filters=Filters(path_glob="*circle*"))])
    return found


def on_disk(out: Path) -> tuple[int, int]:
    parts = [p for sub in ("rows", "passages") for p in (out / "shard-0-of-1" / sub).glob("*.parquet")]
    return len(list((out / "shard-0-of-1" / "rows").glob("*.parquet"))), sum(p.stat().st_size for p in parts)


def test_compaction_keeps_results_and_shrinks_the_index(tmp_path, tower):
    out = grown(tmp_path / "index", tower)
    before, (parts, size) = answers(out, tower), on_disk(out)
    rows_before = sum(pq.ParquetFile(p).metadata.num_rows
                      for p in (out / "shard-0-of-1" / "rows").glob("*.parquet"))
    # What a store built from the parts alone answers, before compaction (equal scores may
    # come in another order than in the incrementally updated store).
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    update_store(copy, rebuild=True)
    rebuilt = answers(copy, tower)
    live_before = {u.unit: u.rows for u in IndexReader(out).live_units().values()}

    stats = compact(out, rows_per_part=10_000)

    assert answers(out, tower) == before
    parts_after, size_after = on_disk(out)
    assert (parts, parts_after) == (stats.parts_before, stats.parts_after)
    assert parts >= 7 and parts_after == 1
    assert size_after < size and stats.bytes_after < stats.bytes_before
    assert stats.rows_dropped == rows_before - stats.rows_kept > 0
    assert {u.unit: u.rows for u in IndexReader(out).live_units().values()} == live_before
    # The compacted parts alone give the same answers as the parts before.
    update_store(out, rebuild=True)
    assert answers(out, tower) == rebuilt
    # Compacting a compacted index changes nothing that matters.
    compact(out, rows_per_part=10_000)
    assert answers(out, tower) == rebuilt
    assert on_disk(out)[0] == 1


def test_parts_stay_within_rows_per_part_and_a_rerun_resumes_on_them(tmp_path, tower):
    out = grown(tmp_path / "index", tower)
    compact(out, rows_per_part=1)
    rows = (out / "shard-0-of-1" / "rows").glob("*.parquet")
    assert all(pq.ParquetFile(p).metadata.num_rows == 1 for p in rows)
    add_captions(out, tower, ["a violet hexagon"])  # already indexed: nothing new
    add_captions(out, tower, ["a pink moon"])       # a new file after compaction
    paths = [r.path for r in SearchStore(out).search_files(query_text="pink moon", mode="text")]
    assert paths[:1] == ["/shapes/a-pink-moon.pdf"]


def test_compaction_waits_for_no_job(tmp_path, tower):
    out = grown(tmp_path / "index", tower)
    with IndexWriter(out, Shard(), manifest_of(tower)) as writer:
        writer.plan([caption_stat(c) for c in CAPTIONS])
        with pytest.raises(IndexBusyError, match="being written by another process"):
            compact(out, rows_per_part=10_000)


def test_a_run_compacts_past_the_setting(tmp_path, tower):
    out = grown(tmp_path / "index", tower)
    shard_dir = out / "shard-0-of-1"
    assert small_parts(shard_dir, 10_000) >= 7
    request = JobRequest(inputs=[], out=out, shard=Shard())
    assert _compact_if_due(request, Settings(index=IndexSettings(compact_small_parts=100))) is None
    done = _compact_if_due(request, Settings(index=IndexSettings(compact_small_parts=3)))
    assert done is not None and done["parts_after"] == 1
    assert small_parts(shard_dir, 10_000) == 1
