"""Line-break hyphens and ligatures on real layouts: sensorium.text against PyMuPDF's own flags.

The documents are bench/textcorpus.py's (LibreOffice and groff layouts of real prose, whose
source text is known) and any public PDFs in `--pdf-dir`. For every line of PyMuPDF's text that
ends in a word and a hyphen and is followed by a line starting with a word ("copy-" / "right"),
the source text says what the writer meant: "copyright" (a hyphenation: join) or "copy-right"
(a compound: keep the hyphen); breaks the source has both ways, or neither, are not counted.
Each way of deciding is scored against that:

- never joining (PyMuPDF's default text);
- always joining (PyMuPDF's TEXT_DEHYPHENATE flag);
- sensorium.text.normalize, with the page's own words as evidence (what the extractor does) and
  with the whole document's words (for comparison: the PDF workers see one page at a time).

Also counted, on every document: ligature characters (U+FB00-FB06) in PyMuPDF's text with
TEXT_PRESERVE_LIGATURES on (its default) and off, and after sensorium.text; and the time
normalisation adds to PyMuPDF's block extraction.

  .venv/bin/python bench/text_normalisation.py
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import harness  # bench/ is on sys.path when this file is run as a script
import pymupdf
import textcorpus

from sensorium.text import Vocabulary, fold, normalize


def corpus_pdfs() -> list[Path]:
    """The real-world corpus's PDF folder when it is there (tests/support/corpus.py knows where)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "support"))
    import corpus

    found = corpus.corpus_folder("pdf")
    return [found] if found is not None else []

_WORD = re.compile(r"[^\W\d_]+(?:-[^\W\d_]+)*")
_BREAK = re.compile(r"([^\W\d_]+)-[ \t]*\n[ \t]*([^\W\d_]+)")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=Path(tempfile.gettempdir()) / "sensorium-textcorpus")
    parser.add_argument("--documents", type=int, default=40)
    parser.add_argument("--pdf-dir", type=Path, action="append", default=None)
    return parser.parse_args()


def truth(source: str) -> tuple[set[str], set[tuple[str, str]]]:
    """The source's whole words and its hyphenated pairs, lower-cased."""
    tokens = [t.lower() for t in _WORD.findall(fold(source))]
    words = {t for t in tokens if "-" not in t}
    pairs = {pair for t in tokens for pair in zip(t.split("-"), t.split("-")[1:], strict=False)}
    return words, pairs


def decisions(pdf: Path, source: str, scores: Counter[str]) -> None:
    words, pairs = truth(source)
    with pymupdf.open(pdf) as doc:
        pages = [[fold(b[4]) for b in page.get_text("blocks") if b[6] == 0] for page in doc]
    document = Vocabulary(block for blocks in pages for block in blocks)
    for blocks in pages:
        page = Vocabulary(blocks)
        for block in blocks:
            for match in _BREAK.finditer(block):
                head, tail = match.group(1), match.group(2)
                joined, compound = (head + tail).lower() in words, (head.lower(), tail.lower()) in pairs
                if joined == compound:
                    scores["ambiguous"] += 1
                    continue
                want = "keep" if compound else "join"
                scores[f"{want}s"] += 1
                piece = f"{head}-\n{tail}"
                for name, vocabulary in (("page", page), ("document", document)):
                    kept = "-" in normalize(piece, vocabulary=vocabulary)
                    scores[f"{name} wrong"] += (want == "keep") != kept
                scores["never-join wrong"] += want == "join"
                scores["always-join wrong"] += want == "keep"


def ligatures_and_time(pdfs: list[Path], counts: Counter[str]) -> None:
    flags = pymupdf.TEXTFLAGS_TEXT
    for pdf in pdfs:
        try:
            doc = pymupdf.open(pdf)
            if doc.needs_pass:
                continue
        except (RuntimeError, ValueError, pymupdf.mupdf.FzErrorBase):
            continue
        with doc:
            for page in doc:
                started = time.perf_counter()
                blocks = [b[4] for b in page.get_text("blocks", flags=flags) if b[6] == 0]
                counts["extract_s"] += time.perf_counter() - started
                started = time.perf_counter()
                vocabulary = Vocabulary(blocks)
                normalized = [normalize(block, vocabulary=vocabulary) for block in blocks]
                counts["normalize_s"] += time.perf_counter() - started
                expanded = page.get_text(flags=flags & ~pymupdf.TEXT_PRESERVE_LIGATURES)
                counts["pages"] += 1
                counts["ligatures kept"] += sum(0xFB00 <= ord(c) <= 0xFB06 for block in blocks for c in block)
                counts["ligatures flag off"] += sum(0xFB00 <= ord(c) <= 0xFB06 for c in expanded)
                counts["ligatures normalised"] += sum(
                    0xFB00 <= ord(c) <= 0xFB06 for t in normalized for c in t
                )


def main() -> None:
    args = parse_args()
    documents = textcorpus.build(args.corpus, args.documents)
    scores: Counter[str] = Counter()
    for document in documents:
        decisions(document.pdf, document.source.read_text(encoding="utf-8"), scores)
    folders = args.pdf_dir if args.pdf_dir is not None else corpus_pdfs()
    public = [pdf for folder in folders for pdf in sorted(Path(folder).glob("*.pdf"))]
    counts: Counter[str] = Counter()
    ligatures_and_time([d.pdf for d in documents] + public, counts)

    print(harness.machine_markdown())
    print()
    print(f"Command: `{' '.join(sys.argv)}`")
    print()
    decided = scores["joins"] + scores["keeps"]
    print(
        f"{len(documents)} generated documents; {decided:,} line-end hyphens the source decides "
        f"({scores['joins']:,} hyphenations, {scores['keeps']:,} compounds; {scores['ambiguous']} ambiguous, "
        "not counted)."
    )
    print()
    print("| line-end hyphens | wrong | of |")
    print("|---|--:|--:|")
    for name, label in (
        ("never-join", "never joined (PyMuPDF's default)"),
        ("always-join", "always joined (PyMuPDF's TEXT_DEHYPHENATE)"),
        ("page", "sensorium.text, the page's words as evidence (the extractor)"),
        ("document", "sensorium.text, the document's words as evidence"),
    ):
        print(f"| {label} | {scores[f'{name} wrong']:,} | {decided:,} |")
    print()
    print(
        f"Ligature characters on {counts['pages']:,} pages ({len(documents)} generated documents and "
        f"{len(public)} public PDFs): {counts['ligatures kept']:,} in PyMuPDF's default text, "
        f"{counts['ligatures flag off']:,} with TEXT_PRESERVE_LIGATURES off, "
        f"{counts['ligatures normalised']:,} after sensorium.text."
    )
    print()
    print(
        f"Time: PyMuPDF's blocks {1000 * counts['extract_s'] / counts['pages']:.2f} ms a page, "
        f"normalising them {1000 * counts['normalize_s'] / counts['pages']:.2f} ms a page "
        f"(ratio {counts['normalize_s'] / counts['extract_s']:.2f})."
    )


if __name__ == "__main__":
    main()
