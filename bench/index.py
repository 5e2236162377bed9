"""The index job (`sensorium index`, in-process) against a plain loop over the same libraries.

A generated folder of distinct files — PDFs with a text layer (PyMuPDF), WAVs of espeak-ng
speech, photos-like PNG and JPEG images, and with `--documents N` (or `--folder documents`: those
alone) Word, PowerPoint, OpenDocument, EPUB, HTML, Markdown, text, CSV and mail files made by
pandoc and Python — is indexed by

(a) the index job: `sensorium.index.job.run_job`, the function `sensorium index` calls, with the
    in-process engines and the job's default CPU split (plus any `--setting`), into a fresh
    output folder each repeat;
(b) a plain sequential loop a user would write with the same libraries and models, with every
    CPU given to torch and CTranslate2 (`--loop-whisper-threads` changes the latter): PDF ->
    PyMuPDF `get_text` per page -> word chunks that fit the model's context, overlapping as the
    job's do -> open_clip `encode_text`; audio -> faster-whisper `transcribe` -> segments
    packed the same way -> `encode_text`; image -> PIL -> preprocess -> `encode_image`, one
    file at a time; documents -> the document engine's `read` called in the loop's process
    (`--document-loop engine`, the default: the same text and sections as the job, so both embed
    the same pieces), or the library a user would reach for per format (`--document-loop
    libraries`: python-docx, python-pptx, lxml, ebooklib + selectolax, selectolax, `email`,
    plain reads; their text differs from the engine's: no table header names, no section
    boundaries) -> word chunks as above, per section -> `encode_text`, pictures of at least the
    job's minimum side -> `encode_image`; a mail's attachments are read and embedded with it.

Model load is NOT in the timings: each side runs in its own worker process (torch's thread
pool is per process, so the job's split and the loop's "all CPUs" cannot share one), loads
its models once, indexes a 3-file warm-up folder (which also starts the job's PDF workers and
Whisper), and then times each repeat from the call to its return; the start-up is reported on
its own. The repeats alternate job and loop. Reported: files/s of both (median and range), their
ratio, the job's stage busy times (embedding and Whisper model seconds from the process's
metrics, CPU seconds of the PDF worker processes) and the CPU use of both. `--shards N` also
runs N job processes at once, each on its shard of the folder, as N pods would on one machine.

`--media` measures what reading text in images costs instead (issue 19): a folder of ordinary
photos without text (JPEG, photo-like, `--photo-size`) indexed by the job with text recognition
on (SENSORIUM_MEDIA__OCR=true: each photo gets the cheap text check) and off, repeats
alternating, and their files/s ratio on ÷ off: what a person pays for the feature on photos
without text. Then a folder of screenshots (PNG, 6-30 lines of text each) with recognition on,
files/s and rows, against off.

Examples (from the repository root; ViT-B-32 with random weights, Whisper packaged:tiny.en):

  .venv/bin/python bench/index.py                                      # 72 files, 3 repeats
  .venv/bin/python bench/index.py --shards 2
  .venv/bin/python bench/index.py --setting embedding.cpu_threads=1    # the split before
  .venv/bin/python bench/index.py --quick                              # seconds: it runs
  .venv/bin/python bench/index.py --folder-kind documents              # 36 documents only
  .venv/bin/python bench/index.py --media                              # 24 12 MP photos, 24 screenshots
  .venv/bin/python bench/index.py --media --quick
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import wave
from collections import Counter
from pathlib import Path
from typing import IO, Any

import harness  # bench/ is on sys.path when this file is run as a script
import numpy as np
from PIL import Image

RESULT = "@@bench "
"""Prefix of the workers' result lines on stdout (libraries may print there too)."""

VOCABULARY = ("the annual report describes revenue growth in the northern region while costs of "
         "shipping rose sharply after the harbour closed for repairs during a long winter and "
         "the board approved a new budget for research into quieter engines cleaner fuel and "
         "better batteries for delivery vans that serve small towns along the coast")
WORDS = VOCABULARY.split()
SENTENCES = harness.SENTENCES


# --- the folder ------------------------------------------------------------------------------


def make_pdf(seed: int, pages: int, words: int) -> bytes:
    """`pages` pages of `words` words each, drawn from WORDS by `seed`: every PDF differs."""
    import pymupdf

    rng = np.random.default_rng(seed)
    doc = pymupdf.open()
    for _ in range(pages):
        text = " ".join(rng.choice(WORDS, size=words))
        left = doc.new_page().insert_textbox(pymupdf.Rect(36, 36, 560, 800), text, fontsize=9)
        assert left >= 0, "the page's text does not fit: fewer --pdf-words"
    data: bytes = doc.tobytes()
    return data


