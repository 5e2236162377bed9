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

Printed: build times (parts, store ingest with the full-text index, vector index), the cost of
opening the store: read-only as searches open it now (`SearchStore(..., refresh=False)`: the
ledger and the store's state, no scan of the rows) beside opening it the old way, which brought
the store up to date first (`update_store` with nothing to do: it counts every unit's rows in the
store), median of `--opens` opens in this process with warm file caches; then for
each nprobes x refine factor the store's lookup latency p50/p95 (SearchStore.search in vector
mode, k results with their provenance) and recall@k against exact search (all rows compared
in numpy); and numpy's exact search time per query for scale.

`--end-to-end` adds what a user of `sensorium search` waits for, on the same index: (a) in
this process, with the embedding model loaded once, `--text-queries` short sentences embedded
the way `sensorium search` embeds its query (sensorium.index.query.embed_query through the one seam) and
searched in the store (hybrid, the default for a text query, and vector) with the store's
default settings, p50/p95 of embedding, store and total; (b) `sensorium search --index DIR
QUERY` run as a command `--cli-runs` times, wall time, beside the parts of it timed alone
(interpreter start, `import sensorium.cli`, model load, opening the store). The index's
manifest then names the model's embedding space (the CLI refuses another); the rows' text is
words drawn from a vocabulary that includes the queries' words, so the full-text half of a
hybrid search has postings to read. Random weights (`--pretrained ""`) differ in every process,
so they are saved once as a checkpoint file that every process loads (same model, same cost).

Example:
  nice .venv/bin/python bench/search.py                                # 1,000,000 rows, ~10 min
  .venv/bin/python bench/search.py --rows 20000 --clusters 200 --queries 50
  nice .venv/bin/python bench/search.py --end-to-end             # + embedding and the CLI, ViT-B-32
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import harness  # bench/ is on sys.path when this file is run as a script
import numpy as np

from sensorium.index.layout import EmbeddingSpace, Manifest, Shard
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
    parser.add_argument("--opens", type=int, default=10,
                        help="store opens timed, each way (default: %(default)s)")
    parser.add_argument(
        "--json", type=Path, default=None, metavar="OUT.json", help="also write results as JSON"
    )
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress on stderr")
    e2e = parser.add_argument_group("end to end (--end-to-end)")
    e2e.add_argument("--end-to-end", action="store_true",
                     help="also time text queries embedded and searched as `sensorium search` does")
    e2e.add_argument("--model", default="ViT-B-32", help="SENSORIUM_EMBEDDING__MODEL (default: %(default)s)")
    e2e.add_argument("--pretrained", default="", help='open_clip tag or file; "" = random weights (default)')
    e2e.add_argument("--model-dir", type=Path, default=None,
                     help="SENSORIUM_MODEL_DIR (default: the setting's)")
    e2e.add_argument("--text-queries", type=int, default=len(TEXT_QUERIES),
                     help=f"text queries timed in this process, at most {len(TEXT_QUERIES)} "
                     "(default: %(default)s)")
    e2e.add_argument("--cli-runs", type=int, default=5,
                     help="`sensorium search` commands run (default: %(default)s)")
    return parser.parse_args()


