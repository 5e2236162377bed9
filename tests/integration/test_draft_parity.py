"""Reduced-scale JPEG decoding (`draft()`) on photo-sized images gives the model the vectors
open_clip's full decode does: the path behind the embedding benchmark's figures.

Runs `bench/image_decode.py` (the same code measures the speed it buys) on ViT-B-32 with
random weights and 3 MP and 12 MP photos, and reads its table.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

import testkit


@pytest.mark.slow
def test_draft_decoded_photos_embed_like_full_decodes() -> None:
    result = subprocess.run(
        [sys.executable, "bench/image_decode.py", "--images", "2", "--sizes", "3", "12"],
        cwd=testkit.REPO, capture_output=True, text=True, timeout=600, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith(("| 3 MP", "| 12 MP"))]
    assert len(rows) == 2, result.stdout
    worst = [float(row.rstrip(" |").rsplit("|", 1)[1]) for row in rows]
    assert min(worst) >= 0.999, result.stdout
    # The vectors tell different photos apart: equal cosines are not a property of the model.
    unrelated = float(re.search(r"different photos: cosine (-?[\d.]+)", result.stdout).group(1))
    assert unrelated < 0.99, result.stdout
