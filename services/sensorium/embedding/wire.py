"""The embedding service on the wire: every message of `sensorium.embedding.v1` (and the shared
`EmbeddingSpace` and `Vector`) to and from the domain types of `sensorium.embedding.api`, for
the servicer and `embedding.remote`. tests/unit/test_wire.py holds the two directions together.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from sensorium.embedding.api import (
    ImageOutcome,
    ScoreRow,
    Scores,
    Scoring,
    Space,
    SpaceInfo,
    TextOutcome,
    Vector,
)
from sensorium.embedding.v1 import embedding_service_pb2 as pb
from sensorium.errors import Audience
from sensorium.status import error_from_item, item_error
from sensorium.type.v1 import embedding_pb2

_SCORING: dict[Scoring, Any] = {
    "softmax": pb.SCORING_FUNCTION_SOFTMAX, "sigmoid": pb.SCORING_FUNCTION_SIGMOID,
}
_SCORING_NAMES: dict[int, Scoring] = {number: name for name, number in _SCORING.items()}


def options_to_message(strict: bool | None = None, normalize: bool = True) -> pb.EmbedOptions:
    truncation = (pb.TRUNCATION_MODE_UNSPECIFIED if strict is None
                  else pb.TRUNCATION_MODE_REJECT if strict else pb.TRUNCATION_MODE_TRUNCATE)
    return pb.EmbedOptions(unnormalized=not normalize, truncation=truncation)


def options_from_message(message: pb.EmbedOptions) -> tuple[bool | None, bool]:
    """(strict, normalize): strict None = the server's setting."""
    strict = (None if message.truncation == pb.TRUNCATION_MODE_UNSPECIFIED
              else message.truncation == pb.TRUNCATION_MODE_REJECT)
    return strict, not message.unnormalized


def space_to_message(space: Space, normalized: bool = True) -> embedding_pb2.EmbeddingSpace:
    return embedding_pb2.EmbeddingSpace(
        model=space.model, pretrained=space.pretrained, weights_sha256=space.weights_sha256,
        dimension=space.dimension, normalized=normalized,
    )


def space_from_message(message: embedding_pb2.EmbeddingSpace) -> Space:
    return Space(message.model, message.pretrained, message.weights_sha256, message.dimension)


def vector_to_message(vector: Vector, space: Space, normalized: bool) -> embedding_pb2.Vector:
    return embedding_pb2.Vector(values=vector.tolist(), space=space_to_message(space, normalized))


def vector_from_message(message: embedding_pb2.Vector) -> Vector:
    return np.asarray(message.values, dtype=np.float32)


def text_to_message(outcome: TextOutcome, space: Space, normalized: bool,
                    audience: Audience = "client") -> pb.TextEmbedding:
    if outcome.error is not None or outcome.vector is None:
        assert outcome.error is not None
        return pb.TextEmbedding(error=item_error(outcome.error, audience))
    return pb.TextEmbedding(vector=vector_to_message(outcome.vector, space, normalized),
                            truncated=outcome.truncated, token_count=outcome.token_count)


def text_from_message(message: pb.TextEmbedding) -> TextOutcome:
    if message.HasField("error"):
        return TextOutcome(error=error_from_item(message.error))
    return TextOutcome(vector_from_message(message.vector), truncated=message.truncated,
                       token_count=message.token_count)


def image_to_message(outcome: ImageOutcome, space: Space, normalized: bool,
                     audience: Audience = "client") -> pb.ImageEmbedding:
    if outcome.error is not None or outcome.vector is None:
        assert outcome.error is not None
        return pb.ImageEmbedding(error=item_error(outcome.error, audience))
    return pb.ImageEmbedding(vector=vector_to_message(outcome.vector, space, normalized),
                             width=outcome.width, height=outcome.height)


def image_from_message(message: pb.ImageEmbedding) -> ImageOutcome:
    if message.HasField("error"):
        return ImageOutcome(error=error_from_item(message.error))
    return ImageOutcome(vector_from_message(message.vector), width=message.width, height=message.height)


def stream_answer(item_id: str, outcome: TextOutcome | ImageOutcome, space: Space,
                  normalized: bool) -> pb.StreamEmbedResponse:
    """A StreamEmbed answer for one item (no image size: the stream's messages stay small)."""
    if outcome.error is not None or outcome.vector is None:
        assert outcome.error is not None
        return pb.StreamEmbedResponse(id=item_id, error=item_error(outcome.error))
    truncated = outcome.truncated if isinstance(outcome, TextOutcome) else False
    return pb.StreamEmbedResponse(id=item_id, vector=vector_to_message(outcome.vector, space, normalized),
                                  truncated=truncated)


def image_from_stream_answer(message: pb.StreamEmbedResponse) -> ImageOutcome:
    if message.HasField("error"):
        return ImageOutcome(error=error_from_item(message.error))
    return ImageOutcome(vector_from_message(message.vector))


def scores_to_message(scores: Scores, audience: Audience = "client") -> pb.ScoreResponse:
    return pb.ScoreResponse(
        rows=[pb.ScoreRow(error=item_error(row.error, audience)) if row.error is not None
              else pb.ScoreRow(similarities=row.similarities, probabilities=row.probabilities)
              for row in scores.rows],
        scoring_function=_SCORING[scores.scoring], space=space_to_message(scores.space),
    )


def scores_from_message(message: pb.ScoreResponse) -> Scores:
    rows = [ScoreRow([], [], error_from_item(row.error)) if row.HasField("error")
            else ScoreRow(list(row.similarities), list(row.probabilities)) for row in message.rows]
    return Scores(rows, _SCORING_NAMES.get(message.scoring_function, "softmax"),
                  space_from_message(message.space))


def space_info_to_message(info: SpaceInfo) -> pb.GetEmbeddingSpaceResponse:
    return pb.GetEmbeddingSpaceResponse(
        space=space_to_message(info.space), context_length=info.context_length,
        scoring_function=_SCORING[info.scoring], max_image_pixels=info.max_image_pixels,
        max_image_bytes=info.max_image_bytes, device=info.device,
    )


def space_info_from_message(message: pb.GetEmbeddingSpaceResponse) -> SpaceInfo:
    return SpaceInfo(
        space_from_message(message.space), message.context_length,
        _SCORING_NAMES.get(message.scoring_function, "softmax"), message.max_image_pixels,
        message.max_image_bytes, message.device,
    )


def texts_response(outcomes: Sequence[TextOutcome], space: Space, normalized: bool,
                   audience: Audience = "client") -> pb.EmbedTextsResponse:
    return pb.EmbedTextsResponse(results=[text_to_message(o, space, normalized, audience) for o in outcomes])


def images_response(outcomes: Sequence[ImageOutcome], space: Space, normalized: bool,
                    audience: Audience = "client") -> pb.EmbedImagesResponse:
    return pb.EmbedImagesResponse(
        results=[image_to_message(o, space, normalized, audience) for o in outcomes])
