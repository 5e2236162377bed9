"""The PDF service on a real in-process server: both shapes, every error path, isolation."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import grpc
import numpy as np
import pymupdf
import pytest
from prometheus_client import REGISTRY

import testkit
from sensorium.client import Client, ClientError
from sensorium.pdf.remote import PdfClient
from sensorium.pdf.v1 import pdf_service_pb2 as pb
from sensorium.pdf.v1 import pdf_service_pb2_grpc as pdf_grpc
from sensorium.type.v1 import errors_pb2


@pytest.fixture
async def pdf_client(start_server):
    """A client of a server hosting the PDF service with fault hooks and small limits."""

    async def connect(**pdf: object) -> Client:
        settings = {"workers": 2, "timeout_seconds": 20, **pdf}
        server = await start_server(services=["pdf"], pdf=settings,
                                    factories={"pdf": testkit.pdf_runtime_with_faults})
        return Client(f"127.0.0.1:{server.port}")

    return connect


async def _stream(client: Client, content: bytes, tmp_path: Path, **options: object):
    path = tmp_path / "upload.pdf"
    path.write_bytes(content)
    return [m async for m in PdfClient(client).stream_extract_document(path, pb.ExtractOptions(**options))]


def _reason(error: pytest.ExceptionInfo[ClientError]) -> tuple[str, str]:
    return error.value.details.code.name, error.value.details.reason


async def test_unary_returns_pages_in_order_with_metadata(pdf_client):
    client = await pdf_client()
    content = testkit.make_pdf(["alpha page", "beta page", "gamma page"], title="Greek")
    response = await PdfClient(client).extract_document(content, pb.ExtractOptions(include_blocks=True))
    assert [p.page_number for p in response.pages] == [1, 2, 3]
    assert [p.text.strip() for p in response.pages] == ["alpha page", "beta page", "gamma page"]
    assert response.metadata.title == "Greek"
    assert response.metadata.page_count == 3
    assert response.metadata.pdf_version.startswith("1.")
    assert not response.metadata.encrypted and not response.metadata.repaired
    assert response.pages[0].blocks[0].text.strip() == "alpha page"
    assert response.pages[0].blocks[0].bbox.x1 > response.pages[0].blocks[0].bbox.x0
    assert response.summary.pages_extracted == 3


async def test_page_range_and_out_of_range(pdf_client):
    client = await pdf_client()
    content = testkit.make_pdf([f"page {i}" for i in range(1, 6)])
    response = await PdfClient(client).extract_document(content, pb.ExtractOptions(first_page=2, last_page=3))
    assert [p.text.strip() for p in response.pages] == ["page 2", "page 3"]
    with pytest.raises(ClientError) as error:
        await PdfClient(client).extract_document(content, pb.ExtractOptions(first_page=9))
    assert _reason(error) == ("OUT_OF_RANGE", "PAGE_OUT_OF_RANGE")
    assert "5 pages" in error.value.details.message


async def test_stream_sends_metadata_pages_images_then_summary(pdf_client, tmp_path):
    client = await pdf_client()
    content = testkit.make_pdf(["with an image", "second"], image_pixels=64)
    messages = await _stream(client, content, tmp_path, include_images=True)
    kinds = [m.WhichOneof("result") for m in messages]
    assert kinds == ["metadata", "page", "image", "page", "summary"]
    image = messages[2].image
    assert (image.page_number, image.width, image.height) == (1, 64, 64)
    assert image.format in {"png", "jpeg"} and image.data
    assert image.bbox.x1 - image.bbox.x0 == pytest.approx(200, abs=1)
    assert messages[-1].summary.images_extracted == 1


def _pages(messages: list[pb.StreamExtractDocumentResponse]) -> list[pb.Page]:
    """The pages of a stream, whether sent one per message or in batches."""
    pages: list[pb.Page] = []
    for message in messages:
        kind = message.WhichOneof("result")
        pages.extend([message.page] if kind == "page" else message.pages.pages if kind == "pages" else [])
    return pages


async def test_batched_stream_sends_the_same_pages_in_fewer_messages(pdf_client, tmp_path):
    client = await pdf_client()
    content = testkit.make_pdf([f"page {i} " + "text " * 200 for i in range(1, 101)])
    single = await _stream(client, content, tmp_path)
    batched = await _stream(client, content, tmp_path, max_pages_per_message=32)
    assert [m.WhichOneof("result") for m in single].count("page") == 100
    kinds = [m.WhichOneof("result") for m in batched]
    assert kinds[0] == "metadata" and kinds[-1] == "summary" and set(kinds[1:-1]) == {"pages"}
    sizes = [len(m.pages.pages) for m in batched[1:-1]]
    assert sizes[0] <= 4, "the first pages are sent as soon as they are extracted"
    assert max(sizes) <= 32 and len(sizes) <= 10, sizes
    assert _pages(batched) == _pages(single)
    assert [p.page_number for p in _pages(batched)] == list(range(1, 101))
    assert batched[-1].summary.pages_extracted == 100


async def test_batched_stream_sends_images_after_their_batch(pdf_client, tmp_path):
    client = await pdf_client()
    content = testkit.make_pdf(["with an image", "second"], image_pixels=64)
    messages = await _stream(client, content, tmp_path, include_images=True, max_pages_per_message=8)
    assert [m.WhichOneof("result") for m in messages] == ["metadata", "pages", "image", "summary"]
    assert [p.image_count for p in messages[1].pages.pages] == [1, 0]
    assert messages[2].image.page_number == 1 and messages[2].image.data


async def test_a_unary_request_over_the_message_limit_gets_grpcs_own_refusal(start_server, tmp_path):
    """gRPC refuses a message over SENSORIUM_MAX_RECEIVE_MESSAGE_BYTES before any handler runs:
    RESOURCE_EXHAUSTED with no ErrorInfo and no RetryInfo (docs/errors.md tells clients to use
    the stream, not to back off). The streaming call takes the same document in chunks."""
    limit = 2 * 1024 * 1024  # above the client's 1 MiB stream chunks
    server = await start_server(services=["pdf"], max_receive_message_bytes=limit, pdf={"workers": 1})
    doc = pymupdf.open()
    doc.new_page().insert_text((72, 72), "A page with a noisy picture")
    noise = np.random.default_rng(0).integers(0, 256, (1000, 1000, 3), dtype=np.uint8).tobytes()
    doc[0].insert_image(pymupdf.Rect(72, 100, 500, 528),
                        pixmap=pymupdf.Pixmap(pymupdf.csRGB, 1000, 1000, noise, False))
    content = doc.tobytes(deflate=True)  # noise does not compress: ~3 MB
    assert len(content) > limit
    async with Client(f"127.0.0.1:{server.port}") as client:
        with pytest.raises(ClientError) as error:
            await PdfClient(client).extract_document(content)
        details = error.value.details
        assert details.code.name == "RESOURCE_EXHAUSTED"
        assert (details.reason, details.metadata, details.retry_after_seconds) == ("", {}, None)
        assert "Received message larger than max" in details.message and f"vs. {limit})" in details.message
        streamed = await _stream(client, content, tmp_path)
        assert [p.text.strip() for p in _pages(streamed)] == ["A page with a noisy picture"]


async def test_images_are_refused_on_the_unary_call(pdf_client):
    client = await pdf_client()
    with pytest.raises(ClientError) as error:
        await PdfClient(client).extract_document(
            testkit.make_pdf(["x"]), pb.ExtractOptions(include_images=True))
    assert _reason(error) == ("INVALID_ARGUMENT", "INVALID_REQUEST")
    assert "StreamExtractDocument" in error.value.details.message


async def test_image_over_the_pixel_cap_is_marked_not_extracted(pdf_client, tmp_path):
    client = await pdf_client(max_pixels=100 * 100)
    messages = await _stream(client, testkit.make_pdf(["big"], image_pixels=200), tmp_path,
                             include_images=True)
    image = next(m.image for m in messages if m.WhichOneof("result") == "image")
    assert image.error.reason == errors_pb2.ERROR_REASON_IMAGE_TOO_LARGE
    assert "SENSORIUM_PDF__MAX_PIXELS" in image.error.message
    assert dict(image.error.metadata) == {"limit_pixels": "10000", "page": "1", "index": "0",
                                          "setting": "SENSORIUM_PDF__MAX_PIXELS"}
    assert not image.data


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "INPUT_EMPTY"),
        (b"just some text, certainly not a PDF\n" * 20, "PDF_UNREADABLE"),
        (b"\x89PNG\r\n\x1a\n" + bytes(500), "PDF_UNREADABLE"),
    ],
)
async def test_bad_input_is_invalid_argument_and_the_server_keeps_serving(pdf_client, content, reason):
    client = await pdf_client()
    with pytest.raises(ClientError) as error:
        await PdfClient(client).extract_document(content)
    assert _reason(error) == ("INVALID_ARGUMENT", reason)
    assert (await PdfClient(client).extract_document(
        testkit.make_pdf(["fine"]))).pages[0].text.strip() == "fine"


async def test_truncated_pdfs_are_repaired_and_flagged_or_refused(pdf_client):
    client = await pdf_client()
    content = testkit.make_pdf([f"page {i}" for i in range(1, 4)])
    # Cut in the trailer: MuPDF rebuilds the xref, and the response says it did.
    repaired = await PdfClient(client).extract_document(content[: len(content) * 9 // 10])
    assert repaired.metadata.repaired
    assert [p.text.strip() for p in repaired.pages] == ["page 1", "page 2", "page 3"]
    # Cut before the page tree: nothing sensible is left.
    with pytest.raises(ClientError) as error:
        await PdfClient(client).extract_document(content[:400])
    assert _reason(error) == ("INVALID_ARGUMENT", "PDF_UNREADABLE")


async def test_garbage_fails_and_a_page_tree_loop_does_not_hang(pdf_client):
    client = await pdf_client()
    with pytest.raises(ClientError) as error:
        await PdfClient(client).extract_document(b"oops\n")
    assert _reason(error) == ("INVALID_ARGUMENT", "PDF_UNREADABLE")
    # MuPDF 1.28 breaks the /Pages loop and finds the one real page.
    looped = await PdfClient(client).extract_document(testkit.make_page_tree_loop_pdf("Potato"))
    assert [p.text.strip() for p in looped.pages] == ["Potato"]


async def test_corpus_garbage_and_page_tree_loop(pdf_client, corpus_dir):
    """The same on qpdf's own test files."""
    client = await pdf_client()
    with pytest.raises(ClientError) as error:
        await PdfClient(client).extract_document((corpus_dir / "pdf" / "qpdf_bad1.pdf").read_bytes())
    assert _reason(error) == ("INVALID_ARGUMENT", "PDF_UNREADABLE")
    looped = await PdfClient(client).extract_document(
        (corpus_dir / "pdf" / "qpdf_pages-loop.pdf").read_bytes())
    assert [p.text.strip() for p in looped.pages] == ["Potato"]


