"""Search store lookups on a large index: latency and recall@k of the vector index.

Builds a real index the way `sensorium index` does (IndexWriter -> Parquet parts), then the
LanceDB search store from the parts (SearchStore: full-text index, IVF_SQ vector index), and
queries it with vectors, as `sensorium search` does once the query is embedded.

The data: `--rows` unit vectors of `--dim` dimensions drawn around `--clusters` centres, the
centres uniform on the sphere; each point is normalize(centre + noise), the noise Gaussian
with norm about `--noise` times the centre's (0.75: a point's cosine to its centre is about
0.8, to another point of its cluster about 0.64, to points of other clusters about 0). So every
query has true neighbours, as real embeddings do; uniform random vectors would have none and
make every index look bad. Queries are fresh points drawn the same way.

Printed: build times (parts, store ingest with the full-text index, vector index), then for
each nprobes x refine factor the store's lookup latency p50/p95 (SearchStore.search in vector
mode, k results with their provenance) and recall@k against exact search (all rows compared
in numpy); and numpy's exact search time per query for scale.

Example:
  nice .venv/bin/python bench/search.py                                # 1,000,000 rows, ~10 min
  .venv/bin/python bench/search.py --rows 20000 --clusters 200 --queries 50
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import harness  # bench/ is on sys.path when this file is run as a script
import numpy as np

from sensorium.index.layout import EmbeddingSpace, Manifest, RowKind, Shard
from sensorium.index.search import SearchStore, VectorIndexParams
from sensorium.index.writer import FileStat, IndexWriter, Row

BLOCK = 50_000  # rows generated (and compared in exact search) at a time


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--rows", type=int, default=1_000_000, help="rows in the index (default: %(default)s)"
    )
    parser.add_argument("--clusters", type=int, default=10_000, help="cluster centres (default: %(default)s)")
    parser.add_argument("--dim", type=int, default=512, help="vector dimensions (default: %(default)s)")
    parser.add_argument(
        "--noise", type=float, default=0.75, help="noise norm relative to the centre's (default: %(default)s)"
    )
    parser.add_argument("--queries", type=int, default=200, help="query vectors (default: %(default)s)")
    parser.add_argument("-k", type=int, default=10, help="results per query (default: %(default)s)")
    parser.add_argument(
        "--nprobes",
        type=int,
        nargs="+",
        default=[10, 20, 40],
        help="IVF partitions searched per query, one measurement each (default: %(default)s)",
    )
    parser.add_argument(
        "--refine",
        type=int,
        nargs="+",
        default=[0, 2],
        help="refine factors (0 = none), one measurement each (default: %(default)s)",
    )
    parser.add_argument(
        "--rows-per-file",
        type=int,
        default=1_000,
        help="rows per indexed 'file' (one ledger entry each) (default: %(default)s)",
    )
    parser.add_argument("--dir", type=Path, default=None, help="index directory (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the index directory")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--json", type=Path, default=None, metavar="OUT.json", help="also write results as JSON"
    )
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress on stderr")
    return parser.parse_args()


class Data:
    """The clustered vectors, generated block by block from one seed (so they can be replayed)."""

    def __init__(self, rows: int, clusters: int, dim: int, noise: float, seed: int) -> None:
        self.rows, self.dim = rows, dim
        rng = np.random.default_rng(seed)
        self.centres = _normalize(rng.standard_normal((clusters, dim)).astype(np.float32))
        self.sigma = noise / np.sqrt(dim)  # per coordinate: the noise vector's norm is ~noise
        self.seed = seed

    def draw(self, rng: np.random.Generator, count: int) -> np.ndarray:
        centre = rng.integers(0, len(self.centres), count)
        noise = rng.standard_normal((count, self.dim)).astype(np.float32) * self.sigma
        return _normalize(self.centres[centre] + noise)

    def blocks(self) -> Iterator[np.ndarray]:
        rng = np.random.default_rng(self.seed + 1)
        for start in range(0, self.rows, BLOCK):
            yield self.draw(rng, min(BLOCK, self.rows - start))

    def queries(self, count: int) -> np.ndarray:
        return self.draw(np.random.default_rng(self.seed + 2), count)


def _normalize(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def write_parts(directory: Path, data: Data, rows_per_file: int) -> dict[str, int]:
    """Index the data as files of `rows_per_file` rows; returns unit -> first row number."""
    manifest = Manifest(EmbeddingSpace("bench", "clusters", "0" * 64, data.dim), {"bench": "search"})
    first_row: dict[str, int] = {}
    with IndexWriter(directory, Shard(), manifest, rows_per_part=10_000) as writer:
        row = 0
        for block in data.blocks():
            for start in range(0, len(block), rows_per_file):
                vectors = block[start : start + rows_per_file]
                stat = FileStat(f"/bench/file-{row // rows_per_file:07d}.pdf", len(vectors), 0)
                work = writer.begin(stat, hashlib.sha256(stat.path.encode()).hexdigest(), "pdf")
                assert work is not None
                writer.add_rows(
                    work,
                    [Row(RowKind.PDF_TEXT, v, text=f"row {row + i}", page=1) for i, v in enumerate(vectors)],
                )
                writer.finish(work)
                first_row[work.unit] = row
                row += len(vectors)
    return first_row


def exact_top_k(data: Data, queries: np.ndarray, k: int) -> tuple[np.ndarray, float, float]:
    """Exact top-k row numbers per query (cosine = dot product of unit vectors), and numpy's
    time per query: one query at a time (a matrix-vector product, timed on the first five), and
    amortised over the whole batch (a matrix-matrix product)."""
    best_scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
    best_rows = np.zeros((len(queries), k), dtype=np.int64)
    offset, batched, single = 0, 0.0, 0.0
    timed = queries[:5]
    for block in data.blocks():
        started = time.perf_counter()
        for query in timed:
            np.argpartition(-(block @ query), min(k, len(block) - 1))
        single += time.perf_counter() - started
        started = time.perf_counter()
        scores = queries @ block.T
        batched += time.perf_counter() - started
        top = np.argpartition(-scores, min(k, scores.shape[1] - 1), axis=1)[:, :k]
        merged_scores = np.concatenate([best_scores, np.take_along_axis(scores, top, axis=1)], axis=1)
        merged_rows = np.concatenate([best_rows, top + offset], axis=1)
        order = np.argsort(-merged_scores, axis=1)[:, :k]
        best_scores = np.take_along_axis(merged_scores, order, axis=1)
        best_rows = np.take_along_axis(merged_rows, order, axis=1)
        offset += len(block)
    return best_rows, single / len(timed), batched / len(queries)


def measure(
    store: SearchStore, queries: np.ndarray, exact: np.ndarray, k: int, first_row: dict[str, int]
) -> dict[str, float]:
    for query in queries[:10]:  # warm-up: caches, the index's partitions
        store.search(query_vector=query, mode="vector", k=k)
    latencies, found = [], 0
    for query, truth in zip(queries, exact, strict=True):
        started = time.perf_counter()
        hits = store.search(query_vector=query, mode="vector", k=k)
        latencies.append(time.perf_counter() - started)
        rows = {first_row[hit.unit] + hit.ordinal for hit in hits}
        found += len(rows & set(truth.tolist()))
    latencies.sort()
    return {
        "p50_ms": 1000 * harness.percentile(latencies, 50),
        "p95_ms": 1000 * harness.percentile(latencies, 95),
        "recall": found / (k * len(queries)),
    }


def main() -> None:
    args = parse_args()
    say = (lambda message: None) if args.quiet else (lambda message: harness.log(message))
    directory = args.dir or Path(tempfile.mkdtemp(prefix="sensorium-search-bench-"))
    data = Data(args.rows, args.clusters, args.dim, args.noise, args.seed)
    times: dict[str, float] = {}
    try:
        say(f"writing {args.rows:,} rows as Parquet parts in {directory}")
        started = time.perf_counter()
        first_row = write_parts(directory, data, args.rows_per_file)
        times["parts_s"] = time.perf_counter() - started

        say("building the store from the parts (rows + full-text index)")
        started = time.perf_counter()
        store = SearchStore(directory, params=VectorIndexParams(min_rows=2**62))
        times["store_ingest_s"] = time.perf_counter() - started

        say(f"building the vector index (IVF_SQ, {VectorIndexParams.partitions(args.rows)} partitions)")
        store.params = VectorIndexParams(min_rows=1)
        started = time.perf_counter()
        stats = store.refresh()
        times["vector_index_s"] = time.perf_counter() - started
        assert stats.vector_index, "the vector index was not built"

        say(f"exact top-{args.k} of {args.queries} queries in numpy")
        queries = data.queries(args.queries)
        exact, numpy_single, numpy_batched = exact_top_k(data, queries, args.k)

        results: list[dict[str, Any]] = []
        for nprobes in args.nprobes:
            for refine in args.refine:
                store.params = dataclasses.replace(store.params, nprobes=nprobes, refine_factor=refine)
                result = {
                    "nprobes": nprobes,
                    "refine_factor": refine,
                    **measure(store, queries, exact, args.k, first_row),
                }
                say(
                    f"nprobes={nprobes} refine={refine}: p50 {result['p50_ms']:.1f} ms, "
                    f"p95 {result['p95_ms']:.1f} ms, recall@{args.k} {result['recall']:.3f}"
                )
                results.append(result)
    finally:
        if not args.keep and args.dir is None:
            shutil.rmtree(directory, ignore_errors=True)

    print(harness.machine_markdown())
    print()
    print(f"Command: `{' '.join(sys.argv)}`")
    print()
    print(
        f"{args.rows:,} rows x {args.dim} dims around {args.clusters:,} centres (noise {args.noise}), "
        f"{args.queries} queries, k = {args.k}, "
        f"IVF_SQ with {VectorIndexParams.partitions(args.rows)} partitions."
    )
    print()
    print("| build step | seconds |")
    print("|---|--:|")
    for name, label in [
        ("parts_s", "Parquet parts (IndexWriter)"),
        ("store_ingest_s", "store: rows + full-text index"),
        ("vector_index_s", "store: vector index (IVF_SQ)"),
    ]:
        print(f"| {label} | {times[name]:.1f} |")
    print()
    print(
        f"Exact search in numpy over all rows: {1000 * numpy_single:.1f} ms a query one at a time, "
        f"{1000 * numpy_batched:.1f} ms a query amortised over all {args.queries} at once."
    )
    print()
    print(f"| nprobes | refine factor | p50 ms | p95 ms | recall@{args.k} |")
    print("|--:|--:|--:|--:|--:|")
    for r in results:
        cells = [r["nprobes"], r["refine_factor"], f"{r['p50_ms']:.1f}", f"{r['p95_ms']:.1f}"]
        cells.append(f"{r['recall']:.3f}")
        print("| " + " | ".join(str(cell) for cell in cells) + " |")
    if args.json:
        harness.write_json(
            args.json,
            [],
            command=" ".join(sys.argv),
            extra={
                "times": times,
                "numpy_exact_ms": 1000 * numpy_single,
                "numpy_exact_batched_ms": 1000 * numpy_batched,
                "lookups": results,
                "parameters": {k: str(v) for k, v in vars(args).items()},
            },
        )


if __name__ == "__main__":
    main()
