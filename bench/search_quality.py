"""Known-item search quality: is the right page in the top 10 for three words a person remembers?

The documents: long real English prose laid out as PDFs by LibreOffice and groff (hyphenated,
justified, some with ligatures stored as U+FB0x characters; bench/textcorpus.py), plus any
public PDFs in `--pdf-dir` (default: the real-world corpus's PDFs when it is there).

The ground truth comes from an independent extractor, poppler's `pdftotext` (not MuPDF): for
sampled pages of each document, a query is three distinct words of that page as pdftotext reads
it, each at least 5 letters long, not among the 10 % most widespread words of the collection
(a person remembers a page by its particular words), and, where the document's source text is
known, a word of that text (so no extraction artefact is asked for). The yardstick is plain BM25
(rank_bm25's Okapi BM25) over pdftotext's whole pages, lower-cased words, nothing else.

Measured, all in one run on the same queries:

- **before**: today's index: the text layer as stored (ligatures, line-end hyphens), cut into
  CLIP-sized chunks (77 tokens, 10 overlapping) that full-text search ranks one by one
  (`SearchStore.search`, raw rows, as `sensorium search --mode text` shows them). A hit is a row
  on the right page among the 10 best.
- **after**: text normalised where it is extracted (sensorium.text), full-text search over
  whole pages (passages) with stemming and accent folding, one result per file
  (`SearchStore.search_files`). A hit: the right page among the places (up to 3) of the 10 best
  files; also given: the right page as a result's best place, the right file in the top 10.
- the two changes apart, from the same two indexes: **pages only** (whole pages as stored,
  per file) and **normalisation only** (normalised text, still ranked chunk by chunk).
- **hybrid** (`--hybrid`): the same over both rankings fused, vectors from `--model` with random
  weights (the tests' model; its vector half is noise, so this only shows that fusion does not
  hide what the text finds; fusion is not tuned to it).

The indexes are written the way the index job writes them (PDF extractor, chunking with the
model's tokenizer, IndexWriter with passages, update_store), in this process: the job itself
does not write passages yet. Extraction time with and without normalisation is reported too.

  .venv/bin/python bench/search_quality.py                      # 40 documents, 8 pages each
  .venv/bin/python bench/search_quality.py --documents 6 --pages-per-document 4   # seconds
  .venv/bin/python bench/search_quality.py --hybrid             # + ViT-B-32 random weights
"""

from __future__ import annotations

import argparse
import hashlib
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import harness  # bench/ is on sys.path when this file is run as a script
import numpy as np
import textcorpus

from sensorium.errors import SensoriumError
from sensorium.index.chunking import chunk_page
from sensorium.index.layout import EmbeddingSpace, Manifest, Shard
from sensorium.index.search import SearchStore
from sensorium.index.store import update_store
from sensorium.index.writer import FileStat, IndexWriter, Passage, Row
from sensorium.pdf.api import ExtractOptions, PageResult
from sensorium.pdf.extractor import Limits, extract_page, open_document

CONTEXT = 77
OVERLAP = 10
DIMENSION = 512


def extracted(pdf: Path, options: ExtractOptions) -> list[PageResult]:
    """Every page of `pdf` as the PDF service's workers extract it (no OCR)."""
    limits = Limits(ocr_enabled=False)
    with open_document(pdf, max_pages=limits.max_pages) as document:
        return [extract_page(document, index, options, limits)[0] for index in range(document.page_count)]


