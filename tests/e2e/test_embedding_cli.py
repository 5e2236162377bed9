"""`sensorium embed` / `sensorium score` as a user runs them: against `sensorium serve` in a
subprocess hosting the project-trained tiny CLIP, and in-process (no --server)."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

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


LIMIT = 5 * 1024 * 1024


@pytest.fixture(scope="module")
def small_server(model):
    """A server that takes requests of at most 5 MiB, with its metrics port."""
    env = _env(model, SENSORIUM_MAX_RECEIVE_MESSAGE_BYTES=str(LIMIT))
    with testkit.serve(env, timeout=90) as serving:
        yield serving, env


@pytest.fixture(scope="module")
def large_photos(tmp_path_factory) -> list[Path]:
    """Three noise PNGs of ~1.9 MB each: 5.8 MB in all, over the 4 MiB inline limit and over
    `small_server`'s 5 MiB request limit, while each fits alone."""
    folder = tmp_path_factory.mktemp("large")
    rng = np.random.default_rng(11)
    paths = []
    for i in range(3):
        path = folder / f"photo-{i}.png"
        path.write_bytes(tiny_clip.png(Image.fromarray(rng.integers(0, 256, (800, 800, 3), dtype=np.uint8))))
        paths.append(path)
    sizes = [p.stat().st_size for p in paths]
    assert sum(sizes) > 4 * 1024 * 1024 and max(sizes) < LIMIT
    return paths


def _streamed_calls(metrics_port: int) -> float:
    body = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
    method = 'method="/sensorium.embedding.v1.EmbeddingService/StreamEmbed"'
    return sum(float(line.rsplit(" ", 1)[1]) for line in body.splitlines()
               if line.startswith("sensorium_grpc_requests_total{") and method in line)


def test_images_over_4_mib_in_all_go_through_the_stream(small_server, large_photos):
    serving, env = small_server
    assert serving.metrics_port is not None
    before = _streamed_calls(serving.metrics_port)
    args = ["embed", "--server", serving.target, "--json"]
    for path in large_photos:
        args += ["--image", str(path)]
    together = run(*args, env=env)
    assert together.returncode == 0, together.stderr
    assert _streamed_calls(serving.metrics_port) == before + 1
    items = json.loads(together.stdout)
    assert [item["input"] for item in items] == [str(p) for p in large_photos]
    for path, item in zip(large_photos, items, strict=True):
        # The same vector as the image sent alone, which goes in one EmbedImages call.
        alone = run("embed", "--server", serving.target, "--json", "--image", str(path), env=env)
        expected = np.array(json.loads(alone.stdout)[0]["vector"]["values"])
        got = np.array(item["vector"]["values"])
        assert float(got @ expected) / float(np.linalg.norm(got) * np.linalg.norm(expected)) >= 0.9999
        assert item["vector"]["space"] == json.loads(alone.stdout)[0]["vector"]["space"]
    assert _streamed_calls(serving.metrics_port) == before + 1


def test_a_request_over_the_server_limit_fails_in_one_line_that_says_what_to_do(small_server, large_photos):
    serving, env = small_server
    # Score has no streaming form: its one request holds every image.
    args = ["score", "--server", serving.target, "--text", "noise"]
    for path in large_photos:
        args += ["--image", str(path)]
    result = run(*args, env=env)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("sensorium: error: RESOURCE_EXHAUSTED: ")
    assert "SENSORIUM_MAX_RECEIVE_MESSAGE_BYTES" in result.stderr and "do not retry" in result.stderr
