"""The benchmarks still run: `--help` for each script, and short real runs of the cheap ones.

Their numbers are not asserted (speed is measured by hand and recorded in docs/benchmarks.md);
what is asserted is that a script a person runs from the README does not fail.
"""

from __future__ import annotations

import os
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
    assert "End to end" not in result.stdout  # only with --end-to-end


def test_search_benchmark_end_to_end_runs_the_cli_on_its_index():
    import tiny_clip

    result = bench("bench/search.py", "--rows", "3000", "--clusters", "30", "--queries", "10",
                   "--nprobes", "8", "--refine", "0", "--end-to-end",
                   "--model", f"local-dir:{tiny_clip.build()}", "--text-queries", "8",
                   "--cli-runs", "1", "--quiet", timeout=600)
    assert result.returncode == 0, result.stderr
    modes = {line.split("|")[1].strip(): line.split("|")[2:-1] for line in result.stdout.splitlines()
             if line.startswith(("| hybrid |", "| vector |"))}
    assert set(modes) == {"hybrid", "vector"}, result.stdout
    for cells in modes.values():
        embed_p50, embed_p95, store_p50, store_p95, total_p50, total_p95 = map(float, cells)
        assert 0 < embed_p50 <= embed_p95 and 0 < store_p50 <= store_p95 and 0 < total_p50 <= total_p95
    # The command ran on the bench's index (it refuses an index of another model) and its
    # steps add up to a time the table shows.
    command = next(line for line in result.stdout.splitlines() if line.startswith("| `sensorium search`"))
    assert float(command.split("|")[2]) > 0, result.stdout
    assert "| start the embedding runtime" in result.stdout and "| store search (hybrid) |" in result.stdout


def test_cold_search_benchmark_times_every_command_on_its_index():
    import tiny_clip

    result = bench("bench/search_cold.py", "--rows", "2000", "--clusters", "20", "--runs", "2",
                   "--today-runs", "1", "--parity-texts", "40", "--model", f"local-dir:{tiny_clip.build()}",
                   timeout=900)
    assert result.returncode == 0, result.stderr
    rows = {line.split("|")[1].strip(): line.split("|")[2:-1] for line in result.stdout.splitlines()
            if line.startswith(("| sensorium search", "| minimal", "| today", "| python"))}
    expected = {"sensorium search, cold (--no-daemon): hybrid", "sensorium search, cold (--no-daemon): text",
                "sensorium search, warm (query process): hybrid",
                "sensorium search, warm: first command (starts the process)", "minimal cold command: hybrid",
                "minimal warm command: hybrid", "today (torch, no tower): sensorium search (hybrid)"}
    assert expected <= set(rows), result.stdout
    for name, (runs, p50, p95, _range, peak) in rows.items():
        assert int(runs) >= 1 and 0 < float(p50) <= float(p95) and float(peak) > 0, name
    assert "cosine min 1.0" in result.stdout or "cosine min 0.999" in result.stdout, result.stdout


def test_index_benchmark_runs_the_job_and_the_loop_on_the_same_files(tmp_path):
    import json

    import tiny_clip

    out = tmp_path / "index.json"
    result = bench("bench/index.py", "--quick", "--shards", "2", "--model", f"local-dir:{tiny_clip.build()}",
                   "--json", str(out), timeout=600)
    assert result.returncode == 0, result.stderr
    rows = {line.split("|")[1].strip(): line.split("|")[2:-1] for line in result.stdout.splitlines()
            if line.startswith(("| index job", "| plain loop"))}
    assert set(rows) == {"index job, in-process", "plain loop, same libraries",
                         "index job, 2 shard processes at once"}, result.stdout
    for files, repeats, median, _range, _seconds, _vectors in rows.values():
        assert (int(files), int(repeats)) == (8, 1) and float(median) > 0
    # Both sides embed the same texts: the loop chunks as the job does.
    assert rows["index job, in-process"][5] == rows["plain loop, same libraries"][5]
    assert "job ÷ loop: **" in result.stdout and "2 shards ÷ 1: **" in result.stdout
    assert "file errors" not in result.stdout
    report = json.loads(out.read_text())
    assert report["ratio"] > 0 and len(report["runs"]["job"]) == len(report["runs"]["loop"]) == 1
    busy = report["runs"]["job"][0]["busy"]
    assert busy["embedding_model_s"] > 0 and busy["transcription_model_s"] > 0


