"""Long real English prose laid out by LibreOffice as PDFs: automatic hyphenation, ligatures.

Public PDFs are few on this machine, so the text benchmarks (search_quality.py,
text_normalisation.py) also make their own: prose that exists on any Debian machine — the
licence texts in /usr/share/common-licenses, manual pages rendered by `man`, Python's own
licence — written as Flat ODF documents (justified, English, automatic hyphenation on, Linux
Libertine O, a font whose `liga` feature LibreOffice applies: "fi", "fl", "ff", ...) and
exported to PDF by `soffice --headless --convert-to pdf`. The source text of every document is
kept beside its PDF (`NAME.txt`), so a benchmark knows which words the document really holds:
which line-end hyphens are hyphenation and which are a compound's own.

A second producer lays out manual pages with groff (`man -Tpdf`, hyphenated and justified by
groff's own patterns). LibreOffice 7.4, groff 1.22 and pdfTeX 2022 all map a ligature glyph
back to its letters ("fi") in the PDF's text layer, but many published PDFs store ligature
characters (U+FB00-FB06: "ef\ufb01cient"): every third LibreOffice document is written with
its ligatures as those characters, as such producers leave them, so that the benchmarks see
both.

Needs: LibreOffice Writer (`libreoffice-writer-nogui`), its English hyphenation patterns
(`hyphen-en-us`), the font (`fonts-linuxlibertine`), `man` with manual pages installed, and
for the groff documents `groff` (its PDF device).
PDFs are cached in the output folder: a second run only reuses them.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

FONT = "Linux Libertine O"
LICENSES = (
    "GPL-3",
    "GPL-2",
    "LGPL-2.1",
    "LGPL-3",
    "Apache-2.0",
    "MPL-2.0",
    "MPL-1.1",
    "GFDL-1.3",
    "GFDL-1.2",
    "Artistic",
    "CC0-1.0",
    "GPL-1",
)
MAN_PAGES = (
    "bash",
    "find",
    "tar",
    "rsync",
    "ssh",
    "ssh_config",
    "sshd_config",
    "grep",
    "sed",
    "gawk",
    "less",
    "man",
    "git",
    "git-rebase",
    "git-commit",
    "git-log",
    "git-merge",
    "git-config",
    "git-push",
    "gpg",
    "curl",
    "wget",
    "make",
    "gzip",
    "xz",
    "dpkg",
    "apt-get",
    "apt",
    "systemd",
    "journalctl",
    "crontab",
    "top",
    "ps",
    "date",
    "ls",
    "cp",
    "chmod",
    "mount",
    "ld",
    "gdb",
    "perl",
    "perlintro",
    "python3",
    "soffice",
    "fc-match",
    "tesseract",
)
REQUIRED_COMMANDS = ("soffice", "man")


LIGATURES = {"ffi": "\ufb03", "ffl": "\ufb04", "ff": "\ufb00", "fi": "\ufb01", "fl": "\ufb02"}


@dataclass(frozen=True)
class Document:
    """A generated PDF and the text it was laid out from."""

    name: str
    producer: str
    """"libreoffice", "libreoffice-ligatures" (ligatures stored as U+FB0x), or "groff"."""
    pdf: Path
    source: Path


def _man(page: str, *options: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["man", *options, page],
        capture_output=True,
        check=False,
        # -P cat: one paragraph per line (nothing wraps at this width), plain ASCII quotes and
        # dashes, no overstrike; -Tpdf: groff's own layout.
        env={**os.environ, "MANWIDTH": "100000", "LC_ALL": "C", "MAN_KEEP_FORMATTING": ""},
    )


def sources(limit: int) -> list[tuple[str, str, str]]:
    """(name, producer, text) of up to `limit` prose documents found on this machine: the
    licences, then manual pages (alternately laid out by LibreOffice and by groff)."""
    found: list[tuple[str, str, str]] = []
    licences = [Path("/usr/share/common-licenses") / name for name in LICENSES]
    version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    licences.append(Path(sys.base_prefix) / "lib" / version / "LICENSE.txt")
    for path in licences:
        if path.is_file():
            found.append(
                (
                    f"license-{path.name.removesuffix('.txt')}",
                    "libreoffice",
                    path.read_text(encoding="utf-8", errors="replace"),
                )
            )
    groff = shutil.which("groff") is not None and _man("man", "-Tpdf").returncode == 0
    if shutil.which("man"):
        for page in MAN_PAGES:
            if len(found) >= limit:
                break
            result = _man(page, "-P", "cat")
            if result.returncode == 0 and len(result.stdout) > 5_000:
                producer = "groff" if groff and len(found) % 2 else "libreoffice"
                found.append((f"man-{page}", producer, result.stdout.decode("ascii", "replace")))
    for i, (name, producer, text) in enumerate(found):
        if producer == "libreoffice" and i % 3 == 2:
            found[i] = (name, "libreoffice-ligatures", text)
    return found[:limit]


def paragraphs(text: str) -> list[str]:
    """Paragraphs of a plain text: blank-line separated blocks, their lines joined, so that
    LibreOffice lays out (and hyphenates) them itself. Overstrike (man's bold) is removed."""
    text = re.sub(r".\x08", "", text)
    blocks = re.split(r"\n\s*\n", text)
    return [
        " ".join(line.strip() for line in block.splitlines() if line.strip())
        for block in blocks
        if block.strip()
    ]


def _style(paragraph: str) -> str:
    return "Heading" if len(paragraph) < 60 and paragraph.isupper() else "Body"


def fodt(text: str, page_width_cm: float = 21.0) -> str:
    """A Flat ODF text document of `text`'s paragraphs: A4 (or narrower), justified, hyphenated,
    English."""
    body = "\n".join(
        f'<text:p text:style-name="{_style(p)}">{escape(p)}</text:p>'
        for p in paragraphs(text)
    )
    english = 'fo:language="en" fo:country="US"'
    hyphenation = (
        'fo:hyphenate="true" fo:hyphenation-remain-char-count="2" fo:hyphenation-push-char-count="2" '
        'fo:hyphenation-ladder-count="no-limit"'
    )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<office:document xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0"
 xmlns:style="urn:oasis:names:tc:opendocument:xmlns:style:1.0"
 xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0"
 xmlns:fo="urn:oasis:names:tc:opendocument:xmlns:xsl-fo-compatible:1.0"
 xmlns:svg="urn:oasis:names:tc:opendocument:xmlns:svg-compatible:1.0"
 office:version="1.3" office:mimetype="application/vnd.oasis.opendocument.text">
<office:font-face-decls>
 <style:font-face style:name="{FONT}" svg:font-family="'{FONT}'" style:font-family-generic="roman"/>
</office:font-face-decls>
<office:styles>
 <style:default-style style:family="paragraph">
  <style:paragraph-properties fo:text-align="justify"/>
  <style:text-properties style:font-name="{FONT}" fo:font-size="11pt" {english} {hyphenation}/>
 </style:default-style>
 <style:style style:name="Body" style:family="paragraph">
  <style:paragraph-properties fo:text-align="justify" fo:margin-bottom="0.2cm"/>
  <style:text-properties style:font-name="{FONT}" fo:font-size="11pt" {english} {hyphenation}/>
 </style:style>
 <style:style style:name="Heading" style:family="paragraph">
  <style:paragraph-properties fo:margin-top="0.4cm" fo:margin-bottom="0.2cm"/>
  <style:text-properties style:font-name="{FONT}" fo:font-size="13pt" fo:font-weight="bold"/>
 </style:style>
</office:styles>
<office:automatic-styles>
 <style:page-layout style:name="Page">
  <style:page-layout-properties fo:page-width="{page_width_cm}cm" fo:page-height="29.7cm" fo:margin-top="2cm"
   fo:margin-bottom="2cm" fo:margin-left="2.5cm" fo:margin-right="2.5cm"/>
 </style:page-layout>
</office:automatic-styles>
<office:master-styles>
 <style:master-page style:name="Standard" style:page-layout-name="Page"/>
</office:master-styles>
<office:body><office:text>
{body}
</office:text></office:body>
</office:document>
"""


def missing_tools() -> list[str]:
    """What this machine lacks to make the documents (empty: nothing)."""
    missing = [command for command in REQUIRED_COMMANDS if shutil.which(command) is None]
    if not Path("/usr/share/hyphen/hyph_en_US.dic").exists():
        missing.append("hyphen-en-us (LibreOffice's English hyphenation patterns)")
    fonts = subprocess.run(["fc-list", ":", "family"], capture_output=True, text=True, check=False).stdout
    if FONT not in fonts:
        missing.append(f"fonts-linuxlibertine (the font {FONT})")
    return missing


def build(folder: Path, limit: int = 40) -> list[Document]:
    """Make (or reuse) up to `limit` PDFs in `folder`; returns them with their source texts."""
    missing = missing_tools()
    if missing:
        raise SystemExit("cannot make the LibreOffice documents; install: " + ", ".join(missing))
    folder.mkdir(parents=True, exist_ok=True)
    documents, todo = [], []
    for name, producer, text in sources(limit):
        source = folder / f"{name}.txt"
        pdf = folder / f"{name}.pdf"
        stale = not (pdf.exists() and source.exists() and source.read_text(encoding="utf-8") == text)
        if stale:
            source.write_text(text, encoding="utf-8")
            pdf.unlink(missing_ok=True)
            if producer == "groff":
                result = _man(name.removeprefix("man-"), "-Tpdf")
                if result.returncode == 0 and result.stdout.startswith(b"%PDF-"):
                    pdf.write_bytes(result.stdout)
            else:
                todo.append((name, producer, text))
        documents.append(Document(name, producer, pdf, source))
    if todo:
        with tempfile.TemporaryDirectory(prefix="textcorpus-") as scratch:
            inputs = []
            for name, producer, text in todo:
                path = Path(scratch) / f"{name}.fodt"
                if producer == "libreoffice-ligatures":
                    text = re.sub("ffi|ffl|ff|fi|fl", lambda m: LIGATURES[m.group(0)], text)
                path.write_text(fodt(text), encoding="utf-8")
                inputs.append(str(path))
            # A private profile: a user's running LibreOffice (or another run) must not interfere.
            profile = Path(scratch) / "profile"
            subprocess.run(
                [
                    "soffice",
                    f"-env:UserInstallation=file://{profile}",
                    "--headless",
                    "--convert-to",
                    "pdf",
                    "--outdir",
                    str(folder),
                    *inputs,
                ],
                check=True,
                capture_output=True,
                timeout=1800,
            )
    return [document for document in documents if document.pdf.exists()]


FIXTURE_TEXT = """\
Hyphenation in typesetting

Typesetting programs break long words at the end of a line so that justified paragraphs keep
even spacing. A reader hardly notices: the eye joins the pieces without effort, and the text
reads as continuous prose. A search engine, however, sees the fragments as separate words unless
its indexer reassembles them. Consider the extraordinarily common vocabulary of administrative
correspondence: responsibilities, notwithstanding, characteristically, internationalisation,
interoperability, incomprehensibility, acknowledgements, recommendations, and
telecommunications. Scientific writing adds electroencephalography, thermodynamically,
photosynthesis, spectrophotometer, and immunohistochemistry.

Compound words keep their own hyphens: a user-defined function, a well-documented
interface, state-of-the-art equipment, and case-insensitive matching must stay hyphenated
wherever the line happens to end.

Ligatures join letters such as f and i into one glyph. Some producers store that glyph as a
single character, so the stored text spells e\ufb03cient, o\ufb03ce, \ufb02uid, \ufb01nancial,
and e\ufb00ective, while the reader sees efficient, office, fluid, financial, and effective.
"""
"""The text of tests/data/hyphenated.pdf (written for this project; CC0): long words on a narrow
page, so LibreOffice hyphenates many of them, compounds, and ligatures stored as U+FB0x."""


def fixture(out: Path) -> None:
    """Write tests/data/hyphenated.pdf: FIXTURE_TEXT laid out by LibreOffice on a 9 cm page."""
    if missing_tools():
        raise SystemExit("cannot make the fixture; install: " + ", ".join(missing_tools()))
    with tempfile.TemporaryDirectory(prefix="textcorpus-") as scratch:
        path = Path(scratch) / f"{out.stem}.fodt"
        path.write_text(fodt(FIXTURE_TEXT, page_width_cm=9.0), encoding="utf-8")
        subprocess.run(
            [
                "soffice",
                f"-env:UserInstallation=file://{Path(scratch) / 'profile'}",
                "--headless",
                "--convert-to",
                "pdf",
                "--outdir",
                scratch,
                str(path),
            ],
            check=True,
            capture_output=True,
            timeout=300,
        )
        shutil.copyfile(Path(scratch) / f"{out.stem}.pdf", out)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    default = Path(tempfile.gettempdir()) / "sensorium-textcorpus"
    parser.add_argument("out", nargs="?", type=Path, default=default,
                        help="folder for the PDFs and their source texts (default: %(default)s)")
    parser.add_argument("documents", nargs="?", type=int, default=40, help="how many (default: %(default)s)")
    parser.add_argument("--fixture", type=Path, metavar="PDF",
                        help="instead, write the one-page test fixture (tests/data/hyphenated.pdf)")
    args = parser.parse_args()
    if args.fixture is not None:
        fixture(args.fixture)
        return
    for document in build(args.out, args.documents):
        print(document.producer, document.pdf)


if __name__ == "__main__":
    main()
