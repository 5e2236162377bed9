"""The transcription service. Its engine (faster-whisper) is not in this build yet: see issue
"Transcription service"; until then every call answers UNIMPLEMENTED with that message."""

from __future__ import annotations

from sensorium.hosting import HostedService, UnbuiltService
from sensorium.settings import Settings
from sensorium.transcription.v1 import transcription_service_pb2_grpc as pb_grpc
from sensorium.uploads import ByteBudget


class TranscriptionService(UnbuiltService):
    name = "transcription"
    full_name = "sensorium.transcription.v1.TranscriptionService"
    add_to_server = pb_grpc.add_TranscriptionServiceServicer_to_server
    servicer = pb_grpc.TranscriptionServiceServicer


def create(settings: Settings, budget: ByteBudget) -> HostedService:
    return TranscriptionService()
