"""The search service on the wire: `sensorium.search.v1` to and from the query path's types
(`SearchRequest`, `Answer` with `FileResult`s or `Hit`s), in one place for the servicer and
`search.remote`. tests/unit/search/test_wire.py holds the two directions together.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from google.protobuf import timestamp_pb2

from sensorium.errors import Reason, SensoriumError
from sensorium.index.query import Answer, Mode, SearchRequest
from sensorium.index.search import FileResult, Hit, Place
from sensorium.search.v1 import search_service_pb2 as pb
from sensorium.type.v1 import geometry_pb2

_MODES: dict[Mode, pb.SearchMode] = {"hybrid": pb.SEARCH_MODE_HYBRID, "vector": pb.SEARCH_MODE_VECTOR,
                                     "text": pb.SEARCH_MODE_TEXT}
DEFAULT_K = 10


def request_to_message(request: SearchRequest, image: bytes | None = None) -> pb.SearchRequest:
    message = pb.SearchRequest(
        k=request.k, offset=request.offset, mode=_MODES[request.mode], kinds=request.kinds or (),
        path_glob=request.path_glob or "", chunks=request.chunks,
    )
    if image is not None:
        message.image = image
    else:
        message.text = request.query
    if request.min_score is not None:
        message.min_score = request.min_score
    for name in ("modified_after", "modified_before"):
        moment: datetime | None = getattr(request, name)
        if moment is not None:
            getattr(message, name).CopyFrom(_stamp(moment))
    return message


def request_from_message(message: pb.SearchRequest) -> tuple[SearchRequest, bytes | None]:
    """The request and the image (None for a text query). An unspecified mode is the CLI's
    default: hybrid for a text, vector for an image; k 0 is 10."""
    image = message.image if message.WhichOneof("query") == "image" else None
    default: Mode = "vector" if image is not None else "hybrid"
    mode = next((name for name, value in _MODES.items() if value == message.mode), default)
    request = SearchRequest(
        query="" if image is not None else message.text, mode=mode, k=message.k or DEFAULT_K,
        offset=message.offset, kinds=tuple(message.kinds) or None, path_glob=message.path_glob or None,
        modified_after=_time(message, "modified_after"), modified_before=_time(message, "modified_before"),
        min_score=message.min_score if message.HasField("min_score") else None, chunks=message.chunks,
    )
    return request, image


def answer_to_message(answer: Answer, query: str) -> pb.SearchResponse:
    return pb.SearchResponse(
        results=[_result_to_message(result) for result in answer.results],
        chunks=[_hit_to_message(hit, query) for hit in answer.hits], lag=answer.lag,
    )


def answer_from_message(message: pb.SearchResponse) -> Answer:
    return Answer(results=[_result_from_message(r) for r in message.results],
                  hits=[_hit_from_message(c) for c in message.chunks], lag=message.lag)


def _result_to_message(result: FileResult) -> pb.FileResult:
    return pb.FileResult(
        path=result.path, kind=result.kind, score=result.score,
        places=[pb.Place(kind=p.kind, score=p.score, page=p.page, start_seconds=p.start_seconds,
                         end_seconds=p.end_seconds, section=p.section, cells=p.cells) for p in result.places],
        files=result.files, snippet=result.snippet,
        highlights=[pb.Highlight(start=start, end=end) for start, end in result.highlights],
        title=result.title, author=result.author,
    )


def _result_from_message(message: pb.FileResult) -> FileResult:
    places = tuple(
        Place(p.kind, p.score, _opt(p, "page"), _opt(p, "start_seconds"), _opt(p, "end_seconds"),
              _opt(p, "section"), _opt(p, "cells"))
        for p in message.places
    )
    return FileResult(message.path, message.kind, message.score, places, tuple(message.files),
                      message.snippet, tuple((h.start, h.end) for h in message.highlights),
                      title=_opt(message, "title"), author=_opt(message, "author"))


def _hit_to_message(hit: Hit, query: str) -> pb.Chunk:
    message = pb.Chunk(
        score=hit.score, unit=hit.unit, ordinal=hit.ordinal, content_sha256=hit.content_sha256,
        path=hit.path, kind=hit.kind, page=hit.page, start_seconds=hit.start_seconds,
        end_seconds=hit.end_seconds, text=hit.text, space=hit.space, passage=hit.passage,
        section=hit.section, cells=hit.cells, title=hit.title, author=hit.author,
        snippet=hit.snippet(query),
    )
    if hit.bbox is not None:
        message.bbox.CopyFrom(geometry_pb2.BoundingBox(**hit.bbox))
    for name in ("taken_at", "mtime"):
        moment: datetime | None = getattr(hit, name)
        if moment is not None:
            getattr(message, name).CopyFrom(_stamp(moment))
    return message


def _hit_from_message(message: pb.Chunk) -> Hit:
    bbox = None
    if message.HasField("bbox"):
        box = message.bbox
        bbox = {"x0": box.x0, "y0": box.y0, "x1": box.x1, "y1": box.y1}
    return Hit(
        score=message.score, unit=message.unit, ordinal=message.ordinal,
        content_sha256=message.content_sha256, path=message.path, kind=message.kind,
        page=_opt(message, "page"), bbox=bbox, start_seconds=_opt(message, "start_seconds"),
        end_seconds=_opt(message, "end_seconds"), text=_opt(message, "text"), space=message.space,
        passage=_opt(message, "passage"), section=_opt(message, "section"), cells=_opt(message, "cells"),
        title=_opt(message, "title"), author=_opt(message, "author"),
        taken_at=_time(message, "taken_at"), mtime=_time(message, "mtime"),
    )


def _opt(message: Any, name: str) -> Any:
    return getattr(message, name) if message.HasField(name) else None


def _stamp(moment: datetime) -> timestamp_pb2.Timestamp:
    if moment.tzinfo is None:
        moment = moment.astimezone()  # a naive time is the sender's local time, as in the CLI
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(moment.astimezone(UTC))
    return stamp


def _time(message: Any, name: str) -> datetime | None:
    if not message.HasField(name):
        return None
    stamp: timestamp_pb2.Timestamp = getattr(message, name)
    try:
        return stamp.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError):
        raise SensoriumError(Reason.INVALID_REQUEST, f"{name} is not a time between the years 1 and "
                             f"9999 (seconds {stamp.seconds}, nanos {stamp.nanos})") from None
