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
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import torch
from open_clip.transformer import text_global_pool

from sensorium.device import DevicePlan, is_cuda_oom
from sensorium.embedding import images
from sensorium.embedding.api import Scoring, Space, Vector
from sensorium.embedding.tokens import ClipTokenizer
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

    pixels: npt.NDArray[np.float32]
    """The model's input (C, H, W), float32."""
    width: int
    height: int


@dataclass(frozen=True)
class TextInput:
    """A text tokenized for the model."""

    tokens: npt.NDArray[np.int64]
    """Token ids (context_length,), int64."""
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


@dataclass(frozen=True)
class ModelFacts:
    """What the front of a loaded model needs to know of it, without the model itself:
    enough to preprocess and tokenize for it in another process (picklable)."""

    weights: Weights
    plan: DevicePlan
    """The plan the model runs on (after any CPU fallback at warm-up)."""
    space: Space
    context_length: int
    image_shape: tuple[int, int, int]
    """The model's input tensor of one image (C, H, W)."""
    logit_scale: float
    logit_bias: float | None
    preprocess: dict[str, Any]
    """open_clip's final preprocessing configuration (`model.visual.preprocess_cfg`)."""


class Towers(Protocol):
    """The model's two towers over ready inputs: raw float32 vectors (n, dimension)."""

    def run(
        self, pixels: Sequence[npt.NDArray[np.float32]], tokens: Sequence[npt.NDArray[np.int64]]
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        """Image vectors for `pixels` (each (C, H, W)) and text vectors for `tokens` (each
        (context_length,)), in order; a kind with no inputs gives an empty array."""
        ...


class LocalTowers:
    """The towers of an open_clip model in this process (fp16 autocast on CUDA)."""

    def __init__(self, model: Any, plan: DevicePlan) -> None:
        self.model = model
        self.plan = plan
        self.device = torch.device(plan.device)
        self._encode_text = self._trimmed_text if trims_text(model) else model.encode_text

    def run(
        self, pixels: Sequence[npt.NDArray[np.float32]], tokens: Sequence[npt.NDArray[np.int64]]
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        return self.run_arrays(np.stack(pixels) if len(pixels) else None,
                               np.stack(tokens) if len(tokens) else None)

    def run_arrays(
        self, pixels: npt.NDArray[np.float32] | None, tokens: npt.NDArray[np.int64] | None
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        """`run` over whole batches (n, C, H, W) and (n, context_length), e.g. shared memory."""
        empty = np.zeros((0, 0), dtype=np.float32)
        with torch.inference_mode():
            images = self._run(self.model.encode_image, pixels) if pixels is not None else empty
            texts = self._run(self._encode_text, tokens) if tokens is not None else empty
        return images, texts

    def _trimmed_text(self, text: torch.Tensor) -> torch.Tensor:
        """open_clip's `CLIP.encode_text` over the batch's tokens up to its last end token only:
        the same vector up to float rounding (~1e-6; the test compares them), for a fraction of
        the work when captions are short (16 of 77 positions: ~4x less time on the CPU, measured)."""
        model = self.model
        eos: int = model.text_eos_id if model.text_pool_type == "eos" else 0
        # The end token: CLIP's has the largest id (argmax pooling); else the model names it.
        ends = text if model.text_pool_type == "argmax" else torch.eq(text, eos).int()
        return encode_trimmed_text(model, text[:, :int(ends.argmax(dim=-1).max()) + 1])

    def _run(
        self, tower: Callable[[torch.Tensor], torch.Tensor], inputs: npt.NDArray[Any]
    ) -> npt.NDArray[np.float32]:
        batch = torch.from_numpy(inputs)
        if self.device.type == "cuda":
            # Pinned memory lets the copy to the GPU run asynchronously.
            batch = batch.pin_memory().to(self.device, non_blocking=True)
        with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.plan.is_cuda):
            features = tower(batch)
        return np.ascontiguousarray(features.float().cpu().numpy(), dtype=np.float32)


def trims_text(model: Any) -> bool:
    """Whether `model` is an open_clip `CLIP` whose text tower reads the end token (argmax or
    eos pooling) under a causal mask. Then a position sees only those before it and the vector
    is read at the end token, so tokens after the last end token cannot change any vector and
    `encode_trimmed_text` may drop them. Other kinds (SigLIP's, custom towers) keep their
    encode_text. The service's towers and the exported ONNX tower both rely on it."""
    from open_clip.model import CLIP

    mask = getattr(model, "attn_mask", None)
    pool = getattr(model, "text_pool_type", None)
    if type(model) is not CLIP or mask is None or pool not in ("argmax", "eos"):
        return False
    causal = torch.full(mask.shape, float("-inf"), device=mask.device).triu(1)
    return bool(torch.equal(torch.isinf(mask), torch.isinf(causal)))


def encode_trimmed_text(model: Any, tokens: torch.Tensor) -> torch.Tensor:
    """`CLIP.encode_text` for tokens cut after the batch's last end token (`trims_text` models):
    the positional embedding and the causal mask cut to the tokens' length, as open_clip's own
    TextTransformer does."""
    length = tokens.shape[1]
    cast_dtype = model.transformer.get_cast_dtype()
    x = model.token_embedding(tokens).to(cast_dtype)
    x = x + model.positional_embedding[:length].to(cast_dtype)
    x = model.transformer(x, attn_mask=model.attn_mask[:length, :length])
    x = model.ln_final(x)
    x = text_global_pool(x, tokens, model.text_pool_type, eos_token_id=getattr(model, "text_eos_id", None))
    pooled: torch.Tensor = x
    projection = model.text_projection
    if projection is None:
        return pooled
    if isinstance(projection, torch.nn.Linear):
        return projection(pooled)  # type: ignore[no-any-return]
    return pooled @ projection  # type: ignore[no-any-return]


class Embedder:
    """An open_clip model's preprocessing and tokenizer in front of its towers, which run here
    (`load`) or in a model process (`remote`)."""

    def __init__(self, preprocess: Callable[[Any], torch.Tensor], tokenizer: Any, facts: ModelFacts,
                 towers: Towers, model: Any = None) -> None:
        self.model = model
        """The open_clip model when it runs in this process, else None."""
        self.preprocess = preprocess
        self.tokenizer = tokenizer
        self.towers = towers
        self.facts = facts
        self.plan = facts.plan
        self.weights = facts.weights
        self.context_length: int = int(tokenizer.context_length)
        self.logit_scale = facts.logit_scale
        self.logit_bias = facts.logit_bias
        self.image_side: int = max(facts.image_shape[1:])
        self._counter = TokenCounter(tokenizer)
        self.fast_tokens: bool = self._counter.fast
        """Texts are tokenized by the Rust tokenizer (microseconds: fine on an event loop)."""
        self.space = facts.space

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
        scale = float(clip.logit_scale.detach().float().exp().reshape(-1)[0])
        bias = getattr(clip, "logit_bias", None)
        size = getattr(getattr(clip, "visual", None), "image_size", 224)
        height, width = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
        facts = ModelFacts(
            weights, plan, Space(weights.model_label, weights.pretrained_label, sha, 0),
            int(tokenizer.context_length), (3, height, width), scale,
            None if bias is None else float(bias.detach().float().reshape(-1)[0]),
            dict(getattr(clip.visual, "preprocess_cfg", {})),
        )
        engine = cls(preprocess, tokenizer, facts, LocalTowers(clip, plan), clip)
        engine.warm_up()
        log.info("embedding model loaded", extra={
            "model": engine.space.model, "pretrained": engine.space.pretrained,
            "sha256": sha[:16], "dimension": engine.space.dimension, "device": plan.device,
            "context_length": engine.context_length, "scoring": engine.scoring,
        })
        return engine

    @classmethod
    def remote(cls, facts: ModelFacts, towers: Towers, model_dir: Path) -> Embedder:
        """The front of a model that runs elsewhere (`towers`): the same preprocessing and
        tokenizer as `load` builds, from `facts`."""
        import open_clip
        from open_clip.transform import PreprocessCfg, image_transform_v2

        name = facts.weights.open_clip_name
        tokenizer = open_clip.get_tokenizer(name, cache_dir=str(open_clip_cache(model_dir)),
                                            **_tokenizer_kwargs(name))
        preprocess = image_transform_v2(PreprocessCfg(**facts.preprocess), is_train=False)
        return cls(preprocess, tokenizer, facts, towers)

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
        self.space = replace(self.space, dimension=int(vectors[0].shape[0]))
        self.facts = replace(self.facts, space=self.space)

    # ---- preprocessing (pool threads) ----------------------------------------------------

    def prepare_image(self, data: bytes, *, max_bytes: int, max_pixels: int) -> ImageInput:
        """Decode and preprocess; raises `SensoriumError` for a bad image."""
        decoded = images.decode_image(
            data, max_bytes=max_bytes, max_pixels=max_pixels, min_side=self.image_side
        )
        pixels = self.preprocess(decoded.image).numpy()
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
        image_at = [i for i, item in enumerate(items) if isinstance(item, ImageInput)]
        text_at = [i for i, item in enumerate(items) if isinstance(item, TextInput)]
        images, texts = self.towers.run([_pixels(items[i]) for i in image_at],
                                        [_tokens(items[i]) for i in text_at])
        vectors: list[Any] = [None] * len(items)
        for rows, places in ((images, image_at), (texts, text_at)):
            for row, i in zip(rows, places, strict=True):
                vectors[i] = row
        return vectors

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


def _pixels(item: Prepared) -> npt.NDArray[np.float32]:
    assert isinstance(item, ImageInput)
    return item.pixels


def _tokens(item: Prepared) -> npt.NDArray[np.int64]:
    assert isinstance(item, TextInput)
    return item.tokens


class TokenCounter:
    """Tokenizes and counts as a model's tokenizer does (counts include the start and end tokens
    and are not truncated).

    CLIP's own BPE tokenizer (open_clip's `SimpleTokenizer`, most models) is replaced by the Rust
    `tokens.ClipTokenizer`, which gives the same ids ~30x faster; other tokenizers (Hugging Face
    ones: SigLIP and others) are used as open_clip gives them. `load` needs only the tokenizer,
    not the weights: the index job counts with it when a remote server embeds (its chunks must
    fit the server's model)."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.context_length: int = int(tokenizer.context_length)
        self._clip = _rust_twin(tokenizer)
        self.fast = self._clip is not None
        # Hugging Face fast tokenizers fail with "Already borrowed" when called concurrently.
        self._lock = threading.Lock()

    @classmethod
    def load(cls, model: str, pretrained: str, model_dir: Path) -> TokenCounter:
        import open_clip

        name = resolve_weights(model, pretrained, model_dir).open_clip_name
        cache = str(open_clip_cache(model_dir))
        return cls(open_clip.get_tokenizer(name, cache_dir=cache, **_tokenizer_kwargs(name)))

    def encode(self, text: str) -> tuple[npt.NDArray[np.int64], int]:
        """The model's input tokens (truncated to the context) and the untruncated count."""
        if self._clip is not None:
            return self._clip.row(text)
        with self._lock:
            return self.tokenizer([text])[0].numpy(), _hf_token_count(self.tokenizer, text)

    def count(self, text: str) -> int:
        if self._clip is not None:
            return self._clip.count(text)
        with self._lock:
            return _hf_token_count(self.tokenizer, text)


def _rust_twin(tokenizer: Any) -> ClipTokenizer | None:
    """The Rust tokenizer giving `tokenizer`'s ids, when it is open_clip's plain CLIP BPE."""
    from open_clip import tokenizer as open_clip_tokenizer

    plain = (
        type(tokenizer) is open_clip_tokenizer.SimpleTokenizer
        and tokenizer.clean_fn is open_clip_tokenizer._clean_lower
        and tokenizer.reduction_fn is None
        and tokenizer.vocab_size == 49408  # no additional special tokens
    )
    if not plain:
        return None
    twin = ClipTokenizer.from_bpe(context_length=int(tokenizer.context_length))
    # A config could name another vocabulary file: then keep open_clip's tokenizer.
    same = all(twin.encode(probe) == tokenizer.encode(probe) for probe in _PROBES)
    return twin if same else None


_PROBES = ("A photo of a cat, 1 2 3!", "naïve café ✔ 東京 &amp; <start_of_text>", "it's x86_64")


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
