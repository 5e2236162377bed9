"""Per-file search results over passages: pages and transcript stretches ranked by full text,
rows by vector, grouped per file with places, snippets and highlights; merging, filters, lag."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from indexkit import MANIFEST, write

from sensorium.index.layout import IndexLayoutError, Shard
from sensorium.index.reader import IndexReader
from sensorium.index.search import Filters, SearchStore, glob_regex
from sensorium.index.store import StoreNotReadyError, update_store
from sensorium.index.words import Query, term
from sensorium.index.writer import FileStat, IndexWriter, Passage, Row

DIMENSION = MANIFEST.space.dimension
CHUNK_WORDS = 6
"""Words per row: rows are CLIP-sized pieces of a page, passages the whole page."""


def vector_of(text: str) -> np.ndarray:
    vector = np.random.default_rng(int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)).standard_normal(
        DIMENSION
    )
    return vector / np.linalg.norm(vector)


def chunks(text: str) -> list[str]:
    words = text.split()
    return [" ".join(words[i : i + CHUNK_WORDS]) for i in range(0, len(words), CHUNK_WORDS)]


def build(out: Path, src: Path, docs: dict[str, list[str]], mtimes: dict[str, int] | None = None) -> None:
    """Index `docs` (file name -> its pages' texts; a name ending in .mp3 is a recording whose
    "pages" are 30-second stretches) with one passage per page and rows of CHUNK_WORDS words.
    A file's content is its pages, so files with the same pages are duplicates."""
    listed = []
    for name, pages in docs.items():
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        path = write(src, name, "\f".join(pages), (mtimes or {}).get(name))
        listed.append(FileStat.of(path))
    with IndexWriter(out, Shard(), MANIFEST) as writer:
        for stat in writer.plan(listed).todo:
            pages = docs[str(Path(stat.path).relative_to(src))]
            work = writer.begin(stat, hashlib.sha256("\f".join(pages).encode()).hexdigest(), "pdf")
            if work is None:
                continue
            audio = stat.path.endswith(".mp3")
            for i, text in enumerate(pages):
                timing: dict[str, Any] = (
                    {"start_seconds": 30.0 * i, "end_seconds": 30.0 * i + 29.5} if audio else {"page": i + 1}
                )
                kind = "audio" if audio else "pdf_text"
                (passage,) = writer.add_passages(work, [Passage(kind, text, **timing)])
                writer.add_rows(
                    work,
                    [
                        Row(kind, vector_of(piece), text=piece, passage=passage, **timing)
                        for piece in chunks(text)
                    ],
                )
            writer.finish(work)
    update_store(out)


BIRDS = [
    "Field notes from the estuary in spring.",
    "A grey heron stood in the reeds while the tide turned.",
    "The heron struck twice; a heron chick watched from the nest. Heron numbers rose this year.",
]
KITCHEN = ["Slow roasted tomatoes with garlic and thyme.", "A résumé of the baker: she runs the ovens daily."]
TALK = ["Welcome to the quarterly budget meeting.", "Our mascot is a heron, chosen by the staff."]
LONG_PAGE = (
    "The committee met in the old library to discuss the archive. " * 3
    + "Members asked about the leaking roof over the reading room. " * 3
    + "Funding for the restoration of the manuscripts was approved in the end."
)


@pytest.fixture
def index(tmp_path: Path, src: Path) -> Path:
    out = tmp_path / "index"
    build(
        out,
        src,
        {
            "birds.pdf": BIRDS,
            "kitchen.pdf": KITCHEN,
            "talk.mp3": TALK,
            "minutes.pdf": ["Nothing on this page.", LONG_PAGE],
        },
    )
    return out


def paths(results: list[Any]) -> list[str]:
    return [Path(result.path).name for result in results]


def test_one_result_per_file_with_its_best_places_first(index):
    store = SearchStore(index, refresh=False)
    results = store.search_files(query_text="heron", mode="text")
    assert paths(results) == ["birds.pdf", "talk.mp3"] or paths(results) == ["talk.mp3", "birds.pdf"]
    birds = next(r for r in results if r.path.endswith("birds.pdf"))
    assert [place.page for place in birds.places] == [3, 2]  # three herons on page 3, one on page 2
    assert birds.page == 3 and birds.kind == "pdf_text"
    assert birds.places[0].score > birds.places[1].score == pytest.approx(birds.places[1].score)
    talk = next(r for r in results if r.path.endswith("talk.mp3"))
    assert (talk.page, talk.start_seconds, talk.end_seconds) == (None, 30.0, 59.5)


