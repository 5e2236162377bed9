"""The text tower without torch: an open_clip model's text encoder exported to ONNX, run by ONNX
Runtime, for the query path (`sensorium search` embeds one short text and must start fast).

`sensorium models embedding` exports it (`sensorium.embedding.onnx_export`) next to the
weights, into `MODEL_DIR/text-onnx/KEY/`, KEY derived from the model settings alone, so
finding it costs no open_clip import:

    text.onnx        the graph; its metadata names the weights fingerprint it was exported from
    text.onnx.data   the weights (ONNX external data)
    tokenizer.json   CLIP's BPE for the Rust tokenizer (`sensorium.embedding.tokens`)
    tower.json       what it is: the embedding space, context length, tokens, parity measured

The space's `weights_sha256` is the fingerprint of the whole checkpoint (the same value the
embedding service reports and an index's manifest records), computed by the exporter from the
very state dict it exported; `tower.json` and the graph's own metadata must agree on it, and a
query vector is refused for an index whose manifest names other weights.

Causal CLIP text towers read a text only up to its end token, so the tower takes the tokens
trimmed there (a short query costs a tenth of a full 77-token pass); the exporter checks that
this gives the same vectors as the full pass before it writes the tower.

Nothing here imports torch or open_clip: numpy, onnxruntime and the Rust tokenizer only.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

TOWERS_DIR = "text-onnx"
"""Subdirectory of SENSORIUM_MODEL_DIR holding exported text towers, one folder per model."""
GRAPH_FILE = "text.onnx"
TOKENIZER_FILE = "tokenizer.json"
INFO_FILE = "tower.json"
FORMAT_VERSION = 1
"""Version of the folder's layout and of tower.json; a tower of another version is re-exported."""
METADATA_PREFIX = "sensorium."
"""Keys of the ONNX graph's own metadata (metadata_props) written by the exporter."""
LOCAL_DIR_PREFIX = "local-dir:"
HF_HUB_PREFIX = "hf-hub:"

Vector = npt.NDArray[np.float32]
TokenIds = Callable[[str], list[int]]
"""A text's BPE token ids, without start and end tokens, untruncated."""


class TextTowerError(Exception):
    """The text tower cannot be used; the message says why and what to do."""


class SpaceLike(Protocol):
    """An embedding space as an index's manifest records it (`index.layout.EmbeddingSpace`)."""

    @property
    def model(self) -> str: ...
    @property
    def pretrained(self) -> str: ...
    @property
    def weights_sha256(self) -> str: ...
    @property
    def dimension(self) -> int: ...


@dataclass(frozen=True)
class TowerInfo:
    """tower.json: what an exported text tower is and where it came from."""

    model: str
    """The model as `Space.model` names it (the embedding service's label)."""
    pretrained: str
    """The weights as `Space.pretrained` names them."""
    weights_sha256: str
    """Fingerprint of the whole checkpoint the tower was exported from (`embedder.fingerprint`)."""
    dimension: int
    context_length: int
    """Tokens the tower reads at most, start and end tokens included."""
    tokenizer: str
    """How texts become tokens: "clip-bpe" (CLIP's BPE, as open_clip's SimpleTokenizer; in
    tokenizer.json for `tokens.ClipTokenizer`)."""
    clean: str
    """The tokenizer's text cleaning, as open_clip names it: "lower" (ftfy, HTML entities,
    whitespace, lower case), "whitespace" or "canonicalize"."""
    start_token: int
    end_token: int
    trimmed: bool
    """The graph takes tokens up to the end token (any length up to the context); else
    exactly `context_length` tokens, zero-padded."""
    settings_model: str
    """SENSORIUM_EMBEDDING__MODEL as it was when exported (normalised, see `tower_key`)."""
    settings_pretrained: str
    parity_min_cosine: float
    """Lowest cosine between this tower's and open_clip's vectors over the exporter's check texts."""
    parity_texts: int
    exported_with: dict[str, str]
    """Versions of the exporting libraries (torch, open_clip, onnx, onnxruntime)."""
    format_version: int = FORMAT_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> TowerInfo:
        return cls(**json.loads(text))


