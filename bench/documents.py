"""The document engine against the libraries it wraps, and against the alternatives it did not
choose, on the same generated files in the same run (in-process, one core).

    python bench/documents.py [--repeat 20] [--alternatives /path/to/site-packages]

For each format: milliseconds per file for `engine.parse` (sniffing excluded) and for the bare
library doing the least that gets the text out (python-docx paragraphs and tables, openpyxl
cells, ...); the ratio bare / engine says what the engine's locators, tables, pictures and
guards cost (1.0 = nothing). Alternatives are timed where importable: odfpy (OpenDocument),
BeautifulSoup and lxml.html (HTML), python-oxmsg (.msg), markitdown (Office, HTML); pass the
site-packages folder they were installed into with `--alternatives` (pip install --target DIR).
Files are made by tests/support/docmaker.py (pandoc and LibreOffice must be installed).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "support"))

import docmaker
from sensorium.document import engine, sniff


def timed(repeat: int, function: Callable[..., Any], *args: Any) -> float:
    """Median milliseconds of `function(*args)` over `repeat` runs (after one warm-up)."""
    function(*args)
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        function(*args)
        samples.append(time.perf_counter() - started)
    return 1000 * statistics.median(samples)


def bare_docx(path: Path) -> str:
    import docx

    document = docx.Document(str(path))
    parts = [p.text for p in document.paragraphs]
    parts += [cell.text for table in document.tables for row in table.rows for cell in row.cells]
    return "\n".join(parts)


def bare_pptx(path: Path) -> str:
    import pptx

    return "\n".join(
        shape.text_frame.text
        for slide in pptx.Presentation(str(path)).slides
        for shape in slide.shapes
        if shape.has_text_frame
    )


def bare_xlsx(path: Path) -> str:
    import openpyxl

    workbook = openpyxl.load_workbook(str(path), read_only=True, data_only=True)
    text = "\n".join(
        str(v)
        for sheet in workbook.worksheets
        for row in sheet.iter_rows(values_only=True)
        for v in row
        if v is not None
    )
    workbook.close()
    return text


def bare_html(path: Path) -> str:
    from selectolax.lexbor import LexborHTMLParser

    tree = LexborHTMLParser(path.read_bytes())
    return tree.body.text(separator="\n") if tree.body else ""


def bare_epub(path: Path) -> str:
    import ebooklib
    from ebooklib import epub
    from selectolax.lexbor import LexborHTMLParser

    book = epub.read_epub(str(path))
    return "\n".join(
        LexborHTMLParser(item.get_content()).text() for item in book.get_items_of_type(ebooklib.ITEM_DOCUMENT)
    )


def bare_rtf(path: Path) -> str:
    from striprtf.striprtf import rtf_to_text

    return str(rtf_to_text(path.read_text("latin-1"), errors="ignore"))


def bare_eml(path: Path) -> str:
    import email
    import email.policy

    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    body = message.get_body(("plain", "html"))
    return str(body.get_content()) if body is not None else ""


def bare_msg(path: Path) -> str:
    import extract_msg

    message = extract_msg.openMsg(str(path))
    text = str(message.body)
    message.close()
    return text


def bare_text(path: Path) -> str:
    from charset_normalizer import from_path

    best = from_path(path).best()
    return str(best) if best else ""


def odfpy_text(path: Path) -> str:
    from odf import teletype, text
    from odf.opendocument import load

    document = load(str(path))
    return "\n".join(teletype.extractText(p) for p in document.getElementsByType(text.P))


def lxml_odf(path: Path) -> str:
    import zipfile

    from lxml import etree

    with zipfile.ZipFile(path) as archive:
        root = etree.fromstring(archive.read("content.xml"), etree.XMLParser(resolve_entities=False))
    return "\n".join(
        "".join(p.itertext()) for p in root.iter("{urn:oasis:names:tc:opendocument:xmlns:text:1.0}p")
    )


def soup_html(path: Path) -> str:
    from bs4 import BeautifulSoup

    return BeautifulSoup(path.read_bytes(), "lxml").get_text("\n")


def lxml_html(path: Path) -> str:
    import lxml.html

    return str(lxml.html.fromstring(path.read_bytes()).text_content())


def oxmsg_text(path: Path) -> str:
    from oxmsg import Message

    return str(Message.load(str(path)).body)


def markitdown_text(path: Path) -> str:
    from markitdown import MarkItDown

    return str(MarkItDown().convert(str(path)).text_content)


BARE = {
    "docx": bare_docx,
    "pptx": bare_pptx,
    "xlsx": bare_xlsx,
    "odt": lxml_odf,
    "odp": lxml_odf,
    "ods": lxml_odf,
    "html": bare_html,
    "epub": bare_epub,
    "rtf": bare_rtf,
    "eml": bare_eml,
    "msg": bare_msg,
    "text": bare_text,
    "markdown": bare_text,
    "csv": bare_text,
}
ALTERNATIVES: dict[str, list[tuple[str, Callable[[Path], str]]]] = {
    "odt": [("odfpy", odfpy_text)],
    "ods": [("odfpy", odfpy_text)],
    "odp": [("odfpy", odfpy_text)],
    "html": [("BeautifulSoup+lxml", soup_html), ("lxml.html", lxml_html), ("markitdown", markitdown_text)],
    "msg": [("python-oxmsg", oxmsg_text)],
    "docx": [("markitdown", markitdown_text)],
    "pptx": [("markitdown", markitdown_text)],
    "xlsx": [("markitdown", markitdown_text)],
}
FILES = [
    "report.docx",
    "slides.pptx",
    "budget.xlsx",
    "report.odt",
    "slides.odp",
    "budget.ods",
    "report.html",
    "report.epub",
    "report.rtf",
    "dues.eml",
    "roster.msg",
    "latin1.txt",
    "report.md",
    "ships.csv",
    "report.doc",
]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--alternatives", type=Path, nargs="*", default=[], help="folders holding them")
    args = parser.parse_args()
    sys.path.extend(str(folder) for folder in args.alternatives)
    folder = Path(tempfile.mkdtemp(prefix="sensorium-docbench-"))
    docmaker.make_documents(folder)
    print("| file | engine ms | bare library ms | bare / engine | alternatives (ms) |")
    print("|---|---|---|---|---|")
    for name in FILES:
        path = folder / name
        kind = sniff.sniff(path.read_bytes()[: sniff.HEAD_BYTES], path).kind
        assert kind is not None
        repeat = 3 if name.endswith(".doc") else args.repeat
        ours = timed(repeat, engine.parse, path, kind)
        bare_function = BARE.get(kind.value)
        bare = timed(repeat, bare_function, path) if bare_function else float("nan")
        others = []
        for label, function in ALTERNATIVES.get(kind.value, []):
            try:
                others.append(f"{label} {timed(repeat, function, path):.2f}")
            except ImportError:
                others.append(f"{label} not installed")
            except Exception as error:  # an alternative that fails on the file is a finding
                others.append(f"{label} failed ({type(error).__name__})")
        print(f"| {name} | {ours:.2f} | {bare:.2f} | {bare / ours:.2f} | {'; '.join(others) or '-'} |")


if __name__ == "__main__":
    main()