def test_words_spread_over_a_page_find_that_page(index):
    store = SearchStore(index, refresh=False)
    query = "library roof manuscripts"
    # No row (CLIP-sized chunk) holds all three words; the page does.
    assert not any(
        all(word in hit.text for word in query.split())
        for hit in store.search(query_text=query, mode="text", k=50)
    )
    (best, *_) = store.search_files(query_text=query, mode="text")
    assert (Path(best.path).name, best.page) == ("minutes.pdf", 2)


def test_accents_are_folded_and_words_stemmed(index):
    store = SearchStore(index, refresh=False)
    for query in ("resume", "résumé", "RESUMES", "running baker", "oven"):
        (best, *_) = store.search_files(query_text=query, mode="text")
        assert (Path(best.path).name, best.page) == ("kitchen.pdf", 2), query


def test_quoted_phrases_match_as_phrases(tmp_path, src):
    out = tmp_path / "index"
    build(out, src, {"a.pdf": ["the quick brown fox jumps"], "b.pdf": ["the brown dog is quick to bark"]})
    store = SearchStore(out, refresh=False)
    assert sorted(paths(store.search_files(query_text="quick brown", mode="text"))) == ["a.pdf", "b.pdf"]
    assert paths(store.search_files(query_text='"quick brown"', mode="text")) == ["a.pdf"]
    assert paths(store.search_files(query_text='"brown dog" quick', mode="text")) == ["b.pdf"]
    assert paths(store.search_files(query_text='"quick dog"', mode="text")) == []
    assert Query.parse('fox "quick  brown" "the" x"') == Query("fox the x", ("quick brown",))


def test_identical_passages_in_several_files_are_one_result(tmp_path, src):
    out = tmp_path / "index"
    paper = "Attention is all you need: a transformer without recurrence."
    build(
        out,
        src,
        {
            "paper-v1.pdf": ["Preprint, first version.", paper],
            "paper-v2.pdf": ["Preprint, second version with a new cover.", paper],
            "copy-of-v1.pdf": ["Preprint, first version.", paper],  # the same bytes as paper-v1.pdf
            "review.pdf": ["A review mentions the transformer once."],
        },
    )
    results = SearchStore(out, refresh=False).search_files(query_text="transformer recurrence", mode="text")
    assert len(results) == 2
    first = results[0]
    assert Path(first.path).name in ("paper-v1.pdf", "paper-v2.pdf")
    others = {"paper-v1.pdf", "paper-v2.pdf", "copy-of-v1.pdf"} - {Path(first.path).name}
    assert {Path(p).name for p in first.files} == others
    assert paths(results[1:]) == ["review.pdf"] and results[1].files == ()


def test_filters(tmp_path, src):
    out = tmp_path / "index"
    day = 86_400 * 10**9
    build(
        out,
        src,
        {
            "2023/report.pdf": ["annual report of the club"],
            "2024/report.pdf": ["annual report again"],
            "notes.mp3": ["the annual report was read aloud"],
        },
        mtimes={"2023/report.pdf": 19_400 * day, "2024/report.pdf": 19_800 * day, "notes.mp3": 19_900 * day},
    )
    store = SearchStore(out, refresh=False)
    every = store.search_files(query_text="annual report", mode="text")
    assert len(every) == 3

    def found(**filters: Any) -> list[str]:
        results = store.search_files(query_text="annual report", mode="text", filters=Filters(**filters))
        return sorted(r.path.removeprefix(str(src) + "/") for r in results)

    assert found(path_glob="*.pdf") == ["2023/report.pdf", "2024/report.pdf"]
    assert found(path_glob=f"{src}/2024/*") == ["2024/report.pdf"]
    assert found(path_glob="*/202[!4]/*.pdf") == ["2023/report.pdf"]
    assert found(path_glob="*.PDF") == []  # case matters, as in the shell
    assert found(kinds=["audio"]) == ["notes.mp3"]
    assert found(modified_after=datetime(2024, 1, 1, tzinfo=UTC)) == ["2024/report.pdf", "notes.mp3"]
    assert found(modified_before=datetime(2024, 1, 1, tzinfo=UTC)) == ["2023/report.pdf"]
    assert found(
        modified_after=datetime(2024, 1, 1, tzinfo=UTC), modified_before=datetime(2024, 6, 1, tzinfo=UTC)
    ) == ["2024/report.pdf"]
    # min score and offset: the next page continues where the first ended.
    scores = [r.score for r in every]
    kept = store.search_files(query_text="annual report", mode="text", min_score=scores[1])
    assert [r.path for r in kept] == [r.path for r in every[:2]]
    assert [r.path for r in store.search_files(query_text="annual report", mode="text", k=1, offset=1)] == [
        every[1].path
    ]
    assert store.search_files(query_text="annual report", mode="text", offset=3) == []
    with pytest.raises(ValueError, match="unknown kind 'video'"):
        store.search_files(query_text="x", mode="text", filters=Filters(kinds=["video"]))