async def test_a_pdf_without_pages_is_a_failure_not_an_empty_success(pdf_client):
    client = await pdf_client()
    catalog = b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n"
    pages = b"2 0 obj\n<< /Type /Pages /Kids [] /Count 0 >>\nendobj\n"
    with pytest.raises(ClientError) as error:
        await PdfClient(client).extract_document(catalog + pages + b"%%EOF\n")
    assert _reason(error) == ("INVALID_ARGUMENT", "PDF_NO_PAGES")


async def _check_passwords(client: Client, content: bytes, user: str, owner: str) -> None:
    with pytest.raises(ClientError) as missing:
        await PdfClient(client).extract_document(content)
    assert _reason(missing) == ("INVALID_ARGUMENT", "PDF_PASSWORD_REQUIRED")
    with pytest.raises(ClientError) as wrong:
        await PdfClient(client).extract_document(content, pb.ExtractOptions(password="nope"))
    assert _reason(wrong) == ("INVALID_ARGUMENT", "PDF_PASSWORD_INCORRECT")
    for password in (user, owner):
        response = await PdfClient(client).extract_document(content, pb.ExtractOptions(password=password))
        assert response.metadata.encrypted
        assert len(response.pages) == response.metadata.page_count > 0


async def test_passwords_required_wrong_and_right(pdf_client):
    client = await pdf_client()
    content = testkit.make_r6_pdf(30, user_password="view", owner_password="master")
    await _check_passwords(client, content, "view", "master")
    response = await PdfClient(client).extract_document(content, pb.ExtractOptions(password="view"))
    assert [p.text.strip() for p in response.pages] == [f"Page {n}" for n in range(1, 31)]


