"""The text tower exported to ONNX: same vectors as open_clip, tied to its checkpoint, loaded
without torch, refused for another model's index, and what to run when it is missing."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tiny_clip
from query_kit import CAPTIONS, add_captions, shapes_model_dir, varied_texts
from sensorium.device import resolve_device
from sensorium.embedding import onnx_export, text_tower
from sensorium.embedding.embedder import Embedder
from sensorium.embedding.text_tower import TextTower, TextTowerError, load_text_tower
from sensorium.index.layout import EmbeddingSpace
from sensorium.index.query import QueryEngine, QueryError
from sensorium.settings import EmbeddingSettings, Settings


@pytest.fixture(scope="module")
def exported() -> tuple[Path, str]:
    return shapes_model_dir()


@pytest.fixture(scope="module")
def tower(exported) -> TextTower:
    model_dir, model = exported
    return load_text_tower(model_dir, model, "")


@pytest.fixture(scope="module")
def engine(exported) -> Embedder:
    return Embedder.load(exported[1], "", Path("/nonexistent"), resolve_device("cpu"))


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.astype(np.float64), b.astype(np.float64)
    return (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_the_tower_gives_open_clips_vectors_for_thousands_of_varied_texts(tower, engine):
    texts = varied_texts(3000) + list(onnx_export.CHECK_TEXTS)
    ours = np.concatenate([tower.encode(texts[i:i + 256]) for i in range(0, len(texts), 256)])
    theirs = np.stack(engine.encode([engine.prepare_text(text) for text in texts]))
    similarity = cosines(ours, theirs)
    worst = int(similarity.argmin())
    assert similarity[worst] >= 0.999, f"cosine {similarity[worst]:.6f} for {texts[worst][:60]!r}"
    # Trimming after the end token must not be what makes them agree: the long texts are cut
    # at the context and still agree.
    assert sum(tower.tokenize(text)[1] > tower.info.context_length for text in texts) > 100


def test_one_text_alone_equals_the_same_text_in_a_batch(tower):
    # A trimmed batch is padded to its longest text; the pads must not change shorter ones.
    batch = tower.encode(["a red circle", "a green square on a light background, drawn small"])
    alone = tower.encode(["a red circle"])
    assert cosines(batch[:1], alone)[0] > 0.99999


def test_the_tower_ranks_the_caption_of_a_shape_first(tower):
    vectors = tower.encode(CAPTIONS)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    for index, caption in enumerate(CAPTIONS):
        assert int(np.argmax(vectors @ tower.embed(caption))) == index


def test_the_tower_carries_the_checkpoints_fingerprint(tower, engine):
    assert tower.info.weights_sha256 == engine.space.weights_sha256
    assert (tower.info.model, tower.info.pretrained, tower.info.dimension) == (
        engine.space.model, engine.space.pretrained, engine.space.dimension)
    assert tower.info.parity_min_cosine >= onnx_export.MIN_COSINE
    assert tower.info.trimmed  # CLIP's causal text transformer


def test_a_tower_whose_graph_is_from_other_weights_is_refused(exported, tmp_path):
    model_dir, model = exported
    copy = tmp_path / "models"
    shutil.copytree(model_dir, copy)
    info_file = text_tower.tower_dir(copy, model, "") / text_tower.INFO_FILE
    info = json.loads(info_file.read_text())
    info["weights_sha256"] = "0" * 64  # tower.json now claims other weights than the graph's
    info_file.write_text(json.dumps(info))
    with pytest.raises(TextTowerError, match="inconsistent"):
        load_text_tower(copy, model, "")


def test_an_index_of_another_model_is_refused(tower, tmp_path):
    other = EmbeddingSpace(tower.info.model, tower.info.pretrained, "f" * 64, tower.info.dimension)
    with pytest.raises(TextTowerError, match=r"index was built with .* weights ffffffffffff"):
        tower.check_space(other)
    add_captions(tmp_path / "index", tower, CAPTIONS[:3], space=other)
    engine = QueryEngine(settings_for(*shapes_model_dir()))
    with pytest.raises(QueryError, match="set SENSORIUM_EMBEDDING__MODEL") as raised:
        engine.search(tmp_path / "index", "a red circle")
    assert raised.value.kind == "space"
    # Text mode needs no vector: it answers whatever the model.
    assert engine.search(tmp_path / "index", "a red circle", mode="text")[0].text == "a red circle"


def test_a_missing_tower_says_what_to_run(tmp_path, exported):
    with pytest.raises(TextTowerError, match="run `sensorium models embedding`"):
        load_text_tower(tmp_path, exported[1], "")
    model_dir, model = exported
    add_captions(tmp_path / "index", load_text_tower(model_dir, model, ""), CAPTIONS[:2])
    with pytest.raises(QueryError, match="sensorium models embedding") as raised:
        QueryEngine(settings_for(tmp_path, model)).search(tmp_path / "index", "a red circle")
    assert raised.value.kind == "no_tower"


def test_the_settings_name_the_tower_wherever_they_are_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "model.pt").write_bytes(b"x")
    relative = text_tower.tower_key("ViT-B/32", "model.pt")
    assert relative == text_tower.tower_key("ViT-B-32", str(tmp_path / "model.pt"))
    assert text_tower.tower_key("ViT-B-32", "laion2b_s34b_b79k") != text_tower.tower_key("ViT-B-32", "openai")
    assert text_tower.tower_key("local-dir:models/x", "ignored") == text_tower.tower_key(
        f"local-dir:{tmp_path}/models/x", "")


def test_the_query_path_imports_neither_torch_nor_open_clip_nor_grpc(exported, tmp_path):
    model_dir, model = exported
    add_captions(tmp_path / "index", load_text_tower(model_dir, model, ""), CAPTIONS)
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from sensorium.index.query import search_index\n"
        "from sensorium.settings import Settings\n"
        "mode = sys.argv[2]\n"
        "hits = search_index(Settings(), Path(sys.argv[1]), 'a blue square', mode=mode, k=3)\n"
        "heavy = ('torch', 'open_clip', 'grpc', 'onnxruntime')\n"
        "print(hits[0].text, sorted(m for m in heavy if m in sys.modules))\n"
    )
    env = {"SENSORIUM_EMBEDDING__MODEL": model, "SENSORIUM_EMBEDDING__PRETRAINED": "",
           "SENSORIUM_MODEL_DIR": str(model_dir), "PATH": "/usr/bin:/bin"}
    for mode, loaded in (("hybrid", "['onnxruntime']"), ("text", "[]")):
        result = subprocess.run([sys.executable, "-c", code, str(tmp_path / "index"), mode], env=env,
                                capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == f"a blue square {loaded}", mode


@pytest.mark.slow
def test_a_text_tower_without_end_token_pooling_is_exported_whole(tmp_path):
    # A CLIP whose text pooling takes the last position: tokens after the end token count,
    # so the graph takes the full context, and must still match open_clip.
    import open_clip
    import torch

    config = {**tiny_clip.TINY_CONFIG, "text_cfg": {**tiny_clip.TINY_CONFIG["text_cfg"], "pool_type": "last"}}
    folder = tmp_path / "last-pool"
    folder.mkdir()
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": config, "preprocess_cfg": {}}))
    torch.manual_seed(0)
    from safetensors.torch import save_file

    model = open_clip.CLIP(**config)
    state = {name: tensor.contiguous() for name, tensor in model.state_dict().items()}
    save_file(state, str(folder / "open_clip_model.safetensors"))
    info = onnx_export.export_text_tower(f"local-dir:{folder}", "", tmp_path / "models")
    assert not info.trimmed
    assert info.parity_min_cosine >= onnx_export.MIN_COSINE
    tower = load_text_tower(tmp_path / "models", f"local-dir:{folder}", "")
    reference = Embedder.load(f"local-dir:{folder}", "", tmp_path, resolve_device("cpu"))
    texts = varied_texts(300, seed=1)
    theirs = np.stack(reference.encode([reference.prepare_text(text) for text in texts]))
    assert cosines(tower.encode(texts), theirs).min() >= 0.999


def settings_for(model_dir: Path, model: str) -> Settings:
    return Settings(model_dir=model_dir, embedding=EmbeddingSettings(model=model, pretrained=""))

