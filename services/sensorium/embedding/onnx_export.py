"""Export an open_clip model's text tower to ONNX for the torch-free query path
(`sensorium.embedding.text_tower` describes the folder it writes and how it is used).

`sensorium models embedding` calls `export_text_tower` once the weights are in place. The model
is loaded by the embedding service's own code (`Embedder.load`), so the weights fingerprint
the tower records is the one the service reports and an index's manifest holds, computed from
the very state dict that is exported. The export is torch's (`torch.onnx.export`, the
torch.export-based exporter: its graphs load in ONNX Runtime about twice as fast as the
TorchScript exporter's). Before the folder is put in place, the exported tower embeds a set of
varied texts through the same code the query path runs (tokenizer included) and must agree
with open_clip's own vectors: cosine >= `MIN_COSINE` for every text, or nothing is written.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import tempfile
import uuid
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sensorium.embedding.text_tower import (
    GRAPH_FILE,
    INFO_FILE,
    METADATA_PREFIX,
    TOKENIZER_FILE,
    TextTower,
    TextTowerError,
    TowerInfo,
    settings_identity,
    tower_dir,
)
from sensorium.errors import ModelError

log = logging.getLogger("sensorium.embedding")

MIN_COSINE = 0.999
"""Lowest cosine accepted between the tower's vectors and open_clip's, per check text."""
OPSET = 18
CHECK_TEXTS: tuple[str, ...] = (
    "a photo of a cat", "A RED CIRCLE", "x", "two dogs playing in the snow, 2019",
    "the quarterly report: revenue +12% (EUR 4.5m) vs. 2023",
    "Crème brûlée à la française, naïve café", "Größenverhältnisse der Straße",
    "東京の夜景と富士山", "서울의 거리 풍경", "Москва, Красная площадь зимой", "مرحبا بالعالم",
    "emoji 🙂🚀🔥 and a 👩‍👩‍👧 family", "fish &amp; chips &lt;tasty&gt;", "tab\tseparated\nand new lines",
    "   leading and trailing spaces   ", "don't won't it's we'll they've I'm you'd",
    "e-mail: someone@example.org, https://example.org/a?b=c#d", "3.14159 2.71828 1e-9 -42",
    "ﬁne ﬂour (ligatures)", "“curly quotes” and ‘single’ ones — with dashes –",
    "mixed CASE WiTh CamelCase and snake_case_words", "C++ and C# and F# and Node.js",
    "a " * 60 + "very long text that is truncated",
    " ".join(f"word{i}" for i in range(120)),
    "The quick brown fox jumps over the lazy dog. " * 8,
    "invoice #2024-0042 overdue since 12/03/2024", "α β γ δ ε ∑ ∫ √2 ≈ 1.414",
    "ÀÉÎÕÜ àéîõü ÇçÑñ", "a\u0301 e\u0301 (combining accents)", "zero\u200bwidth\u200bspace",
)
"""Texts the exporter checks the tower with: short and long (truncated), accents, scripts,
emoji, HTML entities, punctuation, numbers, odd whitespace."""


class UnsupportedTower(ModelError):
    """The model's text tower cannot run without torch (yet); search embeds queries with torch."""