async def test_corpus_passwords_required_wrong_and_right(pdf_client, corpus_dir):
    """The same on qpdf's AES-256 R6 test file."""
    content = (corpus_dir / "pdf" / "qpdf_enc-R6-V5-user-view-owner-master.pdf").read_bytes()
    await _check_passwords(await pdf_client(), content, "view", "master")


async def test_limits_bytes_pages_and_time(pdf_client):
    client = await pdf_client(max_document_bytes=2000, max_pages=3, timeout_seconds=1.5)
    small = testkit.make_pdf(["a"])
    assert len(small) < 2000
    with pytest.raises(ClientError) as too_big:
        await PdfClient(client).extract_document(small + b"%" + bytes(3000))
    assert _reason(too_big) == ("INVALID_ARGUMENT", "INPUT_TOO_LARGE")
    assert "SENSORIUM_PDF__MAX_DOCUMENT_BYTES" in too_big.value.details.message
    with pytest.raises(ClientError) as too_many:
        await PdfClient(client).extract_document(testkit.make_pdf(["1", "2", "3", "4"]))
    assert _reason(too_many) == ("INVALID_ARGUMENT", "PDF_TOO_MANY_PAGES")
    with pytest.raises(ClientError) as too_slow:
        await PdfClient(client).extract_document(testkit.make_pdf(["z"], title="sensorium-test:sleep=30"))
    assert _reason(too_slow) == ("INVALID_ARGUMENT", "PROCESSING_LIMIT")
    assert (await PdfClient(client).extract_document(small)).pages[0].text.strip() == "a"


