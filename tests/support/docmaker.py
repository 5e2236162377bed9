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
    marker: str = ""
    """Words only this file holds (in the phrase `marker_sentence(marker)`): a search for them
    must find this file first."""


# Each generated file says one sentence no other file says, so that a search can tell them
# apart (the report's other text is the same in every format). Two rare words each.
_FIRST = ["aardvark", "bassoon", "cormorant", "dulcimer", "egret", "fennel", "gazebo", "hornbill",
          "ibis", "jackal", "kumquat", "lemur", "marmoset", "narwhal", "ocelot", "pangolin", "quokka",
          "raccoon", "salamander", "tapir", "urchin", "vicuna", "wombat", "xylophone", "yak", "zebu",
          "axolotl", "bittern"]
_SECOND = ["mandolin", "toboggan", "saffron", "porcupine", "kettledrum", "wigwam", "chutney",
           "gondola", "harpsichord", "igloo", "jamboree", "kayak", "lorgnette", "mongoose",
           "nutmeg", "oboe", "pagoda", "quiche", "rickshaw", "sombrero", "tambourine", "ukulele",
           "veranda", "waffle", "yodel", "zeppelin", "accordion", "banjo"]
MARKED = ["report.docx", "report.odt", "report.epub", "report.html", "report.rst", "report.adoc",
          "report.md", "slides.pptx", "report.doc", "report.rtf", "report.docm", "slides.odp",
          "slides.ppt", "slides.pptm", "budget.xlsx", "budget.ods", "budget.xls", "budget.xlsm",
          "notes.txt", "latin1.txt", "utf16.txt", "ships.csv", "ships.tsv", "talk.vtt", "talk.srt",
          "dues.eml", "forward.eml", "roster.msg"]
MARKERS = {name: f"{_FIRST[i]} {_SECOND[i]}" for i, name in enumerate(MARKED)}


def marker_sentence(marker: str) -> str:
    first, second = marker.split()
    return f"The {first} greeted the {second}"


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

The lighthouse keeper reported calm seas in April. @MARKER@.
"""

SLIDES_MD = f"""---
title: {TITLE}
author: {AUTHOR}
---

# Harbour overview

- Dredging finished ahead of schedule
- @MARKER@

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


def _fods(marker: str = "") -> str:
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
{f'<table:table table:name="Notes">{rows([["Note"], [marker]])}</table:table>' if marker else ""}
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


def _marked(template: str, name: str) -> str:
    return template.replace("@MARKER@", marker_sentence(MARKERS[name]))


