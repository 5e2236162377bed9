"""Soak: mixed traffic over all three services of one server for a fixed number of requests.

A `sensorium serve` subprocess hosts the PDF, transcription and embedding services (packaged
`tiny.en` Whisper; `--embedding-model`, ViT-B-32 with random weights by default). Client
processes (`--clients`, each with its own gRPC channel and `--threads` closed-loop callers, so
the clients never share the server's GIL) send a fixed, seeded mix of calls: unary and
streaming calls of every service on small inputs (a 2-page PDF, 2 s of espeak-ng speech,
96 x 96 images), and a few deliberately bad inputs that must get their documented error
(a file that is not a PDF, an encrypted PDF without its password, a page past the end, bytes
that are not audio, a truncated WAV, a corrupt image beside a good one, an empty text list).
An answer other than the one expected for its input is an *unexpected error*.

The server requires a bearer token (a tokens file the soak writes); the callers send it. Beside
them, a tokenless slow-upload client (`--slow-uploads`, the probe of issue 22) keeps opening
ExtractDocument streams on one HTTP/2 connection, each declaring a 60 MiB message and sending
all of it the server lets through but the last KiB, then idling: every stream must be refused
UNAUTHENTICATED from its headers, with no more than HTTP/2's initial window taken, for the
whole soak, and the RSS slope must not move.

Every second the resident memory (RSS) of the server's whole process tree (the server and its
PDF worker processes) is sampled with the number of requests done so far. Memory growth is
judged by the slope of a least-squares line through the samples after `--warmup` requests,
reported as % of the fitted RSS at the end of the warm-up per 10,000 requests.

Reports (Markdown on stdout; `--json` for everything): throughput, answers by code and reason,
unexpected errors with examples, latency p50/p95/p99 per service and per call kind, the RSS
curve and its slope. Exit status 1 when any answer was unexpected.

    nice .venv/bin/python bench/soak.py --requests 10000            # the full soak
    .venv/bin/python bench/soak.py --requests 300 --warmup 100      # a short one (CI runs this)
"""

from __future__ import annotations

import argparse
import contextlib
import io
import multiprocessing
import os
import queue
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import wave
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import harness
import numpy as np
import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "support"))  # the HTTP/2 probe the tests use
import h2probe  # noqa: E402

WARMUP_DEFAULT = 1000
TARGET_SLOPE_PERCENT = 5.0
SPEECH = "Glue the sheet to the dark blue background."
PASSWORD = "soak-password"
TOKEN = "soak-" + "5e0c1a9b7d3f2e4a6c8b0d1f3e5a7c9b2d4f6e8a"
SLOW_UPLOAD_DECLARED = 60 * 1024 * 1024


# --- Inputs ------------------------------------------------------------------------------

def _pdf(pages: int, *, image: bool = False, password: str = "") -> bytes:
    import pymupdf

    doc = pymupdf.open()
    for number in range(pages):
        text = f"Page {number + 1}. " + "The soak test sends this small document again and again. " * 12
        doc.new_page().insert_textbox(pymupdf.Rect(36, 36, 560, 800), text, fontsize=9)
    if image:
        pixmap = pymupdf.Pixmap(pymupdf.csRGB, pymupdf.IRect(0, 0, 48, 48), False)
        pixmap.clear_with(180)
        doc[0].insert_image(pymupdf.Rect(100, 500, 200, 600), pixmap=pixmap)
    options: dict[str, Any] = {}
    if password:
        options = {"encryption": pymupdf.PDF_ENCRYPT_AES_256, "user_pw": password,
                   "owner_pw": password + "-owner"}
    data: bytes = doc.tobytes(**options)
    return data


