"""How an image's recognised text should become index rows: one row per line, one per chunk of
consecutive lines that fits CLIP's 77 tokens (what the index job does), or one per image.

The same generated screenshots are read once by the OCR engine (RapidOCR, as the media service
runs it); the lines are then cut into rows three ways, each written to an index of its own
(the project's IndexWriter) and searched with the project's search store in text mode (BM25):

- phrase in a line: three consecutive words of one line, a phrase found on no other image;
- phrase across lines: the last two words of a line and the first two of the next;
- rank: the position of the first row of the right image; rank-1 rate and mean reciprocal rank.

And what each way costs: rows per image (each is one CLIP text embedding; the CPU time of the
ViT-B-32 text tower on those rows is measured, random weights: the cost does not depend on
them), and whether a row's text fits the model (a per-image row longer than 77 tokens is
embedded truncated: its vector never sees the rest).

    .venv/bin/python bench/image_text_rows.py            # 40 screenshots (~2 min of OCR)
    .venv/bin/python bench/image_text_rows.py --quick    # 8, to prove it runs
"""

from __future__ import annotations

import argparse
import hashlib
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "support"))  # the fixtures the tests use

import mediakit  # noqa: E402
from sensorium.index.chunking import chunk_page  # noqa: E402
from sensorium.index.layout import EmbeddingSpace, Manifest, Row, Shard  # noqa: E402
from sensorium.index.search import SearchStore  # noqa: E402
from sensorium.index.writer import FileStat, IndexWriter  # noqa: E402
from sensorium.media.api import TextLine  # noqa: E402
from sensorium.media.text import TextOptions, TextReader  # noqa: E402

DIMENSION = 8
MANIFEST = Manifest(EmbeddingSpace("bench", "", "00" * 32, DIMENSION), {})
CONTEXT = 77

SUBJECTS = ["invoice", "payment", "server", "database", "meeting", "order", "account", "backup",
            "printer", "report", "client", "release", "shipment", "ticket", "contract", "budget"]
VERBS = ["failed", "scheduled", "updated", "moved", "approved", "delayed", "synced", "archived",
         "rejected", "renewed"]
DETAILS = ["for Friday", "in room 301", "at 3 pm", "by the finance team", "after the upgrade",
           "on the staging cluster", "before the weekend", "with error code 42", "until further notice",
           "for the Berlin office", "in the shared folder", "by customer support"]


def sentence(rng: random.Random) -> str:
    return (f"The {rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(DETAILS)} "
            f"{rng.choice(['ref', 'no', 'id', 'case'])} {rng.randint(100, 9999)}")


def corpus(count: int, seed: int = 7) -> list[mediakit.TextImage]:
    """Screenshots of 5-8 lines (every tenth a 24-line terminal), fonts and modes varied; lines
    share their vocabulary, as interface text does, and each holds a number."""
    rng = random.Random(seed)
    fonts = ["DejaVuSans.ttf", "DejaVuSansMono.ttf", "DejaVuSerif.ttf", "DejaVuSansCondensed.ttf"]
    shots = []
    for index in range(count):
        long = index % 10 == 9
        lines = [sentence(rng) for _ in range(24 if long else rng.randint(5, 8))]
        shots.append(mediakit.screenshot(lines, font_name=fonts[index % len(fonts)],
                                         size=13 if long else rng.choice([13, 14, 16]),
                                         dark=index % 3 == 0, width=1100))
    return shots


def queries(shots: Sequence[mediakit.TextImage], seed: int = 3) -> dict[str, list[tuple[str, int]]]:
    """(query, the index of the image it is on) of each kind, unique to that image."""
    rng = random.Random(seed)
    texts = [" ".join(mediakit.words(shot.text)) for shot in shots]
    found: dict[str, list[tuple[str, int]]] = {"in a line": [], "across lines": []}
    for target, shot in enumerate(shots):
        lines = [mediakit.words(line) for line in shot.text.splitlines()]
        for _ in range(20):
            i = rng.randrange(len(lines))
            j = rng.randrange(len(lines[i]) - 2)
            phrase = " ".join(lines[i][j:j + 3])
            if sum(phrase in text for text in texts) == 1:
                found["in a line"].append((phrase, target))
                break
        for _ in range(20):
            i = rng.randrange(len(lines) - 1)
            phrase = " ".join(lines[i][-2:] + lines[i + 1][:2])
            if sum(phrase in text for text in texts) == 1:
                found["across lines"].append((phrase, target))
                break
    return found


class Tokens:
    """CLIP's token count of a text, start and end tokens included (open_clip's BPE)."""

    def __init__(self) -> None:
        from open_clip.tokenizer import SimpleTokenizer

        self.bpe = SimpleTokenizer()

    def __call__(self, text: str) -> int:
        return len(self.bpe.encode(text)) + 2


def per_line(lines: Sequence[TextLine], count: Callable[[str], int]) -> list[str]:
    return [line.text for line in lines]


def per_chunk(lines: Sequence[TextLine], count: Callable[[str], int], context: int = CONTEXT) -> list[str]:
    """What the index job does (`sensorium.index.kinds._chunk_lines`): consecutive lines packed
    into chunks of at most `context` tokens, 10 tokens of overlap."""

    class Block:
        def __init__(self, line: TextLine) -> None:
            self.bbox, self.text = line.box, line.text

    chunks = chunk_page(0, [Block(line) for line in lines], count_tokens=count, context_length=context,
                        overlap_tokens=10)
    return [chunk.text for chunk in chunks]


def per_half_chunk(lines: Sequence[TextLine], count: Callable[[str], int]) -> list[str]:
    return per_chunk(lines, count, context=40)


