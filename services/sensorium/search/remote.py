"""The search service over gRPC: `SearchEngine` of the one seam on a `Client`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sensorium.remote import remote_errors
from sensorium.search import wire
from sensorium.search.api import Answer, SearchEngine, SearchRequest
from sensorium.search.v1 import search_service_pb2 as pb

if TYPE_CHECKING:
    from sensorium.client import Client

SERVICE = "/sensorium.search.v1.SearchService/"


class RemoteSearch:
    """The search service of the server `client` talks to, as a `SearchEngine`."""

    def __init__(self, client: Client) -> None:
        self.client = client

    async def search(self, request: SearchRequest, image: bytes | None = None) -> Answer:
        async with remote_errors(self.client.target):
            response = await self.client.call(
                SERVICE + "Search", wire.request_to_message(request, image), pb.SearchResponse)
        return wire.answer_from_message(response)


if TYPE_CHECKING:
    _ENGINE: type[SearchEngine] = RemoteSearch  # mypy: RemoteSearch is a SearchEngine
