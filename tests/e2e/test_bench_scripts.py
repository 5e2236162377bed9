"""The benchmarks still run: `--help` for each script, and short real runs of the cheap ones.

Their numbers are not asserted (speed is measured by hand and recorded in docs/benchmarks.md);
what is asserted is that a script a person runs from the README does not fail.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

import testkit

BENCH = testkit.REPO / "bench"


def bench(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=testkit.REPO, capture_output=True,
                          text=True, timeout=timeout, check=False)


@pytest.mark.parametrize("script", sorted(p.name for p in BENCH.glob("*.py") if p.name != "harness.py"))
def test_every_benchmark_explains_itself(script: str) -> None:
    result = bench(f"bench/{script}", "--help")
    assert result.returncode == 0, result.stderr
    assert "usage:" in result.stdout


def test_stream_message_benchmark_runs() -> None:
    result = bench("bench/stream_messages.py", "--pages", "64", "--per-message", "1", "8", "--repeats", "1")
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith(("| 1 |", "| 8 |"))]
    assert len(rows) == 2, result.stdout


def test_pdf_benchmark_runs_and_reports_both_ratios() -> None:
    result = bench("bench/pdf.py", "-d", "0.3", "-w", "0.1", "--quiet")
    assert result.returncode == 0, result.stderr
    assert "(a) service pages/s" in result.stdout and "(b) service speed-up" in result.stdout
    rows = [line.split("|")[1:-1] for line in result.stdout.splitlines()
            if line.startswith("| PyMuPDF") or line.startswith("| service")]
    assert len(rows) == 7, result.stdout
    for case, _clients, requests, errors, *_ in rows:
        assert int(requests.replace(",", "")) > 0 and int(errors) == 0, case


def test_search_benchmark_runs_and_finds_the_neighbours() -> None:
    result = bench("bench/search.py", "--rows", "4000", "--clusters", "40", "--dim", "64", "--queries", "20",
                   "--nprobes", "8", "--refine", "0", "2", "--quiet")
    assert result.returncode == 0, result.stderr
    rows = [line.split("|")[1:-1] for line in result.stdout.splitlines() if line.startswith("| 8 |")]
    assert len(rows) == 2, result.stdout
    for _nprobes, _refine, p50, p95, recall in rows:
        assert 0 < float(p50) <= float(p95)
        assert float(recall) >= 0.8  # clustered data: the index finds true neighbours
    assert "| store: vector index (IVF_SQ) |" in result.stdout
