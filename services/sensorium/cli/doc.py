"""`sensorium doc FILE`: a document's text, section by section with where each is, its pictures
and attachments, or the whole result as JSON."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from sensorium.cli.common import PROTOBUF_JSON, add_client_flags, open_engines
from sensorium.document import wire
from sensorium.document.api import DOCUMENT, Document, ParseOptions
from sensorium.errors import explain
from sensorium.exits import Exit
from sensorium.wire import to_json


def add_parser(commands: Any) -> None:
    doc = commands.add_parser(
        "doc", help="read a document: Office, OpenDocument, RTF, EPUB, HTML, text, CSV, subtitles, mail",
        description="Print a document's text section by section, each under a line that says where "
        "it is (page or slide, sheet and cells, heading path, line, time), or the full result with "
        "--json. The format is judged from the content.")
    doc.add_argument("file", type=Path, help="the document")
    doc.add_argument("--pictures", type=Path, metavar="DIR",
                     help="write the pictures inside the document into DIR (uses the streaming call)")
    doc.add_argument("--attachments", type=Path, metavar="DIR",
                     help="write a mail's attachments into DIR (uses the streaming call)")
    add_client_flags(doc, json_help=PROTOBUF_JSON + " (metadata, sections with locators, summary)")
    doc.set_defaults(run=run)


async def run(args: argparse.Namespace) -> int:
    options = ParseOptions(name=args.file.name, pictures=args.pictures is not None,
                           attachments=args.attachments is not None)
    started = time.perf_counter()
    async with open_engines(args, "document") as engines:
        engine = await engines.open(DOCUMENT)
        document = await engine.parse(args.file, options)
    seconds = time.perf_counter() - started
    if args.pictures is not None:
        _write_pictures(document, args.pictures)
    if args.attachments is not None:
        _write_attachments(document, args.attachments)
    if args.json:
        print(to_json(wire.document_response(document, seconds, "operator")))
        return Exit.OK
    _print(document)
    return Exit.OK


def _print(document: Document) -> None:
    info = document.metadata
    facts = [("format", document.kind.value + (f" (converted with {document.converted_with})"
                                               if document.converted_with else "")),
             ("title", info.title), ("author", info.author),
             ("modified", info.modified.isoformat() if info.modified else ""),
             ("pages", str(document.page_count) if document.page_count else "")]
    for name, value in facts:
        if value:
            print(f"{name}: {value}")
    for error in document.errors:
        print(f"sensorium: {explain(error, 'operator')}", file=sys.stderr)
    for section in document.sections:
        where = section.locator.describe()
        if section.error is not None:
            print(f"sensorium: {where or 'a section'}: {explain(section.error, 'operator')}", file=sys.stderr)
        if section.text:
            print(f"\n[{where}]" if where else "\n[]")
            print(section.text)


def _write_pictures(document: Document, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for number, picture in enumerate(document.pictures, 1):
        if picture.error is not None:
            print(f"sensorium: picture {number}: {explain(picture.error, 'operator')}", file=sys.stderr)
            continue
        (folder / f"picture{number:04d}.{picture.format or 'bin'}").write_bytes(picture.data)


def _write_attachments(document: Document, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for attachment in document.attachments:
        if attachment.error is not None:
            print(f"sensorium: {attachment.name}: {explain(attachment.error, 'operator')}", file=sys.stderr)
            continue
        # The engine made the name safe: no folders, no control characters.
        (folder / attachment.name).write_bytes(attachment.data)