TEXT_QUERIES = (
    "a red car parked in front of the station", "quarterly revenue grew by twelve percent",
    "the patient reported chest pain after exercise", "how to replace the water pump",
    "minutes of the board meeting in march", "a dog running on the beach at sunset",
    "invoice overdue payment reminder", "the contract ends on the last day of june",
    "safety instructions for the ladder", "interview with the new head of research",
    "a map of the old town with the river", "results of the soil samples from the north field",
    "the train was delayed by forty minutes", "recipe for bread with rye flour",
    "warranty terms for the washing machine", "a child reading a book in the library",
    "the budget for the new school building", "notes from the lecture on thermodynamics",
    "the company plans to hire engineers", "flood warning for the coast tonight",
    "a cat sleeping on a window sill", "tax return deadline and forms",
    "the bridge needs repairs before winter", "a presentation about solar panels",
    "customer complaint about a broken screen", "the orchestra played a symphony by brahms",
    "annual report of the football club", "a mountain lake surrounded by pine trees",
    "the software update fixes a security bug", "lease agreement for the office on main street",
    "a diagram of the heart and its valves", "the election results in the third district",
    "how the vaccine trial was designed", "a photo of the team at the summer party",
    "the shipment arrived damaged", "lecture slides on linear algebra",
    "the museum opens a new exhibition in may", "an old letter from my grandmother",
    "the factory reduced its energy use", "a podcast episode about sleep",
    "the recall of the faulty brakes", "a street market with fresh vegetables",
    "the thesis chapter on climate models", "a bicycle leaning against a wall",
    "the hospital opened a new wing", "a speech about the future of the city",
    "meeting agenda for the product launch", "the pilot announced turbulence ahead",
    "a spreadsheet of monthly expenses", "the bank raised interest rates again",
)
"""The text queries of --end-to-end: short, varied, as a person types them."""


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


def write_parts(
    directory: Path,
    data: Data,
    rows_per_file: int,
    space: EmbeddingSpace | None = None,
    texts: Callable[[int, int], list[str]] | None = None,
) -> dict[str, int]:
    """Index the data as files of `rows_per_file` rows; returns unit -> first row number.
    `space` names the manifest's embedding space (default: a made-up one); `texts(first, count)`
    gives the rows' texts (default: "row N")."""
    manifest = Manifest(space or EmbeddingSpace("bench", "clusters", "0" * 64, data.dim), {"bench": "search"})
    texts = texts or (lambda first, count: [f"row {first + i}" for i in range(count)])
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
                    [
                        Row("pdf_text", v, text=text, page=1)
                        for v, text in zip(vectors, texts(row, len(vectors)), strict=True)
                    ],
                )
                writer.finish(work)
                first_row[work.unit] = row
                row += len(vectors)
    return first_row


def open_costs(directory: Path, queries: np.ndarray, opens: int) -> dict[str, float]:
    """Median seconds to open the store read-only (and answer a first vector query), and to open
    it the old way (bring it up to date, nothing to do)."""
    from sensorium.index.store import update_store

    def median(measure: Callable[[], object]) -> float:
        timings = []
        for _ in range(opens):
            started = time.perf_counter()
            measure()
            timings.append(time.perf_counter() - started)
        return statistics.median(timings)

    return {
        "open_read_only_s": median(lambda: SearchStore(directory, refresh=False)),
        "open_and_first_query_s": median(
            lambda: SearchStore(directory, refresh=False).search(query_vector=queries[0], mode="vector", k=10)
        ),
        "open_with_update_s": median(lambda: update_store(directory)),
    }


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


class Words:
    """Rows' texts for --end-to-end: `per_row` words drawn with Zipf-like frequencies
    (p ~ 1 / (rank + 10)) from the queries' words and `filler` made-up ones, shuffled together,
    so common query words ("the", "a") have long posting lists and rare ones short."""

    def __init__(self, queries: tuple[str, ...], seed: int, filler: int = 5_000, per_row: int = 20) -> None:
        words = sorted({word for query in queries for word in query.split()})
        self.rng = np.random.default_rng(seed + 3)
        self.vocabulary = np.array(words + [f"w{i:04d}" for i in range(filler)])
        self.rng.shuffle(self.vocabulary)
        weights = 1.0 / (np.arange(len(self.vocabulary)) + 10.0)
        self.p = weights / weights.sum()
        self.per_row = per_row

    def __call__(self, first: int, count: int) -> list[str]:
        drawn = self.vocabulary[self.rng.choice(len(self.vocabulary), size=(count, self.per_row), p=self.p)]
        return [" ".join(row) for row in drawn]


