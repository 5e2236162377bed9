"""The CLI's output, pinned: `pdf`, `transcribe`, `embed`, `score` and `search` print what the
golden files in tests/e2e/golden/ hold, in-process and through `--server` alike.

The golden files were written by the code before the one-seam redesign (issue 17), which had to
leave every command's output as it was. Timing fields are masked; numbers are compared within a
small tolerance (another CPU may round a vector's last digit differently), everything else
exactly. `GOLDEN_UPDATE=1` rewrites the files: only for a change of output made on purpose.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import pymupdf
import pytest

import testkit
import tiny_clip

pytestmark = pytest.mark.weights

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("GOLDEN_UPDATE") == "1"
TIMING_KEYS = {"processingSeconds", "realTimeFactor"}
# Made anew by each run (a row's unit id), or by the weights of the tiny CLIP the tests train,
# whose last bits depend on the CPU's arithmetic: its sha256 and the space id derived from it.
RUN_KEYS = {"unit", "weightsSha256"}
_NUMBER = re.compile(r"[-+]?\d+\.\d+(?:[eE][-+]?\d+)?")


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("golden-input")
    doc = pymupdf.open()
    for text in ("First page says hello to the harvest.", "Second page says goodbye to the potatoes."):
        doc.new_page().insert_text((72, 72), text)
    doc.set_metadata({"title": "Two pages", "author": "Golden", "creationDate": "D:20240102030405Z",
                      "modDate": "D:20240102030405Z"})
    # Fixed document ids, so that the file (hence its hash and the index) is the same each run.
    (folder / "two.pdf").write_bytes(doc.tobytes(no_new_id=True))
    rng = np.random.default_rng(5)
    for shape, colour in (("circle", "red"), ("square", "blue")):
        (folder / f"{colour}-{shape}.png").write_bytes(tiny_clip.png(tiny_clip.draw(shape, colour, rng)))
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    return {"pdf": folder / "two.pdf", "red": folder / "red-circle.png",
            "blue": folder / "blue-square.png", "broken": folder / "broken.jpg", "folder": folder}


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> dict[str, str]:
    clip = tiny_clip.build()
    return testkit.cli_env(
        SENSORIUM_MODEL_DIR=str(model_dir), SENSORIUM_DEVICE="cpu",
        SENSORIUM_EMBEDDING__MODEL=f"local-dir:{clip}", SENSORIUM_EMBEDDING__PRETRAINED="",
        SENSORIUM_TRANSCRIPTION__MODEL="packaged:tiny.en", SENSORIUM_PDF__WORKERS="1",
    )


@pytest.fixture(scope="module")
def server(env: dict[str, str]) -> Any:
    with testkit.serve(env, timeout=180) as serving:
        yield serving.target


@pytest.fixture(scope="module")
def index(files: dict[str, Path], env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("golden-index") / "index"
    inputs = [str(files[name]) for name in ("pdf", "red", "blue")] + [str(testkit.JFK)]
    result = testkit.run_cli("index", *inputs, "--out", str(out), env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    return out


def _commands(files: dict[str, Path], index: Path) -> dict[str, list[str]]:
    pdf, red, blue, broken = (str(files[k]) for k in ("pdf", "red", "blue", "broken"))
    return {
        "pdf-text": ["pdf", pdf],
        "pdf-json-blocks": ["pdf", pdf, "--json", "--blocks"],
        "pdf-page-2": ["pdf", pdf, "--pages", "2"],
        "transcribe-text": ["transcribe", str(testkit.JFK)],
        "transcribe-json": ["transcribe", str(testkit.JFK), "--json", "--word-timestamps"],
        "embed-text": ["embed", "--text", "a red circle", "--image", red, "--image", broken],
        "embed-json": ["embed", "--text", "a blue square", "--image", blue, "--json"],
        "score-text": ["score", "--image", red, "--image", blue, "--text", "a red circle",
                       "--text", "a blue square"],
        "search-text": ["search", "--index", str(index), "potatoes", "--mode", "text"],
        "search-vector-json": ["search", "--index", str(index), "a red circle", "--mode", "vector",
                               "--json"],
        "search-hybrid": ["search", "--index", str(index), "the harvest", "-k", "5"],
    }


def _masked(output: str, inputs: Path) -> str:
    """The output with this run's temporary paths replaced and timing fields blanked."""
    output = output.replace(str(inputs), "<inputs>").replace(str(testkit.JFK.parent), "<data>")
    try:
        document = json.loads(output)
    except ValueError:
        # JSON Lines (search --json), or plain text.
        lines = output.splitlines()
        if lines and all(line.startswith("{") for line in lines):
            return "\n".join(json.dumps(_blank(json.loads(line)), sort_keys=True) for line in lines) + "\n"
        return output
    return json.dumps(_blank(document), indent=2, sort_keys=True) + "\n"


def _blank(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: "<timing>" if k in TIMING_KEYS else "<run>" if k in RUN_KEYS or (
            k == "space" and isinstance(v, str)) else _blank(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_blank(v) for v in value]
    return value


def _same(expected: str, actual: str) -> bool:
    """Equal but for numbers, which may differ by a rounding step."""
    if _NUMBER.sub("#", expected) != _NUMBER.sub("#", actual):
        return False
    pairs = zip(_NUMBER.findall(expected), _NUMBER.findall(actual), strict=True)
    return all(abs(float(a) - float(b)) <= 2e-3 + 1e-3 * abs(float(a)) for a, b in pairs)


@pytest.mark.parametrize("mode", ["in-process", "server"])
def test_cli_output_matches_the_golden_files(mode, files, env, index, server) -> None:
    extra = ["--server", server] if mode == "server" else []
    mismatched = []
    for name, command in _commands(files, index).items():
        result = testkit.run_cli(*command, *extra, env=env, timeout=180)
        output = _masked(result.stdout, files["folder"]) + f"exit {result.returncode}\n"
        golden = GOLDEN / f"{name}.txt"
        if UPDATE and mode == "in-process":
            golden.parent.mkdir(parents=True, exist_ok=True)
            golden.write_text(output)
            continue
        if not _same(golden.read_text(), output):
            mismatched.append(f"--- {name} ({' '.join(command)}):\n{output}\n{result.stderr[-2000:]}")
    assert not mismatched, "\n".join(mismatched)
