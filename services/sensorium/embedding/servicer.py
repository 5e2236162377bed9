"""The embedding service. Its engine (open_clip) is not in this build yet: see issue
"Embedding service"; until then every call answers UNIMPLEMENTED with that message."""

from __future__ import annotations

from sensorium.embedding.v1 import embedding_service_pb2_grpc as pb_grpc
from sensorium.hosting import HostedService, UnbuiltService
from sensorium.settings import Settings
from sensorium.uploads import ByteBudget


class EmbeddingService(UnbuiltService):
    name = "embedding"
    full_name = "sensorium.embedding.v1.EmbeddingService"
    add_to_server = pb_grpc.add_EmbeddingServiceServicer_to_server
    servicer = pb_grpc.EmbeddingServiceServicer


def create(settings: Settings, budget: ByteBudget) -> HostedService:
    return EmbeddingService()
