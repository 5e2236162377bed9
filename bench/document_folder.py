"""A realistic mixed folder of a person's files, and the document engine run over it.

    python bench/document_folder.py --out /tmp/folder [--per-type 6] [--workers 2] [--json out.json]
    python bench/document_folder.py --out /tmp/folder --index /tmp/index [--model local-dir:DIR]

Builds >= 150 files: every document format the engine reads (Word, PowerPoint, Excel and their
macro-enabled variants, OpenDocument, RTF, EPUB, HTML, Markdown, AsciiDoc, reStructuredText,
text in three encodings, CSV, TSV, WebVTT, SubRip, .eml with attachments, Outlook .msg, legacy
.doc/.xls/.ppt), each with different text, made by pandoc, LibreOffice, Python's email and
Aspose.Email FOSS (tests/support/docmaker.py), plus PDFs (PyMuPDF), photos (Pillow), speech
(espeak-ng) and the kinds of clutter real folders hold (a zip, a password-protected .docx, a
truncated .pptx, a binary file named .txt). Then it sniffs every file as the index job would
(PDF / media first, then documents), parses each document in the engine's worker pool, and
prints the table by type: files, parsed, reasons for the rest, sections, seconds.

With `--index DIR` it runs `sensorium index` over the folder instead, as a user would (every
kind: PDFs, photos and speech too; a mail's attachments as files of their own), and prints the
table by type from the index's files table: files, yielding rows, other outcomes with their
reasons, rows. The embedding model is `--model` (default ViT-B-32 with random weights: the
table does not depend on the weights).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import random
import sys
import tempfile
import time
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "support"))

import docmaker
from sensorium.document import engine, sniff
from sensorium.document.guards import Limits
from sensorium.document.pool import document_pool
from sensorium.errors import SensoriumError
from sensorium.index import sniff as media_sniff
from sensorium.workers import PoolLimits

WORDS = [
    "harbour",
    "tide",
    "anchor",
    "lighthouse",
    "trawler",
    "quay",
    "ledger",
    "cargo",
    "crane",
    "pilot",
    "gull",
    "mooring",
    "ferry",
    "buoy",
    "dredging",
    "manifest",
    "tonnage",
    "schooner",
    "breakwater",
    "estuary",
    "customs",
    "warehouse",
    "rope",
    "compass",
    "chart",
    "storm",
    "sail",
    "keel",
    "rudder",
    "galley",
    "deck",
    "mast",
    "beacon",
]


def sentence(rng: random.Random, n: int = 12) -> str:
    words = [rng.choice(WORDS) for _ in range(n)]
    return " ".join(words).capitalize() + "."


def markdown(rng: random.Random, index: int, *, slides: bool = False) -> str:
    title = f"Harbour file {index}: {rng.choice(WORDS)} and {rng.choice(WORDS)}"
    parts = [f'---\ntitle: "{title}"\nauthor: Clerk {index}\n---\n']
    for section in range(3 if slides else 4):
        parts.append(f"# Section {section + 1} {rng.choice(WORDS)}\n")
        if slides:
            parts.append("\n".join(f"- {sentence(rng, 6)}" for _ in range(3)) + "\n")
        else:
            parts.append("\n\n".join(sentence(rng, 20) for _ in range(3)) + "\n")
        if section == 1:
            parts.append(
                "| Ship | Tonnage | Port |\n|---|---|---|\n"
                + "\n".join(
                    f"| {rng.choice(WORDS).title()} | {rng.randint(100, 9000)} "
                    f"| {rng.choice(WORDS).title()} |"
                    for _ in range(4)
                )
                + "\n"
            )
        if section == 2 and index % 2 == 0:
            parts.append("![picture](picture.png)\n")
    return "\n".join(parts)


def fods(rng: random.Random, index: int) -> str:
    rows = [["Item", "Cost", "Quarter"]] + [
        [f"{rng.choice(WORDS)} {rng.choice(WORDS)}", str(rng.randint(10, 9000)), f"Q{rng.randint(1, 4)}"]
        for _ in range(40)
    ]
    body = "".join(
        "<table:table-row>"
        + "".join(
            f'<table:table-cell office:value-type="string"><text:p>{value}</text:p></table:table-cell>'
            for value in row
        )
        + "</table:table-row>"
        for row in rows
    )
    return (
        docmaker._fods()
        .replace("Harbour Budget", f"Ledger {index}")
        .replace(
            '<table:table table:name="Budget">',
            f'<table:table table:name="Ledger{index}">{body}</table:table><table:table table:name="Budget">',
            1,
        )
    )


def build(out: Path, per_type: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    work = out / "_work"
    work.mkdir(parents=True, exist_ok=True)
    (work / "picture.png").write_bytes(docmaker.png(96, 96, (20, 90, 160)))
    conversions: dict[str, list[Path]] = collections.defaultdict(list)
    for i in range(per_type):
        md = work / f"doc{i}.md"
        md.write_text(markdown(rng, i), encoding="utf-8")
        for fmt, ext in (
            ("docx", "docx"),
            ("odt", "odt"),
            ("epub", "epub"),
            ("html", "html"),
            ("rst", "rst"),
            ("asciidoc", "adoc"),
            ("markdown", "md"),
        ):
            extra = ["--self-contained"] if fmt == "html" else []
            docmaker._run(
                ["pandoc", md.name, "-s", "-t", fmt, "-o", str(out / f"notes-{i}.{ext}"), *extra], work
            )
        slides = work / f"deck{i}.md"
        slides.write_text(markdown(rng, i, slides=True), encoding="utf-8")
        docmaker._run(["pandoc", slides.name, "-s", "-o", str(out / f"deck-{i}.pptx")], work)
        sheet = work / f"ledger-{i}.fods"
        sheet.write_text(fods(rng, i), encoding="utf-8")
        for target in ("doc", "rtf", "docm:MS Word 2007 XML VBA"):
            conversions[target].append(out / f"notes-{i}.docx")
        for target in ("odp", "ppt", "pptm:Impress MS PowerPoint 2007 XML VBA"):
            conversions[target].append(out / f"deck-{i}.pptx")
        for target in ("xlsx", "ods", "xls", "xlsm:Calc MS Excel 2007 VBA XML"):
            conversions[target].append(sheet)
        _text_files(out, rng, i)
        _mail(out, rng, i)
    for target, sources in conversions.items():
        docmaker.soffice_convert(sources, target, out)
    _media(out, rng)
    _clutter(out)
    for leftover in work.iterdir():
        leftover.unlink()
    work.rmdir()


def _text_files(out: Path, rng: random.Random, i: int) -> None:
    text = "\n\n".join(sentence(rng, 16) for _ in range(8))
    (out / f"memo-{i}.txt").write_text(text, encoding="utf-8")
    (out / f"lettre-{i}.txt").write_bytes(
        f"Café du port {i}: la façade était fermée à Noël.\n{text}\n".encode("cp1252")
    )
    (out / f"windows-{i}.txt").write_bytes(f"Ωmega log {i}\n{text}\n".encode("utf-16"))
    rows = "\n".join(f"{rng.choice(WORDS)},{rng.randint(1, 999)},{rng.choice(WORDS)}" for _ in range(30))
    (out / f"table-{i}.csv").write_text(f"name,count,place\n{rows}\n", encoding="utf-8")
    (out / f"table-{i}.tsv").write_text(
        f"name\tcount\tplace\n{rows.replace(',', chr(9))}\n", encoding="utf-8"
    )
    cues = [(5 * n, 5 * n + 4, sentence(rng, 7)) for n in range(12)]
    vtt = "WEBVTT\n\n" + "\n".join(f"00:00:{a:02d}.000 --> 00:00:{b:02d}.500\n{t}\n" for a, b, t in cues)
    srt = "\n".join(
        f"{n + 1}\n00:00:{a:02d},000 --> 00:00:{b:02d},500\n{t}\n" for n, (a, b, t) in enumerate(cues)
    )
    (out / f"talk-{i}.vtt").write_text(vtt, encoding="utf-8")
    (out / f"talk-{i}.srt").write_text(srt, encoding="utf-8")


def _mail(out: Path, rng: random.Random, i: int) -> None:
    import email.policy

    attachments = [(f"minutes-{i}.txt", "text/plain", sentence(rng, 30).encode())]
    if i % 2 == 0:
        attachments.append(
            (
                f"notes-{i}.docx",
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                (out / f"notes-{i}.docx").read_bytes(),
            )
        )
    inner = docmaker.mail_message(f"Forwarded {i}", sentence(rng, 12)) if i % 3 == 0 else None
    message = docmaker.mail_message(
        f"Harbour mail {i}: {rng.choice(WORDS)}", sentence(rng, 40), attachments, inner
    )
    (out / f"mail-{i}.eml").write_bytes(message.as_bytes(policy=email.policy.default))
    from aspose.email_foss.msg import MapiMessage

    msg = MapiMessage.create(f"Outlook note {i}: {rng.choice(WORDS)}", sentence(rng, 40))
    msg.add_attachment(f"roster-{i}.txt", sentence(rng, 10).encode(), mime_type="text/plain")
    msg.save(out / f"outlook-{i}.msg")


def _media(out: Path, rng: random.Random) -> None:
    import pymupdf
    from PIL import Image

    for i in range(5):
        doc = pymupdf.open()
        for _page in range(3):
            doc.new_page().insert_textbox(pymupdf.Rect(36, 36, 560, 800), sentence(rng, 60), fontsize=9)
        doc.save(out / f"scan-{i}.pdf")
        Image.new("RGB", (320, 240), (rng.randrange(256), 120, 60)).save(out / f"photo-{i}.jpg", quality=85)
    espeak = docmaker.shutil.which("espeak-ng")
    if espeak:
        for i in range(3):
            docmaker.subprocess.run(
                [espeak, "-w", str(out / f"voice-{i}.wav"), sentence(rng, 10)], check=True
            )


def _clutter(out: Path) -> None:
    with zipfile.ZipFile(out / "archive.zip", "w") as archive:
        archive.writestr("readme.txt", "zipped")
    docmaker.encrypted_docx(out / "notes-0.docx", out / "locked.docx")
    docmaker.truncated(out / "deck-0.pptx", out / "broken.pptx")
    docmaker.binary_txt(out / "data.txt")


def label(path: Path) -> str:
    return path.suffix.lower().lstrip(".") or "(none)"


async def run(files: list[tuple[Path, bytes]], workers: int) -> list[dict[str, object]]:
    """Sniff and parse `files` (path, head bytes) as the index job would."""
    pool = document_pool(
        PoolLimits(timeout_seconds=120, memory_mb=2048, recycle_after=200, max_pending=64), workers=workers
    )
    await pool.warm_up()
    results: list[dict[str, object]] = []
    semaphore = asyncio.Semaphore(workers)  # no queueing inside the pool: times are per file

    async def one(path: Path, head: bytes) -> None:
        row: dict[str, object] = {"file": path.name, "type": label(path)}
        media = media_sniff.sniff(head)
        if media.kind is not None:
            row.update(kind=str(media.kind), outcome="other engine")
            results.append(row)
            return
        verdict = sniff.sniff(head, path)
        if verdict.kind is None:
            row.update(
                kind="",
                outcome=f"skipped {verdict.reason.name if verdict.reason else ''}",
                message=verdict.message,
            )
            results.append(row)
            return
        async with semaphore:
            started = time.perf_counter()
            try:
                document = await pool.run(engine.parse, str(path), verdict.kind, Limits(), name=path.name)
            except SensoriumError as error:
                row.update(
                    kind=verdict.kind.value, outcome=f"error {error.reason.name}", message=error.message
                )
            else:
                row.update(
                    kind=verdict.kind.value,
                    outcome="parsed",
                    sections=len(document.sections),
                    pictures=len(document.pictures),
                    attachments=len(document.attachments),
                    chars=sum(len(s.text) for s in document.sections),
                )
        row["seconds"] = round(time.perf_counter() - started, 4)
        results.append(row)

    try:
        await asyncio.gather(*(one(path, head) for path, head in files))
    finally:
        await pool.close()
    return results


def table(results: list[dict[str, object]]) -> str:
    by_type: dict[str, list[dict[str, object]]] = collections.defaultdict(list)
    for row in results:
        by_type[str(row["type"])].append(row)
    lines = [
        "| type | files | parsed | other outcomes | sections | s/file (median) |",
        "|---|---|---|---|---|---|",
    ]
    for kind in sorted(by_type):
        rows = by_type[kind]
        parsed = [r for r in rows if r["outcome"] == "parsed"]
        others = collections.Counter(str(r["outcome"]) for r in rows if r["outcome"] != "parsed")
        times = sorted(float(r.get("seconds", 0.0)) for r in parsed)  # type: ignore[arg-type]
        median = times[len(times) // 2] if times else 0.0
        sections = sum(int(r.get("sections", 0)) for r in parsed)  # type: ignore[call-overload]
        other = ", ".join(f"{name} x{count}" for name, count in sorted(others.items())) or "-"
        lines.append(f"| {kind} | {len(rows)} | {len(parsed)} | {other} | {sections} | {median:.3f} |")
    total = len(results)
    yielded = sum(1 for r in results if r["outcome"] in ("parsed", "other engine"))
    lines.append(f"| **all** | {total} | {yielded} ({100 * yielded / total:.0f} % yield rows) | | | |")
    return "\n".join(lines)


def index_table(folder: Path, index_dir: Path, model: str, pretrained: str) -> tuple[str, list[str]]:
    """`sensorium index` over `folder` into `index_dir`; the table by type, and the lines of the
    files that yield no rows with their reasons."""
    import os
    import subprocess

    from sensorium.index.reader import IndexReader

    env = {key: value for key, value in os.environ.items() if not key.startswith("SENSORIUM_")}
    env.update(SENSORIUM_EMBEDDING__MODEL=model, SENSORIUM_EMBEDDING__PRETRAINED=pretrained,
               SENSORIUM_DEVICE="cpu", SENSORIUM_TRANSCRIPTION__MODEL="packaged:tiny.en",
               SENSORIUM_LOG_LEVEL="WARNING")
    env.setdefault("SENSORIUM_MODEL_DIR", str(index_dir.parent / "models"))
    command = [sys.executable, "-m", "sensorium.cli", "index", str(folder), "--out", str(index_dir), "--json"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"sensorium index failed ({done.returncode}):\n{done.stderr[-3000:]}")
    by_type: dict[str, list[dict[str, object]]] = collections.defaultdict(list)
    notes: list[str] = []
    for entry in IndexReader(index_dir).files().to_pylist():
        path = str(entry["path"])
        inner = "!/" in path
        kind = "(attachments)" if inner else label(Path(path))
        by_type[kind].append(entry)
        if entry["status"] in ("skipped", "error"):
            notes.append(f"- {path.removeprefix(str(folder) + '/')}: {entry['status']} {entry['reason']}: "
                         f"{entry['message']}")
    lines = ["| type | files | yield rows | other outcomes | rows |", "|---|--:|--:|---|--:|"]
    listed = yielded = 0
    for kind in sorted(by_type, key=lambda k: (k == "(attachments)", k)):
        entries = by_type[kind]
        good = [e for e in entries if e["status"] in ("indexed", "duplicate")]
        others = collections.Counter(f"{e['status']} {e['reason']}" for e in entries
                                     if e["status"] not in ("indexed", "duplicate"))
        other = ", ".join(f"{name} x{count}" for name, count in sorted(others.items())) or "-"
        rows = sum(int(e["rows"] or 0) for e in good)  # type: ignore[call-overload]
        lines.append(f"| {kind} | {len(entries)} | {len(good)} | {other} | {rows} |")
        if kind != "(attachments)":
            listed += len(entries)
            yielded += len(good)
    share = 100 * yielded / listed
    lines.append(f"| **all files in the folder** | {listed} | {yielded} ({share:.1f} %) | | |")
    return "\n".join(lines), notes


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, help="folder to build (default: a temporary one)")
    parser.add_argument("--per-type", type=int, default=6)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--reuse", action="store_true", help="run over --out as it is, without building")
    parser.add_argument("--index", type=Path, metavar="DIR",
                        help="run `sensorium index` over the folder into DIR and print its table by type")
    parser.add_argument("--model", default="ViT-B-32", help="SENSORIUM_EMBEDDING__MODEL with --index")
    parser.add_argument("--pretrained", default="", help='SENSORIUM_EMBEDDING__PRETRAINED ("" = random)')
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="sensorium-folder-"))
    if not args.reuse:
        started = time.perf_counter()
        build(out, args.per_type)
        print(
            f"built {sum(1 for _ in out.iterdir())} files in {out} in {time.perf_counter() - started:.0f} s",
            file=sys.stderr,
        )
    if args.index is not None:
        started = time.perf_counter()
        text, notes = index_table(out, args.index, args.model, args.pretrained)
        print(text)
        print(f"\nsensorium index: {time.perf_counter() - started:.0f} s (models loaded included)")
        print("\n".join(notes))
        return
    started = time.perf_counter()
    files = [
        (path, path.read_bytes()[: sniff.HEAD_BYTES]) for path in sorted(out.iterdir()) if path.is_file()
    ]
    results = asyncio.run(run(files, args.workers))
    print(table(results))
    print(
        f"\nengine wall time: {time.perf_counter() - started:.1f} s for {len(results)} files "
        f"({args.workers} workers)"
    )
    for row in results:
        if str(row["outcome"]).startswith(("error", "skipped")):
            print(f"- {row['file']}: {row['outcome']}: {row.get('message', '')}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
