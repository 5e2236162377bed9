"""An index directory someone else altered: search reads only the parts the writer makes and
writes only inside the index."""

from __future__ import annotations

import dataclasses
import hashlib
import shutil

import numpy as np
import pytest
from indexkit import MANIFEST, write

from sensorium.index import ledger
from sensorium.index.layout import IndexLayoutError, Shard, shard_dirs
from sensorium.index.search import SearchStore
from sensorium.index.writer import FileStat, IndexWriter, Row

TEXT = "the heron waits in the shallow marsh"


def _vector(seed: int) -> np.ndarray:
    vector = np.random.default_rng(seed).standard_normal(MANIFEST.space.dimension)
    return vector / np.linalg.norm(vector)


def _build(out, src, name: str, text: str) -> None:
    with IndexWriter(out, Shard(), MANIFEST) as writer:
        for stat in writer.plan([FileStat.of(write(src, name, text))]).todo:
            work = writer.begin(stat, hashlib.sha256(text.encode()).hexdigest(), "pdf")
            assert work is not None
            writer.add_rows(work, [Row("pdf_text", _vector(1), text=text, page=1)])
            writer.finish(work)


@pytest.mark.parametrize("part", ["../../victim/rows/00000001.parquet", "/absolute.parquet", "x.parquet"])
def test_a_ledger_naming_a_part_outside_its_rows_is_refused(tmp_path, src, part):
    index, victim = tmp_path / "index", tmp_path / "victim-index"
    _build(index, src, "birds.pdf", TEXT)
    _build(victim, src, "secret.pdf", "the launch codes are in the blue folder")
    (victim / "rows").mkdir(exist_ok=True)
    (shard,) = shard_dirs(victim).values()
    shutil.copy(next((shard / "rows").glob("*.parquet")), victim / "rows" / "00000001.parquet")
    (mine,) = shard_dirs(index).values()
    state = ledger.read(mine)
    (entry,) = state.entries.values()
    ledger.write_segment(mine, state.last_seq + 1, [dataclasses.replace(entry, parts=[part])])
    with pytest.raises(IndexLayoutError) as error:
        SearchStore(index).search(query_text="launch codes", query_vector=_vector(2), mode="text", k=5)
    assert part in str(error.value) and "altered" in str(error.value)


def test_a_linked_search_store_is_refused(tmp_path, src):
    index, elsewhere = tmp_path / "index", tmp_path / "elsewhere"
    _build(index, src, "birds.pdf", TEXT)
    elsewhere.mkdir()
    (index / ".search").symlink_to(elsewhere)
    with pytest.raises(IndexLayoutError) as error:
        SearchStore(index)
    assert "link" in str(error.value)
    assert list(elsewhere.iterdir()) == [], "nothing was written where the link points"
