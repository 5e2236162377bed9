"""The short soak: bench/soak.py against a real `sensorium serve` with all three services.

300 requests of the mixed traffic, bad inputs included, from client processes: every answer
must be the one its input calls for (0 unexpected errors). The memory slope of so short a run
is reported in the test's output, not asserted: the full soak (docs/reliability.md) judges it.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import testkit
import tiny_clip

pytestmark = [pytest.mark.slow, pytest.mark.weights]


def test_short_soak_gets_every_expected_answer(tmp_path):
    shapes = tiny_clip.build()  # a cheap embedding model; the full soak runs ViT-B-32
    out = tmp_path / "soak.json"
    result = subprocess.run(
        [sys.executable, "bench/soak.py", "--requests", "300", "--warmup", "100", "--clients", "2",
         "--threads", "2", "--embedding-model", f"local-dir:{shapes}", "--json", str(out), "--quiet"],
        cwd=testkit.REPO, capture_output=True, text=True, timeout=600, check=False,
    )
    print(result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    soak = json.loads(out.read_text())["soak"]
    assert soak["requests"] == 300 and soak["unexpected_errors"] == 0
    # The seeded mix sends every kind of call, the bad inputs too, and each got its own answer.
    answers = soak["answers"]
    assert answers["bad.pdf_no_password: INVALID_ARGUMENT PDF_PASSWORD_REQUIRED"] > 0
    assert answers["bad.audio_truncated: INVALID_ARGUMENT AUDIO_TRUNCATED"] > 0
    assert answers["bad.image_corrupt: OK item IMAGE_UNDECODABLE"] > 0
    sent = {key.split(":")[0] for key in answers}
    assert {"pdf.stream", "transcription.stream", "embedding.stream", "bad.texts_empty"} <= sent
    assert sent == set(soak["kinds"])
    assert soak["latency_ms"]["transcription"]["p99"] > 0
    # Memory was sampled every second through the run, with the PDF workers in the tree.
    samples = soak["rss_samples"]
    assert len(samples) >= 5 and max(s["processes"] for s in samples) >= 2
    assert samples[-1]["requests_done"] == 300
    assert "RSS slope after 100 warm-up requests (tree)" in result.stdout
    # The tokenless slow-upload client ran through the soak: every stream refused from its
    # headers, none let through more than HTTP/2's initial window (issue 22).
    slow = soak["slow_uploads"]
    assert slow["rounds"] >= 1 and set(slow["statuses"]) <= {"UNAUTHENTICATED", "connection OSError"}
    assert slow["statuses"]["UNAUTHENTICATED"] >= 8
    assert slow["most_accepted_bytes"] <= 64 * 1024
