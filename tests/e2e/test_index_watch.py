"""`sensorium index --watch` as a user runs it: files created, modified, moved and deleted
under the watched folder are searchable (or gone) within seconds, with a one-line status."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

import testkit
import tiny_clip

pytestmark = pytest.mark.weights

WITHIN = 60.0
"""Seconds a change may take to show (debounce + a rerun of the job on a shared 2-core machine;
typically 2-4 s)."""


@pytest.fixture
def env(model_dir: Path, tmp_path: Path) -> dict[str, str]:
    run = tmp_path / "run"
    run.mkdir(mode=0o700)
    return {**testkit.cli_env(
        SENSORIUM_MODEL_DIR=str(model_dir), SENSORIUM_DEVICE="cpu",
        SENSORIUM_EMBEDDING__MODEL=f"local-dir:{tiny_clip.build()}", SENSORIUM_EMBEDDING__PRETRAINED="",
        SENSORIUM_TRANSCRIPTION__MODEL="packaged:tiny.en", SENSORIUM_PDF__WORKERS="1",
        SENSORIUM_INDEX__WATCH_DEBOUNCE_MS="300", SENSORIUM_INDEX__SEARCH_DAEMON="false",
    ), "XDG_RUNTIME_DIR": str(run)}


def found(env: dict[str, str], index: Path, words: str) -> list[str]:
    result = testkit.run_cli("search", "--index", str(index), words, "--mode", "text", "--json", env=env)
    if result.returncode != 0:  # the first run has not made the store yet
        return []
    return [json.loads(line)["path"] for line in result.stdout.splitlines()]


def wait_for(condition, what: str) -> float:
    started = time.monotonic()
    while time.monotonic() - started < WITHIN:
        if condition():
            return time.monotonic() - started
        time.sleep(0.3)
    raise AssertionError(f"not within {WITHIN:.0f} s: {what}")


def _interruptible() -> None:
    """In the child, before it runs: SIGINT back to its default. A test runner started in the
    background by a script ignores SIGINT, every child inherits that, and Python then installs no
    KeyboardInterrupt handler; the test stops the watch as a person does, with Ctrl-C's signal."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_watch_reflects_create_modify_move_and_delete(env, tmp_path):
    folder, index = tmp_path / "docs", tmp_path / "index"
    folder.mkdir()
    (folder / "first.pdf").write_bytes(testkit.make_pdf(["The quarterly harvest report."]))
    process = subprocess.Popen([*testkit.SENSORIUM, "index", "--watch", str(folder), "--out", str(index)],
                               env=env, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                               preexec_fn=_interruptible)
    lines: list[str] = []
    assert process.stderr is not None
    reader = threading.Thread(target=lambda: lines.extend(process.stderr), daemon=True)
    reader.start()
    try:
        wait_for(lambda: found(env, index, "harvest") == [str(folder / "first.pdf")], "the first index")

        (folder / "second.pdf").write_bytes(testkit.make_pdf(["Notes about potatoes and turnips."]))
        wait_for(lambda: found(env, index, "turnips") == [str(folder / "second.pdf")], "a created file")

        time.sleep(0.05)  # a later mtime
        (folder / "second.pdf").write_bytes(testkit.make_pdf(["Notes about cabbages instead."]))
        wait_for(lambda: found(env, index, "cabbages") == [str(folder / "second.pdf")], "a modified file")
        assert found(env, index, "turnips") == [], "the old content is retired"

        (folder / "sub").mkdir()
        (folder / "second.pdf").rename(folder / "sub" / "moved.pdf")
        wait_for(lambda: found(env, index, "cabbages") == [str(folder / "sub" / "moved.pdf")], "a moved file")

        (folder / "first.pdf").unlink()
        wait_for(lambda: found(env, index, "harvest") == [], "a deleted file")
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(60)
        finally:
            if process.poll() is None:
                process.kill()
    reader.join(10)
    status = [line for line in lines if "watching" in line]
    assert status and "files in the index" in status[-1], "".join(lines)[-3000:]
    assert "Traceback" not in "".join(lines)
