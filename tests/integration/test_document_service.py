"""The document service on a real in-process server: both shapes, locators and metadata,
pictures and attachments on the stream, hostile files, limits named by their settings, the
remote engine answering as the runtime does, and a token scoped to `document`."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import grpc
import pytest

import docmaker
import testkit
from sensorium.client import Client, ClientError
from sensorium.document import wire
from sensorium.document.api import Document, ParseOptions
from sensorium.document.remote import DocumentClient, RemoteDocument
from sensorium.document.runtime import DocumentRuntime
from sensorium.document.v1 import document_service_pb2 as pb
from sensorium.runtimes import Runtimes
from sensorium.type.v1 import errors_pb2

SERVICE = "sensorium.document.v1.DocumentService"
TOKEN = "4d6e8f0a1b3c5d7e9f1c2e7d4b6a8c0e1f3a5b7c9d2e4f6a8b0c1d3e5f7a9b2c"
PDF_TOKEN = "0a2b4c6d8e1f3a5b7c9d0e2f4a6b8c1d3e5f7a9b0c2d4e6f8a1b3c5d7e9f0a2b"


def _document_settings(**overrides: object) -> dict[str, object]:
    return {"workers": 2, "timeout_seconds": 60, "soffice_timeout_seconds": 50, **overrides}


@pytest.fixture
async def document_client(start_server):
    """A client of a server hosting only the document service; `connect(**document)` sets
    its settings group, `text=...` the text limits."""
    clients: list[Client] = []

    async def connect(text: dict[str, object] | None = None, **document: object) -> Client:
        server = await start_server(services=["document"], document=_document_settings(**document),
                                    text=text or {})
        client = Client(f"127.0.0.1:{server.port}")
        clients.append(client)
        return client

    yield connect
    for client in clients:
        await client.__aexit__(None, None, None)


async def _stream(client: Client, path: Path, **options: object) -> list[pb.StreamParseDocumentResponse]:
    return [m async for m in DocumentClient(client).stream_parse_document(path, pb.ParseOptions(**options))]


def _reason(error: pytest.ExceptionInfo[ClientError]) -> tuple[str, str]:
    return error.value.details.code.name, error.value.details.reason


def _where(response: pb.ParseDocumentResponse, phrase: str) -> str:
    return next(s.locator.description for s in response.sections if phrase in s.text)


async def test_unary_returns_the_text_with_locators_and_metadata(document_client, generated):
    client = await document_client()
    folder, expected = generated
    calls = DocumentClient(client)
    for name in ("report.docx", "slides.pptx", "budget.xlsx", "talk.vtt"):
        response = await calls.parse_document((folder / name).read_bytes(), name)
        want = expected[name]
        assert wire.format_from_message(response.metadata.format).value == want.kind, name
        assert (response.metadata.title, response.metadata.author) == (want.title, want.author), name
        for phrase, where in want.locators.items():
            assert where in _where(response, phrase), (name, phrase)
        assert response.summary.sections == len(response.sections) > 0
    slides = await calls.parse_document((folder / "slides.pptx").read_bytes(), "slides.pptx")
    assert slides.metadata.page_count == 4
    osprey = next(s for s in slides.sections if "Osprey" in s.text)
    assert (osprey.locator.page, osprey.locator.title) == (3, "Cargo volumes")
    assert osprey.kind == pb.SECTION_KIND_TABLE and "Ship: Osprey | Tonnage: 860" in osprey.text


async def test_the_filename_tells_markdown_from_text(document_client, generated):
    calls = DocumentClient(await document_client())
    content = (generated[0] / "report.md").read_bytes()
    markdown = await calls.parse_document(content, "notes/report.md")
    plain = await calls.parse_document(content)
    assert markdown.metadata.format == pb.DOCUMENT_FORMAT_MARKDOWN
    assert plain.metadata.format == pb.DOCUMENT_FORMAT_TEXT
    assert "Introduction > Tides and currents" in _where(markdown, "Spring tides flooded")


async def test_the_stream_carries_pictures_and_attachments(document_client, generated, tmp_path):
    client = await document_client()
    folder = generated[0]
    messages = await _stream(client, folder / "report.docx", include_pictures=True)
    kinds = [m.WhichOneof("result") for m in messages]
    assert kinds[0] == "metadata" and kinds[-1] == "summary" and "picture" in kinds
    assert kinds.index("picture") > max(i for i, k in enumerate(kinds) if k == "sections")
    picture = next(m.picture for m in messages if m.WhichOneof("result") == "picture")
    assert (picture.format, picture.width, picture.height) == ("png", 64, 64) and picture.data
    assert picture.locator.headings == ["Introduction", "Tides and currents"]

    # An attachment larger than one part comes back whole.
    big = bytes(range(256)) * 10_000  # 2.4 MiB: three parts
    mail = tmp_path / "big.eml"
    mail.write_bytes(docmaker.mail_message("Big", "See attached.", [
        ("big.bin", "application/octet-stream", big)]).as_bytes())
    messages = await _stream(client, mail, include_attachments=True)
    parts = [m.attachment for m in messages if m.WhichOneof("result") == "attachment"]
    assert len(parts) == -(-len(big) // wire.ATTACHMENT_PART_BYTES) > 1
    assert (parts[0].name, parts[0].path, parts[0].size_bytes) == ("big.bin", "big.eml!/big.bin", len(big))
    assembler = wire.AttachmentAssembler()
    for part in parts:
        assembler.add(part)
    (attachment,) = assembler.finish()
    assert attachment.data == big
    assert messages[-1].summary.attachments == 1


async def test_pictures_and_attachments_are_refused_on_the_unary_call(document_client, generated):
    calls = DocumentClient(await document_client())
    with pytest.raises(ClientError) as error:
        await calls.parse_document((generated[0] / "report.docx").read_bytes(), "report.docx",
                                   pb.ParseOptions(include_pictures=True))
    assert _reason(error) == ("INVALID_ARGUMENT", "INVALID_REQUEST")
    assert "StreamParseDocument" in error.value.details.message


async def test_hostile_files_give_their_reason_and_the_service_keeps_serving(document_client, hostile):
    client = await document_client()
    calls = DocumentClient(client)
    folder, expected = hostile
    for name, reason in expected.items():
        content = (folder / name).read_bytes()
        if reason:
            with pytest.raises(ClientError) as error:
                await calls.parse_document(content, name)
            assert _reason(error) == ("INVALID_ARGUMENT", reason), name
        else:
            response = await calls.parse_document(content, name)
            assert 0 < response.summary.characters < 20_000, name
        assert await client.health(SERVICE) == "SERVING"
    assert (await calls.parse_document(b"fine words\n", "fine.txt")).sections[0].text == "fine words"

    # The nested mail: its attached mail comes whole; read as an attachment, it passes nothing on.
    messages = await _stream(client, folder / "nested.eml", include_attachments=True)
    (middle,) = [m.attachment for m in messages if m.WhichOneof("result") == "attachment"]
    assert middle.path == "nested.eml!/Middle mail.eml" and not middle.HasField("error")
    inner = folder.parent / "middle.eml"
    inner.write_bytes(middle.data)
    messages = await _stream(client, inner, include_attachments=True, attached=True)
    (deep,) = [m.attachment for m in messages if m.WhichOneof("result") == "attachment"]
    assert deep.error.reason == errors_pb2.ERROR_REASON_PROCESSING_LIMIT and not deep.data
    assert "one level deep" in deep.error.message


async def test_limits_are_worded_with_their_settings(document_client, generated, tmp_path):
    client = await document_client(text={"max_chars_per_page": 30}, max_document_bytes=50_000)
    calls = DocumentClient(client)
    response = await calls.parse_document((generated[0] / "report.md").read_bytes(), "report.md")
    cut = next(s for s in response.sections if s.HasField("error"))
    assert len(cut.text) <= 30 and cut.error.reason == errors_pb2.ERROR_REASON_PROCESSING_LIMIT
    assert "SENSORIUM_TEXT__MAX_CHARS_PER_PAGE" in cut.error.message
    assert cut.error.metadata["setting"] == "SENSORIUM_TEXT__MAX_CHARS_PER_PAGE"
    with pytest.raises(ClientError) as error:
        await calls.parse_document(b"x" * 60_000, "big.txt")
    assert _reason(error) == ("INVALID_ARGUMENT", "INPUT_TOO_LARGE")
    assert "SENSORIUM_DOCUMENT__MAX_DOCUMENT_BYTES" in error.value.details.message


async def test_legacy_office_without_libreoffice_says_what_to_install(document_client, generated):
    calls = DocumentClient(await document_client(soffice="/nonexistent/soffice"))
    with pytest.raises(ClientError) as error:
        await calls.parse_document((generated[0] / "report.doc").read_bytes(), "report.doc")
    assert _reason(error) == ("INVALID_ARGUMENT", "UNSUPPORTED_TYPE")
    message = error.value.details.message
    assert "apt-get install libreoffice-writer-nogui" in message and "SENSORIUM_DOCUMENT__SOFFICE" in message


def _comparable(document: Document) -> Document:
    """Errors as they travel: the server words the setting into the message."""
    def item(x):  # a Section, Picture or Attachment
        return dataclasses.replace(x, error=None if x.error is None else (x.error.reason, x.error.message))

    return dataclasses.replace(
        document, sections=tuple(map(item, document.sections)), pictures=tuple(map(item, document.pictures)),
        attachments=tuple(map(item, document.attachments)),
        errors=tuple((e.reason, e.message) for e in document.errors))


async def test_the_remote_engine_answers_as_the_runtime(start_server, generated):
    folder = generated[0]
    settings = testkit.test_settings(services=["document"], document=_document_settings())
    server = await start_server(services=["document"], document=_document_settings())
    async with Runtimes(settings) as runtimes, Client(f"127.0.0.1:{server.port}") as client:
        local = runtimes.of(DocumentRuntime)
        remote = RemoteDocument(client)
        for name, options in [
            ("report.docx", ParseOptions(name="report.docx")),
            ("report.md", ParseOptions(name="report.md", pictures=False, attachments=False)),
            ("dues.eml", ParseOptions(name="dues.eml")),
            ("budget.ods", ParseOptions(name="budget.ods", pictures=False)),
        ]:
            here = await local.parse(folder / name, options)
            there = await remote.parse(folder / name, options)
            assert here.sections, name
            assert _comparable(there) == _comparable(here), name


async def test_a_token_scoped_to_document_may_call_it_and_a_pdf_token_may_not(start_server, tmp_path):
    tokens = tmp_path / "tokens"
    tokens.write_text(f"{TOKEN} document\n{PDF_TOKEN} pdf\n")
    tokens.chmod(0o600)  # a secret: the server refuses a file others may read
    server = await start_server(services=["document"], document=_document_settings(),
                                auth={"tokens_file": tokens})
    target = f"127.0.0.1:{server.port}"
    async with Client(target, token=TOKEN, insecure=True) as client:  # loopback
        response = await DocumentClient(client).parse_document(b"scoped words\n", "a.txt")
        assert response.sections[0].text == "scoped words"
    async with Client(target, token=PDF_TOKEN, insecure=True) as client:
        with pytest.raises(ClientError) as error:
            await DocumentClient(client).parse_document(b"scoped words\n", "a.txt")
        assert error.value.details.code == grpc.StatusCode.PERMISSION_DENIED
        assert "not document" in error.value.details.message