def model_settings(args: argparse.Namespace, scratch: Path) -> dict[str, str]:
    """The embedding settings every process of --end-to-end runs with. Random weights are
    drawn anew by each process (their fingerprint differs, and the CLI would refuse the index),
    so they are drawn once here and saved as a checkpoint file every process loads."""
    pretrained = args.pretrained
    if not pretrained and not args.model.startswith(("local-dir:", "hf-hub:")):
        import open_clip
        import torch

        pretrained = str(scratch / f"{args.model}-random.pt")
        torch.save(open_clip.create_model(args.model).state_dict(), pretrained)
    env = {"SENSORIUM_DEVICE": "cpu", "SENSORIUM_EMBEDDING__MODEL": args.model,
           "SENSORIUM_EMBEDDING__PRETRAINED": pretrained}
    if args.model_dir is not None:
        env["SENSORIUM_MODEL_DIR"] = str(args.model_dir)
    return env


@contextlib.asynccontextmanager
async def embedding_engine() -> Any:
    """The embedding model in this process, through the one seam, as `sensorium search` opens it."""
    from sensorium.embedding.api import EMBEDDING
    from sensorium.engines import InProcessEngines
    from sensorium.runtimes import Runtimes
    from sensorium.settings import Settings

    async with InProcessEngines(Runtimes(Settings(), ["embedding"])) as engines:
        yield await engines.open(EMBEDDING)


async def embedding_space(directory: Path) -> tuple[EmbeddingSpace, float]:
    """The model's space, as `sensorium search` reads it, and the seconds the model took to load."""
    started = time.perf_counter()
    async with embedding_engine() as engine:
        loaded = time.perf_counter() - started
        space = (await engine.describe()).space
    return EmbeddingSpace.of(space), loaded


async def in_process(
    directory: Path, store: SearchStore, queries: list[str], k: int
) -> tuple[dict[str, dict[str, float]], float]:
    """Per mode, p50/p95 of embedding, store lookup and both, per text query, the model loaded
    once (as a server would hold it); and the model's load time in this process."""
    from sensorium.index.query import embed_query

    manifest = store.reader.manifest
    started = time.perf_counter()
    async with embedding_engine() as engine:
        loaded = time.perf_counter() - started
        for query in queries[:5]:  # warm-up: the model's first passes, the store's caches
            vector = await embed_query(engine, manifest, text=query)
            for mode in ("hybrid", "vector"):
                await asyncio.to_thread(store.search, query_text=query, query_vector=vector, mode=mode, k=k)
        results: dict[str, dict[str, float]] = {}
        for mode in ("hybrid", "vector"):
            times: dict[str, list[float]] = {"embed": [], "store": [], "total": []}
            for query in queries:
                started = time.perf_counter()
                vector = await embed_query(engine, manifest, text=query)
                embedded = time.perf_counter()
                hits = await asyncio.to_thread(
                    store.search, query_text=query, query_vector=vector, mode=mode, k=k
                )
                done = time.perf_counter()
                assert hits, f"no hits for {query!r} ({mode})"
                times["embed"].append(embedded - started)
                times["store"].append(done - embedded)
                times["total"].append(done - started)
            results[mode] = {
                f"{name}_{q}_ms": 1000 * harness.percentile(sorted(values), q)
                for name, values in times.items()
                for q in (50, 95)
            }
    return results, loaded


def wall_times(command: list[str], runs: int) -> list[float]:
    """Wall seconds of `runs` runs of a command, after one untimed run (file caches warm)."""
    times = []
    for run in range(runs + 1):
        started = time.perf_counter()
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        elapsed = time.perf_counter() - started
        if result.returncode != 0 or (command[-1] in TEXT_QUERIES and not result.stdout.strip()):
            raise SystemExit(f"{' '.join(command)} failed ({result.returncode}): {result.stderr.strip()}")
        if run:
            times.append(elapsed)
    return times


