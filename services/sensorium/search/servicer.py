"""The search service's gRPC face: `search.wire` between the messages and the `SearchRuntime`."""

from __future__ import annotations

import grpc

from sensorium.rpc import ensure_unary_fits
from sensorium.search import wire
from sensorium.search.runtime import SearchRuntime
from sensorium.search.v1 import search_service_pb2 as pb
from sensorium.search.v1 import search_service_pb2_grpc as pb_grpc

Context = grpc.aio.ServicerContext[object, object]


def add_to_server(server: grpc.aio.Server, runtime: SearchRuntime) -> None:
    pb_grpc.add_SearchServiceServicer_to_server(_Servicer(runtime), server)


class _Servicer(pb_grpc.SearchServiceServicer):
    def __init__(self, runtime: SearchRuntime) -> None:
        self.runtime = runtime

    async def Search(self, request: pb.SearchRequest, context: Context) -> pb.SearchResponse:
        search, image = wire.request_from_message(request)
        answer = await self.runtime.search(search, image)
        response = wire.answer_to_message(answer, search.query)
        ensure_unary_fits(response, "search results", "a smaller k (and offset for the next page)")
        return response
