"""`sensorium pdf FILE`: a PDF's text page by page, its images, or the whole result as JSON."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from sensorium.cli.common import PROTOBUF_JSON, CliError, add_client_flags, open_engines
from sensorium.errors import explain, explain_setting
from sensorium.exits import Exit
from sensorium.pdf import wire
from sensorium.pdf.api import PDF, DocumentInfo, ExtractOptions, ImageResult, PageResult, Totals
from sensorium.wire import to_json


def add_parser(commands: Any) -> None:
    pdf = commands.add_parser("pdf", help="extract text (and images) from a PDF",
                              description="Print a PDF's text, page by page (pages separated by "
                              "form feeds), or the full result with --json.")
    pdf.add_argument("file", type=Path, help="the PDF file")
    pdf.add_argument("--pages", default="", help='page range, 1-based: "3", "3-7", "3-" (default all)')
    secret = pdf.add_mutually_exclusive_group()
    secret.add_argument("--password", default="", help="password of an encrypted PDF")
    secret.add_argument("--password-file", type=Path,
                        help="file whose first line is the password (keeps it out of `ps`)")
    pdf.add_argument("--blocks", action="store_true", help="include text blocks with positions")
    pdf.add_argument("--images", type=Path, metavar="DIR",
                     help="write embedded images into DIR (uses the streaming call)")
    pdf.add_argument("--no-ocr", action="store_true", help="never OCR pages without text")
    add_client_flags(pdf, json_help=PROTOBUF_JSON)
    pdf.set_defaults(run=run)


def parse_pages(text: str) -> tuple[int, int]:
    """ "3" -> (3, 3); "3-7" -> (3, 7); "3-" -> (3, 0); "" -> (0, 0). """
    if not text:
        return 0, 0
    first, dash, last = text.partition("-")
    try:
        start = int(first) if first else 1
        end = (int(last) if last else 0) if dash else start
    except ValueError:
        raise CliError(f'--pages takes "N", "N-M" or "N-", not "{text}"', Exit.USAGE) from None
    if start < 1 or (end and end < start):
        raise CliError(f'--pages "{text}" is not a range of 1-based pages', Exit.USAGE)
    return start, end


async def run(args: argparse.Namespace) -> int:
    first, last = parse_pages(args.pages)
    password = args.password
    if args.password_file:
        lines = args.password_file.read_text(encoding="utf-8").splitlines()[0:1]
        password = lines[0] if lines else ""
    options = ExtractOptions(first_page=first, last_page=last, password=password,
                             include_blocks=args.blocks, include_images=args.images is not None,
                             ocr=not args.no_ocr)
    if args.images is not None:
        args.images.mkdir(parents=True, exist_ok=True)
    info: DocumentInfo | None = None
    pages: list[PageResult] = []
    totals = Totals()
    async with open_engines(args, "pdf") as engines:
        pdf = await engines.open(PDF)
        async for result in pdf.extract(args.file, options):
            if isinstance(result, DocumentInfo):
                info = result
                continue
            for item in result:
                totals.count(item)
                if isinstance(item, ImageResult):
                    if args.images is not None and item.data:
                        name = f"page{item.page_number:04d}-{item.index:02d}.{item.format or 'bin'}"
                        (args.images / name).write_bytes(item.data)
                elif args.json:
                    pages.append(item)
                else:
                    _print_page(item)
    if args.json:
        print(to_json(wire.document_response(info, pages, totals.summary(), "operator")))
    return Exit.OK


def _print_page(page: PageResult) -> None:
    if page.error is not None:
        print(f"sensorium: page {page.page_number}: {explain(page.error, 'operator')}", file=sys.stderr)
    elif page.ocr_message:
        message = explain_setting(page.ocr_message, page.ocr_setting, "operator")
        print(f"sensorium: page {page.page_number}: {message}", file=sys.stderr)
    sys.stdout.write(page.text.rstrip("\n") + "\n\f")
