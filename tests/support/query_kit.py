"""The query path's fixtures: the shapes CLIP's text tower exported to ONNX, an index of its
captions, and a large, varied set of texts for parity checks."""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import tempfile
from pathlib import Path

import numpy as np

import tiny_clip
from sensorium.embedding.text_tower import TextTower, load_text_tower
from sensorium.index.layout import EmbeddingSpace, Manifest, Shard
from sensorium.index.store import update_store
from sensorium.index.writer import FileStat, IndexWriter, Row
from testkit import REPO

_SOURCES = ("services/sensorium/embedding/onnx_export.py", "services/sensorium/embedding/text_tower.py",
            "services/sensorium/embedding/tokens.py", "services/sensorium/embedding/models.py")


def shapes_model_dir() -> tuple[Path, str]:
    """A SENSORIUM_MODEL_DIR holding the shapes CLIP's exported text tower, made by
    `sensorium models embedding`'s own code, and the model setting. Reused while the model and
    the exporting code are unchanged (an export takes ~15 s); never modify it in place."""
    from sensorium.embedding.models import prepare
    from sensorium.settings import EmbeddingSettings, Settings

    folder = tiny_clip.build()
    digest = hashlib.sha256(str(folder).encode())
    for source in _SOURCES:
        digest.update((REPO / source).read_bytes())
    key = digest.hexdigest()[:12]
    model = f"local-dir:{folder}"
    model_dir = Path(tempfile.gettempdir()) / f"sensorium-shapes-tower-{key}"
    if (model_dir / "ready").is_file():
        return model_dir, model
    partial = Path(tempfile.mkdtemp(prefix=".partial-tower-", dir=model_dir.parent))
    message = prepare(Settings(embedding=EmbeddingSettings(model=model, pretrained="")), partial)
    assert "ONNX text tower in" in message, message
    (partial / "ready").write_text(message + "\n")
    try:
        os.replace(partial, model_dir)
    except OSError:
        shutil.rmtree(partial, ignore_errors=True)  # another process finished first
    return model_dir, model


def shapes_tower() -> TextTower:
    model_dir, model = shapes_model_dir()
    return load_text_tower(model_dir, model, "")


CAPTIONS = [tiny_clip.caption(shape, colour) for shape, colour in tiny_clip.CLASSES]


def space_of(tower: TextTower) -> EmbeddingSpace:
    info = tower.info
    return EmbeddingSpace(info.model, info.pretrained, info.weights_sha256, info.dimension)


def add_captions(
    out: Path, tower: TextTower, captions: list[str], space: EmbeddingSpace | None = None
) -> None:
    """Index one file per caption (its one row: the caption, embedded by `tower`)."""
    vectors = tower.encode(captions)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    with IndexWriter(out, Shard(), manifest_of(tower, space)) as writer:
        for caption, vector in zip(captions, vectors, strict=True):
            stat = caption_stat(caption)
            work = writer.begin(stat, hashlib.sha256(caption.encode()).hexdigest(), "pdf")
            if work is None:
                continue
            writer.add_rows(work, [Row("pdf_text", vector, text=caption, page=1)])
            writer.finish(work)
    update_store(out)  # as the index job does at the end of a run: searches never write it


def remove_captions(out: Path, tower: TextTower, kept: list[str]) -> None:
    """A run of the index job that lists only the `kept` captions' files: the others retire."""
    with IndexWriter(out, Shard(), manifest_of(tower)) as writer:
        writer.plan([caption_stat(caption) for caption in kept])
    update_store(out)


def caption_stat(caption: str) -> FileStat:
    return FileStat(f"/shapes/{caption.replace(' ', '-')}.pdf", len(caption), 1)


def manifest_of(tower: TextTower, space: EmbeddingSpace | None = None) -> Manifest:
    return Manifest(space or space_of(tower), {"kit": "query"})


def varied_texts(count: int, seed: int = 0) -> list[str]:
    """`count` texts: every non-empty line of the README and docs (prose, tables, code, Unicode;
    many past the 77-token context), then word runs of 1-120 words drawn from them, in random
    case, with digits, punctuation and non-Latin pieces mixed in."""
    files = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    lines = [line for path in files for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    words = sorted({word for line in lines for word in line.split()})
    extra = ["42", "3.14", "2026-12-07", "&amp;", "café", "Straße", "東京", "서울", "Москва", "🙂", "—", "#1"]
    rng = random.Random(seed)
    texts = lines[:count]
    while len(texts) < count:
        picked = [rng.choice(words if rng.random() < 0.9 else extra) for _ in range(rng.randint(1, 120))]
        text = " ".join(picked)
        texts.append(rng.choice((text, text.upper(), text.lower(), text.title())))
    return texts