def corpus_pdfs() -> list[Path]:
    """The real-world corpus's PDF folder when it is there (tests/support/corpus.py knows where)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "support"))
    import corpus

    found = corpus.corpus_folder("pdf")
    return [found] if found is not None else []

_WORD = re.compile(r"[a-z0-9]+")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--corpus",
        type=Path,
        default=Path(tempfile.gettempdir()) / "sensorium-textcorpus",
        help="folder of the generated PDFs, reused between runs (default: %(default)s)",
    )
    parser.add_argument(
        "--documents", type=int, default=40, help="generated documents (default: %(default)s)"
    )
    parser.add_argument(
        "--pdf-dir",
        type=Path,
        action="append",
        default=None,
        help="also these public PDFs (default: the real-world corpus's PDFs when present, CORPUS_DIR)",
    )
    parser.add_argument("--pages-per-document", type=int, default=8, help="queries per document, at most")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hybrid", action="store_true", help="also hybrid mode, vectors from --model")
    parser.add_argument("--model", default="ViT-B-32", help="open_clip model, random weights (--hybrid)")
    parser.add_argument("--json", type=Path, default=None, metavar="OUT.json")
    return parser.parse_args()


@dataclass
class Doc:
    name: str
    producer: str
    pdf: Path
    source_words: frozenset[str] | None
    raw: list[PageResult] = field(default_factory=list)
    normalized: list[PageResult] = field(default_factory=list)
    truth: list[str] = field(default_factory=list)
    """pdftotext's text of each page."""


@dataclass(frozen=True)
class KnownItem:
    doc: int
    page: int
    """1-based."""
    words: tuple[str, str, str]

    @property
    def text(self) -> str:
        return " ".join(self.words)


class Tokens:
    """CLIP's BPE token count, as the index job's chunking uses it (start and end included)."""

    def __init__(self) -> None:
        from open_clip.tokenizer import SimpleTokenizer

        self.tokenizer = SimpleTokenizer()

    def __call__(self, text: str) -> int:
        return len(self.tokenizer.encode(text)) + 2


def documents(args: argparse.Namespace) -> list[Doc]:
    docs = [
        Doc(
            d.name,
            d.producer,
            d.pdf,
            frozenset(w.lower() for w in re.findall(r"[A-Za-z]+", d.source.read_text(encoding="utf-8"))),
        )
        for d in textcorpus.build(args.corpus, args.documents)
    ]
    folders = args.pdf_dir if args.pdf_dir is not None else corpus_pdfs()
    for folder in folders:
        docs += [Doc(pdf.stem, "public", pdf, None) for pdf in sorted(Path(folder).glob("*.pdf"))]
    return docs


def extract(docs: list[Doc]) -> dict[str, float]:
    """Both extractions of every document; the seconds each took in all. Documents that cannot
    be extracted (encrypted, broken) are dropped."""
    seconds = {"raw": 0.0, "normalized": 0.0}
    kept = []
    for doc in docs:
        try:
            for label, normalize in (("raw", False), ("normalized", True)):
                started = time.perf_counter()
                pages = extracted(doc.pdf, ExtractOptions(include_blocks=True, normalize=normalize))
                seconds[label] += time.perf_counter() - started
                setattr(doc, label, pages)
        except SensoriumError:
            continue
        text = subprocess.run(
            ["pdftotext", "-enc", "UTF-8", str(doc.pdf), "-"], capture_output=True, check=False
        ).stdout.decode("utf-8", "replace")
        doc.truth = text.split("\f")[: len(doc.raw)]
        if len(doc.truth) == len(doc.raw) and any(page.strip() for page in doc.truth):
            kept.append(doc)
    docs[:] = kept
    return seconds


def known_items(docs: list[Doc], per_document: int, seed: int) -> list[KnownItem]:
    rng = np.random.default_rng(seed)
    page_words = [[set(re.findall(r"[a-z]+", page.lower())) for page in doc.truth] for doc in docs]
    spread = Counter(word for pages in page_words for words in pages for word in words)
    total_pages = sum(len(pages) for pages in page_words)
    common = {word for word, n in spread.items() if n > 0.1 * total_pages}
    items = []
    for d, doc in enumerate(docs):
        candidates = []
        for p, words in enumerate(page_words[d]):
            usable = sorted(
                w
                for w in words
                if len(w) >= 5 and w not in common and (doc.source_words is None or w in doc.source_words)
            )
            if len(usable) >= 3:
                candidates.append((p, usable))
        chosen = rng.permutation(len(candidates))[:per_document]
        for c in sorted(chosen):
            page, usable = candidates[c]
            words = rng.choice(usable, size=3, replace=False)
            items.append(KnownItem(d, page + 1, (str(words[0]), str(words[1]), str(words[2]))))
    return items


