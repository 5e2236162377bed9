"""Search over the LanceDB store built from the parts: raw rows, modes, freshness, rebuilds,
and a read path that never writes. (Per-file results: test_search_files.py.)"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from indexkit import MANIFEST, Job, write

from sensorium.index.layout import EmbeddingSpace, Manifest, Shard
from sensorium.index.search import RRF_K, Hit, SearchStore, VectorIndexParams, _fuse, _Place
from sensorium.index.store import StoreNotReadyError, read_state, update_store
from sensorium.index.writer import FileStat, IndexWriter, Row

DIMENSION = MANIFEST.space.dimension
TEXTS = {
    "birds.pdf": ["the heron waits in the shallow marsh", "migration routes of arctic terns"],
    "kitchen.pdf": ["slow roasted tomatoes with garlic", "a recipe for sourdough bread starter"],
    "talk.mp3": ["welcome to the quarterly budget meeting", "the heron is our new mascot"],
}
KINDS = {"birds.pdf": "pdf_text", "kitchen.pdf": "pdf_text", "talk.mp3": "audio"}


def unit_vector(seed: int) -> np.ndarray:
    vector = np.random.default_rng(seed).standard_normal(DIMENSION)
    return vector / np.linalg.norm(vector)


def vector_of(text: str) -> np.ndarray:
    return unit_vector(int(hashlib.sha256(text.encode()).hexdigest()[:8], 16))


def build(out: Path, src: Path, texts: dict[str, list[str]] = TEXTS, manifest: Manifest = MANIFEST) -> None:
    """Index `texts` (file name -> row texts; each row's vector follows from its text)."""
    with IndexWriter(out, Shard(), manifest) as writer:
        listed = [FileStat.of(write(src, name, "\n".join(rows))) for name, rows in texts.items()]
        for stat in writer.plan(listed).todo:
            rows = texts[Path(stat.path).name]
            work = writer.begin(stat, hashlib.sha256("\n".join(rows).encode()).hexdigest(), "pdf")
            if work is None:
                continue  # rewritten with the same content
            kind = KINDS.get(Path(stat.path).name, "pdf_text")
            timed = kind == "audio"
            writer.add_rows(
                work,
                [
                    Row(
                        kind,
                        vector_of(text),
                        text=text,
                        page=None if timed else i + 1,
                        bbox=None if timed else (0.0, 10.0 * i, 100.0, 10.0 * i + 8),
                        start_seconds=5.0 * i if timed else None,
                        end_seconds=5.0 * i + 4 if timed else None,
                    )
                    for i, text in enumerate(rows)
                ],
            )
            writer.finish(work)


@pytest.fixture
def index(tmp_path, src) -> Path:
    out = tmp_path / "index"
    build(out, src)
    return out


def test_a_chunks_exact_text_finds_that_chunk_first(index):
    store = SearchStore(index, refresh=True)
    for mode in ("text", "hybrid"):
        hits = store.search(
            query_text="migration routes of arctic terns", query_vector=vector_of("unrelated"), mode=mode, k=3
        )
        assert hits[0].text == "migration routes of arctic terns" and hits[0].path.endswith("birds.pdf")
        assert hits[0].page == 2


def test_a_rows_vector_finds_that_row_first_with_its_provenance(index):
    store = SearchStore(index, refresh=True)
    (hit, *_) = store.search(query_vector=vector_of("the heron is our new mascot"), mode="vector", k=5)
    assert hit.text == "the heron is our new mascot" and hit.kind == "audio"
    assert (hit.start_seconds, hit.end_seconds, hit.page, hit.bbox) == (5.0, 9.0, None, None)
    assert hit.score == pytest.approx(1.0, abs=1e-5)


def test_hybrid_fuses_the_two_rankings_by_reciprocal_rank(index):
    store = SearchStore(index, refresh=True)
    query_text = "heron"
    query_vector = vector_of("welcome to the quarterly budget meeting")
    text = store.search(query_text=query_text, mode="text", k=10)
    vector = store.search(query_vector=query_vector, mode="vector", k=10)
    hybrid = store.search(query_text=query_text, query_vector=query_vector, mode="hybrid", k=10)

    def key(hit: Hit) -> tuple[str, int]:
        return hit.unit, hit.ordinal

    expected: dict[tuple[str, int], float] = {}
    for ranking in (text, vector):
        for rank, hit in enumerate(ranking, start=1):
            expected[key(hit)] = expected.get(key(hit), 0.0) + 1.0 / (RRF_K + rank)
    assert {key(h): h.score for h in hybrid} == pytest.approx(expected)
    assert [h.score for h in hybrid] == sorted((h.score for h in hybrid), reverse=True)
    # The budget row leads the vector ranking but has no "heron"; the mascot row is in both
    # rankings and wins the fusion.
    assert {h.text for h in text} == {"the heron waits in the shallow marsh", "the heron is our new mascot"}
    assert vector[0].text == "welcome to the quarterly budget meeting"
    assert {h.text for h in hybrid[:2]} <= {
        "the heron is our new mascot",
        "the heron waits in the shallow marsh",
        "welcome to the quarterly budget meeting",
    }


def test_fusion_rewards_places_found_by_both():
    def place(unit: str) -> _Place:
        return _Place((unit, 0), unit, f"/{unit}", "pdf_text", 1, None, None)

    fused = _fuse([[place("a"), place("b")], [place("c"), place("b")]])
    assert [item.unit for item in fused] == ["b", "a", "c"]
    assert fused[0].score == pytest.approx(2 / (RRF_K + 2))
    assert fused[1].score == pytest.approx(fused[2].score)  # a tie: first-ranked in its list first


def test_kind_filter(index):
    store = SearchStore(index, refresh=True)
    hits = store.search(query_text="heron", mode="text", kinds=["audio"], k=10)
    assert [h.kind for h in hits] == ["audio"]
    hits = store.search(query_vector=vector_of("x"), mode="vector", kinds=["pdf_text", "image"], k=10)
    assert len(hits) == 4 and {h.kind for h in hits} == {"pdf_text"}
    with pytest.raises(ValueError, match="unknown kind 'video'"):
        store.search(query_text="heron", mode="text", kinds=["video"])


def test_changed_and_removed_files_are_never_returned(index, src):
    store = SearchStore(index, refresh=True)
    assert store.search(query_text="sourdough", mode="text")
    texts = {"birds.pdf": ["the heron flew away"], "talk.mp3": TEXTS["talk.mp3"]}
    (src / "kitchen.pdf").unlink()
    build(index, src, texts)
    stale = SearchStore(index, refresh=False)  # the store still holds the old rows
    assert stale.search(query_text="sourdough marsh", mode="text") == []
    assert stale.search_files(query_text="sourdough marsh", mode="text") == []
    assert (stale.lag.files_missing, stale.lag.rows_missing, stale.lag.files_retired) == (1, 1, 2)
    assert "1 indexed files (1 rows) are not searchable yet" in stale.lag.describe()
    stats = store.refresh()
    assert (stats.units_removed, stats.units_added, stats.rows) == (2, 1, 3)
    assert not store.lag
    assert store.search(query_text="sourdough", mode="text") == []
    assert {h.text for h in store.search(query_text="heron", mode="text", k=5)} == {
        "the heron flew away",
        "the heron is our new mascot",
    }


def test_refresh_adds_only_what_is_new_and_a_rerun_changes_nothing(index, src):
    store = SearchStore(index, refresh=True)
    assert store.refresh().units_added == 0
    build(index, src, {**TEXTS, "new.pdf": ["a brand new page about owls"]})
    stats = store.refresh()
    assert (stats.units_added, stats.units_removed, stats.rows_added, stats.rows) == (1, 0, 1, 7)
    assert store.search(query_text="owls", mode="text")[0].path.endswith("new.pdf")


def test_the_store_is_rebuilt_from_the_parts_when_lost(index):
    store = SearchStore(index, refresh=True)
    before = [h.to_json() for h in store.search(query_text="heron marsh", query_vector=vector_of("x"), k=6)]
    shutil.rmtree(index / ".search")
    again = SearchStore(index, refresh=True)
    after = [h.to_json() for h in again.search(query_text="heron marsh", query_vector=vector_of("x"), k=6)]
    assert after == before
    assert again.rebuild().rows == 6


def test_a_half_added_unit_is_repaired_by_the_next_refresh(index):
    import lancedb

    SearchStore(index, refresh=True)
    table = lancedb.connect(index / ".search").open_table("rows")
    unit = table.search().select(["unit"]).limit(1).to_arrow().column("unit")[0].as_py()
    table.delete(f"unit = '{unit}' AND ordinal = 1")  # as if an update died mid-add
    assert update_store(index).units_added == 1
    assert lancedb.connect(index / ".search").open_table("rows").count_rows() == 6


def test_a_store_of_another_index_is_rebuilt(index, src, tmp_path):
    SearchStore(index, refresh=True)
    other = Manifest(EmbeddingSpace("other", "tag", "ef" * 32, DIMENSION), MANIFEST.options)
    for shard_dir in index.glob("shard-*"):
        shutil.rmtree(shard_dir)
    build(index, src, {"only.pdf": ["one lonely row"]}, manifest=other)
    with pytest.raises(StoreNotReadyError, match="made for another version of this index"):
        SearchStore(index, refresh=False)
    stats = update_store(index)
    assert stats.rebuilt and stats.rows == 1
    (hit,) = SearchStore(index, refresh=False).search(query_text="lonely", mode="text")
    assert hit.text == "one lonely row"


def test_large_tables_get_a_vector_index_and_still_find_the_nearest(tmp_path, src):
    texts = {f"f{i}.pdf": [f"row {i} {j}" for j in range(10)] for i in range(40)}
    out = tmp_path / "index"
    build(out, src, texts)
    params = VectorIndexParams(min_rows=300, nprobes=20, refine_factor=2)
    store = SearchStore(out, params=params, refresh=True)
    assert store.refresh().vector_index
    target = "row 17 3"
    assert store.search(query_vector=vector_of(target), mode="vector", k=1)[0].text == target
    # New rows are folded into the existing index and found too.
    build(out, src, {**texts, "late.pdf": ["a late arrival"]})
    assert store.refresh().units_added == 1
    assert (
        store.search(query_vector=vector_of("a late arrival"), mode="vector", k=1)[0].text == "a late arrival"
    )
    assert read_state(out / ".search")["vector_index_rows"] == 400  # trained once, on the first 400 rows
    # Grown fourfold, the index is trained again on the whole table.
    more = {f"g{i}.pdf": [f"more {i} {j}" for j in range(10)] for i in range(130)}
    build(out, src, {**texts, "late.pdf": ["a late arrival"], **more})
    assert store.refresh().rows == 1701
    assert read_state(out / ".search")["vector_index_rows"] == 1701
    assert store.search(query_vector=vector_of("more 77 7"), mode="vector", k=1)[0].text == "more 77 7"


def test_results_as_json_use_the_parquet_column_names(index):
    (hit,) = SearchStore(index, refresh=True).search(query_text="sourdough", mode="text", k=1)
    data = json.loads(json.dumps(hit.to_json()))
    assert list(data) == [
        "unit",
        "ordinal",
        "content_sha256",
        "path",
        "kind",
        "page",
        "bbox",
        "start_seconds",
        "end_seconds",
        "text",
        "space",
        "passage",
        "section",
        "cells",
        "title",
        "author",
        "taken_at",
        "mtime",
        "score",
    ]
    assert data["bbox"] == {"x0": 0.0, "y0": 10.0, "x1": 100.0, "y1": 18.0} and data["page"] == 2


def test_bad_queries_say_what_is_wrong(index):
    store = SearchStore(index, refresh=True)
    with pytest.raises(ValueError, match="mode 'fuzzy'"):
        store.search(query_text="x", mode="fuzzy")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="hybrid search needs a query vector"):
        store.search(query_text="x")
    with pytest.raises(ValueError, match="text search needs a query text"):
        store.search(query_text="  ", mode="text")
    with pytest.raises(ValueError, match="3 dimensions; the index's space has 8"):
        store.search(query_vector=np.ones(3), mode="vector")


def test_an_index_without_rows_finds_nothing(tmp_path, src):
    out = tmp_path / "index"
    Job(out).run([write(src, "empty.pdf", "")])
    assert SearchStore(out, refresh=True).search(query_text="anything", query_vector=vector_of("x")) == []


def test_snippets_show_the_text_around_the_query():
    text = "lorem ipsum " * 30 + "the golden heron " + "dolor sit amet " * 30
    hit = Hit(1.0, "u", 0, "h", "p", "pdf_text", 1, None, None, None, text, "s")
    snippet = hit.snippet("herons", width=60)
    assert "heron" in snippet and snippet.startswith("…") and snippet.endswith("…")
    assert len(snippet) <= 62
    assert hit.snippet(None, width=60).startswith("lorem")
