"""`sensorium search` on its fast path: the exported text tower instead of torch, the per-user
query process (cold, then warm) and `--no-daemon` print the same thing; a text-mode search
loads no model; without an exported tower it says how to export one and still answers."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import testkit
from query_kit import CAPTIONS, add_captions, shapes_model_dir, shapes_tower
from sensorium.index import query_daemon
from sensorium.index.query_daemon import DaemonUnavailable


@pytest.fixture(scope="module")
def tower():
    return shapes_tower()


@pytest.fixture
def index(tmp_path, tower) -> Path:
    add_captions(tmp_path / "index", tower, CAPTIONS)
    return tmp_path / "index"


@pytest.fixture
def env(tmp_path):
    """The command's environment: the shapes model with its exported tower, a private runtime
    directory; every query process started under it is stopped afterwards."""
    model_dir, model = shapes_model_dir()
    run = tmp_path / "run"
    run.mkdir(mode=0o700)
    env = testkit.cli_env(SENSORIUM_EMBEDDING__MODEL=model, SENSORIUM_EMBEDDING__PRETRAINED="",
                          SENSORIUM_MODEL_DIR=str(model_dir), SENSORIUM_DEVICE="cpu",
                          SENSORIUM_INDEX__SEARCH_DAEMON_IDLE_SECONDS="60")
    env["XDG_RUNTIME_DIR"] = str(run)
    yield env
    for socket_file in (run / "sensorium").glob("*.sock"):
        with contextlib.suppress(OSError, DaemonUnavailable):
            reply = query_daemon.call(socket_file, {"protocol": 1, "op": "ping"}, timeout=5)
            os.kill(reply["pid"], signal.SIGTERM)


def search(env: dict[str, str], index: Path, *args: str) -> subprocess.CompletedProcess[str]:
    result = testkit.run_cli("search", "--index", str(index), *args, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    return result


COMMANDS = [
    ["a red circle"],
    ["a red circle", "--mode", "vector", "--json"],
    ["circle", "--mode", "text"],
    ["a blue square", "-k", "3", "--offset", "1", "--json"],
    ["a red circle", "--path", "*circle*", "--json"],
    ["a red circle", "--chunks", "--json", "-k", "4"],
    ["a green triangle", "--min-score", "0.02"],
]


def test_cold_warm_and_in_process_print_the_same(env, index):
    in_process = [search(env, index, *command, "--no-daemon").stdout for command in COMMANDS]
    assert not (Path(env["XDG_RUNTIME_DIR"]) / "sensorium").exists()  # no process was started
    cold = search(env, index, *COMMANDS[0])  # starts the query process
    pid = int(query_daemon.call(query_daemon.socket_path(env), {"protocol": 1, "op": "ping"})["pid"])
    warm = [search(env, index, *command).stdout for command in COMMANDS]
    # The resident tower's weights are prepacked by ONNX Runtime: a score's last bits may differ.
    assert same(cold.stdout, in_process[0])
    for ours, theirs in zip(warm, in_process, strict=True):
        assert same(ours, theirs), (ours, theirs)
    assert "a-red-circle.pdf" in in_process[0].splitlines()[0]
    assert json.loads(in_process[1].splitlines()[0])["path"] == "/shapes/a-red-circle.pdf"
    assert all("circle" in json.loads(line)["path"] for line in in_process[4].splitlines())
    assert query_daemon.call(query_daemon.socket_path(env), {"protocol": 1, "op": "ping"})["pid"] == pid


def test_the_query_process_sees_the_index_jobs_new_rows(env, index, tower):
    assert "violet" not in search(env, index, "violet hexagon", "--mode", "text").stdout
    add_captions(index, tower, ["a violet hexagon"])
    assert "a-violet-hexagon.pdf" in search(env, index, "violet hexagon", "--mode", "text").stdout


_NUMBER = re.compile(r"[-+]?\d+\.\d+(?:[eE][-+]?\d+)?")


def same(expected: str, actual: str) -> bool:
    """Equal but for the last bits of scores."""
    if _NUMBER.sub("#", expected) != _NUMBER.sub("#", actual):
        return False
    pairs = zip(_NUMBER.findall(expected), _NUMBER.findall(actual), strict=True)
    return all(abs(float(a) - float(b)) <= 1e-4 for a, b in pairs)


IMPORTS = """
import sys
from sensorium.cli.dispatch import main
code = main(sys.argv[1:])
print(sorted(m for m in ("torch", "open_clip", "onnxruntime") if m in sys.modules), file=sys.stderr)
sys.exit(code)
"""


@pytest.mark.parametrize(("mode", "loaded"), [("text", "[]"), ("hybrid", "['onnxruntime']")])
def test_no_torch_on_the_query_path(env, index, mode, loaded):
    result = subprocess.run(
        [sys.executable, "-c", IMPORTS, "search", "--index", str(index), "a red circle", "--mode", mode,
         "--no-daemon"], capture_output=True, text=True, env=env, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip().splitlines()[-1] == loaded
    assert "a-red-circle.pdf" in result.stdout.splitlines()[0]


WARM_IMPORTS = """
import sys
from sensorium.cli import main
code = main(sys.argv[1:])
heavy = ("sensorium.settings", "sensorium.engines", "grpc", "pydantic", "numpy")
print(sorted(m for m in heavy if m in sys.modules), file=sys.stderr)
sys.exit(code)
"""


def test_a_warm_search_is_answered_before_the_command_imports_its_settings(env, index):
    """What makes a repeated search fast: the command asks the running query process first,
    before it imports its settings, the engines or gRPC; with the process turned away
    (--no-daemon) the full command answers, the same."""
    cold = search(env, index, "a red circle", "--json")  # starts the query process
    for flag, heavy in ((None, "[]"), ("--no-daemon", "sensorium.settings")):
        result = subprocess.run(
            [sys.executable, "-c", WARM_IMPORTS, "search", "--index", str(index), "a red circle",
             "--json", *([flag] if flag else [])],
            capture_output=True, text=True, env=env, timeout=120, check=False)
        assert result.returncode == 0, result.stderr
        loaded = result.stderr.strip().splitlines()[-1]
        assert loaded == heavy if flag is None else heavy in loaded, loaded
        assert same(result.stdout, cold.stdout)


def test_without_an_exported_tower_it_says_how_and_still_answers(env, index, tmp_path):
    expected = search(env, index, "a red circle", "--no-daemon", "--json").stdout
    empty = tmp_path / "models"
    empty.mkdir()
    for daemon in ("--no-daemon", None):
        result = search({**env, "SENSORIUM_MODEL_DIR": str(empty)}, index, "a red circle", "--json",
                        *([daemon] if daemon else []))
        assert "sensorium models embedding" in result.stderr
        assert "torch" in result.stderr
        got = [json.loads(line) for line in result.stdout.splitlines()]
        want = [json.loads(line) for line in expected.splitlines()]
        assert [r["path"] for r in got] == [r["path"] for r in want]
        assert [r["score"] for r in got] == pytest.approx([r["score"] for r in want], abs=1e-3)


def test_a_missing_index_is_a_config_error(env, tmp_path):
    for extra in ("--no-daemon", "--mode"):
        args = [extra, "text"] if extra == "--mode" else [extra]
        result = testkit.run_cli("search", "--index", str(tmp_path / "nothing"), "a red circle", *args,
                                 env=env, timeout=60)
        assert result.returncode == 3, result.stderr
        assert "nothing" in result.stderr
