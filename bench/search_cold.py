"""`sensorium search` as a command, cold and warm: the query path without torch beside today's.

On one index of `--rows` rows (built as bench/search.py builds it: clustered vectors in the
model's space, rows of words drawn from the queries' vocabulary, the store with its full-text
and vector indexes), one run times, each as a whole process started `--runs` times after one
untimed run (file caches warm), wall seconds and the process's own peak RSS (wait4):

- **sensorium search, cold**: `sensorium search --index DIR QUERY --no-daemon`, the command
  itself: the ONNX text tower in the command's process (hybrid, the default; and text mode,
  which loads no model);
- **sensorium search, warm**: `sensorium search --index DIR QUERY`, answered by the per-user
  query process (the first command starts it; timed on its own);
- **today**: the path before the text tower, as the command still takes it where no tower was
  exported: `sensorium search --no-daemon` with a `SENSORIUM_MODEL_DIR` that holds no tower
  (torch, open_clip), `--today-runs` times;
- **minimal, new path**: a minimal command making the query path's calls without the CLI:
  `Settings()`, `sensorium.index.query.search_index` (open the store, embed the query with the
  ONNX text tower when the mode needs a vector, search), print the hits; and the same asking
  the query process (`sensorium.index.query_daemon.query`): what the CLI adds over them;
- the cold command's steps, timed inside fresh processes making the same calls;
- the warm query itself, in one process (`QueryEngine`, resident), per mode;
- the exported tower's parity with open_clip on `--parity-texts` varied texts.

The model: `--model` (ViT-B-32) with random weights drawn once and saved as a checkpoint that
every process loads (bench/search.py explains why), exported to ONNX by the exporter
`sensorium models embedding` runs. Load averages are printed with each part: on a shared
machine the numbers move with them.

Example:
  nice .venv/bin/python bench/search_cold.py                       # 100,000 rows, ~10 min
  .venv/bin/python bench/search_cold.py --rows 5000 --runs 3 --today-runs 1 --parity-texts 200
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import harness  # bench/ is on sys.path when this file is run as a script
import numpy as np
import search as search_bench  # bench/search.py: the index builder and the queries

SUPPORT = Path(__file__).resolve().parents[1] / "tests" / "support"
"""The tests' helpers: the varied texts of the parity check come from there."""

COLD = """
import sys
from pathlib import Path
from sensorium.index.query import search_index
from sensorium.settings import Settings
index, mode, query = sys.argv[1], sys.argv[2], sys.argv[-1]
for hit in search_index(Settings(), Path(index), query, mode=mode, k=10):
    print(f"{hit.score:.4f}  {hit.kind:<9} {hit.path}")
    print(f"        {hit.snippet(query)}")
if "exit-fast" in sys.argv[3:-1]:  # skip the interpreter's teardown (lancedb's is ~1 s)
    import os
    sys.stdout.flush()
    os._exit(0)
"""
"""The minimal cold command: the query path's calls without the CLI."""

WARM = """
import sys
from sensorium.index import query_daemon
index, mode, query = sys.argv[1:4]
for hit in query_daemon.query(index, query, mode=mode, k=10):
    print(f"{hit['score']:.4f}  {hit['kind']:<9} {hit['path']}")
    print(f"        {hit['snippet']}")
"""
"""The minimal warm command: the query process asked without the CLI."""