def make_documents(folder: Path) -> dict[str, Expected]:
    """Write every generated document into `folder`; returns file name -> Expected. Each file
    also says its own `marker_sentence` (Expected.marker), in its last section."""
    folder.mkdir(parents=True, exist_ok=True)
    work = folder / "_sources"
    work.mkdir(exist_ok=True)
    expected: dict[str, Expected] = {}

    def source(name: str, template: str, into: Path) -> Path:
        """The Markdown source of `name`, with its marker, beside the picture it shows."""
        into.mkdir(parents=True, exist_ok=True)
        (into / "square.png").write_bytes(png(64, 64))
        path = into / f"{Path(name).stem}.md"
        path.write_text(_marked(template, name), encoding="utf-8")
        return path

    def report(
        name: str, kind: str, tool: str, pictures: int = 1, locators: bool = True, metadata: bool = True
    ) -> None:
        expected[name] = Expected(
            kind,
            [*REPORT_PHRASES, marker_sentence(MARKERS[name])],
            TITLE if metadata else "",
            AUTHOR if metadata else "",
            dict(REPORT_LOCATORS) if locators else {},
            pictures,
            tool,
            MARKERS[name],
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
        here = work / name.replace(".", "-")
        _run(["pandoc", source(name, REPORT_MD, here).name, "-s", "-t", fmt, "-o", str(folder / name),
              *extra], here)
    report("report.docx", "docx", "pandoc")
    report("report.odt", "odt", "pandoc")
    report("report.epub", "epub", "pandoc")
    report("report.html", "html", "pandoc")
    for name, kind, title, author in (
        ("report.rst", "rst", TITLE, ""), ("report.adoc", "asciidoc", TITLE, ""),
        ("report.md", "markdown", TITLE, AUTHOR),
    ):
        expected[name] = Expected(kind, [*REPORT_PHRASES, marker_sentence(MARKERS[name])], title, author,
                                  dict(REPORT_LOCATORS), 0, "pandoc", MARKERS[name])
    here = work / "slides-pptx"
    _run(["pandoc", source("slides.pptx", SLIDES_MD, here).name, "-s", "-o", str(folder / "slides.pptx")],
         here)
    slide_phrases = ["Dredging finished ahead of schedule", "pelican colony near the breakwater", "Osprey"]
    expected["slides.pptx"] = Expected(
        "pptx", [*slide_phrases, marker_sentence(MARKERS["slides.pptx"])], TITLE, AUTHOR,
        dict(SLIDE_LOCATORS), 1, "pandoc", MARKERS["slides.pptx"],
    )

    # LibreOffice: legacy and macro-enabled variants, OpenDocument presentation, spreadsheets,
    # each from a source of its own (its marker), all files of one target in one soffice call.
    def office_source(name: str, kind: str) -> Path:
        here = work / name.replace(".", "-")
        if kind == "sheet":
            here.mkdir(parents=True, exist_ok=True)
            path = here / "budget.fods"
            path.write_text(_fods(marker_sentence(MARKERS[name])), encoding="utf-8")
            return path
        stem, template = ("report", REPORT_MD) if kind == "report" else ("slides", SLIDES_MD)
        target = here / f"{stem}.{'docx' if kind == 'report' else 'pptx'}"
        _run(["pandoc", source(name, template, here).name, "-s", "-o", str(target)], here)
        return target

    conversions = [
        ("report.doc", "report", "doc"),
        ("report.rtf", "report", "rtf"),
        ("report.docm", "report", "docm:MS Word 2007 XML VBA"),
        ("slides.odp", "slides", "odp"),
        ("slides.ppt", "slides", "ppt"),
        ("slides.pptm", "slides", "pptm:Impress MS PowerPoint 2007 XML VBA"),
        ("budget.xlsx", "sheet", "xlsx"),
        ("budget.ods", "sheet", "ods"),
        ("budget.xls", "sheet", "xls"),
        ("budget.xlsm", "sheet", "xlsm:Calc MS Excel 2007 VBA XML"),
    ]
    for name, kind, target in conversions:
        soffice_convert([office_source(name, kind)], target, folder)
    for name in ("report.doc", "report.docm"):
        kind = "doc" if name.endswith(".doc") else "docx"
        report(name, kind, "libreoffice", pictures=1)
    # striprtf reads no headings or pictures: RTF sections carry the line they start at.
    report("report.rtf", "rtf", "libreoffice", pictures=0, locators=False)
    for name, kind in (("slides.odp", "odp"), ("slides.ppt", "ppt"), ("slides.pptm", "pptx")):
        expected[name] = Expected(kind, [*slide_phrases, marker_sentence(MARKERS[name])], TITLE, AUTHOR,
                                  dict(SLIDE_LOCATORS), 1, "libreoffice", MARKERS[name])
    for name, kind in (
        ("budget.xlsx", "xlsx"),
        ("budget.ods", "ods"),
        ("budget.xls", "xls"),
        ("budget.xlsm", "xlsx"),
    ):
        expected[name] = Expected(
            kind,
            ["Crane repair", "Grace Hopper", "Harbour clerk", marker_sentence(MARKERS[name])],
            SHEET_TITLE,
            AUTHOR,
            dict(SHEET_LOCATORS),
            0,
            "libreoffice",
            MARKERS[name],
        )

    _plain_text(folder, expected)
    _mail(folder, expected)
    _msg(folder, expected)
    shutil.rmtree(work)
    return expected


def _plain_text(folder: Path, expected: dict[str, Expected]) -> None:
    def says(name: str) -> str:
        return marker_sentence(MARKERS[name])

    def add(name: str, kind: str, phrases: list[str], locators: dict[str, str] | None = None) -> None:
        expected[name] = Expected(kind, [*phrases, says(name)], locators=locators or {}, marker=MARKERS[name])

    (folder / "notes.txt").write_text(
        f"Shopping list\n\nRemember the anchor chain grease.\n\n{says('notes.txt')}.\n", encoding="utf-8"
    )
    add("notes.txt", "text", ["anchor chain grease"], {"anchor chain grease": "line 1"})
    (folder / "latin1.txt").write_bytes(
        ("Le café sur la façade du port était fermé à Noël, déjà.\n" * 3 + says("latin1.txt") + ".\n")
        .encode("cp1252")
    )
    add("latin1.txt", "text", ["café sur la façade"])
    utf16 = f"Ωmega harbour ledger in UTF-16.\n{says('utf16.txt')}.\n"
    (folder / "utf16.txt").write_bytes(utf16.encode("utf-16"))
    add("utf16.txt", "text", ["Ωmega harbour ledger"])
    (folder / "ships.csv").write_text(
        f"Ship,Tonnage,Port\nMarigold,1200,Lisbon\nOsprey,860,Bergen\n{says('ships.csv')},1,x\n",
        encoding="utf-8",
    )
    add("ships.csv", "csv", ["Ship: Osprey | Tonnage: 860 | Port: Bergen"], {"Osprey": "A1:C4"})
    (folder / "ships.tsv").write_text(f"Ship\tPort\nKestrel\tHamburg\n{says('ships.tsv')}\tx\n",
                                      encoding="utf-8")
    add("ships.tsv", "tsv", ["Ship: Kestrel | Port: Hamburg"])
    (folder / "talk.vtt").write_text(
        "WEBVTT\n\n00:00:01.000 --> 00:00:04.000\nWelcome to the <b>harbour</b> tour.\n\n"
        "00:01:02.500 --> 00:01:05.000\nThe crane lifts forty tonnes.\n\n"
        f"00:02:00.000 --> 00:02:03.000\n{says('talk.vtt')}.\n",
        encoding="utf-8",
    )
    add("talk.vtt", "vtt", ["Welcome to the harbour tour", "crane lifts forty tonnes"],
        {"crane lifts forty tonnes": "0:01:02-0:01:05", says("talk.vtt"): "0:02:00-0:02:03"})
    (folder / "talk.srt").write_text(
        "1\n00:00:01,000 --> 00:00:04,000\n<i>Gulls</i> circle the trawler.\n\n"
        "2\n00:02:00,000 --> 00:02:03,000\nNets are mended at dawn.\n\n"
        f"3\n00:03:00,000 --> 00:03:02,000\n{says('talk.srt')}.\n",
        encoding="utf-8",
    )
    add("talk.srt", "srt", ["Gulls circle the trawler", "Nets are mended at dawn"],
        {"Nets are mended at dawn": "0:02:00-0:02:03"})


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
        f"Please pay the mooring fee by Friday. {marker_sentence(MARKERS['dues.eml'])}.",
        [
            ("report.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document", docx),
            ("notes.txt", "text/plain", b"Bring the tide tables.\n"),
        ],
    )
    (folder / "dues.eml").write_bytes(message.as_bytes(policy=email.policy.default))
    expected["dues.eml"] = Expected(
        "eml", ["mooring fee by Friday", "Harbour dues for March", marker_sentence(MARKERS["dues.eml"])],
        "Harbour dues for March", AUTHOR, marker=MARKERS["dues.eml"],
    )
    inner = mail_message(
        "Forwarded: crane schedule",
        "The crane is booked on Monday.",
        [("schedule.txt", "text/plain", b"Monday 9:00 crane\n")],
    )
    says = marker_sentence(MARKERS["forward.eml"])
    outer = mail_message("FW: crane", f"See the forwarded mail below. {says}.", inner=inner)
    (folder / "forward.eml").write_bytes(outer.as_bytes(policy=email.policy.default))
    expected["forward.eml"] = Expected("eml", ["See the forwarded mail below", says], "FW: crane", AUTHOR,
                                       marker=MARKERS["forward.eml"])


