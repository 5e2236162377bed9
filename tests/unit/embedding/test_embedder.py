"""The open_clip engine without gRPC: weight resolution (offline), fingerprint, scoring,
tokenization and truncation, out-of-memory splitting, and `sensorium models embedding`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import tiny_clip
from sensorium.batching import split_on_error
from sensorium.device import is_cuda_oom, resolve_device
from sensorium.embedding import embedder
from sensorium.embedding.embedder import Embedder, EngineError, resolve_weights
from sensorium.errors import ModelError, Reason, SensoriumError
from sensorium.settings import Settings

CPU = resolve_device("cpu")


@pytest.fixture(scope="module")
def shapes_model() -> Path:
    return tiny_clip.build()


@pytest.fixture(scope="module")
def engine(shapes_model) -> Embedder:
    return Embedder.load(f"local-dir:{shapes_model}", "", Path("/nonexistent"), CPU)


def test_resolution_errors_say_what_to_fix(tmp_path):
    with pytest.raises(EngineError, match="unknown open_clip model"):
        resolve_weights("ViT-Nope", "x", tmp_path)
    with pytest.raises(EngineError, match=r"not a pretrained tag of ViT-B-32 .*laion2b_s34b_b79k"):
        resolve_weights("ViT-B-32", "imaginary", tmp_path)
    with pytest.raises(EngineError, match="does not exist"):
        resolve_weights("ViT-B-32", "/no/such/file.pt", tmp_path)
    with pytest.raises(EngineError, match=r"not in SENSORIUM_MODEL_DIR .*sensorium models embedding"):
        resolve_weights("ViT-B-32", "laion2b_s34b_b79k", tmp_path)
    with pytest.raises(EngineError, match="not an open_clip model folder"):
        resolve_weights(f"local-dir:{tmp_path}", "", tmp_path)
    with pytest.raises(EngineError, match="not in SENSORIUM_MODEL_DIR"):
        resolve_weights("hf-hub:org/absent", "", tmp_path)


def test_prefetched_hub_and_url_weights_are_found_offline(tmp_path):
    cache = embedder.open_clip_cache(tmp_path)
    # The Hugging Face cache layout `hf_hub_download(cache_dir=...)` writes.
    repo = cache / "models--laion--CLIP-ViT-B-32-laion2B-s34B-b79K"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    (repo / "snapshots" / "abc123").mkdir(parents=True)
    weights_file = repo / "snapshots" / "abc123" / "open_clip_pytorch_model.bin"
    weights_file.write_bytes(b"weights")
    found = resolve_weights("ViT-B-32", "laion2b_s34b_b79k", tmp_path)
    assert found.checkpoint == str(weights_file)
    assert (found.model_label, found.pretrained_label) == ("ViT-B-32", "laion2b_s34b_b79k")
    url_config = {"url": "https://example.invalid/path/model-1234.pt"}
    assert embedder.cached_pretrained(url_config, cache) is None
    (cache / "model-1234.pt").write_bytes(b"w")
    assert embedder.cached_pretrained(url_config, cache) == str(cache / "model-1234.pt")


def test_registered_config_with_a_checkpoint_file_loads_like_the_local_dir(tmp_path, shapes_model, engine):
    import open_clip

    config = tmp_path / "sensorium-shapes-registered.json"
    config.write_text(json.dumps(tiny_clip.TINY_CONFIG))
    open_clip.add_model_config(config)
    checkpoint = shapes_model / "open_clip_model.safetensors"
    loaded = Embedder.load("sensorium-shapes-registered", str(checkpoint), tmp_path, CPU)
    assert loaded.space.weights_sha256 == engine.space.weights_sha256
    assert loaded.space.pretrained == "open_clip_model.safetensors"
    items = [engine.prepare_text("a red circle")]
    np.testing.assert_allclose(loaded.encode(items)[0], engine.encode(items)[0], rtol=1e-5, atol=1e-6)


def test_fingerprint_is_deterministic_and_sensitive():
    state = {"b": torch.ones(3), "a": torch.arange(4, dtype=torch.float32), "s": torch.tensor(2.0)}
    same = dict(reversed(list(state.items())))
    assert embedder.fingerprint(state) == embedder.fingerprint(same)
    assert embedder.fingerprint({**state, "s": torch.tensor(2.5)}) != embedder.fingerprint(state)
    half = {**state, "b": torch.ones(3, dtype=torch.float16)}  # precision does not matter
    assert embedder.fingerprint(half) == embedder.fingerprint(state)


def test_scoring_softmax_and_sigmoid():
    images = [np.array([1.0, 0.0], np.float32), np.array([0.0, 2.0], np.float32)]
    texts = [np.array([1.0, 0.0], np.float32), np.array([1.0, 1.0], np.float32)]
    sims, probs = embedder.score(images, texts, logit_scale=10.0, logit_bias=None)
    np.testing.assert_allclose(sims, [[1, 2**-0.5], [0, 2**-0.5]], atol=1e-6)
    np.testing.assert_allclose(probs.sum(axis=1), [1, 1], atol=1e-6)
    assert probs[0, 0] > probs[0, 1] and probs[1, 1] > probs[1, 0]
    _, sig = embedder.score(images, texts, logit_scale=10.0, logit_bias=-5.0)
    np.testing.assert_allclose(sig[0, 0], 1 / (1 + np.exp(-(10 - 5))), rtol=1e-6)


def test_tokenization_counts_truncates_and_rejects(engine):
    assert engine.context_length == 16
    short = engine.prepare_text("a red circle")
    assert (short.token_count, short.truncated, tuple(short.tokens.shape)) == (5, False, (16,))
    long = engine.prepare_text("red " * 20)
    assert (long.token_count, long.truncated) == (22, True)
    with pytest.raises(SensoriumError) as error:
        engine.prepare_text("red " * 20, strict=True)
    assert error.value.reason is Reason.TEXT_TOO_LONG and "22 tokens" in error.value.message
    with pytest.raises(SensoriumError) as error:
        engine.prepare_text(" \n ")
    assert error.value.reason is Reason.INPUT_EMPTY
    with pytest.raises(SensoriumError) as error:
        engine.prepare_text("x" * 11, max_chars=10)
    assert error.value.reason is Reason.INPUT_TOO_LARGE


def test_mixed_batches_keep_order(engine):
    image = engine.prepare_image(tiny_clip.png(tiny_clip.draw("circle", "red", np.random.default_rng(0))),
                                 max_bytes=1 << 20, max_pixels=1 << 20)
    text = engine.prepare_text("a red circle")
    mixed = engine.encode([text, image, text])
    alone = engine.encode([image])[0], engine.encode([text])[0]
    np.testing.assert_allclose(mixed[1], alone[0], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(mixed[0], alone[1], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(mixed[2], alone[1], rtol=1e-4, atol=1e-5)


def test_cuda_oom_splits_the_batch_and_fails_only_the_item_that_never_fits(engine, monkeypatch):
    text = engine.prepare_text("a red circle")
    huge = engine.prepare_text("a big blue square")
    real_encode = engine.encode
    calls: list[int] = []

    def encode(items):
        calls.append(len(items))
        if len(items) > 2 or any(item is huge for item in items):
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_encode(items)

    monkeypatch.setattr(engine, "encode", encode)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    run = split_on_error(engine.encode_or_oom, is_cuda_oom)
    results = run([text, text, huge, text])
    assert isinstance(results[2], SensoriumError) and results[2].reason is Reason.GPU_OUT_OF_MEMORY
    assert results[2].retry_after_seconds
    for index in (0, 1, 3):
        assert isinstance(results[index], np.ndarray)
    assert calls[0] == 4  # the whole batch first, then halves

    def broken(items):
        raise RuntimeError("not memory")

    monkeypatch.setattr(engine, "encode", broken)
    with pytest.raises(RuntimeError, match="not memory"):
        run([text, text])


def test_models_command_prepares_or_says_what_to_do(tmp_path, shapes_model, monkeypatch):
    from sensorium.embedding import models
    from sensorium.embedding.models import prepare

    local = Settings(embedding={"model": f"local-dir:{shapes_model}", "pretrained": ""})
    assert "ready" in prepare(local, tmp_path) and "ONNX text tower in" in prepare(local, tmp_path)

    import open_clip

    def offline(*args, **kwargs):
        raise OSError("Network is unreachable")

    monkeypatch.setattr(open_clip, "download_pretrained", offline)
    hub = Settings(embedding={"model": "ViT-B-32", "pretrained": "laion2b_s34b_b79k"})
    with pytest.raises(ModelError, match=r"cannot download ViT-B-32/laion2b_s34b_b79k .*reachable"):
        prepare(hub, tmp_path)

    def fake_download(config, cache_dir):
        target = Path(cache_dir) / "models--laion--CLIP-ViT-B-32-laion2B-s34B-b79K"
        (target / "refs").mkdir(parents=True, exist_ok=True)
        (target / "refs" / "main").write_text("c0ffee")
        (target / "snapshots" / "c0ffee").mkdir(parents=True, exist_ok=True)
        shutil.copy(shapes_model / "open_clip_model.safetensors",
                    target / "snapshots" / "c0ffee" / "open_clip_model.safetensors")

    monkeypatch.setattr(open_clip, "download_pretrained", fake_download)
    # The fake weights are the shapes model's, which a ViT-B-32 cannot load: the text tower's
    # export (which loads them; tested in test_text_tower.py) says so.
    with pytest.raises(ModelError, match="open_clip cannot load ViT-B-32/laion2b_s34b_b79k"):
        prepare(hub, tmp_path)
    monkeypatch.setattr(models, "_text_tower", lambda model, pretrained, model_dir: "no tower exported")
    assert "ViT-B-32/laion2b_s34b_b79k ready" in prepare(hub, tmp_path)
