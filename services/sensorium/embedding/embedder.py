"""The embedding engine on open_clip: loading, preprocessing, encoding. Lists in, lists out.

Nothing here knows gRPC or queues. The service calls `prepare_image` / `prepare_text` in a
thread pool (decoding and tokenizing never hold up the model) and `encode` in the Batcher's
model thread with ready tensors, images and texts of many requests mixed in one list.

Loading uses open_clip's own API (`create_model_and_transforms`, `get_tokenizer`), so the code
that loads the production `ViT-B-32` / `laion2b_s34b_b79k` is the code the tests run with their
small models. It never downloads: weights are looked up in the model directory that
`sensorium models embedding` fills (see `resolve_weights`), and a miss is an `EngineError`
saying what to run.

Precision: fp32 on CPU; on CUDA fp32 weights under fp16 autocast (open_clip's "amp", what its
own zero-shot evaluation uses), so every model family works and the weights fingerprint does
not depend on the device.

The weights fingerprint (`Space.weights_sha256`) is the sha256 over the loaded state dict in
fp32 on the CPU: for each tensor in name order, its name, dtype, shape and raw bytes. Two
servers that loaded the same weights under different names agree; anything retrained differs.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from sensorium.device import DevicePlan, is_cuda_oom
from sensorium.embedding import images
from sensorium.embedding.api import Scoring, Space, Vector
from sensorium.errors import Reason, SensoriumError

log = logging.getLogger("sensorium.embedding")


HF_HUB_PREFIX = "hf-hub:"
LOCAL_DIR_PREFIX = "local-dir:"
OPEN_CLIP_CACHE = "open_clip"
"""Subdirectory of SENSORIUM_MODEL_DIR holding open_clip weights (Hugging Face cache layout
for hub weights, plain files for URL downloads)."""
_MODEL_SETTING = "SENSORIUM_EMBEDDING__MODEL"
_PRETRAINED_SETTING = "SENSORIUM_EMBEDDING__PRETRAINED"
_CHECKPOINT_NAMES = (
    "open_clip_model.safetensors", "open_clip_pytorch_model.safetensors",
    "open_clip_pytorch_model.bin", "open_clip_pytorch_model.pth",
    "model.safetensors", "pytorch_model.bin", "pytorch_model.pth", "model.pth",
)


class EngineError(Exception):
    """The model cannot be loaded; the message says why and what to do."""


@dataclass(frozen=True)
class ImageInput:
    """An image preprocessed for the model."""

    pixels: torch.Tensor
    """The model's input tensor (C, H, W), float32 on the CPU."""
    width: int
    height: int


@dataclass(frozen=True)
class TextInput:
    """A text tokenized for the model."""

    tokens: torch.Tensor
    """Token ids (context_length,), int64 on the CPU."""
    token_count: int
    """Tokens of the whole text, start and end tokens included."""
    truncated: bool


Prepared = ImageInput | TextInput


@dataclass(frozen=True)
class Weights:
    """Where a model's weights come from, resolved without any network access."""

    open_clip_name: str
    """The name given to open_clip (a built-in or registered config, or "local-dir:PATH")."""
    checkpoint: str | None
    """A weights file for open_clip's `pretrained`; None: the model name brings its own
    (local-dir) or the weights are random."""
    model_label: str
    """The model as `Space.model` names it."""
    pretrained_label: str
    """The weights as `Space.pretrained` names them."""
    preprocess: dict[str, Any] = field(default_factory=dict)
    """Preprocessing overrides of a pretrained tag (mean, std, interpolation, resize mode)."""


def open_clip_cache(model_dir: Path) -> Path:
    return Path(model_dir).expanduser() / OPEN_CLIP_CACHE


