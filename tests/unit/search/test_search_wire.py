"""The search service's messages carry every option and result field both ways, unchanged."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from sensorium.index.query import Answer, SearchRequest
from sensorium.index.search import FileResult, Hit, Place
from sensorium.search import wire
from sensorium.settings import DEFAULT_SERVICES, Settings


def test_a_request_with_every_option_comes_through():
    request = SearchRequest(
        query='"red circle" harvest', mode="text", k=7, offset=3, kinds=("pdf_text", "audio"),
        path_glob="*.pdf", modified_after=datetime(2026, 3, 1, 14, 0, tzinfo=UTC),
        modified_before=datetime(2026, 4, 1, tzinfo=UTC), min_score=0.25, chunks=True,
    )
    assert wire.request_from_message(wire.request_to_message(request)) == (request, None)
    plain = SearchRequest(query="a red circle")
    assert wire.request_from_message(wire.request_to_message(plain)) == (plain, None)


def test_an_image_request_defaults_to_vector_and_k_10():
    message = wire.request_to_message(SearchRequest(mode="vector"), image=b"\x89PNG")
    message.ClearField("mode")
    message.k = 0
    request, image = wire.request_from_message(message)
    assert (request.mode, request.k, request.query, image) == ("vector", 10, "", b"\x89PNG")


def test_a_naive_time_is_local_time_sent_as_utc():
    naive = datetime(2026, 3, 1, 14, 0)
    message = wire.request_to_message(SearchRequest(query="x", modified_after=naive))
    back, _ = wire.request_from_message(message)
    assert back.modified_after == naive.astimezone(UTC)


def test_results_and_chunks_come_through():
    result = FileResult("/a/b.pdf", "pdf_text", 0.03125, (Place("pdf_text", 0.03125, page=2),
                        Place("audio", 0.01, start_seconds=1.5, end_seconds=9.25),
                        Place("document", 0.005, section="Budget", cells="A1:C4")),
                        ("/c/b.pdf",), "the **harvest** moon", ((4, 11), (12, 16)), unit="u1",
                        title="Harvest", author="Ana")
    hit = Hit(score=0.5, unit="u2", ordinal=4, content_sha256="ab" * 32, path="/x.pdf", kind="pdf_image",
              page=3, bbox={"x0": 1.5, "y0": 2.0, "x1": 100.25, "y1": 50.0}, start_seconds=None,
              end_seconds=None, text="a red circle", space="s1", passage=2, section="Intro",
              cells=None, title="T", author=None, taken_at=None,
              mtime=datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC))
    answer = Answer(results=[result], hits=[hit], lag="the store lags")
    back = wire.answer_from_message(wire.answer_to_message(answer, "red"))
    assert back.results == [FileResult(*[getattr(result, f) for f in ("path", "kind", "score", "places",
                                         "files", "snippet", "highlights")], title="Harvest",
                                       author="Ana")]  # unit stays server-side
    assert back.results[0].to_json() == result.to_json()
    assert back.hits == [hit]
    assert back.lag == "the store lags"
    assert back.items("red")[0] == {**hit.to_json(), "snippet": hit.snippet("red")}
    assert wire.answer_to_message(answer, "red").chunks[0].snippet == hit.snippet("red")


def test_an_index_folder_adds_the_search_service(monkeypatch, tmp_path):
    monkeypatch.setenv("SENSORIUM_SEARCH__INDEX_DIR", str(tmp_path))
    assert Settings().services == [*DEFAULT_SERVICES, "search"]
    monkeypatch.setenv("SENSORIUM_SERVICES", "search")
    assert Settings().services == ["search"]
    monkeypatch.setenv("SENSORIUM_SERVICES", "pdf")
    assert Settings().services == ["pdf"]
    monkeypatch.delenv("SENSORIUM_SEARCH__INDEX_DIR")
    monkeypatch.setenv("SENSORIUM_SERVICES", "search")
    with pytest.raises(ValidationError, match="SENSORIUM_SEARCH__INDEX_DIR"):
        Settings()


def test_a_time_no_datetime_holds_is_a_bad_request():
    from sensorium.errors import Reason, SensoriumError
    from sensorium.search.v1 import search_service_pb2 as pb

    message = pb.SearchRequest(text="x")
    message.modified_after.seconds = 2**62
    with pytest.raises(SensoriumError) as refused:
        wire.request_from_message(message)
    assert refused.value.reason == Reason.INVALID_REQUEST
    assert "modified_after" in refused.value.message