def yardstick(docs: list[Doc], items: list[KnownItem]) -> list[int | None]:
    """The rank (1-based) of the right page under plain BM25 over pdftotext's pages."""
    from rank_bm25 import BM25Okapi

    pages = [(d, p + 1) for d, doc in enumerate(docs) for p in range(len(doc.truth))]
    corpus = [_WORD.findall(docs[d].truth[p - 1].lower()) for d, p in pages]
    bm25 = BM25Okapi(corpus)
    ranks: list[int | None] = []
    for item in items:
        scores = bm25.get_scores(_WORD.findall(item.text))
        order = np.argsort(-scores, kind="stable")[:10]
        found = [i for i, index in enumerate(order) if pages[index] == (item.doc, item.page)]
        ranks.append(found[0] + 1 if found else None)
    return ranks


class Embedder:
    """Texts embedded by an open_clip model with random weights (fixed seed)."""

    def __init__(self, model: str) -> None:
        import open_clip
        import torch

        torch.manual_seed(0)
        self.torch = torch
        self.model = open_clip.create_model(model, pretrained=None).eval()
        self.tokenizer = open_clip.get_tokenizer(model)

    def __call__(self, texts: list[str]) -> np.ndarray:
        out = []
        with self.torch.no_grad():
            for start in range(0, len(texts), 64):
                vectors = self.model.encode_text(self.tokenizer(texts[start : start + 64])).float()
                out.append(self.torch.nn.functional.normalize(vectors, dim=-1).numpy())
        return np.concatenate(out) if out else np.zeros((0, DIMENSION), np.float32)


