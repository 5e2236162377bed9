"""Log lines a person reads: ours at the configured level, the libraries' only when they warn."""

from __future__ import annotations

import json
import logging

import pytest

from sensorium import logs


@pytest.fixture(autouse=True)
def _restore_root() -> object:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield None
    root.handlers[:] = handlers
    root.setLevel(level)


def test_library_info_chatter_is_hidden_but_its_warnings_and_ours_show(
        capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure("INFO", "text")
    logging.info("Parsing model identifier")  # open_clip logs on the root logger
    logging.getLogger("faster_whisper").info("Processing audio with duration 00:01.000")
    logging.getLogger("faster_whisper").warning("the audio is empty")
    logging.getLogger("sensorium.index").info("index plan", extra={"todo": 4})
    err = capsys.readouterr().err
    assert "Parsing model identifier" not in err and "Processing audio" not in err
    assert "WARNING faster_whisper the audio is empty" in err
    assert "INFO sensorium.index index plan todo=4" in err


def test_debug_shows_everything_and_json_lines_parse(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure("DEBUG", "json")
    logging.getLogger("faster_whisper").info("Processing audio")
    logging.getLogger("sensorium.server").debug("listening", extra={"port": 50051})
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [(e["logger"], e["message"]) for e in lines] == [
        ("faster_whisper", "Processing audio"), ("sensorium.server", "listening")]
    assert lines[1]["port"] == 50051