def resolve_weights(model: str, pretrained: str, model_dir: Path) -> Weights:
    """Find the weights `model` + `pretrained` name, offline. Raises `EngineError`.

    - `model` "local-dir:PATH": open_clip's own format, a folder with open_clip_config.json and
      a checkpoint; `pretrained` is ignored.
    - `model` "hf-hub:ORG/NAME": the repository as `sensorium models` stored it in the model
      directory; `pretrained` is ignored.
    - `pretrained` a path to a file: a local checkpoint for the model's config.
    - `pretrained` "": random weights (benchmarks and tests only; logged as a warning).
    - otherwise `pretrained` is an open_clip tag, looked up in the model directory.
    """
    import open_clip

    if model.startswith(LOCAL_DIR_PREFIX):
        folder = Path(model[len(LOCAL_DIR_PREFIX):]).expanduser()
        checkpoint = _checkpoint_in(folder)
        if not (folder / "open_clip_config.json").is_file() or checkpoint is None:
            raise EngineError(
                f"{model} is not an open_clip model folder (it needs open_clip_config.json and "
                f"a checkpoint such as open_clip_model.safetensors); fix {_MODEL_SETTING}"
            )
        return Weights(f"{LOCAL_DIR_PREFIX}{folder}", None, f"{LOCAL_DIR_PREFIX}{folder.name}",
                       checkpoint.name)
    if model.startswith(HF_HUB_PREFIX):
        snapshot = _cached_snapshot(model[len(HF_HUB_PREFIX):], open_clip_cache(model_dir))
        if snapshot is None or _checkpoint_in(snapshot) is None:
            raise _not_prepared(model, "", model_dir)
        return Weights(f"{LOCAL_DIR_PREFIX}{snapshot}", None, model, "")

    name = model.replace("/", "-")  # open_clip's own normalisation of names like ViT-B/32
    if name not in open_clip.list_models():
        raise EngineError(
            f"unknown open_clip model {model!r}; set {_MODEL_SETTING} to one of "
            "open_clip.list_models() (e.g. ViT-B-32), hf-hub:ORG/NAME or local-dir:PATH"
        )
    if not pretrained:
        return Weights(name, None, name, "")
    if os.path.isfile(pretrained):
        return Weights(name, pretrained, name, Path(pretrained).name)
    config = open_clip.get_pretrained_cfg(name, pretrained)
    if not config:
        if os.sep in pretrained or pretrained.endswith((".pt", ".pth", ".bin", ".safetensors")):
            raise EngineError(f"the checkpoint file {pretrained} does not exist; fix {_PRETRAINED_SETTING}")
        tags = ", ".join(open_clip.list_pretrained_tags_by_model(name)) or "none"
        raise EngineError(
            f"{pretrained!r} is not a pretrained tag of {name} (its tags: {tags}) nor a "
            f"checkpoint file; fix {_PRETRAINED_SETTING}"
        )
    path = cached_pretrained(config, open_clip_cache(model_dir))
    if path is None:
        raise _not_prepared(name, pretrained, model_dir)
    if config.get("quick_gelu", False) != bool((open_clip.get_model_config(name) or {}).get("quick_gelu")):
        log.warning("%s/%s was trained with quick_gelu=%s; the %s config differs (open_clip "
                    "warns the same; a -quickgelu model name matches it)",
                    name, pretrained, config.get("quick_gelu", False), name)
    keys = {"mean": "image_mean", "std": "image_std", "interpolation": "image_interpolation",
            "resize_mode": "image_resize_mode"}
    preprocess = {arg: config[key] for key, arg in keys.items() if config.get(key) is not None}
    return Weights(name, path, name, pretrained, preprocess)


def cached_pretrained(config: dict[str, Any], cache_dir: Path) -> str | None:
    """The file open_clip's `download_pretrained(config, cache_dir=...)` would have stored,
    if it is there; open_clip prefers the hub, and a .safetensors twin of a .bin on it."""
    if config.get("file"):
        return str(config["file"]) if os.path.isfile(config["file"]) else None
    hub = config.get("hf_hub", "")
    if hub:
        from huggingface_hub import try_to_load_from_cache
        from open_clip.constants import HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME

        repo, filename = os.path.split(hub)
        filename = filename or HF_WEIGHTS_NAME
        # open_clip's own preference (pretrained._get_safe_alternatives): safetensors first.
        if filename == HF_WEIGHTS_NAME:
            candidates = [HF_SAFE_WEIGHTS_NAME, filename]
        elif filename.endswith((".bin", ".pth")):
            candidates = [filename[:-4] + ".safetensors", filename]
        else:
            candidates = [filename]
        for candidate in candidates:
            found = try_to_load_from_cache(repo, candidate, cache_dir=str(cache_dir))
            if isinstance(found, str):
                return found
    url = config.get("url", "")
    if url:
        target = cache_dir / os.path.basename(url)
        if target.is_file():
            return str(target)
    return None


