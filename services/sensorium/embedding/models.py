"""`sensorium models embedding`: put the configured open_clip weights into the model directory,
and beside them the model's text tower exported to ONNX (the query path of `sensorium search`
runs it without torch: `sensorium.embedding.text_tower`).

Runs where the model hub is reachable; servers started later with the same
SENSORIUM_MODEL_DIR find the weights there and never download (see
`sensorium.embedding.embedder.resolve_weights`, which this module ends by calling, so "prepared"
means exactly "the server will find it").
"""

from __future__ import annotations

import os
from pathlib import Path

from sensorium.errors import ModelError
from sensorium.settings import Settings


def prepare(settings: Settings, model_dir: Path) -> str:
    """Fetch the weights (and a Hugging Face tokenizer, if the model has one) into
    `model_dir`; returns what is now there. Raises `ModelError` saying what to do."""
    try:
        import open_clip

        from sensorium.embedding.embedder import (
            HF_HUB_PREFIX,
            LOCAL_DIR_PREFIX,
            EngineError,
            open_clip_cache,
            resolve_weights,
        )
    except ImportError as exc:
        raise ModelError(
            f"the embedding engine is not installed ({exc}); install sensorium[embedding]"
        ) from exc

    model, pretrained = settings.embedding.model, settings.embedding.pretrained
    cache = open_clip_cache(model_dir)
    cache.mkdir(parents=True, exist_ok=True)
    try:
        if model.startswith(HF_HUB_PREFIX):
            from huggingface_hub import snapshot_download

            snapshot_download(model[len(HF_HUB_PREFIX):], cache_dir=str(cache))
        elif not model.startswith(LOCAL_DIR_PREFIX) and pretrained and not os.path.isfile(pretrained):
            name = model.replace("/", "-")
            config = open_clip.get_pretrained_cfg(name, pretrained)
            if config:
                open_clip.download_pretrained(config, cache_dir=str(cache))
                # Hugging Face tokenizers (SigLIP and others) are fetched into the same cache.
                open_clip.get_tokenizer(name, cache_dir=str(cache))
    except Exception as exc:
        raise ModelError(
            f"cannot download {model}/{pretrained} ({type(exc).__name__}: {exc}); run this where "
            "huggingface.co (or the weights' URL) is reachable, then copy or mount the model "
            f"directory {model_dir} where the servers run"
        ) from exc
    try:
        weights = resolve_weights(model, pretrained, model_dir)
    except EngineError as exc:
        raise ModelError(str(exc)) from exc
    if weights.checkpoint is None and not weights.open_clip_name.startswith(LOCAL_DIR_PREFIX):
        # Random weights are drawn anew by every load: a tower exported from one draw would
        # match no index, so there is nothing to export.
        return f"{weights.model_label} with random weights (SENSORIUM_EMBEDDING__PRETRAINED is empty)"
    source = weights.checkpoint or weights.open_clip_name[len(LOCAL_DIR_PREFIX):]
    label = "/".join(part for part in (weights.model_label, weights.pretrained_label) if part)
    return f"{label} ready ({source}); {_text_tower(model, pretrained, model_dir)}"


def _text_tower(model: str, pretrained: str, model_dir: Path) -> str:
    from sensorium.embedding.onnx_export import UnsupportedTower, export_text_tower
    from sensorium.embedding.text_tower import tower_dir

    try:
        info = export_text_tower(model, pretrained, model_dir)
    except UnsupportedTower as exc:
        return f"no ONNX text tower ({exc}): search embeds queries with torch"
    return (f"ONNX text tower in {tower_dir(model_dir, model, pretrained)} (cosine to open_clip "
            f">= {info.parity_min_cosine:.5f} over {info.parity_texts} texts)")