PROFILE = """
import time; started = time.perf_counter()
import asyncio, json, sys
from sensorium.cli import main as cli_main
from sensorium.embedding.api import EMBEDDING
from sensorium.engines import InProcessEngines
from sensorium.index.query import embed_query
from sensorium.index.search import SearchStore
from sensorium.runtimes import Runtimes
from sensorium.settings import Settings
steps = {"imports": time.perf_counter() - started}
async def main():
    directory, query = sys.argv[1:]
    mark = time.perf_counter()
    def step(name):
        nonlocal mark
        now = time.perf_counter(); steps[name] = now - mark; mark = now
    store = await asyncio.to_thread(SearchStore, directory); step("store_open")
    async with InProcessEngines(Runtimes(Settings(), ["embedding"])) as engines:
        engine = await engines.open(EMBEDDING)
        step("model_start")
        vector = await embed_query(engine, store.reader.manifest, text=query); step("embed")
        await asyncio.to_thread(store.search, query_text=query, query_vector=vector, mode="hybrid", k=10)
        step("search")
    step("model_stop")
asyncio.run(main())
print(json.dumps(steps))
"""
"""`sensorium search`'s steps, each timed, in a fresh process: the same calls as sensorium.cli.search."""


def profile(directory: Path, queries: list[str], runs: int) -> dict[str, list[float]]:
    """Per step of PROFILE, its seconds in each of `runs` fresh processes (after an untimed one)."""
    import json

    steps: dict[str, list[float]] = {}
    for run in range(runs + 1):
        started = time.perf_counter()
        result = subprocess.run([sys.executable, "-c", PROFILE, str(directory), queries[run % len(queries)]],
                                capture_output=True, text=True, check=False)
        wall = time.perf_counter() - started
        if result.returncode != 0:
            raise SystemExit(f"profiling `sensorium search` failed: {result.stderr.strip()}")
        if run:
            timed = json.loads(result.stdout.splitlines()[-1])
            timed["rest"] = wall - sum(timed.values())
            for name, seconds in timed.items():
                steps.setdefault(name, []).append(seconds)
    return steps


def sensorium_command() -> list[str]:
    """`sensorium` as installed next to this Python, else the module it runs."""
    script = Path(sys.executable).parent / "sensorium"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "sensorium.cli"]


def end_to_end(directory: Path, args: argparse.Namespace, model_load_s: float) -> dict[str, Any]:
    queries = list(TEXT_QUERIES[: args.text_queries])
    started = time.perf_counter()
    store = SearchStore(directory, refresh=False)  # as `sensorium search` opens it: read-only
    store_open_s = time.perf_counter() - started
    modes, in_process_load_s = asyncio.run(in_process(directory, store, queries, args.k))
    command = [*sensorium_command(), "search", "--index", str(directory)]
    cli_times = [wall_times([*command, queries[run % len(queries)]], 1)[0] for run in range(args.cli_runs)]
    return {
        "command": [*sensorium_command(), "search", "--index", "DIR", "QUERY"],
        "queries": len(queries),
        "modes": modes,
        "cli_s": cli_times,
        "steps_s": profile(directory, queries, args.cli_runs),
        "python_start_s": wall_times([sys.executable, "-c", "pass"], args.cli_runs),
        "model_load_in_process_s": [model_load_s, in_process_load_s],
        "store_open_in_process_s": store_open_s,
    }


def weights_label(args: argparse.Namespace) -> str:
    if args.pretrained:
        return args.pretrained
    if args.model.startswith(("local-dir:", "hf-hub:")):
        return "its own weights"
    return "random weights, saved once as a checkpoint"