def make_wav(path: Path, seed: int, seconds: float) -> float:
    """espeak-ng speech of SENTENCES in an order drawn by `seed`, at least `seconds` long (a
    sentence is about 2.5 s), as a WAV; returns its duration."""
    rng = np.random.default_rng(seed)
    order = [str(s) for _ in range(1 + int(seconds // 20)) for s in rng.permutation(SENTENCES)]
    count = max(1, int(seconds / 2.5))
    while True:
        harness.espeak(path, " ".join(order[:count]))
        with wave.open(str(path)) as handle:
            duration = handle.getnframes() / handle.getframerate()
        if duration >= seconds or count >= len(order):
            return duration
        count += 1


def make_image(seed: int, fmt: str, size: tuple[int, int] = (640, 480)) -> bytes:
    """A photo-like image (smooth gradients plus noise), distinct per seed."""
    rng = np.random.default_rng(seed)
    width, height = size
    x = np.linspace(0, 1, width)[None, :, None]
    y = np.linspace(0, 1, height)[:, None, None]
    base = 255 * (0.5 + 0.5 * np.sin(6 * x * (1 + seed % 5) + 4 * y + np.arange(3) * (seed + 1)))
    pixels = np.clip(base + rng.normal(0, 12, (height, width, 3)), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buffer, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buffer.getvalue()


DOCUMENT_TYPES = ("docx", "pptx", "odt", "epub", "html", "md", "txt", "csv", "eml", "doc", "xls", "ppt")
"""The documents' types, in turn; the 97-2003 ones (LibreOffice converts them, seconds a file:
work the job overlaps with the embedding model) only with `--legacy`."""


def document_types(legacy: bool) -> tuple[str, ...]:
    return DOCUMENT_TYPES if legacy else DOCUMENT_TYPES[:-3]


def make_documents(folder: Path, count: int, seed: int, legacy: bool = False) -> None:
    """`count` documents, the types of `document_types(legacy)` in turn, each with its own text
    (made by pandoc from Markdown like bench/document_folder.py's, or written by Python; the
    97-2003 ones converted from those by LibreOffice); Word and PowerPoint files show one
    picture every other file."""
    import random

    import document_folder  # bench/document_folder.py (it puts tests/support on the path)

    import docmaker

    rng = random.Random(seed)
    work = folder.parent / f"_document_sources-{seed}"
    work.mkdir(exist_ok=True)
    (work / "picture.png").write_bytes(docmaker.png(96, 96, (20, 90, 160)))
    types = document_types(legacy)
    conversions: dict[str, list[Path]] = {}
    for i in range(count):
        kind = types[i % len(types)]
        target = folder / f"document-{i:03d}.{kind}"
        if kind in ("doc", "ppt", "xls"):
            source_kind = {"doc": "docx", "ppt": "pptx", "xls": "fods"}[kind]
            source = work / f"document-{i:03d}.{source_kind}"
            if kind == "xls":
                source.write_text(document_folder.fods(rng, i), encoding="utf-8")
            else:
                markdown = work / f"{i}.md"
                markdown.write_text(document_folder.markdown(rng, i, slides=kind == "ppt"), encoding="utf-8")
                docmaker._run(["pandoc", markdown.name, "-s", "-o", source.name], work)
            conversions.setdefault(kind, []).append(source)
        elif kind in ("docx", "pptx", "odt", "epub", "html", "md"):
            source = work / f"{i}.md"
            source.write_text(document_folder.markdown(rng, i, slides=kind == "pptx"), encoding="utf-8")
            if kind == "md":
                target.write_text(source.read_text(encoding="utf-8"), encoding="utf-8")
            else:
                docmaker._run(["pandoc", source.name, "-s", "-o", str(target)], work)
        elif kind == "txt":
            target.write_text("\n\n".join(document_folder.sentence(rng, 16) for _ in range(12)),
                              encoding="utf-8")
        elif kind == "csv":
            rows = "\n".join(f"{rng.choice(document_folder.WORDS)},{rng.randint(1, 999)},"
                             f"{document_folder.sentence(rng, 6)}" for _ in range(40))
            target.write_text(f"name,count,note\n{rows}\n", encoding="utf-8")
        else:
            attachment = document_folder.sentence(rng, 40).encode()
            message = docmaker.mail_message(f"Harbour mail {i}", document_folder.sentence(rng, 60),
                                            [(f"minutes-{i}.txt", "text/plain", attachment)])
            target.write_bytes(message.as_bytes())
    for kind, sources in conversions.items():
        docmaker.soffice_convert(sources, kind, folder)
    shutil.rmtree(work)


def make_folder(folder: Path, pdfs: int, wavs: int, images: int, args: argparse.Namespace,
                seed: int = 0, documents: int = 0) -> dict[str, Any]:
    """The mixed folder; returns what it holds."""
    folder.mkdir(parents=True)
    make_documents(folder, documents, seed, legacy=args.legacy)
    audio_seconds = []
    for i in range(pdfs):
        (folder / f"doc-{i:03d}.pdf").write_bytes(make_pdf(seed + i, args.pdf_pages, args.pdf_words))
    for i in range(wavs):
        audio_seconds.append(make_wav(folder / f"speech-{i:03d}.wav", seed + i, args.audio_seconds))
    for i in range(images):
        fmt = "PNG" if i % 2 == 0 else "JPEG"
        (folder / f"photo-{i:03d}.{fmt.lower()}").write_bytes(make_image(seed + i, fmt))
    size = sum(p.stat().st_size for p in folder.iterdir())
    return {"pdfs": pdfs, "wavs": wavs, "images": images, "documents": documents,
            "files": pdfs + wavs + images + documents, "bytes": size,
            "audio_seconds": round(sum(audio_seconds), 1)}


def make_media_folders(root: Path, args: argparse.Namespace) -> dict[str, Any]:
    """The photos folder (photo-like JPEGs without text, with a camera in EXIF), the screenshots
    folder (PNG windows of 6-30 lines) and a warm-up folder of one of each."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "support"))
    import mediakit

    width, height = args.photo_size
    folders = {"photos": root / "photos", "screenshots": root / "screenshots",
               "warmup": root / "warmup" / "files"}
    for folder in folders.values():
        folder.mkdir(parents=True)
    tags = mediakit.exif(original="2024:06:01 12:00:00")
    tags[0x010F], tags[0x0110] = "Apple", "iPhone 13"
    for i in range(args.photos):
        mediakit.photo_like(width, height, seed=100 + i).save(
            folders["photos"] / f"IMG_{i:04d}.jpg", "JPEG", quality=88, exif=tags)
    lines = mediakit.LINES
    for i in range(args.screenshots):
        count = 6 + (i * 7) % 25
        shot = mediakit.screenshot([lines[(i + k) % len(lines)] + f" #{i}-{k}" for k in range(count)],
                                   size=13 + i % 4, dark=i % 2 == 1, width=1280)
        shot.image.save(folders["screenshots"] / f"Screenshot {i:03d}.png")
    mediakit.photo_like(width, height, seed=1).save(folders["warmup"] / "warm.jpg", "JPEG", exif=tags)
    mediakit.screenshot(list(lines[:3])).image.save(folders["warmup"] / "warm.png")
    return {name: folder for name, folder in folders.items()}


def media_main(args: argparse.Namespace) -> int:
    """`--media`: see the module docstring."""
    say = (lambda message: None) if args.quiet else harness.log
    results: dict[str, dict[str, list[dict[str, Any]]]] = {}
    with tempfile.TemporaryDirectory(prefix="sensorium-media-bench-") as tmp:
        root = Path(tmp)
        say(f"writing {args.photos} photos of {args.photo_size[0]}x{args.photo_size[1]} and "
            f"{args.screenshots} screenshots")
        folders = make_media_folders(root, args)
        env = base_env(args, Path(args.model_dir) if args.model_dir else root / "models")
        for folder_name in ("photos", "screenshots"):
            folder_args = argparse.Namespace(**{**vars(args), "folder": folders[folder_name],
                                                "warmup_folder": folders["warmup"]})
            workers = {ocr: Worker("job", folder_args,
                                   {**env, "SENSORIUM_MEDIA__OCR": ocr, **dict(args.setting)})
                       for ocr in ("true", "false")}
            runs: dict[str, list[dict[str, Any]]] = {"true": [], "false": []}
            try:
                start(list(workers.values()), say)
                for repeat in range(args.repeats):
                    for ocr, worker in workers.items():
                        worker.send(root / f"out-{folder_name}-{ocr}-{repeat}")
                        runs[ocr].append(worker.receive())
                        result = runs[ocr][-1]
                        rate = result["files"] / result["wall_s"]
                        say(f"{folder_name}, text recognition {'on' if ocr == 'true' else 'off'}, repeat "
                            f"{repeat + 1}/{args.repeats}: {result['files']} files in "
                            f"{result['wall_s']:.1f} s = {rate:.2f} files/s")
            finally:
                for worker in workers.values():
                    worker.close()
            results[folder_name] = runs
    media_report(args, results)
    return 0


def media_report(args: argparse.Namespace, results: dict[str, dict[str, list[dict[str, Any]]]]) -> None:
    print(harness.machine_markdown())
    print(f"\nCommand: `{' '.join([Path(sys.executable).name, *sys.argv])}`; load average now "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}\n")
    width, height = args.photo_size
    print(f"Photos: {args.photos} photo-like JPEGs of {width}x{height} without text (EXIF: a camera, a "
          f"date). Screenshots: {args.screenshots} PNG windows of 1280 px, 6-30 lines of 13-16 px text. "
          f"Models: {args.model} ({args.pretrained or 'random weights'}), CPU; job settings "
          f"{dict(args.setting) or 'the defaults'}.\n")
    print("| folder | text recognition | files/s (median) | files/s (min-max) | CPU s per file (median) "
          "| rows |")
    print("|---|---|--:|--:|--:|---|")
    rates: dict[tuple[str, str], float] = {}
    cpu: dict[tuple[str, str], float] = {}
    for folder, runs in results.items():
        for ocr, name in (("true", "on"), ("false", "off")):
            values = [r["files"] / r["wall_s"] for r in runs[ocr]]
            s = spread(values)
            rates[folder, ocr] = s["median"]
            # The job process and its children (the media and PDF workers): robust to a shared
            # machine's load, which wall time is not.
            cpu[folder, ocr] = statistics.median(
                (r["busy"]["process_cpu_s"] + r["busy"]["pdf_workers_cpu_s"]) / r["files"] for r in runs[ocr])
            rows = ", ".join(f"{n} {k}" for k, n in sorted(runs[ocr][0]["rows"].items()))
            print(f"| {folder} | {name} | {s['median']:.2f} | {s['min']:.2f}-{s['max']:.2f} | "
                  f"{cpu[folder, ocr]:.3f} | {rows} |")
        errors = sum(sum(r["errors"].values()) for ocr in runs for r in runs[ocr])
        if errors:
            print(f"\n**{errors} file errors in the {folder} runs**: {runs['true'][0]['by_status']}")
    photos = rates["photos", "true"] / rates["photos", "false"]
    shots = rates["screenshots", "true"] / rates["screenshots", "false"]
    print(f"\n- photos without text, recognition on ÷ off: **{photos:.2f}** (files/s); by CPU per file "
          f"{cpu['photos', 'false'] / cpu['photos', 'true']:.2f}")
    print(f"- screenshots, recognition on ÷ off: {shots:.2f} ({rates['screenshots', 'true']:.2f} files/s "
          "with their text read)")
    if args.json:
        harness.write_json(args.json, [], command=" ".join(sys.argv), extra={"media": results})


# --- workers (each in its own process) --------------------------------------------------------


def _emit(payload: dict[str, Any]) -> None:
    sys.stdout.write(RESULT + json.dumps(payload) + "\n")
    sys.stdout.flush()


def _commands() -> Any:
    """Lines from the parent: an output folder to index into each; EOF ends the worker."""
    for line in sys.stdin:
        if line.strip():
            yield Path(line.strip())


async def _next_command() -> Path | None:
    """`_commands` for the job worker: read off the event loop, which the runtimes share."""
    line = await asyncio.to_thread(sys.stdin.readline)
    while line and not line.strip():
        line = await asyncio.to_thread(sys.stdin.readline)
    return Path(line.strip()) if line else None


def _process_cpu() -> tuple[float, float]:
    """CPU seconds of this process and of its live child processes (the PDF workers)."""
    import psutil

    me = psutil.Process()
    own = me.cpu_times()
    children = 0.0
    for child in me.children(recursive=True):
        try:
            times = child.cpu_times()
            children += times.user + times.system
        except psutil.Error:
            pass  # gone meanwhile
    return own.user + own.system, children


def _model_seconds(model: str) -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value("sensorium_model_inference_seconds_sum", {"model": model}) or 0.0


async def job_worker(args: argparse.Namespace) -> None:
    from sensorium.device import thread_counts
    from sensorium.embedding.api import EMBEDDING
    from sensorium.embedding.runtime import EmbeddingRuntime
    from sensorium.engines import InProcessEngines
    from sensorium.index.job import JobRequest, local_runtimes, run_job
    from sensorium.index.layout import Shard
    from sensorium.settings import Settings

    settings = Settings()
    shard = Shard.parse(args.shard)
    started = time.perf_counter()
    runtimes = await local_runtimes(settings)
    engines = InProcessEngines(runtimes)
    try:
        await engines.open(EMBEDDING)
        load_s = time.perf_counter() - started
        started = time.perf_counter()
        await run_job(JobRequest([args.warmup_folder], args.warmup_folder.parent / f"warm-out-{os.getpid()}",
                                 Shard()), settings, engines)
        plan = runtimes.of(EmbeddingRuntime).plan
        assert plan is not None
        threads = thread_counts(plan.device, plan.cpu_threads, model_threads=settings.embedding.cpu_threads)
        _emit({"ready": True, "load_s": load_s, "warmup_s": time.perf_counter() - started,
               "cpu_split": runtimes.cpu.describe(), "embedding_threads": threads.model_threads,
               "device": plan.device})
        while (out := await _next_command()) is not None:
            before = (_model_seconds("embedding"), _model_seconds("transcription"), *_process_cpu())
            started = time.perf_counter()
            summary = await run_job(JobRequest([args.folder], out, shard), settings, engines)
            wall = time.perf_counter() - started
            after = (_model_seconds("embedding"), _model_seconds("transcription"), *_process_cpu())
            shutil.rmtree(out, ignore_errors=True)
            keys = ("embedding_model_s", "transcription_model_s", "process_cpu_s", "pdf_workers_cpu_s")
            busy = dict(zip(keys, (b - a for a, b in zip(before, after, strict=True)), strict=True))
            _emit({"wall_s": wall, "files": summary["files"]["processed"],
                   "by_status": summary["files"]["by_status"], "errors": summary["errors"],
                   "rows": summary["rows"]["by_kind"], "busy": busy})
    finally:
        await engines.close()


class PlainLoop:
    """The baseline: the libraries called directly, one file after the other."""

    def __init__(self, model: str, pretrained: str, whisper: str, model_dir: Path, cpus: int,
                 overlap: int, whisper_threads: int, min_image_side: int = 64,
                 document_loop: str = "engine") -> None:
        import open_clip
        import torch
        from faster_whisper import WhisperModel

        from sensorium.embedding.embedder import resolve_weights
        from sensorium.transcription import models

        torch.set_num_threads(cpus)
        # The same weights the job loads (a random ViT-B-32, a local-dir: folder), found the
        # same way; everything after is plain open_clip.
        weights = resolve_weights(model, pretrained, model_dir)
        self.clip, _, self.preprocess = open_clip.create_model_and_transforms(
            weights.open_clip_name, pretrained=weights.checkpoint, **weights.preprocess)
        self.clip.eval()
        self.tokenizer = open_clip.get_tokenizer(weights.open_clip_name)
        self.budget = self.tokenizer.context_length - 2  # start and end tokens
        self.whisper = WhisperModel(models.resolve(whisper, model_dir).source, device="cpu",
                                    compute_type="int8", cpu_threads=whisper_threads or cpus)
        self.overlap = overlap
        self.min_image_side = min_image_side
        self.document_loop = document_loop
        self.costs: dict[str, int] = {}
        self.seconds: Counter[str] = Counter()
        self.vectors: Counter[str] = Counter()

    def cost(self, word: str) -> int:
        cost = self.costs.get(word)
        if cost is None:
            cost = self.costs[word] = len(self.tokenizer.encode(word))
        return cost

    def pack(self, words: list[str], overlap: int = 0) -> list[str]:
        """Words packed greedily into pieces that fit the model's context, the next piece
        starting with the last words of the previous worth at most `overlap` tokens (the job's
        chunk overlap: the same number of texts to embed on both sides)."""
        pieces, start = [], 0
        while start < len(words):
            end, used = start, 0
            while end < len(words) and used + self.cost(words[end]) <= self.budget:
                used += self.cost(words[end])
                end += 1
            end = max(end, start + 1)
            pieces.append(" ".join(words[start:end]))
            if end == len(words):
                break
            next_start, carried = end, 0
            while next_start - 1 > start and carried + self.cost(words[next_start - 1]) <= overlap:
                next_start -= 1
                carried += self.cost(words[next_start])
            start = next_start
        return pieces

    def windows(self, segments: list[str]) -> list[str]:
        """Consecutive transcript segments packed into pieces that fit, as the job does."""
        pieces: list[str] = []
        current: list[str] = []
        used = 0
        for text in segments:
            cost = sum(self.cost(word) for word in text.split())
            if current and used + cost > self.budget:
                pieces.append(" ".join(current))
                current, used = [], 0
            if cost > self.budget:
                pieces += self.pack(text.split())
                continue
            current.append(text.strip())
            used += cost
        if current:
            pieces.append(" ".join(current))
        return pieces

    def texts(self, texts: list[str], kind: str) -> None:
        import torch

        started = time.perf_counter()
        for i in range(0, len(texts), 64):
            with torch.inference_mode():
                self.clip.encode_text(self.tokenizer(texts[i:i + 64]), normalize=True)
        self.seconds["clip_text_s"] += time.perf_counter() - started
        self.vectors[kind] += len(texts)

    def file(self, path: Path) -> None:
        import torch

        started = time.perf_counter()
        if path.suffix == ".pdf":
            import pymupdf

            with pymupdf.open(path) as doc:
                chunks = [piece for page in doc for piece in self.pack(page.get_text().split(), self.overlap)]
            self.seconds["pdf_text_and_chunks_s"] += time.perf_counter() - started
            self.texts(chunks, "pdf_text")
        elif path.suffix.lstrip(".") in DOCUMENT_TYPES:
            texts, pictures = (engine_document(path) if self.document_loop == "engine"
                               else plain_document(path))
            chunks = [piece for text in texts for piece in self.pack(text.split(), self.overlap)]
            self.seconds["document_text_and_chunks_s"] += time.perf_counter() - started
            self.texts(chunks, "document_text")
            started = time.perf_counter()
            for data in pictures:
                with Image.open(io.BytesIO(data)) as image:
                    if min(image.size) < self.min_image_side:
                        continue
                    pixels = self.preprocess(image.convert("RGB")).unsqueeze(0)
                with torch.inference_mode():
                    self.clip.encode_image(pixels, normalize=True)
                self.vectors["document_image"] += 1
            self.seconds["clip_image_s"] += time.perf_counter() - started
        elif path.suffix == ".wav":
            segments, _ = self.whisper.transcribe(str(path))
            texts = [segment.text for segment in segments]
            self.seconds["whisper_s"] += time.perf_counter() - started
            self.texts(self.windows(texts), "audio")
        else:
            with Image.open(path) as image:
                pixels = self.preprocess(image.convert("RGB")).unsqueeze(0)
            with torch.inference_mode():
                self.clip.encode_image(pixels, normalize=True)
            self.seconds["clip_image_s"] += time.perf_counter() - started
            self.vectors["image"] += 1

    def folder(self, folder: Path) -> int:
        files = sorted(p for p in folder.iterdir() if p.is_file())
        for path in files:
            self.file(path)
        return len(files)


def engine_document(path: Path) -> tuple[list[str], list[bytes]]:
    """A document's sections' texts and pictures from the document engine, called here; a
    mail's attachments read the same way (the job indexes them as files of their own)."""
    from sensorium.document.api import ParseOptions
    from sensorium.document.engine import read

    document = read(path, ParseOptions(name=path.name))
    texts = [section.text for section in document.sections if section.text]
    pictures = [picture.data for picture in document.pictures if picture.error is None and picture.data]
    for attachment in document.attachments:
        if attachment.error is None and attachment.data:
            inner = path.parent / f".attachment-{attachment.name}"
            inner.write_bytes(attachment.data)
            try:
                more, images = engine_document(inner)
            finally:
                inner.unlink()
            texts += more
            pictures += images
    return texts, pictures


def plain_document(path: Path) -> tuple[list[str], list[bytes]]:
    """A document's text and pictures as a user would read them with each format's library."""
    kind = path.suffix.lstrip(".")
    if kind in ("doc", "xls", "ppt"):  # LibreOffice converts, as a user would, then as below
        import tempfile

        from sensorium.document import legacy
        from sensorium.document.api import DocumentKind

        with tempfile.TemporaryDirectory() as workdir:
            converted = Path(legacy.convert(str(path), DocumentKind(kind), workdir, 120.0))
            return plain_document(converted)
    if kind == "xlsx":
        import openpyxl

        workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
        cells = [str(value) for sheet in workbook.worksheets for row in sheet.iter_rows(values_only=True)
                 for value in row if value is not None]
        workbook.close()
        return [" ".join(cells)], []
    if kind == "docx":
        import docx

        document = docx.Document(str(path))
        text = [p.text for p in document.paragraphs]
        text += [cell.text for table in document.tables for row in table.rows for cell in row.cells]
        pictures = [rel.target_part.blob for rel in document.part.rels.values()
                    if "image" in rel.reltype and not rel.is_external]
        return ["\n".join(text)], pictures
    if kind == "pptx":
        import pptx
        from pptx.enum.shapes import MSO_SHAPE_TYPE

        text, pictures = [], []
        for slide in pptx.Presentation(str(path)).slides:
            for shape in slide.shapes:
                if shape.has_text_frame:
                    text.append(shape.text_frame.text)
                if getattr(shape, "has_table", False) and shape.has_table:
                    text += [cell.text for row in shape.table.rows for cell in row.cells]
                if shape.shape_type == MSO_SHAPE_TYPE.PICTURE:
                    pictures.append(shape.image.blob)
            if slide.has_notes_slide:
                text.append(slide.notes_slide.notes_text_frame.text)
        return ["\n".join(text)], pictures
    if kind == "odt":
        import zipfile

        from lxml import etree

        with zipfile.ZipFile(path) as archive:
            root = etree.fromstring(archive.read("content.xml"), etree.XMLParser(resolve_entities=False))
            pictures = [archive.read(name) for name in archive.namelist() if name.startswith("Pictures/")]
        return [" ".join(root.itertext())], pictures
    if kind == "epub":
        import ebooklib
        from ebooklib import epub
        from selectolax.lexbor import LexborHTMLParser as HTMLParser

        book = epub.read_epub(str(path))
        text = [HTMLParser(item.get_content()).text(separator="\n")
                for item in book.get_items_of_type(ebooklib.ITEM_DOCUMENT)]
        pictures = [item.get_content() for item in book.get_items_of_type(ebooklib.ITEM_IMAGE)]
        return ["\n".join(text)], pictures
    if kind == "html":
        from selectolax.lexbor import LexborHTMLParser as HTMLParser

        return [HTMLParser(path.read_bytes()).text(separator="\n")], []
    if kind == "eml":
        import email
        import email.policy

        with open(path, "rb") as handle:
            message = email.message_from_binary_file(handle, policy=email.policy.default)
        body = message.get_body(preferencelist=("plain", "html"))
        text = [f"{key}: {message[key]}" for key in ("from", "to", "subject", "date") if message[key]]
        text.append(body.get_content() if body is not None else "")
        text += [part.get_content() for part in message.iter_attachments()
                 if part.get_content_type() == "text/plain"]
        return ["\n".join(text)], []
    return [path.read_text(encoding="utf-8", errors="replace")], []  # md, txt, csv


def loop_worker(args: argparse.Namespace) -> None:
    from sensorium.device import available_cpus
    from sensorium.settings import Settings

    settings = Settings()
    cpus = settings.cpus or available_cpus()
    started = time.perf_counter()
    loop = PlainLoop(settings.embedding.model, settings.embedding.pretrained, settings.transcription.model,
                     settings.model_dir, cpus, settings.index.chunk_overlap_tokens, args.loop_whisper_threads,
                     settings.index.min_image_side, args.document_loop)
    load_s = time.perf_counter() - started
    started = time.perf_counter()
    loop.folder(args.warmup_folder)
    _emit({"ready": True, "load_s": load_s, "warmup_s": time.perf_counter() - started, "threads": cpus,
           "whisper_threads": args.loop_whisper_threads or cpus})
    for _out in _commands():
        loop.seconds.clear()
        loop.vectors.clear()
        own_before, _ = _process_cpu()
        started = time.perf_counter()
        files = loop.folder(args.folder)
        wall = time.perf_counter() - started
        own_after, _ = _process_cpu()
        _emit({"wall_s": wall, "files": files, "rows": dict(loop.vectors), "stages": dict(loop.seconds),
               "busy": {"process_cpu_s": own_after - own_before, "pdf_workers_cpu_s": 0.0}})


# --- the parent ----------------------------------------------------------------------------


class Worker:
    """A worker process of this script, driven line by line."""

    def __init__(self, kind: str, args: argparse.Namespace, env: dict[str, str], shard: str = "0/1") -> None:
        self.name = f"{kind} {shard}" if shard != "0/1" else kind
        command = [sys.executable, __file__, "--worker", kind, "--folder", str(args.folder),
                   "--warmup-folder", str(args.warmup_folder), "--shard", shard,
                   "--loop-whisper-threads", str(args.loop_whisper_threads),
                   "--document-loop", args.document_loop]
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                        env=env, stderr=subprocess.DEVNULL if args.quiet else None)

    def send(self, out: Path) -> None:
        stdin: IO[str] | None = self.process.stdin
        assert stdin is not None
        stdin.write(f"{out}\n")
        stdin.flush()

    def receive(self) -> dict[str, Any]:
        stdout: IO[str] | None = self.process.stdout
        assert stdout is not None
        for line in stdout:
            if line.startswith(RESULT):
                result: dict[str, Any] = json.loads(line[len(RESULT):])
                return result
        raise RuntimeError(f"the {self.name} worker ended (exit {self.process.wait()}); its log is above")

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def setting_env(text: str) -> tuple[str, str]:
    """`embedding.cpu_threads=1` (or `SENSORIUM_EMBEDDING__CPU_THREADS=1`) as an environment
    variable."""
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"{text!r}: use NAME=VALUE, e.g. embedding.cpu_threads=1")
    if not name.upper().startswith("SENSORIUM_"):
        name = "SENSORIUM_" + name.replace(".", "__")
    return name.upper(), value


def base_env(args: argparse.Namespace, model_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENSORIUM_")}
    env.update({
        "SENSORIUM_DEVICE": "cpu", "SENSORIUM_MODEL_DIR": str(model_dir),
        "SENSORIUM_EMBEDDING__MODEL": args.model, "SENSORIUM_EMBEDDING__PRETRAINED": args.pretrained,
        "SENSORIUM_TRANSCRIPTION__MODEL": args.whisper, "SENSORIUM_LOG_LEVEL": "WARNING",
    })
    return env


def start(workers: list[Worker], say: Any) -> list[dict[str, Any]]:
    ready = []
    for worker in workers:
        ready.append(worker.receive())
        say(f"{worker.name}: models loaded in {ready[-1]['load_s']:.1f} s, warm-up "
            f"{ready[-1]['warmup_s']:.1f} s")
    return ready


def spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def main(args: argparse.Namespace) -> int:
    say = (lambda message: None) if args.quiet else harness.log
    with tempfile.TemporaryDirectory(prefix="sensorium-index-bench-") as tmp:
        root = Path(tmp)
        args.folder, args.warmup_folder = root / "files", root / "warmup" / "files"
        say(f"writing {args.pdfs} PDFs, {args.wavs} WAVs, {args.images} images, {args.documents} documents")
        mix = make_folder(args.folder, args.pdfs, args.wavs, args.images, args, documents=args.documents)
        make_folder(args.warmup_folder, 1, 1, 1, args, seed=10_000,
                    documents=len(document_types(args.legacy)) if args.documents else 0)
        env = base_env(args, Path(args.model_dir) if args.model_dir else root / "models")
        job_env = {**env, **dict(args.setting)}

        job, loop = Worker("job", args, job_env), Worker("loop", args, env)
        try:
            job_ready, loop_ready = start([job, loop], say)
            runs: dict[str, list[dict[str, Any]]] = {"job": [], "loop": []}
            for repeat in range(args.repeats):
                for name, worker in (("job", job), ("loop", loop)):
                    worker.send(root / f"out-{name}-{repeat}")
                    runs[name].append(worker.receive())
                    result = runs[name][-1]
                    say(f"{name} repeat {repeat + 1}/{args.repeats}: {result['files']} files in "
                        f"{result['wall_s']:.1f} s = {result['files'] / result['wall_s']:.2f} files/s")
        finally:
            job.close()
            loop.close()

        shard_runs: list[dict[str, Any]] = []
        if args.shards > 1:
            shards = [Worker("job", args, job_env, f"{i}/{args.shards}") for i in range(args.shards)]
            try:
                start(shards, say)
                for repeat in range(args.repeats):
                    started = time.perf_counter()
                    for i, worker in enumerate(shards):
                        worker.send(root / f"out-shard-{i}-{repeat}")
                    parts = [worker.receive() for worker in shards]
                    wall = time.perf_counter() - started
                    files = sum(part["files"] for part in parts)
                    shard_runs.append({"wall_s": wall, "files": files, "parts": parts})
                    say(f"{args.shards} shards repeat {repeat + 1}/{args.repeats}: {files} files in "
                        f"{wall:.1f} s = {files / wall:.2f} files/s")
            finally:
                for worker in shards:
                    worker.close()

    report(args, mix, job_ready, loop_ready, runs, shard_runs)
    return 0


def report(args: argparse.Namespace, mix: dict[str, Any], job_ready: dict[str, Any],
           loop_ready: dict[str, Any], runs: dict[str, list[dict[str, Any]]],
           shard_runs: list[dict[str, Any]]) -> None:
    from sensorium.device import available_cpus

    cpus = available_cpus()
    rate = {name: [r["files"] / r["wall_s"] for r in results] for name, results in runs.items()}
    ratios = [j / b for j, b in zip(rate["job"], rate["loop"], strict=True)]
    ratio = statistics.median(rate["job"]) / statistics.median(rate["loop"])
    settings = ", ".join(f"{k}={v}" for k, v in args.setting) or "none (the defaults)"
    weights = args.pretrained or "random weights"
    if args.model.startswith("local-dir:"):
        weights = "its own weights"

    print(harness.machine_markdown())
    print(f"\nCommand: `{' '.join([Path(sys.executable).name, *sys.argv])}`\n")
    print(f"Files: {mix['files']} ({mix['pdfs']} PDFs of {args.pdf_pages} text pages x {args.pdf_words} "
          f"words, {mix['wavs']} WAVs of espeak-ng speech ({mix['audio_seconds']} s in all), {mix['images']} "
          f"640x480 images, half PNG half JPEG, {mix['documents']} documents: "
          f"{', '.join(document_types(args.legacy))} in turn), {mix['bytes'] / 1e6:.1f} MB. "
          f"Models: {args.model} "
          f"({weights}), Whisper {args.whisper}, CPU.")
    print(f"Job settings: {settings}; CPU split: {job_ready['cpu_split']}; embedding torch threads "
          f"{job_ready['embedding_threads']}. Loop: {loop_ready['threads']} torch threads, "
          f"{loop_ready['whisper_threads']} CTranslate2 threads"
          + (f", documents read by the {args.document_loop}." if mix["documents"] else "."))
    print(f"Start-up, not in the timings (models loaded; warm-up on 3 other files): job "
          f"{job_ready['load_s']:.1f} + {job_ready['warmup_s']:.1f} s, loop {loop_ready['load_s']:.1f} + "
          f"{loop_ready['warmup_s']:.1f} s.\n")
    print("| case | files | repeats | files/s (median) | files/s (min-max) | seconds (median) | vectors |")
    print("|---|--:|--:|--:|--:|--:|---|")
    labels = {"job": "index job, in-process", "loop": "plain loop, same libraries"}
    for name, results in runs.items():
        s = spread(rate[name])
        rows = ", ".join(f"{n} {k}" for k, n in sorted(results[0]["rows"].items()))
        wall = statistics.median(r["wall_s"] for r in results)
        print(f"| {labels[name]} | {results[0]['files']} | {len(results)} | {s['median']:.2f} | "
              f"{s['min']:.2f}-{s['max']:.2f} | {wall:.1f} | {rows} |")
    shard_rate: list[float] = []
    if shard_runs:
        shard_rate = [r["files"] / r["wall_s"] for r in shard_runs]
        s = spread(shard_rate)
        wall = statistics.median(r["wall_s"] for r in shard_runs)
        print(f"| index job, {args.shards} shard processes at once | {shard_runs[0]['files']} | "
              f"{len(shard_runs)} | {s['median']:.2f} | {s['min']:.2f}-{s['max']:.2f} | {wall:.1f} | |")
    print()
    print(f"- job ÷ loop: **{ratio:.2f}** (ratio of the medians; per repeat "
          f"{min(ratios):.2f}-{max(ratios):.2f})")
    job_wall = statistics.median(r["wall_s"] for r in runs["job"])
    busy = {key: statistics.median(r["busy"][key] for r in runs["job"]) for key in runs["job"][0]["busy"]}
    stage_names = {"embedding_model_s": "embedding model", "transcription_model_s": "Whisper model",
                   "pdf_workers_cpu_s": "PDF and document workers CPU"}
    print(f"- job stages, busy seconds (median; % of the job's {job_wall:.1f} s): " + ", ".join(
        f"{label} {busy[key]:.1f} ({100 * busy[key] / job_wall:.0f} %)"
        for key, label in stage_names.items()))
    loop_wall = statistics.median(r["wall_s"] for r in runs["loop"])
    stages = {key: statistics.median(r["stages"].get(key, 0.0) for r in runs["loop"])
              for key in ("pdf_text_and_chunks_s", "document_text_and_chunks_s", "whisper_s", "clip_text_s",
                          "clip_image_s")}
    print(f"- loop stages, seconds (median; of {loop_wall:.1f} s): " +
          ", ".join(f"{k.removesuffix('_s').replace('_', ' ')} {v:.1f}" for k, v in stages.items()))
    for name, wall in (("job", job_wall), ("loop", loop_wall)):
        cpu = statistics.median(r["busy"]["process_cpu_s"] + r["busy"]["pdf_workers_cpu_s"]
                                for r in runs[name])
        print(f"- {name} CPU: {cpu:.1f} s, {100 * cpu / (wall * cpus):.0f} % of {cpus} CPUs over its "
              "wall time")
    errors = sum(sum(r["errors"].values()) for r in runs["job"])
    if errors:
        print(f"- **the job recorded {errors} file errors**: {runs['job'][0]['by_status']}")
    if shard_rate:
        gain = statistics.median(shard_rate) / statistics.median(rate["job"])
        print(f"- {args.shards} shards ÷ 1: **{gain:.2f}** (each shard process splits all the CPUs "
              "as one job would)")
    if args.json:
        harness.write_json(args.json, [], command=" ".join(sys.argv), extra={
            "files": mix, "settings": dict(args.setting), "job_start": job_ready, "loop_start": loop_ready,
            "files_per_second": {name: spread(values) for name, values in rate.items()},
            "ratio": ratio, "ratio_per_repeat": ratios, "runs": runs, "shard_runs": shard_runs,
            "shards": args.shards,
        })


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pdfs", type=int, default=24, help="PDFs in the folder (default: %(default)s)")
    parser.add_argument("--wavs", type=int, default=8, help="WAVs in the folder (default: %(default)s)")
    parser.add_argument("--images", type=int, default=40, help="images in the folder (default: %(default)s)")
    parser.add_argument("--documents", type=int, default=0,
                        help="documents in the folder (default: %(default)s)")
    parser.add_argument("--legacy", action="store_true",
                        help="documents include Word, Excel and PowerPoint 97-2003 files (LibreOffice)")
    parser.add_argument("--document-loop", choices=("engine", "libraries"), default="engine",
                        help="how the loop reads documents (see above; default: %(default)s)")
    parser.add_argument("--folder-kind", choices=("mixed", "documents"), default="mixed",
                        help="documents: a folder of 36 documents only (--documents to change the count)")
    parser.add_argument("--pdf-pages", type=int, default=3, help="pages per PDF (default: %(default)s)")
    parser.add_argument("--pdf-words", type=int, default=300, help="words per page (default: %(default)s)")
    parser.add_argument("--audio-seconds", type=float, default=10.0,
                        help="speech per WAV, at least (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed runs of each side (default: %(default)s)")
    parser.add_argument("--shards", type=int, default=1,
                        help="also run this many job processes at once, one shard each "
                        "(default: %(default)s = no)")
    parser.add_argument("--setting", type=setting_env, action="append", default=[], metavar="NAME=VALUE",
                        help="a setting for the job only, e.g. embedding.cpu_threads=1 (repeatable)")
    parser.add_argument("--model", default="ViT-B-32",
                        help="SENSORIUM_EMBEDDING__MODEL (default: %(default)s)")
    parser.add_argument("--pretrained", default="",
                        help='open_clip tag or file; "" = random weights (default)')
    parser.add_argument("--whisper", default="packaged:tiny.en", help="SENSORIUM_TRANSCRIPTION__MODEL "
                        "(default: %(default)s)")
    parser.add_argument("--loop-whisper-threads", type=int, default=0,
                        help="CTranslate2 threads of the loop's Whisper (default: 0 = every CPU, as torch)")
    parser.add_argument("--model-dir", default="",
                        help="SENSORIUM_MODEL_DIR (default: a temporary directory)")
    parser.add_argument("--quick", action="store_true",
                        help="3 PDFs of 1 page, 1 short WAV, 4 images, 1 repeat: proves it runs, "
                        "measures little")
    parser.add_argument("--json", type=Path, default=None, metavar="OUT.json",
                        help="also write results as JSON")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress on stderr")
    parser.add_argument("--media", action="store_true",
                        help="measure text in images instead: photos with recognition on and off, "
                        "screenshots (see above)")
    parser.add_argument("--photos", type=int, default=24, help="--media: photos (default: %(default)s)")
    parser.add_argument("--screenshots", type=int, default=24,
                        help="--media: screenshots (default: %(default)s)")
    parser.add_argument("--photo-size", type=lambda text: tuple(int(v) for v in text.split("x")),
                        default=(4032, 3024), metavar="WxH",
                        help="--media: photo size (default: 4032x3024, a 12 MP phone photo)")
    # The worker processes (see the module docstring): not for people.
    parser.add_argument("--worker", choices=["job", "loop"], help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--warmup-folder", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--shard", default="0/1", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.folder_kind == "documents":
        args.pdfs = args.wavs = args.images = 0
        args.documents = args.documents or 36
    if args.quick:
        if args.folder_kind == "documents":
            args.documents = len(document_types(args.legacy))
        else:
            args.pdfs, args.wavs, args.images = 3, 1, 4
        args.pdf_pages, args.audio_seconds, args.repeats = 1, 3.0, 1
        args.photos, args.screenshots, args.photo_size = 4, 3, (1024, 768)
    if min(args.pdfs, args.wavs, args.images, args.documents) < 0 or args.repeats < 1 or args.shards < 1:
        parser.error("counts must be >= 0, --repeats and --shards >= 1")
    return args


if __name__ == "__main__":
    arguments = parse_args()
    if arguments.worker == "job":
        asyncio.run(job_worker(arguments))
    elif arguments.worker == "loop":
        loop_worker(arguments)
    elif arguments.media:
        sys.exit(media_main(arguments))
    else:
        sys.exit(main(arguments))