def test_a_quote_in_a_path_glob_is_only_a_character(tmp_path, src):
    out = tmp_path / "index"
    build(out, src, {"o'brien.pdf": ["letters from the west"], "other.pdf": ["letters home"]})
    store = SearchStore(out, refresh=False)
    results = store.search_files(
        query_text="letters", mode="text", filters=Filters(path_glob="*/o'brien.pdf")
    )
    assert paths(results) == ["o'brien.pdf"]
    assert re.fullmatch(glob_regex("*/a?c[!x].pdf"), "/d/abcd.pdf") and not re.fullmatch(
        glob_regex("*/a?c[!x].pdf"), "/d/abcx.pdf"
    )


def test_highlights_land_on_the_matched_words(index):
    store = SearchStore(index, refresh=False)
    for query in ("heron numbers", "résumé runs", "library roof manuscripts"):
        wanted = Query.parse(query).terms
        for result in store.search_files(query_text=query, mode="text"):
            assert result.highlights, (query, result.snippet)
            marked = [result.snippet[start:end] for start, end in result.highlights]
            assert all(term(word) in wanted for word in marked), marked
            # Every matching word of the snippet is highlighted, and nothing else.
            expected = [
                m.span() for m in re.finditer(r"[^\W_]+", result.snippet) if term(m.group()) in wanted
            ]
            assert list(result.highlights) == expected


def test_a_long_page_gives_a_snippet_around_its_matches(tmp_path, src):
    out = tmp_path / "index"
    page = (
        "filler words about nothing much. " * 40 + "The golden heron nests here. " + "more filler text. " * 40
    )
    build(out, src, {"long.pdf": [page]})
    (result,) = SearchStore(out, refresh=False).search_files(query_text="golden heron", mode="text")
    assert result.snippet.startswith("…") and result.snippet.endswith("…") and len(result.snippet) <= 204
    assert [result.snippet[s:e] for s, e in result.highlights] == ["golden", "heron"]


def test_results_as_json_lines(index):
    store = SearchStore(index, refresh=False)
    for result in store.search_files(query_text="heron", query_vector=vector_of("heron"), mode="hybrid"):
        line = json.dumps(result.to_json(), separators=(",", ":"))
        data = json.loads(line)
        assert list(data) == [
            "path",
            "kind",
            "score",
            "page",
            "start_seconds",
            "end_seconds",
            "places",
            "files",
            "snippet",
            "highlights",
        ]
        assert isinstance(data["score"], float) and data["places"]
        for place in data["places"]:
            assert list(place) == ["kind", "score", "page", "start_seconds", "end_seconds"]
        best = data["places"][0]
        assert (data["page"], data["start_seconds"], data["end_seconds"]) == (
            best["page"],
            best["start_seconds"],
            best["end_seconds"],
        )
        assert all(isinstance(pair, list) and len(pair) == 2 for pair in data["highlights"])


def test_vector_hits_are_placed_on_their_page(index):
    store = SearchStore(index, refresh=False)
    piece = chunks(LONG_PAGE)[5]
    (best, *_) = store.search_files(query_vector=vector_of(piece), mode="vector")
    assert (Path(best.path).name, best.page) == ("minutes.pdf", 2)
    assert best.score == pytest.approx(1.0, abs=1e-5)
    assert best.snippet.startswith("The committee met")  # the page's text, not only the chunk