def print_end_to_end(e2e: dict[str, Any], args: argparse.Namespace) -> None:
    print()
    print(
        f"End to end, {e2e['queries']} text queries, model {args.model} "
        f"({weights_label(args)}) on the CPU, loaded once; "
        "store with its default settings; after 5 warm-up queries:"
    )
    print()
    print("| mode | embed p50 ms | embed p95 ms | store p50 ms | store p95 ms "
          "| total p50 ms | total p95 ms |")
    print("|---|--:|--:|--:|--:|--:|--:|")
    for mode, r in e2e["modes"].items():
        cells = [f"{r[f'{name}_{q}_ms']:.1f}" for name in ("embed", "store", "total") for q in (50, 95)]
        print(f"| {mode} | " + " | ".join(cells) + " |")
    print()

    def seconds(values: list[float]) -> str:
        return f"| {statistics.median(values):.2f} | {min(values):.2f}-{max(values):.2f} |"

    print(f"The command, `{' '.join(e2e['command'])}` (hybrid), {len(e2e['cli_s'])} runs after an "
          "untimed one; then its steps, timed inside a fresh process making the same calls (as many runs):")
    print()
    print("| what | median s | range s |")
    print("|---|--:|--:|")
    print(f"| `sensorium search` (whole command) {seconds(e2e['cli_s'])}")
    labels = {
        "imports": "imports (`sensorium.cli`, SearchStore)",
        "store_open": "open the store (SearchStore: refresh, nothing to do)",
        "model_start": "start the embedding runtime (torch, open_clip, load the model)",
        "embed": "embed the query", "search": "store search (hybrid)",
        "model_stop": "stop the runtime",
        "rest": "the rest (interpreter start and exit)",
    }
    for name, label in labels.items():
        print(f"| {label} {seconds(e2e['steps_s'][name])}")
    print(f"| for scale: `python -c pass` {seconds(e2e['python_start_s'])}")


def main() -> None:
    args = parse_args()
    say = (lambda message: None) if args.quiet else (lambda message: harness.log(message))
    directory = args.dir or Path(tempfile.mkdtemp(prefix="sensorium-search-bench-"))
    scratch = Path(tempfile.mkdtemp(prefix="sensorium-search-bench-model-"))
    times: dict[str, float] = {}
    space, texts, model_load_s, e2e = None, None, 0.0, None
    try:
        if args.end_to_end:
            os.environ.update(model_settings(args, scratch))  # this process and the commands it runs
            space, model_load_s = asyncio.run(embedding_space(directory))
            say(f"model {space.model} loaded in {model_load_s:.1f} s; vectors of {space.dimension} dims")
            args.dim, texts = space.dimension, Words(TEXT_QUERIES, args.seed)
        data = Data(args.rows, args.clusters, args.dim, args.noise, args.seed)
        say(f"writing {args.rows:,} rows as Parquet parts in {directory}")
        started = time.perf_counter()
        first_row = write_parts(directory, data, args.rows_per_file, space, texts)
        times["parts_s"] = time.perf_counter() - started

        say("building the store from the parts (rows + full-text index)")
        started = time.perf_counter()
        store = SearchStore(directory, params=VectorIndexParams(min_rows=2**62), refresh=True)
        times["store_ingest_s"] = time.perf_counter() - started

        say(f"building the vector index (IVF_SQ, {VectorIndexParams.partitions(args.rows)} partitions)")
        store.params = VectorIndexParams(min_rows=1)
        started = time.perf_counter()
        stats = store.refresh()
        times["vector_index_s"] = time.perf_counter() - started
        assert stats.vector_index, "the vector index was not built"

        say(f"opening the store, {args.opens} times each way")
        times.update(open_costs(directory, queries=data.queries(1), opens=args.opens))

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
        if args.end_to_end:
            say(f"end to end: {args.text_queries} text queries, {args.cli_runs} `sensorium search` runs")
            e2e = end_to_end(directory, args, model_load_s)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
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
        f"Opening the store (median of {args.opens}): read-only {1000 * times['open_read_only_s']:.0f} ms, "
        f"read-only and a first vector query {1000 * times['open_and_first_query_s']:.0f} ms; "
        f"the old way, updating it first (nothing to do) {1000 * times['open_with_update_s']:.0f} ms."
    )
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
    if e2e is not None:
        print_end_to_end(e2e, args)
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
                **({"end_to_end": e2e} if e2e is not None else {}),
                "parameters": {k: str(v) for k, v in vars(args).items()},
            },
        )


if __name__ == "__main__":
    main()
