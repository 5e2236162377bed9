"""Documents for the document engine's tests, made by other programs than the ones it parses
with: pandoc (Word, OpenDocument text, EPUB, HTML, reStructuredText, AsciiDoc, Markdown,
PowerPoint), LibreOffice (RTF, spreadsheets from a flat-XML source, legacy .doc/.xls/.ppt,
macro-enabled and OpenDocument variants), Python's `email` (.eml), Aspose.Email FOSS (MIT; .msg),
msoffcrypto-tool (a password-protected .docx). Plain-text formats (CSV, subtitles, text in several encodings)
are written directly.

`make_documents(folder)` writes them all and returns what each must yield (`Expected`).
LibreOffice is slow to start (~1.5 s), so all files of one target format go through one
`soffice` call; a test session makes the set once (the `documents` fixture).
"""

from __future__ import annotations

import email.policy
import shutil
import struct
import subprocess
import tempfile
import zipfile
import zlib
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path

TITLE = "Quarterly Harbour Report"
AUTHOR = "Ada Lovelace"
SHEET_TITLE = "Harbour Budget"


@dataclass
class Expected:
    """What a generated file must yield."""

    kind: str
    phrases: list[str]
    """Phrases that must be in the text (each in one section)."""
    title: str = ""
    author: str = ""
    locators: dict[str, str] = field(default_factory=dict)
    """phrase -> what `Locator.describe()` of its section must contain."""
    pictures: int = 0
    """At least this many embeddable pictures."""
    tool: str = ""


def tools_missing() -> list[str]:
    return [tool for tool in ("pandoc", "soffice") if shutil.which(tool) is None]