def per_image(lines: Sequence[TextLine], count: Callable[[str], int]) -> list[str]:
    return ["\n".join(line.text for line in lines)] if lines else []


WAYS = {"per line": per_line, "per chunk of <= 40 tokens": per_half_chunk,
        "per chunk of <= 77 tokens": per_chunk, "per image": per_image}


def build(out: Path, src: Path, rows_of: list[list[str]]) -> None:
    rng = np.random.default_rng(0)
    with IndexWriter(out, Shard(), MANIFEST) as writer:
        stats = []
        for index in range(len(rows_of)):
            path = src / f"shot-{index:03d}.png"
            path.write_bytes(str(index).encode())
            stats.append(FileStat.of(path))
        for stat in writer.plan(stats).todo:
            index = int(Path(stat.path).stem.split("-")[1])
            work = writer.begin(stat, hashlib.sha256(stat.path.encode()).hexdigest(), "image")
            assert work is not None
            vectors = rng.standard_normal((len(rows_of[index]), DIMENSION))
            writer.add_rows(work, [Row("image_text", v / np.linalg.norm(v), text=text)
                                   for text, v in zip(rows_of[index], vectors, strict=True)])
            writer.finish(work)


def rank_of(store: SearchStore, query: str, target: int, depth: int = 20) -> int | None:
    hits = store.search(query_text=query, mode="text", k=depth)
    for rank, hit in enumerate(hits, 1):
        if Path(hit.path).stem == f"shot-{target:03d}":
            return rank
    return None


_TOWER: list[Any] = []


def text_tower_seconds(texts: Sequence[str]) -> float:
    """CPU seconds of ViT-B-32's text tower (random weights) on `texts`, batches of 64."""
    import open_clip
    import torch

    if not _TOWER:
        torch.set_num_threads(1)
        model = open_clip.create_model("ViT-B-32", pretrained=None)
        _TOWER.extend([model.eval(), open_clip.get_tokenizer("ViT-B-32")])
    model, tokenizer = _TOWER
    started = time.process_time()
    with torch.no_grad():
        for i in range(0, len(texts), 64):
            model.encode_text(tokenizer(list(texts[i:i + 64])))
    return time.process_time() - started


def read_all(shots: Sequence[mediakit.TextImage], cache: Path | None) -> list[list[TextLine]]:
    import json

    from sensorium.media.api import Box

    if cache is not None and cache.exists():
        saved = json.loads(cache.read_text())
        if len(saved) == len(shots):
            return [[TextLine(text, Box(*box), confidence) for text, box, confidence in found]
                    for found in saved]
    reader = TextReader(TextOptions(threads=1))
    reader.warm_up()
    lines = [reader.read_text(shot.image).lines for shot in shots]
    if cache is not None:
        cache.write_text(json.dumps([[(line.text, [line.box.x0, line.box.y0, line.box.x1, line.box.y1],
                                       line.confidence) for line in found] for found in lines]))
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="8 screenshots")
    parser.add_argument("--count", type=int, default=40)
    parser.add_argument("--cache", type=Path, help="keep the recognised lines in this JSON file and "
                        "reuse them on the next run (the OCR is most of the time)")
    args = parser.parse_args()
    count = 8 if args.quick else args.count
    shots = corpus(count)
    print(f"reading {count} screenshots ...", file=sys.stderr)
    lines = read_all(shots, args.cache)
    recall = statistics.mean(mediakit.word_recall(shot.text, [line.text for line in found])
                             for shot, found in zip(shots, lines, strict=True))
    asked = queries(shots)
    tokens = Tokens()
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as scratch:
        for name, way in WAYS.items():
            rows_of = [way(found, tokens) for found in lines]
            folder = Path(scratch) / name.replace(" ", "-").replace("<=", "le")
            (folder / "src").mkdir(parents=True)
            build(folder / "index", folder / "src", rows_of)
            store = SearchStore(folder / "index")
            store.refresh()
            row_texts = [text for rows in rows_of for text in rows]
            result: dict[str, Any] = {
                "way": name, "rows_per_image": len(row_texts) / count,
                "rows_over_context": sum(tokens(text) > CONTEXT for text in row_texts),
                "text_tower_cpu_s_per_image": text_tower_seconds(row_texts) / count,
            }
            for kind, pairs in asked.items():
                ranks = [rank_of(store, query, target) for query, target in pairs]
                result[f"{kind}: rank 1"] = sum(rank == 1 for rank in ranks) / len(ranks)
                result[f"{kind}: MRR"] = statistics.mean(1 / rank if rank else 0.0 for rank in ranks)
            results.append(result)
    import resource

    print(f"\n{count} screenshots (every tenth a 24-line terminal), word recall of the OCR "
          f"{recall:.3f}; {len(asked['in a line'])} phrases in a line, {len(asked['across lines'])} "
          f"across lines; load average {' '.join(f'{x:.2f}' for x in __import__('os').getloadavg())}; "
          f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MB\n")
    print("| rows | per image | over 77 tokens | text tower CPU s / image | in a line: rank 1 (MRR) "
          "| across lines: rank 1 (MRR) |")
    print("|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['way']} | {r['rows_per_image']:.1f} | {r['rows_over_context']} | "
              f"{r['text_tower_cpu_s_per_image']:.3f} | "
              f"{r['in a line: rank 1']:.2f} ({r['in a line: MRR']:.2f}) | "
              f"{r['across lines: rank 1']:.2f} ({r['across lines: MRR']:.2f}) |")


if __name__ == "__main__":
    main()