def export_text_tower(model: str, pretrained: str, model_dir: Path) -> TowerInfo:
    """Export the text tower of `model` + `pretrained` (weights already in `model_dir`) into
    `text_tower.tower_dir(model_dir, model, pretrained)`, replacing an earlier export.
    Raises `UnsupportedTower` for a model the query path cannot run, `ModelError` otherwise."""
    try:
        import onnx  # noqa: F401 - the exporter's dependencies: fail here, with the fix
        import onnxruntime  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as exc:
        raise ModelError(
            f"exporting the text tower needs {exc.name}; install sensorium[embedding,search]"
        ) from exc
    from open_clip.tokenizer import SimpleTokenizer, get_clean_fn

    from sensorium.device import resolve_device
    from sensorium.embedding.embedder import Embedder, EngineError
    from sensorium.embedding.tokens import ClipTokenizer, TokenizerError

    try:
        engine = Embedder.load(model, pretrained, model_dir, resolve_device("cpu"))
    except EngineError as exc:
        raise ModelError(str(exc)) from exc
    tokenizer = engine.tokenizer
    if type(tokenizer) is not SimpleTokenizer or tokenizer.reduction_fn is not None:
        raise UnsupportedTower(
            f"{engine.space.model} uses the tokenizer {type(tokenizer).__name__}; the torch-free "
            "text tower supports CLIP's BPE tokenizer only"
        )
    clean = "lower"
    if tokenizer.clean_fn is not get_clean_fn(clean):
        raise UnsupportedTower(f"{engine.space.model}'s tokenizer cleans text other than open_clip's "
                               "default (clean='lower'), which the Rust tokenizer does not")

    clip = engine.model.float().eval()
    trimmed = _causal_clip(clip)
    context = engine.context_length
    example = tokenizer(["a photo of a cat", "two dogs on a beach"])
    batch = torch.export.Dim("batch", min=1, max=4096)
    if trimmed:
        example = example[:, :8]
        shapes = {"tokens": {0: batch, 1: torch.export.Dim("length", min=2, max=context)}}
    else:
        shapes = {"tokens": {0: batch}}
    space = engine.space
    identity = settings_identity(model, pretrained)
    folder = tower_dir(model_dir, model, pretrained)
    folder.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=".partial-", dir=folder.parent))
    os.chmod(partial, 0o755)  # like the weights: servers and users other than the exporter read it
    try:
        with _quiet(), torch.no_grad():
            program = torch.onnx.export(
                _Trimmed(clip) if trimmed else _Full(clip), (example,), None, dynamo=True,
                input_names=["tokens"], output_names=["vector"], dynamic_shapes=shapes,
                opset_version=OPSET, verbose=False,
            )
        assert program is not None  # dynamo=True without a path returns the program
        program.model.metadata_props.update({
            f"{METADATA_PREFIX}weights_sha256": space.weights_sha256,
            f"{METADATA_PREFIX}model": space.model,
            f"{METADATA_PREFIX}pretrained": space.pretrained,
        })
        program.save(str(partial / GRAPH_FILE), external_data=True)
        ClipTokenizer.from_bpe(context_length=context).save(partial / TOKENIZER_FILE)
        info = TowerInfo(
            model=space.model, pretrained=space.pretrained, weights_sha256=space.weights_sha256,
            dimension=space.dimension, context_length=context, tokenizer="clip-bpe", clean=clean,
            start_token=int(tokenizer.sot_token_id), end_token=int(tokenizer.eot_token_id),
            trimmed=trimmed, settings_model=identity[0], settings_pretrained=identity[1],
            parity_min_cosine=0.0, parity_texts=0,
            exported_with={name: _version(name) for name in ("torch", "open_clip_torch", "onnx",
                                                             "onnxscript", "onnxruntime")},
        )
        (partial / INFO_FILE).write_text(info.to_json())
        cosines = parity(TextTower.load(partial), engine, CHECK_TEXTS)
        worst = float(cosines.min())
        if worst < MIN_COSINE:
            text = CHECK_TEXTS[int(cosines.argmin())]
            raise ModelError(
                f"the exported text tower of {space.model} differs from open_clip: cosine "
                f"{worst:.6f} < {MIN_COSINE} for {text[:40]!r} (exported with torch "
                f"{info.exported_with['torch']}); report it, search embeds queries with torch"
            )
        info = TowerInfo(**{**info.__dict__, "parity_min_cosine": worst, "parity_texts": len(cosines)})
        (partial / INFO_FILE).write_text(info.to_json())
        _replace_dir(partial, folder)
    except (TextTowerError, TokenizerError) as exc:
        raise ModelError(f"the exported text tower of {space.model} does not load: {exc}") from exc
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    log.info("text tower exported", extra={"folder": str(folder), "trimmed": trimmed,
                                           "parity_min_cosine": worst})
    return info


def parity(tower: TextTower, engine: Any, texts: tuple[str, ...] | list[str]) -> np.ndarray:
    """Cosine between the tower's vector and open_clip's (`engine`, an `Embedder`) per text."""
    ours = tower.encode(list(texts)).astype(np.float64)
    theirs = np.stack(engine.encode([engine.prepare_text(text) for text in texts])).astype(np.float64)
    norms = np.linalg.norm(ours, axis=1) * np.linalg.norm(theirs, axis=1)
    cosines: np.ndarray = (ours * theirs).sum(axis=1) / norms
    return cosines


def _causal_clip(clip: Any) -> bool:
    """Whether the text tower is open_clip's CLIP text transformer with a causal mask and
    end-token pooling: then tokens after the end token change nothing, and it runs trimmed."""
    import open_clip

    mask = getattr(clip, "attn_mask", None)
    if type(clip) is not open_clip.model.CLIP or mask is None or clip.text_pool_type not in ("argmax", "eos"):
        return False
    causal = torch.full_like(mask, float("-inf")).triu(1)
    return bool(torch.equal(mask, causal))


def _project(clip: Any, pooled: torch.Tensor) -> torch.Tensor:
    projection = clip.text_projection
    if projection is None:
        return pooled
    if isinstance(projection, torch.nn.Linear):
        linear: torch.Tensor = projection(pooled)
        return linear
    matrix: torch.Tensor = pooled @ projection
    return matrix


class _Full(torch.nn.Module):
    """open_clip's `encode_text` itself: tokens padded to the context length."""

    def __init__(self, clip: Any) -> None:
        super().__init__()
        self.clip = clip

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        vectors: torch.Tensor = self.clip.encode_text(tokens)
        return vectors


class _Trimmed(torch.nn.Module):
    """CLIP.encode_text for tokens trimmed after the end token: the positional embedding and
    the causal mask cut to the tokens' length (open_clip's TextTransformer does the same)."""

    def __init__(self, clip: Any) -> None:
        super().__init__()
        self.clip = clip

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        from open_clip.transformer import text_global_pool

        clip, length = self.clip, tokens.shape[1]
        x = clip.token_embedding(tokens) + clip.positional_embedding[:length]
        x = clip.transformer(x, attn_mask=clip.attn_mask[:length, :length])
        x = clip.ln_final(x)
        eos = getattr(clip, "text_eos_id", None)
        return _project(clip, text_global_pool(x, tokens, clip.text_pool_type, eos_token_id=eos))


@contextlib.contextmanager
def _quiet() -> Any:
    # The exporter prints its progress and warns about its own internals: not the user's business.
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def _replace_dir(new: Path, target: Path) -> None:
    """Put `new` in place of `target` by renames (a reader sees the old tower, then the new)."""
    old = target.with_name(f".old-{target.name}-{uuid.uuid4().hex[:8]}")
    if target.exists():
        os.replace(target, old)
    os.replace(new, target)
    shutil.rmtree(old, ignore_errors=True)


def _version(distribution: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return ""