STEPS = """
import time; started = time.perf_counter()
import json, sys
from pathlib import Path
steps = {}
mark = started
def step(name):
    global mark
    now = time.perf_counter(); steps[name] = now - mark; mark = now
from sensorium.index.query import QueryEngine
from sensorium.settings import Settings
step("import_query")
settings = Settings(); step("settings")
index, mode, query = sys.argv[1:4]
engine = QueryEngine(settings)
store = engine.store(Path(index)); step("store_open")
if mode != "text":
    tower = engine.tower; step("tower_load")
    tower.check_space(store.reader.manifest.space)
    vector = tower.embed(query); step("embed")
else:
    vector = None
store.search(query_text=query, query_vector=vector, mode=mode, k=10); step("search")
print(json.dumps(steps))
"""
"""The cold command's steps, each timed, in a fresh process (the same calls as search_index)."""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--rows", type=int, default=100_000, help="rows in the index (default: %(default)s)")
    parser.add_argument("--clusters", type=int, default=1_000, help="cluster centres (default: %(default)s)")
    parser.add_argument("--rows-per-file", type=int, default=1_000)
    parser.add_argument("--runs", type=int, default=20, help="timed runs per command (default: %(default)s)")
    parser.add_argument(
        "--today-runs",
        type=int,
        default=5,
        help="timed runs of today's `sensorium search` (~10 s each) (default: %(default)s)",
    )
    parser.add_argument("--model", default="ViT-B-32", help="open_clip model (default: %(default)s)")
    parser.add_argument("--pretrained", default="", help='tag or checkpoint; "" = random weights (default)')
    parser.add_argument(
        "--model-dir", type=Path, default=None, help="SENSORIUM_MODEL_DIR (default: a temporary one)"
    )
    parser.add_argument(
        "--parity-texts",
        type=int,
        default=2_000,
        help="texts embedded by the tower and by open_clip (default: %(default)s)",
    )
    parser.add_argument("--dir", type=Path, default=None, help="index directory (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the index directory")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, metavar="OUT.json")
    args = parser.parse_args()
    args.noise, args.text_queries, args.cli_runs = 0.75, len(search_bench.TEXT_QUERIES), 0
    return args


def load() -> str:
    return " / ".join(f"{value:.1f}" for value in os.getloadavg())


def run_command(
    command: list[str], env: dict[str, str], runs: int, queries: list[str], warm_up: int = 1
) -> dict[str, list[float]]:
    """Wall seconds and peak RSS (MiB) of `runs` runs after `warm_up` untimed ones; the query
    (the last argument) changes from run to run. The peak comes from GNU time (`/usr/bin/time`)
    when it is installed: a child of this process would report this process's own peak at the
    fork (Linux carries it across exec), and this process holds the model for the parity check."""
    gnu_time = shutil.which("time", path="/usr/bin:/bin")
    walls, peaks = [], []
    for run in range(warm_up + runs):
        with tempfile.NamedTemporaryFile() as peak_file, tempfile.TemporaryFile() as out:
            wrapper = [gnu_time, "-f", "%M", "-o", peak_file.name] if gnu_time else []
            started = time.perf_counter()
            result = subprocess.run(
                [*wrapper, *command, queries[run % len(queries)]],
                env=env,
                stdout=out,
                stderr=subprocess.PIPE,
                check=False,
            )
            elapsed = time.perf_counter() - started
            out.seek(0)
            if result.returncode != 0 or not out.read().strip():
                error = result.stderr.decode()[-2000:]
                raise SystemExit(f"{' '.join(command)} failed ({result.returncode}): {error}")
            peak = float(Path(peak_file.name).read_text().split()[-1]) / 1024 if gnu_time else float("nan")
        if run >= warm_up:
            walls.append(elapsed)
            peaks.append(peak)
    return {"wall_s": walls, "peak_mib": peaks}


def stats(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "p50": harness.percentile(ordered, 50),
        "p95": harness.percentile(ordered, 95),
        "min": ordered[0],
        "max": ordered[-1],
    }


def stop_daemons(run_dir: Path) -> list[float]:
    """Stop the query processes under `run_dir`; their peak RSS (MiB)."""
    from sensorium.index.query_daemon import DaemonUnavailable, call

    peaks = []
    for socket_file in (run_dir / "sensorium").glob("*.sock"):
        try:
            pid = call(socket_file, {"protocol": 1, "op": "ping"}, timeout=10)["pid"]
        except (OSError, DaemonUnavailable):
            continue
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                peaks.append(int(line.split()[1]) / 1024)
        os.kill(pid, signal.SIGTERM)
    return peaks


