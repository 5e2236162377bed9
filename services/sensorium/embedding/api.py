"""The embedding service's domain: the vector space (`Space`, `SpaceInfo`), one item's result
(`TextOutcome`, `ImageOutcome`), zero-shot scores (`Scores`), and the interface both
implementations of the one seam offer (`EmbeddingEngine`).

Plain dataclasses and numpy only: the gRPC wire module and remote callers import this without
torch or open_clip.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
import numpy.typing as npt

from sensorium.contract import EngineKey
from sensorium.errors import SensoriumError

Vector = npt.NDArray[np.float32]
Scoring = Literal["softmax", "sigmoid"]


@dataclass(frozen=True)
class Space:
    """The vector space of a loaded model (see `sensorium.type.v1.EmbeddingSpace`)."""

    model: str
    pretrained: str
    weights_sha256: str
    dimension: int


@dataclass(frozen=True)
class SpaceInfo:
    """What a caller needs to know of the model before sending it work."""

    space: Space
    context_length: int
    """Tokens the text tower reads, start and end tokens included."""
    scoring: Scoring
    max_image_pixels: int
    max_image_bytes: int
    device: str


@dataclass(frozen=True)
class ImageOutcome:
    """One image's result: a vector, or the error that kept it from one."""

    vector: Vector | None = None
    error: SensoriumError | None = None
    width: int = 0
    """Width of the full image (EXIF orientation applied)."""
    height: int = 0


@dataclass(frozen=True)
class TextOutcome:
    """One text's result: a vector, or the error that kept it from one."""

    vector: Vector | None = None
    error: SensoriumError | None = None
    truncated: bool = False
    """The text had more tokens than the model's context; only the first ones count."""
    token_count: int = 0


@dataclass(frozen=True)
class ScoreRow:
    """One image scored against every text, or its error."""

    similarities: list[float]
    probabilities: list[float]
    error: SensoriumError | None = None


@dataclass(frozen=True)
class Scores:
    """Each image against every text, and how the probabilities were made."""

    rows: list[ScoreRow]
    scoring: Scoring
    space: Space


class EmbeddingEngine(Protocol):
    """CLIP vectors of texts and images, in this process or on a server (`sensorium.engines`).

    Per-item failures are outcomes with an `error`; call-level failures raise `SensoriumError`.
    `deadline` is on the `time.monotonic()` scale."""

    async def describe(self) -> SpaceInfo: ...

    def count_tokens(self, text: str) -> int:
        """Tokens of `text` as the model counts them (blocking: call it from a thread when
        chunking long texts)."""
        ...

    async def embed_texts(
        self, texts: Sequence[str], *, strict: bool | None = None, normalize: bool = True,
        deadline: float | None = None,
    ) -> list[TextOutcome]: ...

    async def embed_images(
        self, images: Sequence[bytes], *, normalize: bool = True, deadline: float | None = None
    ) -> list[ImageOutcome]: ...

    async def score(
        self, images: Sequence[bytes], texts: Sequence[str], *, deadline: float | None = None
    ) -> Scores: ...


EMBEDDING: EngineKey[EmbeddingEngine] = EngineKey("embedding")