def settings_identity(model: str, pretrained: str) -> tuple[str, str]:
    """The model settings as the tower folder records them: paths made absolute, `pretrained`
    dropped where open_clip ignores it (local-dir: and hf-hub: models)."""
    if model.startswith(LOCAL_DIR_PREFIX):
        path = os.path.abspath(os.path.expanduser(model[len(LOCAL_DIR_PREFIX):]))
        return f"{LOCAL_DIR_PREFIX}{path}", ""
    if model.startswith(HF_HUB_PREFIX):
        return model, ""
    if pretrained and (os.sep in pretrained or os.path.isfile(pretrained)):
        pretrained = os.path.abspath(os.path.expanduser(pretrained))
    return model.replace("/", "-"), pretrained


def tower_key(model: str, pretrained: str) -> str:
    """The folder name of the tower exported for these settings."""
    identity = json.dumps(settings_identity(model, pretrained))
    return hashlib.sha256(identity.encode()).hexdigest()[:16]


def tower_dir(model_dir: Path, model: str, pretrained: str) -> Path:
    return Path(model_dir).expanduser() / TOWERS_DIR / tower_key(model, pretrained)


def read_info(folder: Path) -> TowerInfo:
    """tower.json of an exported tower; raises `TextTowerError` saying what to run."""
    try:
        info = TowerInfo.from_json((folder / INFO_FILE).read_text())
    except FileNotFoundError:
        raise TextTowerError(
            f"no ONNX text tower in {folder}; run `sensorium models embedding` with the same "
            "SENSORIUM_EMBEDDING__MODEL, __PRETRAINED and SENSORIUM_MODEL_DIR"
        ) from None
    except (OSError, ValueError, TypeError) as exc:
        raise TextTowerError(
            f"{folder / INFO_FILE} cannot be read ({exc}); run `sensorium models embedding` again"
        ) from exc
    if info.format_version != FORMAT_VERSION:
        raise TextTowerError(
            f"the text tower in {folder} is format {info.format_version}; this Sensorium reads "
            f"format {FORMAT_VERSION}: run `sensorium models embedding` again"
        )
    return info