def parity(model_dir: Path, model: str, pretrained: str, count: int) -> dict[str, float]:
    """Cosine of the tower's vectors to open_clip's over `count` varied texts."""
    from sensorium.device import resolve_device
    from sensorium.embedding.embedder import Embedder
    from sensorium.embedding.text_tower import load_text_tower

    sys.path.insert(0, str(SUPPORT))
    import query_kit

    tower = load_text_tower(model_dir, model, pretrained)
    engine = Embedder.load(model, pretrained, model_dir, resolve_device("cpu"))
    texts = query_kit.varied_texts(count, seed=7)
    ours = np.concatenate([tower.encode(texts[i : i + 64]) for i in range(0, len(texts), 64)])
    theirs = np.concatenate(
        [
            np.stack(engine.encode([engine.prepare_text(t) for t in texts[i : i + 64]]))
            for i in range(0, len(texts), 64)
        ]
    )
    cosine = (ours * theirs).sum(1) / (np.linalg.norm(ours, axis=1) * np.linalg.norm(theirs, axis=1))
    return {
        "texts": len(texts),
        "min": float(cosine.min()),
        "p01": float(np.percentile(cosine, 1)),
        "mean": float(cosine.mean()),
        "truncated": sum(tower.tokenize(t)[1] > tower.info.context_length for t in texts),
    }


def warm_queries(directory: Path, queries: list[str]) -> dict[str, dict[str, float]]:
    """Per mode, p50/p95 ms of a query in a resident engine (after 5 warm-up queries)."""
    from sensorium.index.query import QueryEngine
    from sensorium.settings import Settings

    engine = QueryEngine(Settings(), resident=True)
    for query in queries[:5]:
        engine.search(directory, query, mode="hybrid")
    results = {}
    for mode in ("hybrid", "vector", "text"):
        times = []
        for query in queries:
            started = time.perf_counter()
            hits = engine.search(directory, query, mode=mode)  # type: ignore[arg-type]
            times.append(time.perf_counter() - started)
            assert hits, (mode, query)
        results[mode] = {name: 1000 * value for name, value in stats(times).items()}
    embed = []
    for query in queries:
        started = time.perf_counter()
        engine.tower.embed(query)
        embed.append(time.perf_counter() - started)
    results["embed only"] = {name: 1000 * value for name, value in stats(embed).items()}
    return results


def steps(
    directory: Path, env: dict[str, str], runs: int, queries: list[str], mode: str
) -> dict[str, list[float]]:
    found: dict[str, list[float]] = {}
    for run in range(runs + 1):
        started = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-c", STEPS, str(directory), mode, queries[run % len(queries)]],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        wall = time.perf_counter() - started
        if result.returncode != 0:
            raise SystemExit(f"the steps script failed: {result.stderr[-2000:]}")
        if run:
            timed = json.loads(result.stdout.splitlines()[-1])
            timed["interpreter start and exit"] = wall - sum(timed.values())
            for name, seconds in timed.items():
                found.setdefault(name, []).append(seconds)
    return found