async def test_stream_must_start_with_a_header(pdf_client):
    client = await pdf_client()

    async def chunk_first():
        yield pb.StreamExtractDocumentRequest(chunk=b"%PDF-1.7")

    with pytest.raises(grpc.RpcError) as error:
        async for _ in pdf_grpc.PdfServiceStub(client.channel).StreamExtractDocument(chunk_first()):
            pass
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "header" in (error.value.details() or "")


async def test_a_crashing_worker_fails_only_its_own_request(pdf_client):
    client = await pdf_client()
    restarts = REGISTRY.get_sample_value("sensorium_worker_restarts_total",
                                         {"service": "pdf", "reason": "crash"}) or 0
    crash = PdfClient(client).extract_document(testkit.make_pdf(["x"], title="sensorium-test:segfault"))
    normal = [PdfClient(client).extract_document(testkit.make_pdf([f"doc {i}"])) for i in range(4)]
    results = await asyncio.gather(crash, *normal, return_exceptions=True)
    assert isinstance(results[0], ClientError)
    assert results[0].details.code == grpc.StatusCode.INTERNAL
    assert results[0].details.reason == "PARSER_CRASH"
    assert [r.pages[0].text.strip() for r in results[1:]] == [f"doc {i}" for i in range(4)]
    assert REGISTRY.get_sample_value("sensorium_worker_restarts_total",
                                     {"service": "pdf", "reason": "crash"}) == restarts + 1
    # The pool healed: both workers serve again.
    again = await asyncio.gather(*(PdfClient(client).extract_document(
        testkit.make_pdf(["ok"])) for _ in range(4)))
    assert all(r.pages[0].text.strip() == "ok" for r in again)


async def test_a_hanging_worker_is_killed_and_others_proceed(pdf_client):
    client = await pdf_client(timeout_seconds=2)
    hang = PdfClient(client).extract_document(testkit.make_pdf(["x"], title="sensorium-test:sleep=60"))
    started = time.monotonic()
    normal = [PdfClient(client).extract_document(testkit.make_pdf([f"doc {i}"])) for i in range(3)]
    results = await asyncio.gather(hang, *normal, return_exceptions=True)
    assert isinstance(results[0], ClientError)
    assert results[0].details.reason == "PROCESSING_LIMIT"
    assert time.monotonic() - started < 30  # killed at its limit, not after 60 s
    assert [r.pages[0].text.strip() for r in results[1:]] == ["doc 0", "doc 1", "doc 2"]


@pytest.mark.parametrize("per_message", [0, 32])
async def test_first_page_streams_long_before_the_last(pdf_client, tmp_path, per_message):
    client = await pdf_client()
    filler = "Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 80  # ~4.6 kB a page
    content = testkit.make_pdf([f"page {i} {filler}" for i in range(1, 1001)])
    path = tmp_path / "long.pdf"
    path.write_bytes(content)
    started = time.perf_counter()
    first_page = None
    pages = 0
    options = pb.ExtractOptions(max_pages_per_message=per_message)
    async for message in PdfClient(client).stream_extract_document(path, options):
        received = _pages([message])
        if received and first_page is None:
            first_page = time.perf_counter() - started
            assert received[0].page_number == 1
        pages += len(received)
    total = time.perf_counter() - started
    assert pages == 1000
    assert first_page is not None and first_page <= 0.1 * total, (first_page, total)
    if per_message:
        return
    # The same text does not fit one unary response under clients' 4 MiB limit: say so.
    with pytest.raises(ClientError) as error:
        await PdfClient(client).extract_document(content)
    assert "StreamExtractDocument" in error.value.details.message