def _msg(folder: Path, expected: dict[str, Expected]) -> None:
    from aspose.email_foss.msg import MapiMessage

    says = marker_sentence(MARKERS["roster.msg"])
    message = MapiMessage.create("Pilot roster for April", f"The pilot boat leaves at six sharp. {says}.")
    message.add_attachment("roster.txt", b"Grace: Monday\n", mime_type="text/plain")
    message.save(folder / "roster.msg")
    expected["roster.msg"] = Expected("msg", ["pilot boat leaves at six sharp", says],
                                      "Pilot roster for April", marker=MARKERS["roster.msg"])


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


def make_seeds(folder: Path) -> list[Path]:
    """Small documents of every shape the engine reads that pandoc and Python make quickly (no
    LibreOffice): Word, PowerPoint, OpenDocument text, EPUB, HTML, Markdown, text, CSV,
    subtitles and mail, plus the hostile files of `make_hostile`. The fuzz test's seeds."""
    folder.mkdir(parents=True, exist_ok=True)
    work = folder / "_sources"
    work.mkdir(exist_ok=True)
    (work / "square.png").write_bytes(png(64, 64))
    (work / "report.md").write_text(_marked(REPORT_MD, "report.docx"), encoding="utf-8")
    (work / "slides.md").write_text(_marked(SLIDES_MD, "slides.pptx"), encoding="utf-8")
    for source, target in (("report.md", "report.docx"), ("report.md", "report.odt"),
                           ("report.md", "report.epub"), ("slides.md", "slides.pptx")):
        _run(["pandoc", source, "-s", "-o", str(folder / target)], work)
    _run(["pandoc", "report.md", "-s", "-t", "html", "--self-contained", "-o", str(folder / "report.html")],
         work)
    shutil.copy(work / "report.md", folder / "report.md")
    shutil.rmtree(work)
    expected: dict[str, Expected] = {}
    _plain_text(folder, expected)
    _mail(folder, expected)
    make_hostile(folder / "hostile", folder)
    return sorted(path for path in folder.rglob("*") if path.is_file())