def main() -> None:
    args = parse_args()
    say = harness.log
    directory = args.dir or Path(tempfile.mkdtemp(prefix="sensorium-search-cold-"))
    scratch = Path(tempfile.mkdtemp(prefix="sensorium-search-cold-model-"))
    results: dict[str, Any] = {"load": {"start": load()}}
    run_dir = scratch / "run"
    run_dir.mkdir(mode=0o700)
    try:
        env_settings = search_bench.model_settings(args, scratch)
        model_dir = args.model_dir or scratch / "models"
        env_settings["SENSORIUM_MODEL_DIR"] = str(model_dir)
        os.environ.update(env_settings)
        env = {**os.environ, "XDG_RUNTIME_DIR": str(run_dir)}
        model, pretrained = (
            env_settings["SENSORIUM_EMBEDDING__MODEL"],
            env_settings["SENSORIUM_EMBEDDING__PRETRAINED"],
        )

        from sensorium.embedding.onnx_export import export_text_tower
        from sensorium.index.layout import EmbeddingSpace
        from sensorium.index.search import SearchStore

        say(f"exporting the text tower of {model}")
        started = time.perf_counter()
        info = export_text_tower(model, pretrained, model_dir)
        results["export_s"] = time.perf_counter() - started
        space = EmbeddingSpace(info.model, info.pretrained, info.weights_sha256, info.dimension)
        tower_bytes = sum(f.stat().st_size for f in (model_dir / "text-onnx").rglob("*") if f.is_file())
        results["tower_mib"] = tower_bytes / 2**20

        if args.parity_texts:
            say(f"parity on {args.parity_texts} texts")
            results["parity"] = parity(model_dir, model, pretrained, args.parity_texts)
            results["load"]["parity"] = load()

        say(f"writing {args.rows:,} rows and building the store")
        data = search_bench.Data(args.rows, args.clusters, info.dimension, args.noise, args.seed)
        started = time.perf_counter()
        search_bench.write_parts(
            directory,
            data,
            args.rows_per_file,
            space,
            search_bench.Words(search_bench.TEXT_QUERIES, args.seed),
        )
        SearchStore(directory, refresh=True)  # the index job's last step: the store from the parts
        results["build_s"] = time.perf_counter() - started

        queries = list(search_bench.TEXT_QUERIES)
        python = [sys.executable]
        script = Path(sys.executable).parent / "sensorium"
        sensorium = [str(script)] if script.is_file() else [*python, "-m", "sensorium.cli"]
        # Today's path: the same settings, but a model folder without the exported tower, so
        # the command embeds the query with torch as it did before the tower existed.
        no_tower = scratch / "no-tower"
        no_tower.mkdir()
        today_env = {**env, "SENSORIUM_MODEL_DIR": str(no_tower)}
        search_cmd = [*sensorium, "search", "--index", str(directory)]
        commands: dict[str, tuple[list[str], int, dict[str, str]]] = {
            "python -c print (floor)": ([*python, "-c", "print(1)"], args.runs, env),
            "sensorium search, cold (--no-daemon): hybrid": ([*search_cmd, "--no-daemon"], args.runs, env),
            "sensorium search, cold (--no-daemon): text": (
                [*search_cmd, "--no-daemon", "--mode", "text"], args.runs, env),
            "sensorium search, warm (query process): hybrid": (search_cmd, args.runs, env),
            "sensorium search, warm (query process): text": ([*search_cmd, "--mode", "text"], args.runs, env),
            "minimal cold command: hybrid": ([*python, "-c", COLD, str(directory), "hybrid"], args.runs, env),
            "minimal cold command: text": ([*python, "-c", COLD, str(directory), "text"], args.runs, env),
            "minimal cold command: hybrid, os._exit after printing": (
                [*python, "-c", COLD, str(directory), "hybrid", "exit-fast"], args.runs, env),
            "minimal warm command: hybrid": ([*python, "-c", WARM, str(directory), "hybrid"], args.runs, env),
            "today (torch, no tower): sensorium search (hybrid)": (
                [*search_cmd, "--no-daemon", "--mode", "hybrid"], args.today_runs, today_env),
        }
        say("warm: the first command starts the query process")
        timings: dict[str, dict[str, list[float]]] = {
            "sensorium search, warm: first command (starts the process)": run_command(
                search_cmd, env, 1, queries, warm_up=0
            )
        }
        # Round by round, every command once (today's in the first `--today-runs` rounds), after
        # one untimed run of each: the machine's load, shared with others, weighs on them alike.
        say(f"{args.runs} rounds of {len(commands)} commands")
        round_loads: list[float] = []
        for command, runs, command_env in commands.values():
            if runs:
                run_command(command, command_env, 0, queries)
        for round_ in range(args.runs):
            for name, (command, runs, command_env) in commands.items():
                if round_ < runs:
                    timed = run_command(command, command_env, 1, queries[round_ % len(queries) :], warm_up=0)
                    for key, values in timed.items():
                        timings.setdefault(name, {}).setdefault(key, []).extend(values)
            round_loads.append(os.getloadavg()[0])
        results["load"]["rounds (1-min load, min-max)"] = f"{min(round_loads):.1f}-{max(round_loads):.1f}"
        results["daemon_peak_mib"] = stop_daemons(run_dir)

        say("the cold command's steps")
        results["steps"] = {
            mode: steps(directory, env, min(args.runs, 10), queries, mode) for mode in ("hybrid", "text")
        }
        say("warm queries in one process")
        results["warm_query_ms"] = warm_queries(directory, queries)
        results["load"]["end"] = load()
        results["commands"] = {
            name: {"runs": len(t["wall_s"]), "wall_s": stats(t["wall_s"]), "peak_mib": stats(t["peak_mib"])}
            for name, t in timings.items()
        }
    finally:
        stop_daemons(run_dir)
        shutil.rmtree(scratch, ignore_errors=True)
        if not args.keep and args.dir is None:
            shutil.rmtree(directory, ignore_errors=True)
    report(results, args)
    if args.json:
        harness.write_json(
            args.json,
            [],
            command=" ".join(sys.argv),
            extra={**results, "parameters": {k: str(v) for k, v in vars(args).items()}},
        )


