"""A query as the index's model sees it: text or an image, embedded by the model the index was
built with (checked: vectors of two models must never be compared)."""

from __future__ import annotations

from sensorium.embedding.api import EmbeddingEngine, Vector
from sensorium.errors import Reason, SensoriumError
from sensorium.index.layout import Manifest, check_space


async def embed_query(engine: EmbeddingEngine, manifest: Manifest, *, text: str = "",
                      image: bytes | None = None) -> Vector:
    """`text` (or `image`) embedded by `engine`'s model as a float32 vector, once the model is
    checked to be the index's (`IndexMismatchError` otherwise). `sensorium search` calls it;
    bench/search.py times it with one engine kept open."""
    check_space(manifest, (await engine.describe()).space)
    if image is not None:
        (outcome,) = await engine.embed_images([image])
    else:
        (outcome,) = await engine.embed_texts([text])  # type: ignore[assignment]
    if outcome.error is not None or outcome.vector is None:
        error = outcome.error or SensoriumError(Reason.INTERNAL_ERROR, "no vector came back")
        raise SensoriumError(error.reason, f"the query cannot be embedded: {error.message}",
                             error.metadata, setting=error.setting)
    return outcome.vector
