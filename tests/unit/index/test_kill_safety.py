"""A writer killed with SIGKILL at any point loses only files in flight, never the index.

tests/support/index_driver.py drives IndexWriter in a real subprocess; the test kills it after
its k-th row, reruns it, and compares the live rows with those of an uninterrupted run.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import index_driver
import pyarrow.parquet as pq
import pytest
from indexkit import live_rows

import testkit
from sensorium.index.reader import IndexReader

DRIVER = testkit.REPO / "tests" / "support" / "index_driver.py"

pytestmark = pytest.mark.slow


def make_inputs(folder: Path) -> int:
    folder.mkdir()
    for i in range(12):
        (folder / f"doc-{i:02d}.pdf").write_text(f"document number {i} " * (i + 1))
    (folder / "copy-of-3.pdf").write_text("document number 3 " * 4)
    (folder / "broken.pdf").write_text("BAD bytes")
    (folder / "empty.pdf").write_text("")
    return 15


def start(src: Path, out: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(DRIVER), str(src), str(out), "--rows-per-part", "4", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_to_end(src: Path, out: Path) -> int:
    """Run the driver to completion; return how many files it had to do."""
    process = start(src, out)
    output, errors = process.communicate(timeout=120)
    assert process.returncode == 0, errors
    lines = output.splitlines()
    assert lines[-1] == "done"
    return int(lines[0].split()[1])


def kill_after(src: Path, out: Path, rows: int, *extra: str, marker: str = "row") -> None:
    process = start(src, out, *extra)
    assert process.stdout is not None
    seen = 0
    for line in process.stdout:
        seen += line.strip() == marker
        if seen >= rows:
            process.send_signal(signal.SIGKILL)
            break
    process.wait(60)
    assert process.returncode == -signal.SIGKILL, "the driver ended before it could be killed"


def committed_paths(out: Path) -> set[str]:
    if not any(out.glob("shard-*/manifest.json")):
        return set()
    return {row["path"] for row in IndexReader(out).files().to_pylist()}


def assert_every_visible_file_is_whole(out: Path) -> None:
    for path in out.rglob("*"):
        if not path.is_file() or path.name.startswith(".") or path.name == "lock":
            continue
        if path.suffix == ".parquet":
            pq.read_table(path)  # raises on a truncated file
        elif path.suffix == ".json":
            json.loads(path.read_text())


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, object]], int]:
    root = tmp_path_factory.mktemp("kill")
    src = root / "src"
    total = make_inputs(src)
    reference = root / "reference"
    assert run_to_end(src, reference) == total
    rows = live_rows(reference)
    # The uninterrupted run itself is right: every distinct good file's rows, once.
    contents = {p.read_bytes() for p in src.iterdir()} - {b"", b"BAD bytes"}
    assert len(contents) == 12
    assert sorted(row["text"] for row in rows) == sorted(
        row.text for data in contents for row in index_driver.rows_for(data)
    )
    return src, rows, total


@pytest.mark.parametrize("rows", [1, 3, 6, 10, 17, 24, 30])
def test_killed_at_any_row_and_rerun_gives_the_same_index(inputs, tmp_path, rows):
    src, reference, total = inputs
    out = tmp_path / "index"
    kill_after(src, out, rows)
    assert_every_visible_file_is_whole(out)
    committed = committed_paths(out)
    # The rerun redoes exactly the files that were not committed: those in flight or
    # finished since the last commit.
    assert run_to_end(src, out) == total - len(committed)
    assert live_rows(out) == reference
    assert run_to_end(src, out) == 0  # and then there is nothing left to do


def test_killed_half_way_through_writing_a_part(inputs, tmp_path):
    src, reference, total = inputs
    out = tmp_path / "index"
    kill_after(src, out, 1, "--pause-in-write", marker="paused")
    rows_dir = out / "shard-0-of-1" / "rows"
    assert [p.name for p in rows_dir.iterdir() if p.name.startswith(".tmp-")], "the half-written part"
    assert not list(rows_dir.glob("*.parquet")), "no part became visible"
    assert_every_visible_file_is_whole(out)
    assert run_to_end(src, out) == total
    assert not [p for p in rows_dir.iterdir() if p.name.startswith(".tmp-")]  # cleaned up
    assert live_rows(out) == reference


def test_killed_twice_in_a_row(inputs, tmp_path):
    src, reference, _ = inputs
    out = tmp_path / "index"
    kill_after(src, out, 9)
    kill_after(src, out, 8)
    run_to_end(src, out)
    assert live_rows(out) == reference
