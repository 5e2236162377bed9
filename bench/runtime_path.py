"""The embedding runtime's share of a one-text call, without gRPC.

One caller awaits `EmbeddingRuntime.embed_texts([text])` in a loop (a different text every call)
with the near-free model of `overhead.py`, the model in its own process and in the server's
process, with the model's torch threads as set. Printed per variant: p50 and mean latency, the
CPU this process spends per call, and the model's round trip alone (`towers.run` of one text).
Beside `overhead.py`'s 1-client rows it tells how much of the service's time above the gRPC
floor is the runtime (tokenizing, batching, the model) and how much the call around it.

Example:
  .venv/bin/python bench/runtime_path.py --calls 1000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

import overhead  # bench/ is on sys.path when this file is run as a script


async def measure(model: str, model_process: bool, threads: int, calls: int) -> str:
    from sensorium.embedding.runtime import EmbeddingRuntime
    from sensorium.runtimes import Runtimes
    from sensorium.settings import Settings

    settings = Settings(services=["embedding"], device="cpu", embedding={
        "model": model, "pretrained": "", "model_process": model_process, "cpu_threads": threads})
    runtimes = Runtimes(settings, ["embedding"])
    await runtimes.start("embedding")
    try:
        runtime = runtimes.of(EmbeddingRuntime)
        for i in range(min(200, calls)):  # warm-up: the recent-traffic window, caches
            await runtime.embed_texts([overhead.text_for(0, i)])
        latencies = []
        cpu0, wall0 = time.process_time(), time.perf_counter()
        for i in range(calls):
            start = time.perf_counter()
            await runtime.embed_texts([overhead.text_for(1, i)])
            latencies.append(time.perf_counter() - start)
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        tokens = runtime.model.prepare_text(overhead.text_for(2, 0)).tokens
        start = time.perf_counter()
        for _ in range(300):
            runtime.model.towers.run([], [tokens])
        model_ms = (time.perf_counter() - start) / 300 * 1e3
    finally:
        await runtimes.close(5)
    return (f"| {'own process' if model_process else 'server process'} | {threads or 'default'} | "
            f"{statistics.median(latencies) * 1e3:.2f} | {wall / calls * 1e3:.2f} | "
            f"{cpu / calls * 1e3:.2f} | {model_ms:.2f} | {os.getloadavg()[0]:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=1000, help="measured calls per variant (default 1000)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sensorium-runtime-path-") as folder:
        model = f"local-dir:{overhead.write_near_free_model(Path(folder) / 'near-free')}"
        print("| model | torch threads | p50 ms | mean ms | this process's CPU ms/call "
              "| model round trip ms | load 1 min |")
        print("|---|---|--:|--:|--:|--:|--:|")
        for model_process in (True, False):
            for threads in (0, 1):
                print(asyncio.run(measure(model, model_process, threads, args.calls)), flush=True)


if __name__ == "__main__":
    main()