def test_overhead_benchmark_runs_the_service_beside_the_floor_and_the_bare_work(tmp_path):
    import json

    out = tmp_path / "overhead.json"
    result = bench("bench/overhead.py", "-c", "1", "2", "-d", "0.5", "-w", "0.2", "--repeats", "1",
                   "--security", "default", "tls-token", "--json", str(out), "--quiet", timeout=600)
    assert result.returncode == 0, result.stderr
    rows = [line.split("|")[1:-1] for line in result.stdout.splitlines()
            if line.startswith(("| default |", "| tls-token |"))]
    cases = {(r[0].strip(), r[2].strip(), r[3].strip(), r[4].strip()) for r in rows}
    for security in ("default", "tls-token"):
        for kind in ("texts", "images"):
            assert {(security, kind, target, clients) for target in ("floor", "service")
                    for clients in ("1", "2")} <= cases
            assert (security, kind, "bare pool", str(len(os.sched_getaffinity(0)))) in cases
    for row in rows:
        if row[3].strip() != "bare pool":
            assert int(row[5].replace(",", "")) > 0 and row[10].strip() == "0", row  # calls, no errors
    report = json.loads(out.read_text())
    assert report["ratios"]["default texts C=2: service ÷ floor"][0] > 0
    assert "p50 service - floor (ms)" in " ".join(report["ratios"])


def test_index_benchmark_runs_on_a_documents_folder(tmp_path):
    """bench/index.py --folder-kind documents: one document of each type (pandoc, Python),
    indexed by the job and read by the loop through the engine: both embed the same pieces."""
    import json

    import tiny_clip

    out = tmp_path / "index.json"
    result = bench("bench/index.py", "--quick", "--folder-kind", "documents", "--model",
                   f"local-dir:{tiny_clip.build()}", "--json", str(out), timeout=600)
    assert result.returncode == 0, result.stderr
    rows = {line.split("|")[1].strip(): line.split("|")[2:-1] for line in result.stdout.splitlines()
            if line.startswith(("| index job", "| plain loop"))}
    assert set(rows) == {"index job, in-process", "plain loop, same libraries"}, result.stdout
    assert rows["index job, in-process"][5] == rows["plain loop, same libraries"][5]
    assert "document_text" in rows["index job, in-process"][5]
    assert int(rows["index job, in-process"][0]) == 9 and "file errors" not in result.stdout
    assert json.loads(out.read_text())["ratio"] > 0


def test_runtime_path_benchmark_measures_every_variant() -> None:
    result = bench("bench/runtime_path.py", "--calls", "20", timeout=600)
    assert result.returncode == 0, result.stderr
    rows = [line.split("|")[1:-1] for line in result.stdout.splitlines()
            if line.startswith(("| own process", "| server process"))]
    assert [(r[0].strip(), r[1].strip()) for r in rows] == [
        ("own process", "default"), ("own process", "1"), ("server process", "default"),
        ("server process", "1")], result.stdout
    for row in rows:
        assert all(float(cell) > 0 for cell in row[2:6]), row  # p50, mean, CPU, round trip


def test_ocr_benchmark_measures_the_check_against_recognition() -> None:
    result = bench("bench/ocr.py", "--quick", "--engines", "rapidocr", "--check-sides", "400", timeout=600)
    assert result.returncode == 0, result.stderr
    check = [line for line in result.stdout.splitlines() if line.startswith("| 400 |")]
    assert len(check) == 1 and "%" in check[0], result.stdout
    assert "| 4032x3024 JPEG #0 |" in result.stdout  # the photo file, end to end