def _speech_wav(directory: Path, seconds: float) -> bytes:
    """`seconds` of espeak-ng speech (padded with silence) as a 16 kHz mono WAV."""
    path = harness.espeak(directory / "speech.wav", SPEECH, words_per_minute=190)
    import av

    with av.open(str(path)) as container:
        resampler = av.AudioResampler(format="s16", layout="mono", rate=16000)
        parts = [out.to_ndarray().reshape(-1) for frame in container.decode(audio=0)
                 for out in resampler.resample(frame)]
    samples = np.concatenate(parts)[: int(seconds * 16000)]
    samples = np.pad(samples, (0, int(seconds * 16000) - len(samples)))
    out = io.BytesIO()
    with wave.open(out, "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(16000)
        handle.writeframes(samples.astype(np.int16).tobytes())
    return out.getvalue()


def _flac(wav: bytes) -> bytes:
    import av

    out = io.BytesIO()
    with av.open(io.BytesIO(wav)) as source, av.open(out, "w", format="flac") as target:
        stream = target.add_stream("flac", rate=16000, layout="mono")
        for frame in source.decode(audio=0):
            frame.pts = None
            for packet in stream.encode(frame):
                target.mux(packet)
        for packet in stream.encode(None):
            target.mux(packet)
    return out.getvalue()


def _image(seed: int, fmt: str) -> bytes:
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    image = Image.new("RGB", (96, 96), tuple(int(v) for v in rng.integers(180, 256, 3)))
    box = sorted(rng.integers(8, 88, 2).tolist())
    ImageDraw.Draw(image).ellipse((box[0], box[0], box[1] + 4, box[1] + 4),
                                  fill=tuple(int(v) for v in rng.integers(0, 200, 3)))
    out = io.BytesIO()
    image.save(out, format=fmt)
    return out.getvalue()


@dataclass(frozen=True)
class Inputs:
    """Every payload the mix sends, made once in the parent and handed to each client."""

    pdf: bytes
    pdf_with_image: bytes
    pdf_encrypted: bytes
    wav: bytes
    flac: bytes
    images: tuple[bytes, ...]
    texts: tuple[str, ...] = ("a red circle", "a photo of a dog", "the minutes of the meeting",
                              "a scanned invoice", "someone speaking about the weather")

    @classmethod
    def make(cls, directory: Path, audio_seconds: float) -> Inputs:
        wav = _speech_wav(directory, audio_seconds)
        images = tuple(_image(seed, "PNG" if seed % 2 else "JPEG") for seed in range(8))
        return cls(_pdf(2), _pdf(2, image=True), _pdf(1, password=PASSWORD), wav, _flac(wav), images)


# --- The mix -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Kind:
    """One kind of call in the mix, and the answer it must get."""

    name: str
    service: str
    weight: float
    code: str = "OK"
    reason: str = ""
    item_reason: str = ""
    """For calls that succeed with one failed item: that item's reason."""

    @property
    def expected(self) -> str:
        item = f"item {self.item_reason}" if self.item_reason else ""
        return " ".join(p for p in (self.code, self.reason, item) if p)


KINDS: tuple[Kind, ...] = (
    Kind("pdf.extract", "pdf", 20),
    Kind("pdf.stream", "pdf", 5),
    Kind("transcription.transcribe", "transcription", 10),
    Kind("transcription.stream", "transcription", 3),
    Kind("embedding.texts", "embedding", 20),
    Kind("embedding.images", "embedding", 20),
    Kind("embedding.score", "embedding", 6),
    Kind("embedding.stream", "embedding", 6),
    # Bad inputs: each must get exactly its documented answer.
    Kind("bad.pdf_not_a_pdf", "pdf", 1.5, "INVALID_ARGUMENT", "PDF_UNREADABLE"),
    Kind("bad.pdf_no_password", "pdf", 1.5, "INVALID_ARGUMENT", "PDF_PASSWORD_REQUIRED"),
    Kind("bad.pdf_page_range", "pdf", 1.5, "OUT_OF_RANGE", "PAGE_OUT_OF_RANGE"),
    Kind("bad.audio_not_audio", "transcription", 1.0, "INVALID_ARGUMENT", "AUDIO_UNDECODABLE"),
    Kind("bad.audio_truncated", "transcription", 1.0, "INVALID_ARGUMENT", "AUDIO_TRUNCATED"),
    Kind("bad.image_corrupt", "embedding", 1.5, item_reason="IMAGE_UNDECODABLE"),
    Kind("bad.texts_empty", "embedding", 1.5, "INVALID_ARGUMENT", "INVALID_REQUEST"),
)
SERVICES = ("pdf", "transcription", "embedding")


def schedule(count: int, seed: int) -> list[int]:
    """The kind (index into KINDS) of each request: a seeded draw by weight."""
    rng = random.Random(seed)
    return rng.choices(range(len(KINDS)), weights=[k.weight for k in KINDS], k=count)


@dataclass
class Record:
    index: int
    kind: str
    service: str
    started: float
    seconds: float
    answer: str
    """"OK", "CODE REASON", or "OK item REASON"; "BAD_RESPONSE ..." for an OK answer that is
    not what the input must give."""
    expected: bool
    message: str = ""


class Caller:
    """One client process's stubs and the call for each kind."""

    def __init__(self, target: str, inputs: Inputs) -> None:
        import grpc

        class Bearer(grpc.UnaryUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
            """Every call carries the soak's token."""

            def _with_token(self, details: Any) -> Any:
                metadata = [*(details.metadata or ()), ("authorization", f"Bearer {TOKEN}")]
                return details._replace(metadata=metadata)

            def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
                return continuation(self._with_token(details), request)

            def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
                return continuation(self._with_token(details), requests)

        from sensorium.embedding.v1 import embedding_service_pb2 as embedding_pb
        from sensorium.embedding.v1 import embedding_service_pb2_grpc as embedding_grpc
        from sensorium.pdf.v1 import pdf_service_pb2 as pdf_pb
        from sensorium.pdf.v1 import pdf_service_pb2_grpc as pdf_grpc
        from sensorium.transcription.v1 import transcription_service_pb2 as tr_pb
        from sensorium.transcription.v1 import transcription_service_pb2_grpc as tr_grpc
        from sensorium.type.v1 import upload_pb2

        self.grpc, self.pdf_pb, self.tr_pb, self.embedding_pb = grpc, pdf_pb, tr_pb, embedding_pb
        self.upload_pb2 = upload_pb2
        options = [("grpc.max_receive_message_length", 64 * 1024 * 1024)]
        self.channel = grpc.insecure_channel(target, options=options)
        channel = grpc.intercept_channel(self.channel, Bearer())
        self.pdf = pdf_grpc.PdfServiceStub(channel)
        self.transcription = tr_grpc.TranscriptionServiceStub(channel)
        self.embedding = embedding_grpc.EmbeddingServiceStub(channel)
        self.inputs = inputs
        self.decoding = tr_pb.TranscriptionOptions(beam_size=1, temperatures=[0.0],
                                                   condition_on_previous_text=False, language="en")
        self.calls: dict[str, Callable[[int], str]] = {
            "pdf.extract": self.pdf_extract, "pdf.stream": self.pdf_stream,
            "transcription.transcribe": self.transcribe, "transcription.stream": self.transcribe_stream,
            "embedding.texts": self.embed_texts, "embedding.images": self.embed_images,
            "embedding.score": self.score, "embedding.stream": self.embed_stream,
            "bad.pdf_not_a_pdf": lambda i: self._extract(b"this is a text file, not a PDF\n" * 8),
            "bad.pdf_no_password": lambda i: self._extract(self.inputs.pdf_encrypted),
            "bad.pdf_page_range": lambda i: self._extract(self.inputs.pdf, first_page=5),
            "bad.audio_not_audio": lambda i: self._transcribe(os.urandom(4096)),
            "bad.audio_truncated": lambda i: self._transcribe(self.inputs.wav[: len(self.inputs.wav) // 4]),
            "bad.image_corrupt": self.corrupt_image,
            "bad.texts_empty": lambda i: self._answer(self.embedding.EmbedTexts(
                self.embedding_pb.EmbedTextsRequest(texts=[]), timeout=TIMEOUT)),
        }

    # Each call returns the answer as a string (see `Record.answer`); errors raise RpcError.

    @staticmethod
    def _answer(response: Any, item_errors: list[Any] | None = None) -> str:
        from sensorium.errors import Reason

        reasons = sorted({Reason(e.reason).name for e in item_errors or [] if e.reason})
        return "OK" + "".join(f" item {r}" for r in reasons)

    def _extract(self, content: bytes, **options: Any) -> str:
        never = self.pdf_pb.OCR_MODE_NEVER
        request = self.pdf_pb.ExtractDocumentRequest(
            content=content, options=self.pdf_pb.ExtractOptions(ocr_mode=never, **options))
        response = self.pdf.ExtractDocument(request, timeout=TIMEOUT)
        if len(response.pages) != 2 or not response.pages[1].text.startswith("Page 2."):
            return f"BAD_RESPONSE {len(response.pages)} pages"
        return "OK"

    def pdf_extract(self, i: int) -> str:
        return self._extract(self.inputs.pdf)

    def pdf_stream(self, i: int) -> str:
        options = self.pdf_pb.ExtractOptions(include_images=True, max_pages_per_message=8,
                                             ocr_mode=self.pdf_pb.OCR_MODE_NEVER)
        content = self.inputs.pdf_with_image
        upload = self.upload_pb2.UploadHeader(filename="soak.pdf", size_bytes=len(content))
        header = self.pdf_pb.StreamExtractDocumentHeader(upload=upload, options=options)
        requests = [self.pdf_pb.StreamExtractDocumentRequest(header=header),
                    self.pdf_pb.StreamExtractDocumentRequest(chunk=content)]
        responses = list(self.pdf.StreamExtractDocument(iter(requests), timeout=TIMEOUT))
        kinds = [r.WhichOneof("result") for r in responses]
        pages = sum(len(r.pages.pages) for r in responses if r.HasField("pages"))
        # Up to 8 pages a message: the worker's own batches may split the 2 pages in two.
        if (kinds[0], kinds[-1], kinds.count("image"), pages) != ("metadata", "summary", 1, 2):
            return f"BAD_RESPONSE {kinds}"
        return "OK"

    def _transcribe(self, content: bytes) -> str:
        response = self.transcription.Transcribe(
            self.tr_pb.TranscribeRequest(content=content, options=self.decoding), timeout=TIMEOUT)
        if not response.segments or abs(response.info.duration_seconds - 2.0) > 1.0:
            return f"BAD_RESPONSE {len(response.segments)} segments"
        return "OK"

    def transcribe(self, i: int) -> str:
        return self._transcribe(self.inputs.wav)

    def transcribe_stream(self, i: int) -> str:
        content = self.inputs.flac
        header = self.tr_pb.StreamTranscribeHeader(
            upload=self.upload_pb2.UploadHeader(filename="soak.flac", size_bytes=len(content)),
            options=self.decoding)
        requests = [self.tr_pb.StreamTranscribeRequest(header=header),
                    self.tr_pb.StreamTranscribeRequest(chunk=content)]
        responses = self.transcription.StreamTranscribe(iter(requests), timeout=TIMEOUT)
        kinds = [r.WhichOneof("result") for r in responses]
        if kinds[0] != "info" or kinds[-1] != "summary" or "segment" not in kinds:
            return f"BAD_RESPONSE {kinds}"
        return "OK"

    def embed_texts(self, i: int) -> str:
        texts = [self.inputs.texts[(i + k) % len(self.inputs.texts)] for k in range(4)]
        request = self.embedding_pb.EmbedTextsRequest(texts=texts)
        response = self.embedding.EmbedTexts(request, timeout=TIMEOUT)
        if len(response.results) != 4 or not all(r.HasField("vector") for r in response.results):
            return "BAD_RESPONSE texts"
        return self._answer(response, [r.error for r in response.results])

    def _images(self, i: int, count: int) -> list[bytes]:
        return [self.inputs.images[(i + k) % len(self.inputs.images)] for k in range(count)]

    def embed_images(self, i: int) -> str:
        request = self.embedding_pb.EmbedImagesRequest(images=self._images(i, 2))
        response = self.embedding.EmbedImages(request, timeout=TIMEOUT)
        if len(response.results) != 2:
            return "BAD_RESPONSE images"
        return self._answer(response, [r.error for r in response.results])

    def score(self, i: int) -> str:
        request = self.embedding_pb.ScoreRequest(images=self._images(i, 2), texts=list(self.inputs.texts[:3]))
        response = self.embedding.Score(request, timeout=TIMEOUT)
        if len(response.rows) != 2 or any(len(row.probabilities) != 3 for row in response.rows):
            return "BAD_RESPONSE score"
        return self._answer(response, [row.error for row in response.rows])

    def embed_stream(self, i: int) -> str:
        pb = self.embedding_pb
        items = [pb.StreamEmbedRequest(id="t0", text=self.inputs.texts[i % 5]),
                 pb.StreamEmbedRequest(id="t1", text=self.inputs.texts[(i + 1) % 5]),
                 pb.StreamEmbedRequest(id="i0", image=self._images(i, 1)[0])]
        answers = list(self.embedding.StreamEmbed(iter(items), timeout=TIMEOUT))
        if sorted(a.id for a in answers) != ["i0", "t0", "t1"]:
            return "BAD_RESPONSE stream"
        return self._answer(answers, [a.error for a in answers])

    def corrupt_image(self, i: int) -> str:
        good = self._images(i, 1)[0]
        corrupt = good[: len(good) // 3]  # truncated: the header is there, the pixels are not
        response = self.embedding.EmbedImages(
            self.embedding_pb.EmbedImagesRequest(images=[good, corrupt]), timeout=TIMEOUT)
        if len(response.results) != 2 or not response.results[0].HasField("vector"):
            return "BAD_RESPONSE corrupt image"
        return self._answer(response, [r.error for r in response.results])

    def call(self, index: int, kind: Kind) -> Record:
        from sensorium.client import details_from_rpc_error

        started = time.perf_counter()
        message = ""
        try:
            answer = self.calls[kind.name](index)
        except self.grpc.RpcError as exc:
            details = details_from_rpc_error(exc)
            answer = f"{details.code.name} {details.reason}".strip()
            message = details.message
        seconds = time.perf_counter() - started
        return Record(index, kind.name, kind.service, started, seconds, answer,
                      expected=answer == kind.expected, message=message)


TIMEOUT = 300.0


def client_process(target: str, inputs: Inputs, kinds: list[int], threads: int, next_index: Any,
                   done: Any, results: Any) -> None:
    """One client process: `threads` closed-loop callers taking request indices from the shared
    counter until the schedule is used up; its records go back on `results`."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    caller = Caller(target, inputs)
    records: list[Record] = []
    lock = threading.Lock()

    def loop() -> None:
        while True:
            with next_index.get_lock():
                index = next_index.value
                next_index.value += 1
            if index >= len(kinds):
                return
            record = caller.call(index, KINDS[kinds[index]])
            with lock:
                records.append(record)
            with done.get_lock():
                done.value += 1

    workers = [threading.Thread(target=loop) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    caller.channel.close()
    results.put([asdict(r) for r in records])


# --- The server and its memory -----------------------------------------------------------

@dataclass
class SlowUploads:
    """The tokenless slow-upload client (see the module docstring), in a thread until `stop`."""

    port: int
    streams_per_round: int
    idle_seconds: float = 5.0
    rounds: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    most_accepted: int = 0
    """The most message bytes the server let one stream send (HTTP/2 flow control)."""
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def run(self) -> None:
        method = "/sensorium.pdf.v1.PdfService/ExtractDocument"
        while not self._stop.is_set():
            try:
                probe = h2probe.open_streams(
                    self.port, [method] * self.streams_per_round, declared=SLOW_UPLOAD_DECLARED,
                    withhold=1024, send_seconds=30, idle_seconds=self.idle_seconds)
            except OSError as exc:  # the server went away at the end
                self.statuses[f"connection {type(exc).__name__}"] += 1
                self._stop.wait(1)
                continue
            self.rounds += 1
            for stream in probe.streams:
                name = "no answer" if stream.status is None else _status_name(stream.status)
                self.statuses[name] += 1
                self.most_accepted = max(self.most_accepted, stream.sent)

    def __enter__(self) -> SlowUploads:
        if self.streams_per_round:
            self._thread = threading.Thread(target=self.run, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(60)

    @property
    def refused_every_stream(self) -> bool:
        streams = sum(v for k, v in self.statuses.items() if not k.startswith("connection"))
        return streams > 0 and self.statuses["UNAUTHENTICATED"] == streams


def _status_name(code: int) -> str:
    import grpc

    return next((c.name for c in grpc.StatusCode if c.value[0] == code), str(code))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def serving(
    args: argparse.Namespace, model_dir: Path, work: Path
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`sensorium serve` with all three services, requiring the soak's token (its tokens file in
    `work`), until the block ends; (address, process)."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    address = f"127.0.0.1:{_free_port()}"
    tokens = work / "soak-tokens"
    tokens.write_text(TOKEN + "\n")
    tokens.chmod(0o600)
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SENSORIUM_")}
    environment.update({
        "SENSORIUM_ADDRESS": address, "SENSORIUM_HEALTH_PORT": "0", "SENSORIUM_METRICS_PORT": "-1",
        "SENSORIUM_SERVICES": ",".join(SERVICES), "SENSORIUM_DEVICE": "cpu",
        "SENSORIUM_SHUTDOWN_DELAY_SECONDS": "0", "SENSORIUM_MODEL_DIR": str(model_dir),
        "SENSORIUM_TRANSCRIPTION__MODEL": "packaged:tiny.en",
        "SENSORIUM_EMBEDDING__MODEL": args.embedding_model,
        "SENSORIUM_EMBEDDING__PRETRAINED": args.embedding_pretrained,
        "SENSORIUM_LOG_LEVEL": "WARNING", "SENSORIUM_AUTH__TOKENS_FILE": str(tokens),
    })
    process = subprocess.Popen([sys.executable, "-m", "sensorium.cli", "serve"], env=environment)
    try:
        with grpc.insecure_channel(address) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            deadline = time.monotonic() + 600
            while True:
                with contextlib.suppress(grpc.RpcError):
                    status = health.Check(health_pb2.HealthCheckRequest(), timeout=2).status
                    if status == health_pb2.HealthCheckResponse.SERVING:
                        break
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the server did not start (exit {process.poll()})")
                time.sleep(0.5)
        yield address, process
    finally:
        process.terminate()
        code = process.wait(120)
        if code != 0:
            harness.log(f"soak: the server exited {code} after SIGTERM")


@dataclass
class MemorySample:
    seconds: float
    requests_done: int
    rss_bytes: int
    """Resident memory of the server and all its descendants."""
    server_rss_bytes: int
    """Of the server process alone."""
    processes: int


@dataclass
class MemoryMonitor:
    """Samples the process tree of `pid` every `interval` seconds in a thread."""

    pid: int
    done: Any
    interval: float = 1.0
    samples: list[MemorySample] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def sample(self) -> MemorySample | None:
        try:
            root = psutil.Process(self.pid)
            tree = [root, *root.children(recursive=True)]
            server = root.memory_info().rss
        except psutil.NoSuchProcess:
            return None
        total = 0
        for process in tree:
            with contextlib.suppress(psutil.NoSuchProcess):  # a worker recycled meanwhile
                total += process.memory_info().rss
        return MemorySample(time.monotonic() - self.started, self.done.value, total, server, len(tree))

    def run(self) -> None:
        while not self._stop.wait(self.interval):
            if (sample := self.sample()) is not None:
                self.samples.append(sample)

    def __enter__(self) -> MemoryMonitor:
        self.started = time.monotonic()
        if (first := self.sample()) is not None:
            self.samples.append(first)
        self._thread = threading.Thread(target=self.run, name="rss", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join()
        if (last := self.sample()) is not None:
            self.samples.append(last)


def rss_slope(
    samples: list[MemorySample], warmup: int, attribute: str = "rss_bytes"
) -> dict[str, float] | None:
    """Least-squares line of RSS against requests done, after `warmup` requests: its slope in
    bytes per request and in % of the fitted RSS at the end of the warm-up per 10,000 requests."""
    points = [(s.requests_done, getattr(s, attribute)) for s in samples if s.requests_done >= warmup]
    if len(points) < 3 or len({x for x, _ in points}) < 2:
        return None
    x, y = np.array(points, dtype=np.float64).T
    slope, intercept = np.polyfit(x, y, 1)
    base = slope * warmup + intercept
    return {"bytes_per_request": float(slope), "base_bytes": float(base),
            "percent_per_10k": float(100 * slope * 10_000 / base), "samples": len(points)}


# --- Report ------------------------------------------------------------------------------

def _ms(seconds: list[float], q: float) -> str:
    return f"{harness.percentile(sorted(seconds), q) * 1000:.0f}"


def _mib(value: float) -> str:
    return f"{value / 2**20:,.0f}"


def report(args: argparse.Namespace, records: list[Record], samples: list[MemorySample], wall: float,
           machine: dict[str, Any]) -> dict[str, Any]:
    answers: Counter[str] = Counter()
    unexpected: Counter[str] = Counter()
    examples: dict[str, str] = {}
    latencies: dict[str, list[float]] = defaultdict(list)
    by_kind: dict[str, list[float]] = defaultdict(list)
    for record in records:
        answers[f"{record.kind}: {record.answer}"] += 1
        latencies[record.service].append(record.seconds)
        by_kind[record.kind].append(record.seconds)
        if not record.expected:
            key = f"{record.kind}: {record.answer}"
            unexpected[key] += 1
            examples.setdefault(key, record.message)
    codes = Counter(r.answer.split(" item ")[0] for r in records)
    total = sum(unexpected.values())
    slope = rss_slope(samples, args.warmup)
    server_slope = rss_slope(samples, args.warmup, "server_rss_bytes")

    print(harness.machine_markdown(machine))
    print(f"\nCommand: `{' '.join([Path(sys.executable).name, *sys.argv])}`\n")
    print(f"- {len(records)} requests in {wall:.0f} s: **{len(records) / wall:.2f} requests/s** "
          f"({args.clients} client processes x {args.threads} callers)")
    print(f"- unexpected errors: **{total}**")
    for key, count in unexpected.most_common():
        kind = next(k for k in KINDS if key.startswith(k.name + ":"))
        print(f"  - {key} x{count} (expected {kind.expected}): {examples[key][:200]}")
    print("- answers by code and reason: " + ", ".join(f"{k} {v}" for k, v in sorted(codes.items())))
    print("\n| service | requests | p50 ms | p95 ms | p99 ms | max ms |\n|---|--:|--:|--:|--:|--:|")
    for service in SERVICES:
        values = latencies.get(service, [])
        if values:
            print(f"| {service} | {len(values)} | {_ms(values, 50)} | {_ms(values, 95)} | "
                  f"{_ms(values, 99)} | {max(values) * 1000:.0f} |")
    print("\n| call | expected answer | requests | p50 ms | p95 ms | p99 ms |\n|---|---|--:|--:|--:|--:|")
    for kind in KINDS:
        values = by_kind.get(kind.name, [])
        if values:
            print(f"| {kind.name} | {kind.expected} | {len(values)} | {_ms(values, 50)} | "
                  f"{_ms(values, 95)} | {_ms(values, 99)} |")
    print("\nResident memory of the server's process tree (server + PDF workers):\n")
    print("| requests done | elapsed s | tree RSS MiB | server RSS MiB | processes |\n|--:|--:|--:|--:|--:|")
    marks = sorted({0, args.warmup, *(round(len(records) * f / 10) for f in range(1, 11))})
    for mark in marks:
        sample = next((s for s in samples if s.requests_done >= mark), samples[-1] if samples else None)
        if sample is not None:
            print(f"| {sample.requests_done} | {sample.seconds:.0f} | {_mib(sample.rss_bytes)} | "
                  f"{_mib(sample.server_rss_bytes)} | {sample.processes} |")
    if samples:
        peak = max(s.rss_bytes for s in samples)
        print(f"\n- peak tree RSS {_mib(peak)} MiB over {len(samples)} samples (one a second)")
    for label, fit in (("tree", slope), ("server process alone", server_slope)):
        if fit is None:
            print(f"- RSS slope ({label}): too few samples after {args.warmup} requests")
            continue
        verdict = "within" if fit["percent_per_10k"] < TARGET_SLOPE_PERCENT else "OVER"
        print(f"- RSS slope after {args.warmup} warm-up requests ({label}): "
              f"**{fit['percent_per_10k']:+.2f} % per 10,000 requests** "
              f"({fit['bytes_per_request']:+,.0f} bytes/request from {_mib(fit['base_bytes'])} MiB; "
              f"{verdict} the {TARGET_SLOPE_PERCENT:g} % target)")
    summary = {
        "requests": len(records), "wall_s": wall, "throughput_rps": len(records) / wall,
        "unexpected_errors": total, "unexpected": dict(unexpected), "unexpected_examples": examples,
        "kinds": {kind.name: kind.expected for kind in KINDS}, "answers": dict(answers),
        "codes": dict(codes),
        "latency_ms": {name: {f"p{q}": harness.percentile(sorted(v), q) * 1000 for q in (50, 95, 99)}
                       for name, v in [*latencies.items(), *by_kind.items()]},
        "rss_slope": slope, "server_rss_slope": server_slope,
        "rss_samples": [asdict(s) for s in samples],
    }
    return summary


def main(args: argparse.Namespace) -> int:
    machine = harness.describe_machine()
    kinds = schedule(args.requests, args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(args.model_dir or tmp)
        inputs = Inputs.make(Path(tmp), args.audio_seconds)
        harness.log("soak: starting the server")
        with serving(args, model_dir, Path(tmp)) as (address, process):
            context = multiprocessing.get_context("spawn")  # fresh processes: no forked gRPC state
            next_index, done = context.Value("q", 0), context.Value("q", 0)
            results = context.Queue()
            clients = [context.Process(target=client_process, daemon=True,
                                       args=(address, inputs, kinds, args.threads, next_index, done, results))
                       for _ in range(args.clients)]
            harness.log(f"soak: {args.requests} requests from {args.clients} clients "
                        f"x {args.threads} callers")
            records: list[Record] = []
            port = int(address.rsplit(":", 1)[1])
            with MemoryMonitor(process.pid, done) as monitor, \
                    SlowUploads(port, args.slow_uploads) as slow:
                started = time.perf_counter()
                for client in clients:
                    client.start()
                last_log = started
                while len([c for c in clients if c.exitcode is None]) and len(records) < args.requests:
                    with contextlib.suppress(queue.Empty):
                        records += [Record(**r) for r in results.get(timeout=1)]
                    if not args.quiet and time.perf_counter() - last_log >= args.progress_interval:
                        last_log = time.perf_counter()
                        rss = monitor.samples[-1].rss_bytes if monitor.samples else 0
                        harness.log(f"soak: {done.value}/{args.requests} done, tree RSS {_mib(rss)} MiB")
                    if process.poll() is not None:
                        harness.log(f"soak: the server died (exit {process.returncode})")
                        break
                    if any(c.exitcode not in (None, 0) for c in clients):
                        harness.log("soak: a client process failed")
                        break
                while not results.empty():
                    records += [Record(**r) for r in results.get()]
                wall = time.perf_counter() - started
            for client in clients:
                client.join(10)
    missing = args.requests - len(records)
    summary = report(args, records, monitor.samples, wall, machine)
    if missing:
        print(f"- **{missing} requests got no answer** (a client or the server died)")
    slow_failed = bool(args.slow_uploads) and not slow.refused_every_stream
    if args.slow_uploads:
        streams = sum(slow.statuses.values())
        print(f"- tokenless slow-upload client: {slow.rounds} rounds, {streams} streams of "
              f"{args.slow_uploads} at a time declaring {SLOW_UPLOAD_DECLARED // 2**20} MiB each: "
              + ", ".join(f"{k} {v}" for k, v in sorted(slow.statuses.items()))
              + f"; at most {slow.most_accepted:,} bytes of one stream let through"
              + (" (**not every stream refused**)" if slow_failed else ""))
        summary["slow_uploads"] = {"rounds": slow.rounds, "statuses": dict(slow.statuses),
                                   "most_accepted_bytes": slow.most_accepted}
    if args.json:
        harness.write_json(args.json, [], machine=machine, command=" ".join(sys.argv),
                           extra={"soak": summary, "missing": missing})
    return 1 if summary["unexpected_errors"] or missing or slow_failed else 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", "-n", type=int, default=10_000,
                        help="requests in all (default: %(default)s)")
    parser.add_argument("--warmup", type=int, default=WARMUP_DEFAULT,
                        help="requests before the RSS fit starts (default: %(default)s)")
    parser.add_argument("--clients", type=int, default=4, help="client processes (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=2,
                        help="closed-loop callers per client process (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=12, help="seed of the call mix (default: %(default)s)")
    parser.add_argument("--slow-uploads", type=int, default=8, metavar="STREAMS",
                        help="streams the tokenless slow-upload client holds open at a time; "
                        "0 = none (default: %(default)s)")
    parser.add_argument("--audio-seconds", type=float, default=2.0,
                        help="length of the speech (default: %(default)s)")
    parser.add_argument("--embedding-model", default="ViT-B-32",
                        help="SENSORIUM_EMBEDDING__MODEL of the server (default: %(default)s)")
    parser.add_argument("--embedding-pretrained", default="",
                        help='SENSORIUM_EMBEDDING__PRETRAINED ("" = random weights; default: "%(default)s")')
    parser.add_argument("--model-dir", default="",
                        help="prepared model weights (default: a temporary directory)")
    parser.add_argument("--json", type=Path, default=None, metavar="OUT.json",
                        help="also write everything as JSON")
    parser.add_argument("--progress-interval", type=float, default=30.0, metavar="SECONDS")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress on stderr")
    args = parser.parse_args(argv)
    if args.requests <= 0 or args.clients <= 0 or args.threads <= 0:
        parser.error("--requests, --clients and --threads must be positive")
    return args


if __name__ == "__main__":
    sys.exit(main(parse_args()))
