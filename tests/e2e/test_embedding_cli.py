"""`sensorium embed` / `sensorium score` as a user runs them: against `sensorium serve` in a
subprocess hosting the project-trained tiny CLIP, and in-process (no --server)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import testkit
import tiny_clip


def _env(model: Path, **extra: str) -> dict[str, str]:
    return testkit.cli_env(SENSORIUM_SERVICES="embedding", SENSORIUM_DEVICE="cpu",
                           SENSORIUM_EMBEDDING__MODEL=f"local-dir:{model}",
                           SENSORIUM_EMBEDDING__PRETRAINED="", **extra)


run = testkit.run_cli


@pytest.fixture(scope="module")
def model() -> Path:
    return tiny_clip.build()


@pytest.fixture(scope="module")
def pictures(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("pictures")
    rng = np.random.default_rng(5)
    paths = {}
    for shape, colour in (("circle", "red"), ("square", "blue"), ("triangle", "yellow")):
        path = folder / f"{colour}-{shape}.png"
        path.write_bytes(tiny_clip.png(tiny_clip.draw(shape, colour, rng)))
        paths[f"{colour} {shape}"] = path
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    paths["broken"] = folder / "broken.jpg"
    return paths


@pytest.fixture(scope="module")
def server(model):
    env = _env(model)
    with testkit.serve(env, timeout=90) as serving:
        yield serving.target, env


def test_embed_texts_and_images_through_a_running_server(server, pictures):
    target, env = server
    result = run("embed", "--server", target, "--text", "a red circle",
                 "--image", str(pictures["red circle"]), env=env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("a red circle: [") and "64-d" in lines[0]
    assert lines[1].startswith(str(pictures["red circle"]))


def test_embed_json_and_a_broken_image(server, pictures):
    target, env = server
    result = run("embed", "--server", target, "--json", "--image", str(pictures["broken"]),
                 "--image", str(pictures["blue square"]), env=env)
    assert result.returncode == 1, result.stderr  # per-item errors in the JSON; exit 1 like the text form
    items = json.loads(result.stdout)
    assert items[0]["error"]["reason"] == "ERROR_REASON_IMAGE_UNDECODABLE"
    assert len(items[1]["vector"]["values"]) == 64
    assert items[1]["vector"]["space"]["normalized"] is True
    plain = run("embed", "--server", target, "--image", str(pictures["broken"]), env=env)
    assert plain.returncode == 1 and "broken.jpg: error: the content is not an image" in plain.stdout


def test_score_ranks_the_matching_caption_first(server, pictures):
    target, env = server
    captions = ["a red circle", "a blue square", "a yellow triangle"]
    args = ["score", "--server", target]
    for caption in captions:
        args += ["--text", caption]
    for caption in captions:
        args += ["--image", str(pictures[caption.removeprefix("a ")])]
    result = run(*args, env=env)
    assert result.returncode == 0, result.stderr
    for caption, line in zip(captions, result.stdout.splitlines(), strict=True):
        assert line.split(": ", 1)[1].startswith(repr(caption)), result.stdout


def test_embed_in_process_without_a_server(model):
    result = run("embed", "--text", "a green square", "--json", env=_env(model))
    assert result.returncode == 0, result.stderr
    item = json.loads(result.stdout)[0]
    assert item["input"] == "a green square" and item["tokenCount"] == 5


def test_missing_weights_fail_in_one_line_with_the_fix(tmp_path):
    env = testkit.cli_env(SENSORIUM_SERVICES="embedding", SENSORIUM_DEVICE="cpu",
                          SENSORIUM_MODEL_DIR=str(tmp_path))
    result = run("embed", "--text", "hello", env=env)
    assert result.returncode == 3, result.stderr
    assert "sensorium models embedding" in result.stderr and "Traceback" not in result.stderr
    models = run("models", "embedding", "--dir", str(tmp_path), env={**env, "HF_HUB_OFFLINE": "1"})
    assert models.returncode == 1
    assert "cannot download ViT-B-32/laion2b_s34b_b79k" in models.stdout