def report(results: dict[str, Any], args: argparse.Namespace) -> None:
    print(harness.machine_markdown())
    print()
    print(f"Command: `{' '.join(sys.argv)}`")
    print()
    p = results.get("parity")
    checked = (
        f"parity with open_clip over {p['texts']} texts ({p['truncated']} past the context): cosine min "
        f"{p['min']:.6f}, 1st percentile {p['p01']:.6f}, mean {p['mean']:.6f}"
        if p
        else "parity not measured in this run (--parity-texts 0)"
    )
    print(
        f"{args.rows:,} rows, model {args.model} (random weights saved as a checkpoint); text tower "
        f"exported in {results['export_s']:.1f} s ({results['tower_mib']:.0f} MiB on disk); {checked}. "
        f"Index and store built in {results['build_s']:.0f} s. Commands run in {args.runs} interleaved "
        "rounds (today's in the first rounds only). Load averages (1/5/15 min): "
        + "; ".join(f"{k}: {v}" for k, v in results["load"].items())
        + "."
    )
    print()
    print("| command | runs | p50 s | p95 s | min-max s | peak RSS p50 MiB |")
    print("|---|--:|--:|--:|--:|--:|")
    for name, r in results["commands"].items():
        w, m = r["wall_s"], r["peak_mib"]
        cells = [
            str(r["runs"]),
            f"{w['p50']:.3f}",
            f"{w['p95']:.3f}",
            f"{w['min']:.2f}-{w['max']:.2f}",
            f"{m['p50']:.0f}",
        ]
        print(f"| {name} | " + " | ".join(cells) + " |")
    if results["daemon_peak_mib"]:
        print(f"\nThe query process's peak RSS: {results['daemon_peak_mib'][0]:.0f} MiB.")
    for mode, found in results["steps"].items():
        runs = len(next(iter(found.values())))
        print(f"\nThe cold command's steps ({mode}), median of {runs} fresh processes:\n")
        print("| step | median s | min-max s |")
        print("|---|--:|--:|")
        for name, values in found.items():
            ordered = sorted(values)
            print(f"| {name} | {harness.percentile(ordered, 50):.3f} | {ordered[0]:.3f}-{ordered[-1]:.3f} |")
    print("\nThe query in a warm process (QueryEngine, resident), per mode:\n")
    print("| mode | p50 ms | p95 ms |")
    print("|---|--:|--:|")
    for mode, r in results["warm_query_ms"].items():
        print(f"| {mode} | {r['p50']:.1f} | {r['p95']:.1f} |")


if __name__ == "__main__":
    main()
