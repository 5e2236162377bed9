"""The document service over gRPC: its calls as they are on the wire (`DocumentClient`), and
the `DocumentEngine` of the one seam over them (`RemoteDocument`), answering in the domain types.

Small documents whose pictures and attachments are not wanted go inline (the unary call);
others are uploaded through the stream, which also carries pictures and attachments.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import AsyncGenerator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from sensorium.document import wire
from sensorium.document.api import Document, DocumentEngine, ParseOptions
from sensorium.document.v1 import document_service_pb2 as pb
from sensorium.errors import Reason
from sensorium.remote import RemoteError, remote_errors

if TYPE_CHECKING:
    from sensorium.client import Client

INLINE_LIMIT = 4 * 1024 * 1024
"""Documents up to this size go inline (unary): the request size most gRPC servers accept."""
SECTIONS_PER_MESSAGE = 256
"""Streamed sections come in batches of up to this many (and 1 MiB)."""

SERVICE = "/sensorium.document.v1.DocumentService/"
T = TypeVar("T")


class DocumentClient:
    """The document service's calls, protobuf in and out, on `client`'s channel."""

    def __init__(self, client: Client) -> None:
        self.client = client

    async def parse_document(
        self, content: bytes, filename: str = "", options: pb.ParseOptions | None = None
    ) -> pb.ParseDocumentResponse:
        request = pb.ParseDocumentRequest(content=content, filename=filename, options=options)
        return await self.client.call(SERVICE + "ParseDocument", request, pb.ParseDocumentResponse)

    def stream_parse_document(
        self, path: Path, options: pb.ParseOptions | None = None, filename: str = ""
    ) -> AsyncGenerator[pb.StreamParseDocumentResponse, None]:
        return self.client.upload_file(
            SERVICE + "StreamParseDocument", path,
            lambda upload: pb.StreamParseDocumentRequest(
                header=pb.StreamParseDocumentHeader(upload=upload, options=options)),
            lambda chunk: pb.StreamParseDocumentRequest(chunk=chunk),
            pb.StreamParseDocumentResponse, filename=filename)


class RemoteDocument:
    """The document service of the server `client` talks to, as a `DocumentEngine`."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.calls = DocumentClient(client)

    async def parse(self, path: str | os.PathLike[str], options: ParseOptions) -> Document:
        path = Path(path)
        # The server sees only the name's last part: it tells the format among text files.
        filename = os.path.basename(options.name) if options.name else path.name
        async with remote_errors(self.client.target):
            if not (options.pictures or options.attachments) and path.stat().st_size <= INLINE_LIMIT:
                response = await self.calls.parse_document(
                    path.read_bytes(), filename, wire.options_to_message(options))
                return _answered(lambda: wire.document_from_response(response))
            return await self._streamed(path, options, filename)

    async def _streamed(self, path: Path, options: ParseOptions, filename: str) -> Document:
        metadata: pb.DocumentMetadata | None = None
        sections: list[pb.Section] = []
        pictures: list[pb.Picture] = []
        attachments = wire.AttachmentAssembler()
        messages = self.calls.stream_parse_document(
            path, wire.options_to_message(options, SECTIONS_PER_MESSAGE), filename)
        async with contextlib.aclosing(messages):  # leaving early cancels the call
            async for message in messages:
                kind = message.WhichOneof("result")
                if kind == "metadata":
                    metadata = message.metadata
                elif kind == "sections":
                    sections.extend(message.sections.sections)
                elif kind == "picture":
                    pictures.append(message.picture)
                elif kind == "attachment":
                    _answered(functools.partial(attachments.add, message.attachment))
        if metadata is None:
            raise RemoteError(Reason.INTERNAL_ERROR, f"the server at {self.client.target} sent no metadata")
        meta = metadata
        return _answered(lambda: wire.document_from_parts(meta, sections, pictures, attachments.finish()))


def _answered(convert: Callable[[], T]) -> T:
    """`convert()`, a server's answer this client cannot read reported as such."""
    try:
        return convert()
    except ValueError as exc:
        raise RemoteError(Reason.INTERNAL_ERROR, f"the server's answer cannot be read: {exc}") from None


if TYPE_CHECKING:
    _ENGINE: type[DocumentEngine] = RemoteDocument  # mypy: RemoteDocument is a DocumentEngine