class TextTower:
    """An exported text tower, loaded in ONNX Runtime. Build with `load`."""

    def __init__(self, folder: Path, info: TowerInfo, session: Any, tokens: TokenIds) -> None:
        self.folder = folder
        self.info = info
        self._session = session
        self._input = session.get_inputs()[0].name
        self._token_ids = tokens

    @classmethod
    def load(cls, folder: Path, *, threads: int = 0, prepack: bool = False) -> TextTower:
        """Load the tower in `folder`.

        `threads`: ONNX Runtime's intra-op threads (0 = its default, one per core).
        `prepack`: let ONNX Runtime repack the weights for faster matrix products; it costs
        ~0.4 s and a second copy of the weights at load (ViT-B-32 on 2 cores), which a
        one-query command never earns back and a resident process does (bench/search_cold.py).
        """
        import onnxruntime as ort  # the import that matters here (~0.1 s); only when loading

        info = read_info(folder)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # warnings about unused initializers are not the user's
        # Threads that spin after a run burn the CPU a resident process shares with the user.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if not prepack:
            options.add_session_config_entry("session.disable_prepacking", "1")
        try:
            session = ort.InferenceSession(
                str(folder / GRAPH_FILE), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own exception types per failure
            raise TextTowerError(
                f"ONNX Runtime cannot load the text tower in {folder} ({exc}); run "
                "`sensorium models embedding` again"
            ) from exc
        metadata = session.get_modelmeta().custom_metadata_map
        graph_sha = metadata.get(f"{METADATA_PREFIX}weights_sha256")
        if graph_sha != info.weights_sha256:
            raise TextTowerError(
                f"the text tower in {folder} is inconsistent: its graph was exported from weights "
                f"{str(graph_sha)[:12]}, its {INFO_FILE} names {info.weights_sha256[:12]}; run "
                "`sensorium models embedding` again"
            )
        return cls(folder, info, session, _tokenizer(folder, info))

    def tokenize(self, text: str) -> tuple[list[int], int]:
        """The tokens the tower reads (start and end tokens included, truncated to the context
        as open_clip truncates: the end token replaces the last one) and the untruncated count."""
        ids = [self.info.start_token, *self._token_ids(text), self.info.end_token]
        count = len(ids)
        if count > self.info.context_length:
            ids = ids[: self.info.context_length]
            ids[-1] = self.info.end_token
        return ids, count

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Raw (unnormalized) vectors of `texts`, one row each."""
        if not texts:
            return np.zeros((0, self.info.dimension), dtype=np.float32)
        token_lists = [self.tokenize(text)[0] for text in texts]
        width = max(len(ids) for ids in token_lists) if self.info.trimmed else self.info.context_length
        batch = np.zeros((len(texts), width), dtype=np.int64)
        for row, ids in enumerate(token_lists):
            batch[row, : len(ids)] = ids
        (vectors,) = self._session.run(None, {self._input: batch})
        return np.asarray(vectors, dtype=np.float32)

    def embed(self, text: str) -> Vector:
        """`text`'s L2-normalized vector. Raises `TextTowerError` for an empty text."""
        if not text.strip():
            raise TextTowerError("the query text is empty; give at least one word")
        vector: Vector = self.encode([text])[0]
        norm = float(np.linalg.norm(vector))
        return vector / np.float32(norm) if norm > 0 else vector

    def check_space(self, space: SpaceLike) -> None:
        """Refuse an index whose vectors come from another model (another space)."""
        info = self.info
        if (info.model, info.pretrained, info.weights_sha256, info.dimension) != (
            space.model, space.pretrained, space.weights_sha256, space.dimension
        ):
            raise TextTowerError(
                f"the index was built with {space.model} ({space.pretrained or 'random'}, weights "
                f"{space.weights_sha256[:12]}) but the text tower here is {info.model} "
                f"({info.pretrained or 'random'}, weights {info.weights_sha256[:12]}): set "
                "SENSORIUM_EMBEDDING__MODEL and __PRETRAINED as when the index was built, and run "
                "`sensorium models embedding`"
            )


def _tokenizer(folder: Path, info: TowerInfo) -> TokenIds:
    from sensorium.embedding.tokens import ClipTokenizer, TokenizerError

    if info.tokenizer != "clip-bpe" or info.clean != "lower":
        raise TextTowerError(
            f"the text tower's tokenizer ({info.tokenizer}, clean={info.clean}) is unknown to this "
            "Sensorium; run `sensorium models embedding` again"
        )
    try:
        tokenizer = ClipTokenizer.from_file(folder / TOKENIZER_FILE, info.context_length)
    except TokenizerError as exc:
        raise TextTowerError(f"{exc}; run `sensorium models embedding` again") from exc
    if (tokenizer.sot_token_id, tokenizer.eot_token_id) != (info.start_token, info.end_token):
        raise TextTowerError(f"the tokenizer in {folder} is not the tower's; run `sensorium models "
                             "embedding` again")
    return tokenizer.encode


def load_text_tower(model_dir: Path, model: str, pretrained: str, *, threads: int = 0,
                    prepack: bool = False) -> TextTower:
    """The tower `sensorium models embedding` exported for these settings."""
    return TextTower.load(tower_dir(model_dir, model, pretrained), threads=threads, prepack=prepack)


def embed_query_text(
    model_dir: Path, model: str, pretrained: str, text: str, *, space: SpaceLike | None = None,
    threads: int = 0,
) -> Vector:
    """`text` embedded by the configured model's exported text tower, L2-normalized, as
    `sensorium search` embeds its query; refused (`TextTowerError`) when `space` (the index's)
    is another model's. One call loads the tower: a caller with many texts keeps a `TextTower`."""
    tower = load_text_tower(model_dir, model, pretrained, threads=threads)
    if space is not None:
        tower.check_space(space)
    return tower.embed(text)