async def test_scanned_pages_are_flagged_and_ocrd_through_the_service(pdf_client):
    client = await pdf_client()
    content = testkit.make_scanned_pdf("Hello OCR World")
    page = (await PdfClient(client).extract_document(content)).pages[0]
    assert not page.has_text_layer
    assert page.ocr_status == pb.OCR_STATUS_APPLIED
    assert "Hello OCR World" in page.text
    skipped = (await PdfClient(client).extract_document(
        content, pb.ExtractOptions(ocr_mode=pb.OCR_MODE_NEVER))).pages[0]
    assert (skipped.ocr_status, skipped.text) == (pb.OCR_STATUS_SKIPPED, "")


async def test_ocr_switched_off_on_the_server_says_how_to_turn_it_on(pdf_client):
    client = await pdf_client(ocr=False)
    response = await PdfClient(client).extract_document(testkit.make_scanned_pdf("Hello OCR World"))
    page = response.pages[0]
    assert page.ocr_status == pb.OCR_STATUS_UNAVAILABLE
    assert "SENSORIUM_PDF__OCR" in page.ocr_message
    assert response.summary.pages_without_text == 1


async def test_uploads_refused_mid_stream_report_the_servers_status(start_server, tmp_path):
    """grpc.aio's client reports "INTERNAL: Internal error from Core" when a server refuses an
    upload it is still sending (grpc/grpc#36066); the shipped client must not."""
    big = tmp_path / "big.pdf"
    big.write_bytes(testkit.make_pdf(["x"]) + b"%" + bytes(6 * 1024 * 1024))
    limited = await start_server(services=["pdf"], pdf={"workers": 1, "max_document_bytes": 100_000})
    budget = await start_server(services=["pdf"], pdf={"workers": 1},
                                max_upload_bytes_in_flight=2 * 1024 * 1024)
    for server, expected in ((limited, ("INVALID_ARGUMENT", "INPUT_TOO_LARGE")),
                             (budget, ("RESOURCE_EXHAUSTED", "OVERLOADED"))):
        async with Client(f"127.0.0.1:{server.port}") as client:
            with pytest.raises(ClientError) as error:
                async for _ in PdfClient(client).stream_extract_document(big):
                    pass
            assert _reason(error) == expected
            if expected[1] == "OVERLOADED":
                assert error.value.details.retry_after_seconds


async def test_text_past_the_character_limits_is_cut_and_said_so(start_server, tmp_path):
    """Issue 22: a page's text stops at SENSORIUM_TEXT__MAX_CHARS_PER_PAGE, a document's at
    ..._PER_DOCUMENT (the page that crosses it is cut, later pages are not read), both shapes."""
    server = await start_server(services=["pdf"], pdf={"workers": 2},
                                text={"max_chars_per_page": 300, "max_chars_per_document": 700})
    pages = [f"page {n} " + "words of the page " * 25 for n in range(1, 9)]  # ~460 characters each
    content = testkit.make_pdf(pages)
    async with Client(f"127.0.0.1:{server.port}") as client:
        response = await PdfClient(client).extract_document(content, pb.ExtractOptions(include_blocks=True))
        streamed = await _stream(client, content, tmp_path, include_blocks=True)
    got = [p for p in response.pages]
    assert [p.page_number for p in got] == [1, 2, 3]  # 300 + 300 + 100: pages 4-8 are not read
    assert [len(p.text) for p in got] == [300, 300, 100]
    assert [p.limit.reason for p in got] == [errors_pb2.ERROR_REASON_PROCESSING_LIMIT] * 3
    assert "SENSORIUM_TEXT__MAX_CHARS_PER_PAGE" in got[0].limit.message
    assert "SENSORIUM_TEXT__MAX_CHARS_PER_DOCUMENT" in got[2].limit.message
    assert got[0].limit.metadata["limit_chars"] == "300" and got[2].limit.metadata["limit_chars"] == "700"
    assert response.summary.pages_extracted == 3 and response.summary.pages_truncated == 3
    streamed_pages = [p for m in streamed if m.HasField("page") for p in [m.page]]
    streamed_pages += [p for m in streamed if m.HasField("pages") for p in m.pages.pages]
    assert [(p.page_number, p.text) for p in streamed_pages] == [(p.page_number, p.text) for p in got]
    (summary,) = [m.summary for m in streamed if m.HasField("summary")]
    assert summary.pages_truncated == 3
