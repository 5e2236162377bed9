"""`sensorium models` and the README's first command (scripts/dev) against a stand-in for the
model hub (tests/support/hubkit.py) on loopback, serving a tiny open_clip model
(`hf-hub:sensorium-test/tiny-clip`: the project-trained CLIP) and a Whisper repository whose
files are the packaged tiny.en weights. No real hub is reachable where the tests run.

huggingface_hub reads HF_ENDPOINT when it is imported, so everything runs in subprocesses."""

from __future__ import annotations

import hashlib
import json
import socket
from pathlib import Path

import pytest

import hubkit
import speechkit
import testkit
import tiny_clip
from sensorium.transcription import models

CLIP_REPO = "sensorium-test/tiny-clip"
WHISPER_REPO = "sensorium-test/whisper-tiny.en"
SERVICES = {"pdf": "sensorium.pdf.v1.PdfService",
            "transcription": "sensorium.transcription.v1.TranscriptionService",
            "embedding": "sensorium.embedding.v1.EmbeddingService"}
DEV = [str(testkit.REPO / "scripts" / "dev")]
# scripts/dev says what it does on stdout; testkit.serve reads stderr.
DEV_COMMAND = ["bash", "-c", 'exec "$0" 1>&2', *DEV]

pytestmark = pytest.mark.weights


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    clip = tiny_clip.build()
    whisper = models.assemble("tiny.en", tmp_path_factory.mktemp("packaged"))
    repos = {
        CLIP_REPO: {name: (clip / name).read_bytes()
                    for name in ("open_clip_config.json", "open_clip_model.safetensors")},
        WHISPER_REPO: {name: (whisper / name).read_bytes()
                       for name in ("model.bin", "config.json", "tokenizer.json", "vocabulary.txt")},
    }
    with hubkit.StandInHub(repos) as running:
        yield running


def _env(model_dir: Path, **extra: str) -> dict[str, str]:
    """A user's environment: no SENSORIUM_* or HF_* variable of this shell, then `extra`."""
    env = {k: v for k, v in testkit.cli_env().items() if not k.upper().startswith("HF_")}
    return {**env, "SENSORIUM_MODEL_DIR": str(model_dir), "SENSORIUM_DEVICE": "cpu", **extra}


def _hub_models(**extra: str) -> dict[str, str]:
    return {"SENSORIUM_EMBEDDING__MODEL": f"hf-hub:{CLIP_REPO}",
            "SENSORIUM_TRANSCRIPTION__MODEL": WHISPER_REPO, **extra}


def _health(serving: testkit.ServeProcess, env: dict[str, str]) -> tuple[int, dict[str, str]]:
    args = ["health", "--server", f"127.0.0.1:{serving.health_port}", "--json"]
    for name in SERVICES.values():
        args += ["--service", name]
    result = testkit.run_cli(*args, env=env)
    statuses = json.loads(result.stdout)["services"]
    return result.returncode, {short: statuses[full] for short, full in SERVICES.items()}


def _snapshot(model_dir: Path, repo: str) -> Path:
    (snapshot,) = (model_dir / f"models--{repo.replace('/', '--')}" / "snapshots").iterdir()
    return snapshot


def test_models_fetches_clip_and_whisper_and_a_server_loads_them_offline(hub, tmp_path):
    model_dir = tmp_path / "models"
    fetch = _env(model_dir, SENSORIUM_SERVICES="transcription,embedding", HF_ENDPOINT=hub.url,
                 **_hub_models())
    result = testkit.run_cli("models", env=fetch, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"transcription: {WHISPER_REPO}: downloaded to {model_dir}" in result.stdout
    assert f"embedding: hf-hub:{CLIP_REPO} ready ({model_dir / 'open_clip'}" in result.stdout
    # The weights are in the model directory, byte for byte what the hub served.
    whisper = _snapshot(model_dir, WHISPER_REPO)
    assert models.sha256_file(whisper / "model.bin") == models.PACKAGED["tiny.en"].model_bin_sha256
    clip = _snapshot(model_dir / "open_clip", CLIP_REPO)
    served = hub.repos[CLIP_REPO]["open_clip_model.safetensors"]
    assert hashlib.sha256((clip / "open_clip_model.safetensors").read_bytes()).digest() == \
        hashlib.sha256(served).digest()
    assert {p.rsplit("/", 1)[1] for p in hub.downloads()} >= {"model.bin", "open_clip_model.safetensors"}

    # A server with the same model directory and no HF_ENDPOINT loads both without a network.
    offline = _env(model_dir, SENSORIUM_SERVICES="transcription,embedding", **_hub_models())
    with testkit.serve(offline, timeout=180) as serving:
        _, statuses = _health(serving, offline)
        assert (statuses["transcription"], statuses["embedding"]) == ("SERVING", "SERVING")
        heard = testkit.run_cli("transcribe", str(testkit.JFK), "--server", serving.target, env=offline)
        assert heard.returncode == 0, heard.stderr
        text = " ".join(line.split("] ", 1)[1] for line in heard.stdout.splitlines())
        assert speechkit.wer(speechkit.JFK_TEXT, text) <= 0.10
        vector = testkit.run_cli("embed", "--text", "a red circle", "--json", "--server",
                                 serving.target, env=offline)
        assert vector.returncode == 0, vector.stderr
        space = json.loads(vector.stdout)[0]["vector"]["space"]
        assert space["model"] == f"hf-hub:{CLIP_REPO}" and space["dimension"] == 64


def test_dev_fetches_the_weights_first_so_every_service_serves(hub, tmp_path):
    env = _env(tmp_path / "models", HF_ENDPOINT=hub.url, **_hub_models())
    with testkit.serve(env, timeout=300, command=DEV_COMMAND) as serving:
        assert f"dev: preparing model weights from {hub.url}" in serving.log
        code, statuses = _health(serving, env)
        assert (code, statuses) == (0, dict.fromkeys(SERVICES, "SERVING")), serving.log


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_dev_offline_says_in_one_line_what_it_skipped_and_serves_the_rest(tmp_path):
    hub_url = f"http://127.0.0.1:{_closed_port()}"  # nothing listens: no hub
    env = _env(tmp_path / "models", HF_ENDPOINT=hub_url)  # the defaults: ViT-B-32, packaged:base
    with testkit.serve(env, timeout=300, command=DEV_COMMAND) as serving:
        said = [line for line in serving.log.splitlines() if not line[:4].isdigit()]  # not logs
        assert [line.split(" ", 1)[0] for line in said] == ["setup:", "dev:", "dev:"], said
        skipped, starting = said[1:]
        assert skipped.startswith(f"dev: no model hub reachable at {hub_url}: skipped fetching "
                                  "the weights of embedding (")
        assert skipped.endswith("serving the rest") and starting.startswith("dev: starting sensorium")
        code, statuses = _health(serving, env)
        assert code == 1
        assert statuses == {"pdf": "SERVING", "transcription": "SERVING", "embedding": "NOT_SERVING"}
