"""A tiny index job for the kill-safety tests: drives IndexWriter as the real job does.

    python tests/support/index_driver.py SRC OUT [--rows-per-part N] [--pause-in-write]

Every file of SRC (sorted) is read, hashed and turned into rows whose text and vectors follow
from its content alone, so two runs give the same rows. Files starting with b"BAD" fail with
PDF_UNREADABLE, empty files are skipped. It prints "todo N" once planned, then "row" after each
row it adds and "done" at the end (flushed), so a test can kill it at a chosen point.
`--pause-in-write` makes it stop half-way through writing its first row part, print "paused",
and wait to be killed.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from sensorium.errors import Reason
from sensorium.index.layout import EmbeddingSpace, Manifest, Shard
from sensorium.index.writer import FileStat, IndexWriter, Row

DIMENSION = 8
MANIFEST = Manifest(EmbeddingSpace("driver", "none", "0" * 64, DIMENSION), {"chunk_overlap_tokens": 3})


def rows_for(data: bytes) -> list[Row]:
    digest = hashlib.sha256(data).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "big"))
    rows = []
    for i in range(1 + digest[0] % 5):
        vector = rng.standard_normal(DIMENSION)
        rows.append(
            Row(
                "pdf_text",
                vector / np.linalg.norm(vector),
                text=f"{data[:20]!r} chunk {i}",
                page=i + 1,
                bbox=(0.0, float(i), 10.0, float(i + 1)),
            )
        )
    return rows


def pause_in_write() -> None:
    import pyarrow.parquet as pq

    real = pq.write_table

    def half_then_wait(table: Any, where: Any, **kwargs: Any) -> None:
        if table.schema.names[0] == "unit":  # a row part, not a ledger segment
            where.write(b"PAR1" + b"\0" * 100)  # the start of a Parquet file, then nothing
            where.flush()
            print("paused", flush=True)
            time.sleep(600)
        real(table, where, **kwargs)

    pq.write_table = half_then_wait


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("src", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--rows-per-part", type=int, default=4)
    parser.add_argument("--shard", default="0/1")
    parser.add_argument("--pause-in-write", action="store_true")
    args = parser.parse_args()
    if args.pause_in_write:
        pause_in_write()
    shard = Shard.parse(args.shard)
    with IndexWriter(args.out, shard, MANIFEST, rows_per_part=args.rows_per_part) as writer:
        files = [FileStat.of(p) for p in sorted(args.src.iterdir()) if shard.owns(str(p))]
        plan = writer.plan(files)
        print(f"todo {len(plan.todo)}", flush=True)
        for stat in plan.todo:
            data = Path(stat.path).read_bytes()
            if not data:
                writer.skip(stat, Reason.INPUT_EMPTY, "the file is empty")
                continue
            work = writer.begin(stat, hashlib.sha256(data).hexdigest(), "pdf")
            if work is None:
                continue
            if data.startswith(b"BAD"):
                writer.fail(work, Reason.PDF_UNREADABLE, "not a PDF")
                continue
            for row in rows_for(data):
                writer.add_rows(work, [row])
                print("row", flush=True)
            writer.finish(work)
    print("done", flush=True)


if __name__ == "__main__":
    sys.exit(main())