def png(width: int, height: int, rgb: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    """A solid-colour PNG, written by hand (no imaging library needed)."""
    row = b"\x00" + bytes(rgb) * width
    raw = zlib.compress(row * height)

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


REPORT_MD = f"""---
title: {TITLE}
author: {AUTHOR}
date: 2024-03-05
---

# Introduction

The harbour master counted every vessel. The barnacle census rose sharply this quarter.

## Tides and currents

Spring tides flooded the eastern quay twice in March.

![A red square](square.png)

# Results

| Ship | Tonnage | Port |
|------|---------|------|
| Marigold | 1200 | Lisbon |
| Osprey | 860 | Bergen |

The lighthouse keeper reported calm seas in April.
"""

SLIDES_MD = f"""---
title: {TITLE}
author: {AUTHOR}
---

# Harbour overview

- Dredging finished ahead of schedule

::: notes
Mention the pelican colony near the breakwater.
:::

# Cargo volumes

| Ship | Tonnage |
|------|---------|
| Marigold | 1200 |
| Osprey | 860 |

# Pictures

![A red square](square.png)
"""


def _fods() -> str:
    def cell(value: str) -> str:
        if value.replace(".", "", 1).isdigit():
            return (
                f'<table:table-cell office:value-type="float" office:value="{value}">'
                f"<text:p>{value}</text:p></table:table-cell>"
            )
        return f'<table:table-cell office:value-type="string"><text:p>{value}</text:p></table:table-cell>'

    def rows(data: list[list[str]]) -> str:
        return "".join(
            "<table:table-row>" + "".join(cell(v) for v in row) + "</table:table-row>" for row in data
        )

    budget = [["Item", "Cost", "Quarter"], ["Crane repair", "4500", "Q1"], ["Buoy paint", "320", "Q2"]]
    staff = [["Name", "Role"], ["Grace Hopper", "Pilot"], ["Alan Turing", "Harbour clerk"]]
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<office:document xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0"
 xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0"
 xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0"
 xmlns:dc="http://purl.org/dc/elements/1.1/"
 xmlns:meta="urn:oasis:names:tc:opendocument:xmlns:meta:1.0"
 office:version="1.3" office:mimetype="application/vnd.oasis.opendocument.spreadsheet">
<office:meta><dc:title>{SHEET_TITLE}</dc:title><meta:initial-creator>{AUTHOR}</meta:initial-creator>
<dc:creator>{AUTHOR}</dc:creator></office:meta>
<office:body><office:spreadsheet>
<table:table table:name="Budget">{rows(budget)}</table:table>
<table:table table:name="Staff">{rows(staff)}</table:table>
</office:spreadsheet></office:body></office:document>
"""


REPORT_PHRASES = [
    "barnacle census rose sharply",
    "Spring tides flooded the eastern quay",
    "lighthouse keeper reported calm seas",
]
REPORT_LOCATORS = {
    "barnacle census rose sharply": "Introduction",
    "Spring tides flooded the eastern quay": "Introduction > Tides and currents",
    "lighthouse keeper reported calm seas": "Results",
}
SLIDE_LOCATORS = {
    "Dredging finished ahead of schedule": 'slide 2 "Harbour overview"',  # pandoc adds a title slide
    "Osprey": 'slide 3 "Cargo volumes"',
}
SHEET_LOCATORS = {"Crane repair": 'sheet "Budget" A1:C3', "Grace Hopper": 'sheet "Staff" A1:B3'}


def _run(command: list[str], cwd: Path) -> None:
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        raise RuntimeError(f"{command[0]} failed: {result.stderr.strip()[-500:]}")


def soffice_convert(sources: list[Path], target: str, outdir: Path) -> None:
    """Convert `sources` to `target` ("doc", 'docm:MS Word 2007 XML VBA', ...) in one soffice
    call, with a profile of its own."""
    with tempfile.TemporaryDirectory(prefix="lo-profile-") as profile:
        _run(
            [
                "soffice",
                f"-env:UserInstallation=file://{profile}",
                "--headless",
                "--norestore",
                "--convert-to",
                target,
                "--outdir",
                str(outdir),
                *map(str, sources),
            ],
            outdir,
        )


def make_documents(folder: Path) -> dict[str, Expected]:
    """Write every generated document into `folder`; returns file name -> Expected."""
    folder.mkdir(parents=True, exist_ok=True)
    work = folder / "_sources"
    work.mkdir(exist_ok=True)
    (work / "square.png").write_bytes(png(64, 64))
    (work / "report.md").write_text(REPORT_MD, encoding="utf-8")
    (work / "slides.md").write_text(SLIDES_MD, encoding="utf-8")
    (work / "budget.fods").write_text(_fods(), encoding="utf-8")
    expected: dict[str, Expected] = {}

    def report(
        name: str, kind: str, tool: str, pictures: int = 1, locators: bool = True, metadata: bool = True
    ) -> None:
        expected[name] = Expected(
            kind,
            list(REPORT_PHRASES),
            TITLE if metadata else "",
            AUTHOR if metadata else "",
            dict(REPORT_LOCATORS) if locators else {},
            pictures,
            tool,
        )

    for fmt, name, extra in (
        ("docx", "report.docx", []),
        ("odt", "report.odt", []),
        ("epub", "report.epub", []),
        ("html", "report.html", ["--self-contained"]),
        ("rst", "report.rst", []),
        ("asciidoc", "report.adoc", []),
        ("markdown", "report.md", []),
    ):
        _run(["pandoc", "report.md", "-s", "-t", fmt, "-o", str(folder / name), *extra], work)
    report("report.docx", "docx", "pandoc")
    report("report.odt", "odt", "pandoc")
    report("report.epub", "epub", "pandoc")
    report("report.html", "html", "pandoc")
    expected["report.rst"] = Expected(
        "rst", list(REPORT_PHRASES), TITLE, "", dict(REPORT_LOCATORS), 0, "pandoc"
    )
    expected["report.adoc"] = Expected(
        "asciidoc", list(REPORT_PHRASES), TITLE, "", dict(REPORT_LOCATORS), 0, "pandoc"
    )
    expected["report.md"] = Expected(
        "markdown", list(REPORT_PHRASES), TITLE, AUTHOR, dict(REPORT_LOCATORS), 0, "pandoc"
    )
    _run(["pandoc", "slides.md", "-s", "-o", str(folder / "slides.pptx")], work)
    slide_phrases = ["Dredging finished ahead of schedule", "pelican colony near the breakwater", "Osprey"]
    expected["slides.pptx"] = Expected(
        "pptx", slide_phrases, TITLE, AUTHOR, dict(SLIDE_LOCATORS), 1, "pandoc"
    )

    # LibreOffice: legacy and macro-enabled variants, OpenDocument presentation, spreadsheets.
    conversions = [
        ([folder / "report.docx"], "doc", "report.doc", "doc"),
        ([folder / "report.docx"], "rtf", "report.rtf", "rtf"),
        ([folder / "report.docx"], "docm:MS Word 2007 XML VBA", "report.docm", "docx"),
        ([folder / "slides.pptx"], "odp", "slides.odp", "odp"),
        ([folder / "slides.pptx"], "ppt", "slides.ppt", "ppt"),
        ([folder / "slides.pptx"], "pptm:Impress MS PowerPoint 2007 XML VBA", "slides.pptm", "pptx"),
        ([work / "budget.fods"], "xlsx", "budget.xlsx", "xlsx"),
        ([work / "budget.fods"], "ods", "budget.ods", "ods"),
        ([work / "budget.fods"], "xls", "budget.xls", "xls"),
        ([work / "budget.fods"], "xlsm:Calc MS Excel 2007 VBA XML", "budget.xlsm", "xlsx"),
    ]
    for sources, target, _name, _kind in conversions:
        soffice_convert(sources, target, folder)
    for name in ("report.doc", "report.docm"):
        kind = "doc" if name.endswith(".doc") else "docx"
        report(name, kind, "libreoffice", pictures=1)
    # striprtf reads no headings or pictures: RTF sections carry the line they start at.
    report("report.rtf", "rtf", "libreoffice", pictures=0, locators=False)
    for name, kind in (("slides.odp", "odp"), ("slides.ppt", "ppt"), ("slides.pptm", "pptx")):
        expected[name] = Expected(kind, slide_phrases, TITLE, AUTHOR, dict(SLIDE_LOCATORS), 1, "libreoffice")
    for name, kind in (
        ("budget.xlsx", "xlsx"),
        ("budget.ods", "ods"),
        ("budget.xls", "xls"),
        ("budget.xlsm", "xlsx"),
    ):
        expected[name] = Expected(
            kind,
            ["Crane repair", "Grace Hopper", "Harbour clerk"],
            SHEET_TITLE,
            AUTHOR,
            dict(SHEET_LOCATORS),
            0,
            "libreoffice",
        )

    _plain_text(folder, expected)
    _mail(folder, expected)
    _msg(folder, expected)
    shutil.rmtree(work)
    return expected


def _plain_text(folder: Path, expected: dict[str, Expected]) -> None:
    (folder / "notes.txt").write_text(
        "Shopping list\n\nRemember the anchor chain grease.\n", encoding="utf-8"
    )
    expected["notes.txt"] = Expected(
        "text", ["anchor chain grease"], locators={"anchor chain grease": "line 1"}
    )
    (folder / "latin1.txt").write_bytes(
        "Le café sur la façade du port était fermé à Noël, déjà.\n".encode("cp1252") * 3
    )
    expected["latin1.txt"] = Expected("text", ["café sur la façade"])
    (folder / "utf16.txt").write_bytes("Ωmega harbour ledger in UTF-16.\n".encode("utf-16"))
    expected["utf16.txt"] = Expected("text", ["Ωmega harbour ledger"])
    (folder / "ships.csv").write_text(
        "Ship,Tonnage,Port\nMarigold,1200,Lisbon\nOsprey,860,Bergen\n", encoding="utf-8"
    )
    expected["ships.csv"] = Expected(
        "csv", ["Ship: Osprey | Tonnage: 860 | Port: Bergen"], locators={"Osprey": "A1:C3"}
    )
    (folder / "ships.tsv").write_text("Ship\tPort\nKestrel\tHamburg\n", encoding="utf-8")
    expected["ships.tsv"] = Expected("tsv", ["Ship: Kestrel | Port: Hamburg"])
    (folder / "talk.vtt").write_text(
        "WEBVTT\n\n00:00:01.000 --> 00:00:04.000\nWelcome to the <b>harbour</b> tour.\n\n"
        "00:01:02.500 --> 00:01:05.000\nThe crane lifts forty tonnes.\n",
        encoding="utf-8",
    )
    expected["talk.vtt"] = Expected(
        "vtt",
        ["Welcome to the harbour tour", "crane lifts forty tonnes"],
        locators={"crane lifts forty tonnes": "0:01:02-0:01:05"},
    )
    (folder / "talk.srt").write_text(
        "1\n00:00:01,000 --> 00:00:04,000\n<i>Gulls</i> circle the trawler.\n\n"
        "2\n00:02:00,000 --> 00:02:03,000\nNets are mended at dawn.\n",
        encoding="utf-8",
    )
    expected["talk.srt"] = Expected(
        "srt",
        ["Gulls circle the trawler", "Nets are mended at dawn"],
        locators={"Nets are mended at dawn": "0:02:00-0:02:03"},
    )


def mail_message(
    subject: str,
    body: str,
    attachments: list[tuple[str, str, bytes]] | None = None,
    inner: EmailMessage | None = None,
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = f"{AUTHOR} <ada@example.org>"
    message["To"] = "Harbour Office <office@example.org>"
    message["Subject"] = subject
    message["Date"] = "Tue, 05 Mar 2024 10:00:00 +0000"
    message.set_content(body)
    message.add_alternative(f"<html><body><p>{body}</p></body></html>", subtype="html")
    for name, mime, data in attachments or []:
        maintype, subtype = mime.split("/")
        message.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    if inner is not None:
        message.add_attachment(inner)
    return message


def _mail(folder: Path, expected: dict[str, Expected]) -> None:
    docx = (folder / "report.docx").read_bytes()
    message = mail_message(
        "Harbour dues for March",
        "Please pay the mooring fee by Friday.",
        [
            ("report.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document", docx),
            ("notes.txt", "text/plain", b"Bring the tide tables.\n"),
        ],
    )
    (folder / "dues.eml").write_bytes(message.as_bytes(policy=email.policy.default))
    expected["dues.eml"] = Expected(
        "eml", ["mooring fee by Friday", "Harbour dues for March"], "Harbour dues for March", AUTHOR
    )
    inner = mail_message(
        "Forwarded: crane schedule",
        "The crane is booked on Monday.",
        [("schedule.txt", "text/plain", b"Monday 9:00 crane\n")],
    )
    outer = mail_message("FW: crane", "See the forwarded mail below.", inner=inner)
    (folder / "forward.eml").write_bytes(outer.as_bytes(policy=email.policy.default))
    expected["forward.eml"] = Expected("eml", ["See the forwarded mail below"], "FW: crane", AUTHOR)


def _msg(folder: Path, expected: dict[str, Expected]) -> None:
    from aspose.email_foss.msg import MapiMessage

    message = MapiMessage.create("Pilot roster for April", "The pilot boat leaves at six sharp.")
    message.add_attachment("roster.txt", b"Grace: Monday\n", mime_type="text/plain")
    message.save(folder / "roster.msg")
    expected["roster.msg"] = Expected("msg", ["pilot boat leaves at six sharp"], "Pilot roster for April")


# --- hostile files ------------------------------------------------------------------------

_CONTENT_TYPES_DOCX = (
    b'<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/'
    b'content-types"><Default Extension="xml" ContentType="application/xml"/><Override PartName="/word/'
    b'document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.'
    b'main+xml"/></Types>'
)
BILLION_LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + b"".join(
        b'<!ENTITY lol%d "%s">' % (i, (b"&lol%d;" % (i - 1) if i > 1 else b"&lol;") * 10)
        for i in range(1, 10)
    )
    + b']><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
    b"<w:body><w:p><w:r><w:t>&lol9;</w:t></w:r></w:p></w:body></w:document>"
)


def zip_bomb_docx(path: Path, megabytes: int = 64) -> None:
    """A .docx whose document part inflates ~1000 times (64 MiB of zeros in ~64 KB)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", _CONTENT_TYPES_DOCX)
        with archive.open("word/document.xml", "w", force_zip64=True) as member:
            block = b"\x00" * (1 << 20)
            for _ in range(megabytes):
                member.write(block)


def billion_laughs_docx(path: Path) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", _CONTENT_TYPES_DOCX)
        archive.writestr("word/document.xml", BILLION_LAUGHS)


def billion_laughs_odt(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(
            "mimetype", "application/vnd.oasis.opendocument.text", compress_type=zipfile.ZIP_STORED
        )
        archive.writestr("content.xml", BILLION_LAUGHS.replace(b"w:document", b"office:document-content"))


def span_bomb_html(path: Path) -> None:
    """~1 KB of HTML whose spans make a 1000 x 100 grid of one long cell: a converter that copies
    spanned cells into every slot (pandas.read_html does) writes millions of characters."""
    rows = "<tr></tr>" * 99
    text = "harbour " * 12
    page = (
        f"<html><body><table><tr><th colspan=1000>{text}</th></tr>"
        f"<tr><td colspan=1000 rowspan=65534>{text}</td></tr>{rows}</table></body></html>"
    )
    path.write_text(page, encoding="utf-8")


def binary_txt(path: Path) -> None:
    """Random bytes (no known signature) named .txt."""
    import random

    path.write_bytes(random.Random(0).randbytes(4096))


def truncated(source: Path, path: Path) -> None:
    data = source.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def encrypted_docx(source: Path, path: Path, password: str = "harbour") -> None:
    import msoffcrypto.format.ooxml as ooxml

    with open(source, "rb") as plain, open(path, "wb") as out:
        ooxml.OOXMLFile(plain).encrypt(password, out)


def nested_mail(path: Path) -> None:
    innermost = mail_message("Innermost", "Deep inside.", [("deep.txt", "text/plain", b"deep\n")])
    inner = mail_message("Middle mail", "The middle mail carries a mail.", inner=innermost)
    outer = mail_message("Outer mail", "The outer mail carries a mail.", inner=inner)
    path.write_bytes(outer.as_bytes(policy=email.policy.default))


def make_hostile(folder: Path, documents: Path) -> dict[str, str]:
    """Hostile files; returns file name -> the Reason name each must give (at sniffing or
    parsing; "" when it must parse with bounded output)."""
    folder.mkdir(parents=True, exist_ok=True)
    zip_bomb_docx(folder / "bomb.docx")
    billion_laughs_docx(folder / "laughs.docx")
    billion_laughs_odt(folder / "laughs.odt")
    span_bomb_html(folder / "spans.html")
    binary_txt(folder / "binary.txt")
    truncated(documents / "slides.pptx", folder / "truncated.pptx")
    encrypted_docx(documents / "report.docx", folder / "locked.docx")
    nested_mail(folder / "nested.eml")
    return {
        "bomb.docx": "DOCUMENT_UNSAFE",
        "laughs.docx": "DOCUMENT_UNSAFE",
        "laughs.odt": "DOCUMENT_UNSAFE",
        "spans.html": "",
        "binary.txt": "UNSUPPORTED_TYPE",
        "truncated.pptx": "DOCUMENT_UNREADABLE",
        "locked.docx": "DOCUMENT_ENCRYPTED",
        "nested.eml": "",
    }