def _cached_snapshot(repo: str, cache_dir: Path) -> Path | None:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo, cache_dir=str(cache_dir), local_files_only=True))
    except LocalEntryNotFoundError:
        return None


def _checkpoint_in(folder: Path) -> Path | None:
    for name in _CHECKPOINT_NAMES:
        if (folder / name).is_file():
            return folder / name
    found = sorted([*folder.glob("*.safetensors"), *folder.glob("*.bin"), *folder.glob("*.pth")])
    return found[0] if found else None


def _not_prepared(model: str, pretrained: str, model_dir: Path) -> EngineError:
    what = f"{model}/{pretrained}" if pretrained else model
    return EngineError(
        f"weights for {what} are not in SENSORIUM_MODEL_DIR ({model_dir}); run "
        "`sensorium models embedding` where the model hub is reachable (or mount a prepared "
        "model directory); servers never download at start-up"
    )


def fingerprint(state_dict: dict[str, torch.Tensor]) -> str:
    """sha256 of a state dict (see the module docstring)."""
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().to("cpu")
        if tensor.is_floating_point():
            tensor = tensor.to(torch.float32)
        tensor = tensor.contiguous()
        digest.update(f"{name}\0{tensor.dtype}\0{tuple(tensor.shape)}\0".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def l2_normalize(vector: Vector) -> Vector:
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector


def score(
    image_vectors: Sequence[Vector], text_vectors: Sequence[Vector], *, logit_scale: float,
    logit_bias: float | None,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Cosine similarities (images x texts) and zero-shot probabilities: a softmax over the
    texts of `logit_scale * similarity` (CLIP), or with a bias an independent sigmoid (SigLIP)."""
    images_ = np.stack([l2_normalize(v) for v in image_vectors]).astype(np.float64)
    texts = np.stack([l2_normalize(v) for v in text_vectors]).astype(np.float64)
    similarities = images_ @ texts.T
    logits = logit_scale * similarities
    if logit_bias is not None:
        probabilities = 1.0 / (1.0 + np.exp(-(logits + logit_bias)))
    else:
        shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
        probabilities = shifted / shifted.sum(axis=1, keepdims=True)
    return similarities.astype(np.float32), probabilities.astype(np.float32)


class Embedder:
    """A loaded open_clip model with its preprocessing and tokenizer. Build with `load`."""

    def __init__(
        self, model: Any, preprocess: Callable[[Any], torch.Tensor], tokenizer: Any,
        weights: Weights, plan: DevicePlan, weights_sha256: str,
    ) -> None:
        self.model = model
        self.preprocess = preprocess
        self.tokenizer = tokenizer
        self.plan = plan
        self.device = torch.device(plan.device)
        self.weights = weights
        self.context_length: int = int(tokenizer.context_length)
        scale = model.logit_scale.detach().float().exp().reshape(-1)[0]
        self.logit_scale = float(scale)
        bias = getattr(model, "logit_bias", None)
        self.logit_bias: float | None = None if bias is None else float(bias.detach().float().reshape(-1)[0])
        size = getattr(getattr(model, "visual", None), "image_size", 224)
        self.image_side: int = max(size) if isinstance(size, (tuple, list)) else int(size)
        self._counter = TokenCounter(tokenizer)
        self._weights_sha256 = weights_sha256
        self.space = Space(weights.model_label, weights.pretrained_label, weights_sha256, 0)

    @property
    def scoring(self) -> Scoring:
        return "sigmoid" if self.logit_bias is not None else "softmax"

    @classmethod
    def load(cls, model: str, pretrained: str, model_dir: Path, plan: DevicePlan) -> Embedder:
        """Load, fingerprint, move to the device and warm up (one image and one text)."""
        import open_clip

        weights = resolve_weights(model, pretrained, model_dir)
        if weights.checkpoint is None and not weights.open_clip_name.startswith(LOCAL_DIR_PREFIX):
            log.warning("%s runs with RANDOM weights (%s is empty): vectors mean nothing",
                        weights.open_clip_name, _PRETRAINED_SETTING)
        cache = str(open_clip_cache(model_dir))
        try:
            # fp32 on the CPU first: the fingerprint must not depend on device or precision.
            clip, _, preprocess = open_clip.create_model_and_transforms(
                weights.open_clip_name, pretrained=weights.checkpoint, precision="fp32",
                device="cpu", cache_dir=cache, **weights.preprocess,
            )
            tokenizer = open_clip.get_tokenizer(
                weights.open_clip_name, cache_dir=cache, **_tokenizer_kwargs(weights.open_clip_name)
            )
        except Exception as exc:
            raise EngineError(f"open_clip cannot load {model}/{pretrained}: {exc}") from exc
        clip.eval()
        sha = fingerprint(clip.state_dict())
        clip.to(torch.device(plan.device))
        engine = cls(clip, preprocess, tokenizer, weights, plan, sha)
        engine.warm_up()
        log.info("embedding model loaded", extra={
            "model": engine.space.model, "pretrained": engine.space.pretrained,
            "sha256": sha[:16], "dimension": engine.space.dimension, "device": plan.device,
            "context_length": engine.context_length, "scoring": engine.scoring,
        })
        return engine

    def warm_up(self) -> None:
        """One real batch (an image and a text) through the whole path: CUDA kernels and
        lazily loaded libraries fail here, before the service reports SERVING."""
        from PIL import Image

        buffer = io.BytesIO()
        gradient = np.linspace(0, 255, self.image_side * 2, dtype=np.uint8)
        pixels = np.stack(np.broadcast_arrays(gradient[None, :], gradient[:, None], 128), axis=-1)
        Image.fromarray(pixels.astype(np.uint8), "RGB").save(buffer, format="PNG")
        image = self.prepare_image(buffer.getvalue(), max_bytes=1 << 30, max_pixels=1 << 40)
        vectors = self.encode([image, self.prepare_text("a photo of a cat")])
        self.space = Space(self.space.model, self.space.pretrained, self._weights_sha256,
                           int(vectors[0].shape[0]))

    # ---- preprocessing (pool threads) ----------------------------------------------------

    def prepare_image(self, data: bytes, *, max_bytes: int, max_pixels: int) -> ImageInput:
        """Decode and preprocess; raises `SensoriumError` for a bad image."""
        decoded = images.decode_image(
            data, max_bytes=max_bytes, max_pixels=max_pixels, min_side=self.image_side
        )
        pixels = self.preprocess(decoded.image)
        return ImageInput(pixels, decoded.width, decoded.height)

    def prepare_text(self, text: str, *, strict: bool = False, max_chars: int = 1 << 20) -> TextInput:
        """Tokenize; over-long texts are truncated (flagged), or refused when `strict`."""
        if not text.strip():
            raise SensoriumError(Reason.INPUT_EMPTY, "the text is empty; send at least one word")
        if len(text) > max_chars:
            raise SensoriumError(
                Reason.INPUT_TOO_LARGE,
                f"the text is {len(text)} characters; the limit is {max_chars} (the model "
                f"reads only its first {self.context_length} tokens anyway)",
                setting="embedding.max_text_chars",
            )
        tokens, count = self._counter.encode(text)
        truncated = count > self.context_length
        if truncated and strict:
            raise SensoriumError(
                Reason.TEXT_TOO_LONG,
                f"the text is {count} tokens; the model reads at most {self.context_length} "
                "(start and end tokens included); shorten it or allow truncation",
                {"token_count": str(count), "context_length": str(self.context_length)},
            )
        return TextInput(tokens, count, truncated)

    def count_tokens(self, text: str) -> int:
        """Tokens of the whole `text`, start and end tokens included (not truncated)."""
        return self._counter.count(text)

    # ---- the model (the Batcher's thread) ------------------------------------------------

    def encode(self, items: Sequence[Prepared]) -> list[Vector]:
        """Raw (unnormalized) float32 vectors, one per item, in order; images and texts may be
        mixed (each tower runs once per call)."""
        vectors: list[Vector | None] = [None] * len(items)
        image_at = [i for i, item in enumerate(items) if isinstance(item, ImageInput)]
        text_at = [i for i, item in enumerate(items) if isinstance(item, TextInput)]
        with torch.inference_mode():
            if image_at:
                batch = torch.stack([_pixels(items[i]) for i in image_at])
                for i, vector in zip(image_at, self._run(self.model.encode_image, batch), strict=True):
                    vectors[i] = vector
            if text_at:
                batch = torch.stack([_tokens(items[i]) for i in text_at])
                for i, vector in zip(text_at, self._run(self.model.encode_text, batch), strict=True):
                    vectors[i] = vector
        return [v for v in vectors if v is not None]

    def encode_or_oom(self, items: Sequence[Prepared]) -> list[Vector | SensoriumError]:
        """`encode`, answering CUDA out-of-memory of a single item with a GPU_OUT_OF_MEMORY
        error as its result. Larger batches re-raise, for `batching.split_on_error` to halve."""
        try:
            return list(self.encode(items))
        except Exception as exc:
            if not is_cuda_oom(exc):
                raise
            torch.cuda.empty_cache()  # give the halves the memory the failed batch held
            if len(items) > 1:
                raise
            log.warning("a single item does not fit in GPU memory: %s", exc)
            return [SensoriumError(
                Reason.GPU_OUT_OF_MEMORY,
                "the item does not fit in the GPU's free memory even alone; retry later or "
                "send a smaller input",
                retry_after_seconds=2.0,
            )]

    def _run(self, tower: Callable[[torch.Tensor], torch.Tensor], batch: torch.Tensor) -> list[Vector]:
        if self.device.type == "cuda":
            # Pinned memory lets the copy to the GPU run asynchronously.
            batch = batch.pin_memory().to(self.device, non_blocking=True)
        with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.plan.is_cuda):
            features = tower(batch)
        array = features.float().cpu().numpy()
        return [np.ascontiguousarray(row, dtype=np.float32) for row in array]


def _pixels(item: Prepared) -> torch.Tensor:
    assert isinstance(item, ImageInput)
    return item.pixels


def _tokens(item: Prepared) -> torch.Tensor:
    assert isinstance(item, TextInput)
    return item.tokens


class TokenCounter:
    """Counts tokens as a model's tokenizer does, start and end tokens included, untruncated.

    `load` needs only the tokenizer, not the weights: the index job counts with it when a
    remote server embeds (its chunks must fit the server's model)."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.context_length: int = int(tokenizer.context_length)
        self._simple = type(tokenizer).__name__ == "SimpleTokenizer"
        # Hugging Face fast tokenizers fail with "Already borrowed" when called concurrently.
        self._lock = threading.Lock()

    @classmethod
    def load(cls, model: str, pretrained: str, model_dir: Path) -> TokenCounter:
        import open_clip

        name = resolve_weights(model, pretrained, model_dir).open_clip_name
        cache = str(open_clip_cache(model_dir))
        return cls(open_clip.get_tokenizer(name, cache_dir=cache, **_tokenizer_kwargs(name)))

    def encode(self, text: str) -> tuple[Any, int]:
        """The model's input tokens (truncated to the context) and the untruncated count."""
        if self._simple:
            return self.tokenizer([text])[0], self.count(text)
        with self._lock:
            return self.tokenizer([text])[0], _hf_token_count(self.tokenizer, text)

    def count(self, text: str) -> int:
        if self._simple:
            return len(self.tokenizer.encode(text)) + 2
        with self._lock:
            return _hf_token_count(self.tokenizer, text)


def _tokenizer_kwargs(open_clip_name: str) -> dict[str, Any]:
    """Hugging Face tokenizers (SigLIP and others) load from the cache only: never the hub."""
    import open_clip

    config = open_clip.get_model_config(open_clip_name) or {}
    if config.get("text_cfg", {}).get("hf_tokenizer_name"):
        return {"local_files_only": True}
    return {}


def _hf_token_count(tokenizer: Any, text: str) -> int:
    inner = getattr(tokenizer, "tokenizer", None)
    if inner is None:
        return 0  # an unknown tokenizer kind: no count, never "truncated"
    cleaned = tokenizer.clean_fn(text) if hasattr(tokenizer, "clean_fn") else text
    return len(inner(cleaned, add_special_tokens=True)["input_ids"])