def random_vectors(texts: list[str]) -> np.ndarray:
    rng = np.random.default_rng(len(texts))
    vectors = rng.standard_normal((len(texts), DIMENSION)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def build_index(out: Path, docs: list[Doc], *, after: bool, tokens: Tokens, embed: Any) -> dict[str, float]:
    """Index `docs` as the job would: a passage per page and rows that name it; before = the
    text as stored, after = normalised. (Today's job writes no passages: "before" is measured
    on the rows alone, as today's search ranks them.)"""
    dimension = DIMENSION
    manifest = Manifest(EmbeddingSpace("bench", "random", "0" * 64, dimension), {"bench": "search_quality"})
    started = time.perf_counter()
    with IndexWriter(out, Shard(), manifest) as writer:
        for doc in docs:
            pages = doc.normalized if after else doc.raw
            stat = FileStat(str(doc.pdf), doc.pdf.stat().st_size, doc.pdf.stat().st_mtime_ns)
            work = writer.begin(stat, hashlib.sha256(doc.pdf.read_bytes()).hexdigest(), "pdf")
            if work is None:
                continue
            for page in pages:
                page_text = Passage("pdf_text", page.text, page=page.page_number)
                (passage,) = writer.add_passages(work, [page_text])
                chunks = chunk_page(
                    page.page_number,
                    page.blocks,
                    text=page.text,
                    count_tokens=tokens,
                    context_length=CONTEXT,
                    overlap_tokens=OVERLAP,
                )
                vectors = embed([c.text for c in chunks]) if chunks else []
                writer.add_rows(
                    work,
                    [
                        Row("pdf_text", v, text=c.text, page=c.page, bbox=c.bbox, passage=passage)
                        for c, v in zip(chunks, vectors, strict=True)
                    ],
                )
            writer.finish(work)
    written = time.perf_counter() - started
    started = time.perf_counter()
    stats = update_store(out)
    return {
        "index_s": written,
        "store_s": time.perf_counter() - started,
        "rows": stats.rows,
        "passages": stats.passages,
    }


def evaluate(
    store: SearchStore, docs: list[Doc], items: list[KnownItem], mode: str, embed: Any = None
) -> dict[str, Any]:
    """Ranks of the right page (None: not in the top 10) the way each path shows results."""
    path_of = {str(doc.pdf): d for d, doc in enumerate(docs)}
    page_ranks: list[int | None] = []
    best_place: list[bool] = []
    file_found: list[bool] = []
    latencies = []
    for item in items:
        target = (item.doc, item.page)
        vector = embed([item.text])[0] if embed is not None else None
        started = time.perf_counter()
        if mode == "before":
            hits = store.search(query_text=item.text, mode="text", k=10)
            latencies.append(time.perf_counter() - started)
            found = [i for i, hit in enumerate(hits) if (path_of[hit.path], hit.page) == target]
            page_ranks.append(found[0] + 1 if found else None)
            best_place.append(False)  # raw rows have no per-file best place
            file_found.append(any(path_of[hit.path] == item.doc for hit in hits))
            continue
        results = store.search_files(query_text=item.text, query_vector=vector, mode=mode, k=10)  # type: ignore[arg-type]
        latencies.append(time.perf_counter() - started)
        rank = None
        for i, result in enumerate(results):
            if path_of[result.path] == item.doc or any(path_of.get(p) == item.doc for p in result.files):
                file_found.append(True)
                if item.page in [place.page for place in result.places]:
                    rank = i + 1
                best_place.append(result.page == item.page)
                break
        else:
            file_found.append(False)
            best_place.append(False)
        page_ranks.append(rank)
    latencies.sort()
    return {
        "top10": sum(r is not None for r in page_ranks) / len(items),
        "top1": sum(r == 1 for r in page_ranks) / len(items),
        "best_place": sum(best_place) / len(items),
        "file_top10": sum(file_found) / len(items),
        "p50_ms": 1000 * harness.percentile(latencies, 50),
        "misses": [items[i].text for i, r in enumerate(page_ranks) if r is None],
    }


def why_missed(docs: list[Doc], items: list[KnownItem], misses: list[str]) -> dict[str, int]:
    """Why the before's misses were missed: a query word the stored page text does not hold as
    written (a broken word, a ligature), or every word on the page but spread over chunks."""
    missed = set(misses)
    reasons: Counter[str] = Counter()
    for item in items:
        if item.text not in missed:
            continue
        stored = set(re.findall(r"[a-z]+", docs[item.doc].raw[item.page - 1].text.lower()))
        reasons["a word not held as written" if set(item.words) - stored else "words spread over chunks"] += 1
    return dict(reasons)


def describe(docs: list[Doc]) -> dict[str, Any]:
    def count(pages: list[PageResult]) -> Counter[str]:
        text = "\n".join(page.text for page in pages)
        return Counter(
            {
                "pages": len(pages),
                "words": len(text.split()),
                "line_end_hyphens": len(re.findall(r"[^\W\d_]-\n[^\W\d_]", text)),
                "ligatures": sum(0xFB00 <= ord(c) <= 0xFB06 for c in text),
            }
        )

    raw, normalized = Counter[str](), Counter[str]()
    for doc in docs:
        raw.update(count(doc.raw))
        normalized.update(count(doc.normalized))
    producers = Counter(doc.producer for doc in docs)
    return {
        "documents": len(docs),
        "producers": dict(producers),
        "raw": dict(raw),
        "normalized": dict(normalized),
    }


def main() -> None:
    args = parse_args()
    say = harness.log
    if shutil.which("pdftotext") is None:
        raise SystemExit("pdftotext (poppler-utils) is the independent extractor: install poppler-utils")
    say("documents")
    docs = documents(args)
    seconds = extract(docs)
    corpus = describe(docs)
    items = known_items(docs, args.pages_per_document, args.seed)
    say(f"{len(docs)} documents, {corpus['raw']['pages']} pages, {len(items)} known-item queries")
    tokens = Tokens()
    embed = Embedder(args.model) if args.hybrid else None
    results: dict[str, Any] = {}
    ranks = yardstick(docs, items)
    results["yardstick"] = {
        "top10": sum(r is not None for r in ranks) / len(items),
        "top1": sum(r == 1 for r in ranks) / len(items),
    }
    builds = {}
    with tempfile.TemporaryDirectory(prefix="sensorium-quality-") as scratch:
        for label, after in (("before", False), ("after", True)):
            say(f"indexing ({label})")
            out = Path(scratch) / label
            builds[label] = build_index(
                out,
                docs,
                after=after,
                tokens=tokens,
                embed=embed if (after and embed is not None) else random_vectors,
            )
            store = SearchStore(out, refresh=False)
            say(f"searching ({label})")
            if after:
                results["after"] = evaluate(store, docs, items, "text")
                results["normalised_chunks"] = evaluate(store, docs, items, "before")
                if embed is not None:
                    results["hybrid"] = evaluate(store, docs, items, "hybrid", embed)
            else:
                results["before"] = evaluate(store, docs, items, "before")
                results["pages_as_stored"] = evaluate(store, docs, items, "text")

    print(harness.machine_markdown())
    print()
    print(f"Command: `{' '.join(sys.argv)}`")
    print()
    raw, norm = corpus["raw"], corpus["normalized"]
    producers = ", ".join(f"{n} {p}" for p, n in sorted(corpus["producers"].items()))
    print(
        f"{corpus['documents']} documents ({producers}), {raw['pages']} pages, {raw['words']:,} words; "
        f"{len(items)} known-item queries (3 words of one page, ground truth from pdftotext)."
    )
    print(
        f"Text layer as stored: {raw['line_end_hyphens']:,} line-end hyphens, {raw['ligatures']:,} ligature "
        f"characters; normalised: {norm['line_end_hyphens']:,} and {norm['ligatures']:,}. Extraction of all "
        f"pages: {seconds['raw']:.1f} s as stored, {seconds['normalized']:.1f} s normalised."
    )
    print()
    print(
        "| search | right page in top 10 | right page first | right page = best place | right file in top 10 "
        "| p50 ms |"
    )
    print("|---|--:|--:|--:|--:|--:|")
    y = results["yardstick"]
    print(
        f"| yardstick: BM25 over pdftotext's pages | {100 * y['top10']:.1f} % | {100 * y['top1']:.1f} % "
        "| | | |"
    )
    labels = {
        "before": "before: BM25 over chunks, text as stored (raw rows)",
        "pages_as_stored": "pages only: pages as stored, stemmed, per file",
        "normalised_chunks": "normalisation only: BM25 over chunks, normalised (raw rows)",
        "after": "after: pages, normalised, stemmed, per file (text)",
        "hybrid": f"after, hybrid ({args.model}, random weights)",
    }
    for name, label in labels.items():
        if name in results:
            r = results[name]
            best = "" if name in ("before", "normalised_chunks") else f"{100 * r['best_place']:.1f} %"
            print(
                f"| {label} | {100 * r['top10']:.1f} % | {100 * r['top1']:.1f} % | "
                f"{best} | {100 * r['file_top10']:.1f} % | {r['p50_ms']:.1f} |"
            )
    print()
    for name in ("before", "after"):
        print(
            f"{name}: index {builds[name]['index_s']:.1f} s, store {builds[name]['store_s']:.1f} s, "
            f"{builds[name]['rows']:,} rows, {builds[name]['passages']:,} passages; "
            f"misses (first 20): {results[name]['misses'][:20]}"
        )
    print()
    print(f"Why the before missed: {why_missed(docs, items, results['before']['misses'])}")
    if args.json:
        harness.write_json(
            args.json,
            [],
            command=" ".join(sys.argv),
            extra={
                "corpus": corpus,
                "queries": len(items),
                "results": results,
                "builds": builds,
                "extraction_s": seconds,
            },
        )


if __name__ == "__main__":
    main()