def test_hybrid_fuses_places_of_both_rankings(index):
    store = SearchStore(index, refresh=False)
    # Text finds the herons; the vector is the budget sentence's: the talk's first stretch.
    results = store.search_files(
        query_text="heron", query_vector=vector_of("Welcome to the quarterly"), mode="hybrid"
    )
    talk = next(r for r in results if r.path.endswith("talk.mp3"))
    assert {place.start_seconds for place in talk.places} == {0.0, 30.0}
    assert [r.score for r in results] == sorted((r.score for r in results), reverse=True)


def test_an_index_written_without_passages_is_searched_by_its_rows(tmp_path, src):
    out = tmp_path / "index"
    path = write(src, "old.pdf", "x")
    with IndexWriter(out, Shard(), MANIFEST) as writer:
        (stat,) = writer.plan([FileStat.of(path)]).todo
        work = writer.begin(stat, "ab" * 32, "pdf")
        assert work is not None
        writer.add_rows(
            work,
            [
                Row("pdf_text", vector_of(t), text=t, page=p)
                for p, t in ((1, "an old heron"), (2, "a young heron"))
            ],
        )
        writer.finish(work)
    update_store(out)
    (result,) = SearchStore(out, refresh=False).search_files(query_text="young heron", mode="text")
    assert [place.page for place in result.places] == [2, 1] and result.snippet == "a young heron"


# --- the store: read-only, lagging, refused ------------------------------------------------


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_searching_never_writes(index):
    before = snapshot(index)
    for _ in range(3):
        store = SearchStore(index, refresh=False)
        store.search_files(
            query_text="heron",
            query_vector=vector_of("x"),
            mode="hybrid",
            filters=Filters(path_glob="*.pdf", modified_after=datetime(2000, 1, 1)),
        )
        store.search_files(query_text='"grey heron"', mode="text", offset=1)
        store.search(query_text="heron", query_vector=vector_of("x"), mode="hybrid")
    assert snapshot(index) == before


def test_a_store_that_lags_never_returns_retired_text_and_says_so(index, src):
    build(index.parent / "unused", src, {"birds.pdf": ["Only gulls today."]})  # rewrites src/birds.pdf
    with IndexWriter(index, Shard(), MANIFEST) as writer:
        listed = [FileStat.of(p) for p in sorted(src.iterdir())]
        for stat in writer.plan(listed).todo:
            work = writer.begin(stat, hashlib.sha256(Path(stat.path).read_bytes()).hexdigest(), "pdf")
            if work is not None:
                (passage,) = writer.add_passages(
                    work, [Passage("pdf_text", "Only gulls today.", page=1)]
                )
                writer.add_rows(
                    work,
                    [
                        Row(
                            "pdf_text",
                            vector_of("gulls"),
                            text="Only gulls today.",
                            page=1,
                            passage=passage,
                        )
                    ],
                )
                writer.finish(work)
    stale = SearchStore(index, refresh=False)
    assert (stale.lag.files_missing, stale.lag.files_retired) == (1, 1)
    assert "not searchable yet" in stale.lag.describe() and "left out" in stale.lag.describe()
    found = stale.search_files(query_text="heron grey reeds", mode="text")
    assert "birds.pdf" not in paths(found)
    assert not stale.search_files(query_text="gulls", mode="text")  # not in the store yet
    update_store(index)
    fresh = SearchStore(index, refresh=False)
    assert not fresh.lag and paths(fresh.search_files(query_text="gulls", mode="text")) == ["birds.pdf"]


def test_an_index_without_a_store_is_refused_and_left_alone(tmp_path, src):
    out = tmp_path / "index"
    with IndexWriter(out, Shard(), MANIFEST):
        pass
    with pytest.raises(StoreNotReadyError, match="no search store yet"):
        SearchStore(out, refresh=False)
    assert not (out / ".search").exists()


def test_an_index_of_the_previous_schema_is_refused_with_what_to_do(index):
    manifest = index / "shard-0-of-1" / "manifest.json"
    data = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**data, "schema_version": 1}))
    with pytest.raises(IndexLayoutError, match=r"schema version 1; this Sensorium reads version 2\. Rebuild"):
        IndexReader(index)
