"""Hostile input at scale: hypothesis fuzzes a running server that hosts all four services.

Each test starts one in-process `Server` on 127.0.0.1:0 (`start_server`: PDF workers, packaged
`tiny.en` Whisper, the project-trained tiny CLIP) and calls it over a real gRPC channel with the
raw generated stubs, so that every request field can take any value. The inputs are mutated
fixtures the tests generate (PDFs with text, images, dates and a password; espeak-ng speech as
WAV, MP3, FLAC, Ogg, Opus and M4A; PNG, JPEG, GIF, WebP, TIFF, BMP, HEIC and AVIF images, a
screenshot with text and a phone photo with EXIF; H.264 MP4 and MOV, VP9 WebM and MPEG-4 MKV
videos with and without sound, one turned portrait; Word, PowerPoint, OpenDocument, EPUB, HTML,
Markdown, text, CSV, subtitles and mail made by pandoc and Python, with the hostile documents: a
zip bomb, billion laughs, a span bomb, a binary .txt, a truncated .pptx, an encrypted .docx and a
mail in a mail in a mail): bit flips, byte
overwrites with values parsers trip on, truncation, insertion, deletion and splices of two
fixtures; and random values of every request field (options, page ranges, passwords, languages,
temperatures, beam sizes, batch flags, truncation modes, empty and huge strings, stream
protocol order), on unary and streaming calls.

Properties, for every answer:

- OK, or a status that carries a Sensorium reason whose status code is that reason's code
  (`sensorium.status.CODES`): never UNKNOWN, never a bare gRPC status, never a deadline passed;
  so INTERNAL only with PARSER_CRASH or INTERNAL_ERROR;
- no server path (the temporary directory, the repository, the Python installation,
  site-packages, the home directory) and no stack trace in the status message, its metadata,
  or any per-item error or OCR message;
- an OK answer is whole (one result per item, pages counted in the summary);
- after each example the server still reports SERVING, overall and for every service.

Runs are derandomized: CI sees the same examples every time. Examples per test default to a
budget that keeps this module under a minute on a 2-core machine; a longer run:

    FUZZ_EXAMPLES=5000 .venv/bin/python -m pytest tests/integration/test_fuzz.py -q \\
        --hypothesis-show-statistics

(`FUZZ_EXAMPLES` examples for every test, no per-test time limit; `FUZZ_SEED=N` explores other
examples than the derandomized ones; `--hypothesis-show-statistics` lists the statuses seen.)
"""

from __future__ import annotations

import asyncio
import io
import itertools
import os
import re
import site
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, event, given, seed, settings
from hypothesis import strategies as st
from PIL import Image

import docmaker
import mediakit
import speechkit
import testkit
import tiny_clip
from sensorium.client import details_from_rpc_error
from sensorium.document.v1 import document_service_pb2 as document_pb
from sensorium.document.v1 import document_service_pb2_grpc as document_grpc
from sensorium.embedding.v1 import embedding_service_pb2 as embedding_pb
from sensorium.embedding.v1 import embedding_service_pb2_grpc as embedding_grpc
from sensorium.errors import Reason
from sensorium.media.v1 import media_service_pb2 as media_pb
from sensorium.media.v1 import media_service_pb2_grpc as media_grpc
from sensorium.pdf.v1 import pdf_service_pb2 as pdf_pb
from sensorium.pdf.v1 import pdf_service_pb2_grpc as pdf_grpc
from sensorium.photos import register_heif
from sensorium.search.v1 import search_service_pb2 as search_pb
from sensorium.search.v1 import search_service_pb2_grpc as search_grpc
from sensorium.status import CODES
from sensorium.transcription.v1 import transcription_service_pb2 as transcription_pb
from sensorium.transcription.v1 import transcription_service_pb2_grpc as transcription_grpc
from sensorium.type.v1 import upload_pb2

pytestmark = [pytest.mark.slow, pytest.mark.weights]

LONG_RUN = int(os.environ.get("FUZZ_EXAMPLES", "0"))
FUZZ_SEED = os.environ.get("FUZZ_SEED")
CALL_TIMEOUT = 120.0
"""Seconds a client waits for one answer; a server that takes longer has hung (the PDF
service's own limit in this server is 20 s)."""
PASSWORD = "fuzz-secret"


def fuzz(examples: int) -> Callable[[Any], Any]:
    """Hypothesis settings for one test: `examples` in CI, FUZZ_EXAMPLES in a long run."""
    def apply(test: Any) -> Any:
        test = settings(
            max_examples=LONG_RUN or examples, derandomize=FUZZ_SEED is None, deadline=None,
            database=None, print_blob=True,
            # The function-scoped server is shared by a test's examples on purpose.
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                   HealthCheck.large_base_example,
                                   HealthCheck.function_scoped_fixture],
        )(test)
        if FUZZ_SEED is not None:
            test = seed(int(FUZZ_SEED))(test)
        # A long run takes as long as it takes; pytest-timeout's 300 s guards CI runs only.
        return pytest.mark.timeout(0 if LONG_RUN else 300)(test)
    return apply


# --- The server under test --------------------------------------------------------------

@dataclass
class Stubs:
    channel: grpc.Channel
    pdf: Any = field(init=False)
    transcription: Any = field(init=False)
    embedding: Any = field(init=False)
    document: Any = field(init=False)
    media: Any = field(init=False)
    health: Any = field(init=False)

    def __post_init__(self) -> None:
        self.pdf = pdf_grpc.PdfServiceStub(self.channel)
        self.document = document_grpc.DocumentServiceStub(self.channel)
        self.media = media_grpc.MediaServiceStub(self.channel)
        self.transcription = transcription_grpc.TranscriptionServiceStub(self.channel)
        self.embedding = embedding_grpc.EmbeddingServiceStub(self.channel)
        self.health = health_pb2_grpc.HealthStub(self.channel)


@pytest.fixture
async def stubs(start_server, tmp_path) -> AsyncIterator[Stubs]:
    """One server per test, shared by all of its examples (so a bad example can break the
    next ones: that is what `assert_serving` after each example watches for).

    The calls use the synchronous gRPC stack in a thread (the server runs on the test's event
    loop): grpc.aio's client replaces the server's status with its own INTERNAL "Internal error
    from Core" when the server ends a stream while the client is still writing chunks
    (grpc/grpc#36066), which would hide the answer under test."""
    shapes = tiny_clip.build()
    server = await start_server(
        services=["pdf", "transcription", "embedding", "document", "media"], device="cpu",
        model_dir=tmp_path / "models", pdf={"workers": 1, "timeout_seconds": 20},
        document={"workers": 1, "timeout_seconds": 20, "soffice_timeout_seconds": 15},
        transcription={"model": "packaged:tiny.en", "workers": 1},
        embedding={"model": f"local-dir:{shapes}", "pretrained": "", "max_wait_ms": 2.0},
        media={"workers": 1, "timeout_seconds": 20},
    )
    options = [("grpc.max_receive_message_length", 64 * 1024 * 1024),
               ("grpc.max_send_message_length", 64 * 1024 * 1024)]
    with grpc.insecure_channel(f"127.0.0.1:{server.port}", options=options) as channel:
        yield Stubs(channel)


# --- Fixtures to mutate -------------------------------------------------------------------

def _pdfs() -> list[bytes]:
    import pymupdf

    words = "the birch canoe slid on the smooth planks glue the sheet to the dark blue background"
    dated = pymupdf.open(stream=testkit.make_pdf([words, words.upper()], title="Dated"))
    dated.set_metadata({"title": "Dated", "author": "Fuzz", "creationDate": "D:20240229120000+01'00'",
                        "modDate": "D:20240301000000Z"})
    return [
        testkit.make_pdf([words, words[::-1], "3"], title="Three pages"),
        testkit.make_pdf([words], image_pixels=24),
        testkit.make_pdf([words, words], user_password=PASSWORD),
        dated.tobytes(garbage=1),
        dated.tobytes(deflate=True),  # compressed streams: flips land in zlib data
        testkit.make_scanned_pdf("scan"),
    ]


PLAYLISTS = [
    b"ffconcat version 1.0\nfile 'clip.wav'\nfile 'clip.wav'\nfile 'clip.wav'\n",
    b"#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:10\n#EXTINF:10.0,\nclip.wav\n#EXT-X-ENDLIST\n",
    b"#EXTM3U\n/etc/hostname\n",
    b"file:///etc/hostname\n",
    b"[playlist]\nFile1=/etc/hostname\nNumberOfEntries=1\n",
]
"""Files that tell FFmpeg to open other files (issue 22): a concat script, an HLS playlist, an
.m3u and .pls naming local paths. Refused (UNSUPPORTED_TYPE) or undecodable, never decoded."""


def _audio(directory: Path) -> list[bytes]:
    spoken = speechkit.load(speechkit.espeak("Glue the sheet.", directory / "speech.wav"))
    clip = np.concatenate([spoken, speechkit.silence(2.0)])[: 2 * speechkit.SAMPLE_RATE]
    return [speechkit.encode(clip, directory / f"clip.{fmt}", fmt).read_bytes()
            for fmt in ("wav", "mp3", "flac", "ogg", "opus", "m4a")] + PLAYLISTS


def _images() -> list[bytes]:
    rng = np.random.default_rng(3)
    shape = tiny_clip.draw("circle", "red", rng, size=40)

    def encoded(image: Image.Image, fmt: str, **options: Any) -> bytes:
        buffer = io.BytesIO()
        image.save(buffer, format=fmt, **options)
        return buffer.getvalue()

    rotated = Image.Exif()
    rotated[0x0112] = 6  # EXIF orientation: a quarter turn
    frames = [shape, tiny_clip.draw("square", "blue", rng, size=40)]
    depth = Image.fromarray(np.arange(40 * 32, dtype=np.uint16).reshape(32, 40) * 50)  # I;16
    register_heif()
    camera = mediakit.exif(orientation=8, original="2024:02:29 23:59:59", offset="+05:45")
    camera[0x010F], camera[0x0110] = "Apple", "iPhone 13"
    return [
        tiny_clip.png(shape),
        mediakit.heic(shape.convert("RGB"), camera),
        encoded(shape.convert("RGB"), "AVIF", exif=camera.tobytes()),
        encoded(mediakit.screenshot(["Error 42: disk full"], size=14, width=220).image, "PNG"),
        encoded(mediakit.photo_like(96, 64, seed=4), "JPEG", quality=70, exif=camera.tobytes()),
        encoded(shape.convert("RGBA"), "PNG"),
        encoded(depth, "PNG"),
        encoded(shape, "JPEG", quality=80),
        encoded(shape, "JPEG", exif=rotated.tobytes(), progressive=True),
        encoded(frames[0], "GIF", save_all=True, append_images=frames[1:], loop=0),
        encoded(shape, "WEBP"),
        encoded(shape, "TIFF", compression="tiff_lzw"),
        encoded(shape, "BMP"),
    ]


def _documents(directory: Path) -> list[bytes]:
    missing = docmaker.tools_missing()
    if "pandoc" in missing:
        raise RuntimeError("pandoc is not installed (scripts/setup installs it): the document seeds need it")
    return [path.read_bytes() for path in docmaker.make_seeds(directory / "documents")]


def _videos(directory: Path) -> list[bytes]:
    spoken = speechkit.load(speechkit.espeak("Glue the sheet.", directory / "speech.wav"))
    made = [
        mediakit.scene_video(directory / "a.mp4", [0.0, 1.0], 2.0, size=(48, 32), soundtrack=spoken,
                             metadata={"creation_time": "2024-02-29T23:59:59Z"}),
        mediakit.scene_video(directory / "b.mp4", [0.0, 1.0], 2.0, size=(48, 32), faststart=True,
                             rotate_clockwise=True),
        mediakit.scene_video(directory / "c.mov", [0.0], 1.0, size=(32, 32), container="mov"),
        mediakit.scene_video(directory / "d.webm", [0.0, 0.5], 1.0, size=(32, 32), container="webm",
                             codec="libvpx-vp9"),
        mediakit.scene_video(directory / "e.mkv", [0.0], 1.0, size=(32, 32), container="matroska",
                             codec="mpeg4"),
    ]
    return [path.read_bytes() for path in made]


@dataclass(frozen=True)
class Corpus:
    pdfs: list[bytes]
    audio: list[bytes]
    images: list[bytes]
    documents: list[bytes]
    videos: list[bytes]

    @property
    def everything(self) -> list[bytes]:
        return [*self.pdfs, *self.audio, *self.images, *self.documents, *self.videos]


_CORPUS: Corpus | None = None


def corpus() -> Corpus:
    """Built once per process, at the first draw (strategies are made at import, before any
    fixture runs; `st.deferred` keeps collection from building it)."""
    global _CORPUS
    if _CORPUS is None:
        with tempfile.TemporaryDirectory() as directory:
            _CORPUS = Corpus(_pdfs(), _audio(Path(directory)), _images(), _documents(Path(directory)),
                             _videos(Path(directory)))
    return _CORPUS


# --- Strategies --------------------------------------------------------------------------

TOKENS = [
    b"\x00", b"\xff", b"\x7f", b"\x80", b"\x00\x00\x00\x00", b"\xff\xff\xff\xff", b"\x7f\xff\xff\xff",
    b"\x00\x00\x00\x80", b"0", b"-1", b"4294967295", b"99999999999999999999", b"1e308",
    b"obj", b"endobj", b"stream", b"endstream", b"xref", b"trailer", b"R", b"<<", b">>", b"[", b"]",
    b"/Length 0", b"/Count 2147483647", b"/Filter/FlateDecode", b"D:0001", b"D:9999", b"+23'59'",
    b"-23'59'", b"RIFF", b"data", b"fmt ", b"fLaC", b"OggS", b"ID3", b"Xing", b"moov", b"mdat",
    b"\x89PNG", b"IHDR", b"IDAT", b"\xff\xd8", b"\xff\xd9", b"\xff\xc0", b"GIF89a", b"VP8 ",
    b"II*\x00", b"BM", b"ffconcat version 1.0\n", b"file '", b"#EXTM3U\n", b"#EXT-X-", b"file:",
    b"PK\x03\x04", b"PK\x01\x02", b"PK\x05\x06", b"\xd0\xcf\x11\xe0", b"mimetype",
    b"[Content_Types].xml", b"<!ENTITY", b"<!DOCTYPE", b"<![CDATA[", b"{\\rtf1", b"WEBVTT", b" --> ",
    b"Content-Type: multipart/mixed; boundary=", b"Content-Transfer-Encoding: base64", b"colspan=65534",
    b"ftyp", b"heic", b"avif", b"Exif\x00\x00", b"\x1aE\xdf\xa3", b"stsz", b"stco", b"avcC", b"hvcC",
]
"""Values parsers trip on (a fuzzer's dictionary): limits, markers and lengths of each format."""


@st.composite
def mutated(draw: st.DrawFn, sources: list[bytes]) -> bytes:
    """One of `sources`, changed by up to four mutations (or, rarely, random bytes)."""
    if draw(st.integers(0, 19)) == 0:
        return draw(st.binary(max_size=4096))
    data = bytearray(draw(st.sampled_from(sources)))
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["flip", "overwrite", "token", "truncate", "insert", "delete",
                                     "splice"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "overwrite":
            data[at:at + 4] = draw(st.binary(min_size=1, max_size=4))
        elif kind == "token":
            token = draw(st.sampled_from(TOKENS))
            data[at:at + len(token)] = token
        elif kind == "truncate":
            del data[at:]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=64))
        elif kind == "delete":
            del data[at:at + draw(st.integers(1, 256))]
        elif kind == "splice":
            other = draw(st.sampled_from(corpus().everything))
            data[at:] = other[draw(st.integers(0, len(other) - 1)):]
    return bytes(data)


def mutated_pdfs() -> st.SearchStrategy[bytes]:
    return st.deferred(lambda: mutated(corpus().pdfs))


def mutated_audio() -> st.SearchStrategy[bytes]:
    return st.deferred(lambda: mutated(corpus().audio))


def mutated_images() -> st.SearchStrategy[bytes]:
    return st.deferred(lambda: mutated(corpus().images))


def mutated_documents() -> st.SearchStrategy[bytes]:
    return st.deferred(lambda: mutated(corpus().documents))
def mutated_videos() -> st.SearchStrategy[bytes]:
    return st.deferred(lambda: mutated(corpus().videos))


def text(max_size: int = 40) -> st.SearchStrategy[str]:
    """Short strings, now and then empty, very long or full of control characters."""
    return st.one_of(
        st.text(max_size=max_size),
        st.just(""),
        st.sampled_from(["\x00", "\n\r\t", "\u202e", "ﬁ" * 50, "😀" * 100]),
        st.integers(1, 200_000).map(lambda n: "a" * n),
    )


def uint32() -> st.SearchStrategy[int]:
    return st.one_of(st.integers(0, 8), st.sampled_from([2**31 - 1, 2**31, 2**32 - 1]),
                     st.integers(0, 2**32 - 1))


def wild() -> st.SearchStrategy[bool]:
    """One request in three has options from anywhere; the others get plausible ones, so that
    most requests reach the parsers and models instead of stopping at validation."""
    return st.integers(0, 2).map(lambda n: n == 2)  # shrinks towards plausible


@st.composite
def pdf_options(draw: st.DrawFn, unary: bool = False) -> pdf_pb.ExtractOptions:
    """`unary`: plausible options ask for images only where they are returned (streams)."""
    if draw(wild()):
        return draw(st.builds(
            pdf_pb.ExtractOptions,
            first_page=uint32(), last_page=uint32(),
            password=st.one_of(st.just(""), st.just(PASSWORD), text()),
            include_blocks=st.booleans(), include_images=st.booleans(),
            ocr_mode=st.integers(0, 4),  # 3 and 4 are not in the enum: proto3 enums are open
            max_pages_per_message=uint32(),
        ))
    first = draw(st.integers(0, 3))
    return pdf_pb.ExtractOptions(
        first_page=first, last_page=draw(st.sampled_from([0, first, first + 1])),
        password=draw(st.sampled_from(["", PASSWORD])), include_blocks=draw(st.booleans()),
        include_images=not unary and draw(st.booleans()), ocr_mode=draw(st.integers(0, 2)),
        max_pages_per_message=draw(st.integers(0, 4)),
    )


def _set_optional(draw: st.DrawFn, message: transcription_pb.TranscriptionOptions, name: str,
                  values: list[bool | None]) -> None:
    value = draw(st.sampled_from(values))
    if value is not None:
        setattr(message, name, value)


@st.composite
def transcription_options(draw: st.DrawFn) -> transcription_pb.TranscriptionOptions:
    if draw(wild()):
        floats = st.floats(width=32, allow_nan=True, allow_infinity=True)
        message = transcription_pb.TranscriptionOptions(
            language=draw(st.one_of(st.sampled_from(["", "en", "EN", " en ", "de", "xx", "zh"]), text(8))),
            task=draw(st.integers(0, 3)),
            beam_size=draw(st.one_of(st.integers(0, 6), st.integers(30, 34), uint32())),
            word_timestamps=draw(st.booleans()),
            initial_prompt=draw(text()), hotwords=draw(text()),
            temperatures=draw(st.one_of(st.just([0.0]), st.lists(floats, max_size=18))),
            batched=draw(st.booleans()),
            batch_size=draw(st.one_of(st.integers(0, 4), uint32())),
            allow_truncated=draw(st.booleans()),
        )
        _set_optional(draw, message, "vad_filter", [None, False, True])
        _set_optional(draw, message, "condition_on_previous_text", [None, False, True])
        return message
    batched = draw(st.booleans())
    temperatures = st.lists(st.floats(0.0, 1.0, width=32), min_size=1, max_size=1 if batched else 3)
    message = transcription_pb.TranscriptionOptions(
        language=draw(st.sampled_from(["", "en"])), task=draw(st.integers(0, 1)),
        beam_size=draw(st.integers(0, 4)), word_timestamps=draw(st.booleans()),
        initial_prompt=draw(st.text(max_size=40)), hotwords=draw(st.text(max_size=20)),
        temperatures=draw(st.one_of(st.just([]), st.just([0.0]), temperatures)),
        batched=batched, batch_size=draw(st.integers(0, 4)) if batched else 0,
        allow_truncated=draw(st.booleans()),
    )
    _set_optional(draw, message, "vad_filter", [None, False, True])
    conditions: list[bool | None] = [None, False] if batched else [None, False, True]
    _set_optional(draw, message, "condition_on_previous_text", conditions)
    return message


def embed_options() -> st.SearchStrategy[embedding_pb.EmbedOptions]:
    return st.builds(embedding_pb.EmbedOptions, unnormalized=st.booleans(), truncation=st.integers(0, 4))


@st.composite
def chunked(draw: st.DrawFn, content: bytes) -> list[bytes]:
    """`content` cut at random places (empty chunks included)."""
    cuts = sorted(draw(st.lists(st.integers(0, len(content)), max_size=6)))
    edges = [0, *cuts, len(content)]
    return [content[a:b] for a, b in itertools.pairwise(edges)]


PROTOCOLS = ["header, chunks", "header, chunks", "header, chunks", "header only", "no header",
             "header twice", "chunk first", "empty"]
"""How a stream's messages are ordered (the valid order most often)."""


def stream_messages(
    protocol: str, header: Message, chunks: list[bytes], wrap: Callable[..., Any]
) -> list[Any]:
    first = wrap(header=header)
    body = [wrap(chunk=chunk) for chunk in chunks]
    return {
        "header, chunks": [first, *body],
        "header only": [first],
        "no header": body,
        "header twice": [first, *body[:1], first, *body[1:]],
        "chunk first": [*body[:1], first, *body[1:]],
        "empty": [],
    }[protocol]


def upload_header(content: bytes) -> st.SearchStrategy[upload_pb2.UploadHeader]:
    return st.builds(
        upload_pb2.UploadHeader, filename=text(), media_type=text(),
        size_bytes=st.one_of(st.just(len(content)), st.just(0), st.integers(0, 2**64 - 1)),
    )


# --- Properties --------------------------------------------------------------------------

def _server_places() -> list[str]:
    places = {tempfile.gettempdir(), str(testkit.REPO), sys.prefix, sys.base_prefix,
              os.path.expanduser("~"), *site.getsitepackages(), "/work/"}
    return sorted(p.rstrip("/") + "/" for p in places if len(p) > 1)


SERVER_PLACES = _server_places()
LEAKS = re.compile("|".join([*map(re.escape, SERVER_PLACES), "site-packages", "Traceback",
                             r'File "', r"\.py\b", "sensorium-upload-"]))
"""What must never reach a client: a path on the server, or a stack trace."""


def _leaks(message: str, echoed: Iterable[str]) -> list[str]:
    # The server may quote what the client sent (an unknown language code): that is not a leak.
    for value in sorted(echoed, key=len, reverse=True):
        if len(value) >= 2:
            message = message.replace(repr(value)[1:-1], "").replace(value, "")
    return LEAKS.findall(message)


def _children(message: Message) -> Iterator[Message]:
    """The messages directly inside `message` (maps hold strings here: they are skipped)."""
    for descriptor, value in message.ListFields():
        if descriptor.message_type is None or descriptor.message_type.GetOptions().map_entry:
            continue
        yield from value if descriptor.is_repeated else [value]


def _item_errors(message: Message) -> Iterator[str]:
    """The reason of every per-item error inside a response."""
    for child in _children(message):
        if child.DESCRIPTOR.name == "ItemError":
            yield Reason(child.reason).name
        else:
            yield from _item_errors(child)


def _messages(message: Message) -> Iterator[str]:
    """Every per-item error message and OCR message inside a response, with item errors'
    metadata values (they could carry a path as well as the message)."""
    for descriptor, value in message.ListFields():
        if descriptor.name in ("message", "ocr_message") and isinstance(value, str):
            yield value
        elif descriptor.message_type is not None and descriptor.message_type.GetOptions().map_entry:
            yield from (v for v in value.values() if isinstance(v, str))
    for child in _children(message):
        yield from _messages(child)


@dataclass
class Answer:
    method: str
    code: grpc.StatusCode = grpc.StatusCode.OK
    reason: str = ""
    responses: list[Message] = field(default_factory=list)
    error_text: list[str] = field(default_factory=list)
    """A failed call's message, raw details and ErrorInfo metadata values."""


def check(answer: Answer, echoed: Iterable[str]) -> None:
    """The properties of the module docstring for one answer (in the test's thread: hypothesis
    records events only there)."""
    event(f"{answer.method}: {answer.code.name} {answer.reason}".strip())
    for reason in {r for response in answer.responses for r in _item_errors(response)}:
        event(f"{answer.method}: an item failed with {reason}")
    echoed = list(echoed)
    if answer.code != grpc.StatusCode.OK:
        assert answer.code != grpc.StatusCode.UNKNOWN, answer
        assert answer.reason in Reason.__members__, f"a status without a Sensorium reason: {answer}"
        assert CODES[Reason[answer.reason]] == answer.code, answer
        if answer.code == grpc.StatusCode.INTERNAL:
            assert answer.reason in ("PARSER_CRASH", "INTERNAL_ERROR"), answer
    for text_ in [*answer.error_text, *(m for r in answer.responses for m in _messages(r))]:
        assert not _leaks(text_, echoed), f"{answer.method} leaked {_leaks(text_, echoed)}: {text_!r}"


async def unary(method: Callable[..., Any], name: str, request: Message,
                echoed: Iterable[str] = ()) -> Answer:
    answer = await asyncio.to_thread(_unary, method, name, request)
    check(answer, echoed)
    return answer


async def streaming(method: Callable[..., Any], name: str, requests: list[Any],
                    echoed: Iterable[str] = ()) -> Answer:
    answer = await asyncio.to_thread(_streaming, method, name, requests)
    check(answer, echoed)
    return answer


async def assert_serving(stubs: Stubs) -> None:
    await asyncio.to_thread(_assert_serving, stubs)


def _unary(method: Callable[..., Any], name: str, request: Message) -> Answer:
    try:
        return Answer(name, responses=[method(request, timeout=CALL_TIMEOUT)])
    except grpc.RpcError as exc:
        return _failed(name, exc)


def _streaming(method: Callable[..., Any], name: str, requests: list[Any]) -> Answer:
    responses: list[Message] = []
    try:
        responses.extend(method(iter(requests), timeout=CALL_TIMEOUT))
    except grpc.RpcError as exc:
        failed = _failed(name, exc)
        failed.responses = responses
        return failed
    return Answer(name, responses=responses)


def _failed(name: str, exc: grpc.RpcError) -> Answer:
    raw: Any = exc
    try:
        details = details_from_rpc_error(exc)
    except ValueError:  # the rich status and the call's code disagree: not a Sensorium status
        return Answer(name, raw.code(), error_text=[raw.details() or ""])
    return Answer(name, details.code, details.reason,
                  error_text=[details.message, raw.details() or "", *details.metadata.values()])


def _assert_serving(stubs: Stubs) -> None:
    for service in ["", "sensorium.pdf.v1.PdfService", "sensorium.transcription.v1.TranscriptionService",
                    "sensorium.embedding.v1.EmbeddingService", "sensorium.document.v1.DocumentService",
                    "sensorium.media.v1.MediaService"]:
        status = stubs.health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10).status
        assert status == health_pb2.HealthCheckResponse.SERVING, f"{service or 'server'}: {status}"


def _strings(message: Message) -> list[str]:
    """Every string field of a request, for `_leaks` to tell quoting from leaking."""
    found: list[str] = []
    for descriptor, value in message.ListFields():
        if descriptor.message_type is not None:
            for item in value if descriptor.is_repeated else [value]:
                found += _strings(item)
        elif isinstance(value, str):
            found.append(value)
        elif descriptor.is_repeated and value and isinstance(value[0], str):
            found += list(value)
    return found


# --- PDF ---------------------------------------------------------------------------------

@fuzz(examples=150)
@given(content=mutated_pdfs(), options=pdf_options(unary=True))
async def test_extract_document_answers_every_mutated_pdf_cleanly(stubs, content, options):
    answer = await unary(stubs.pdf.ExtractDocument, "ExtractDocument",
                   pdf_pb.ExtractDocumentRequest(content=content, options=options),
                   echoed=_strings(options))
    if answer.code == grpc.StatusCode.OK:
        response = answer.responses[0]
        assert response.summary.pages_extracted == len(response.pages) > 0
        assert response.metadata.page_count >= len(response.pages)
    await assert_serving(stubs)


@fuzz(examples=100)
@given(data=st.data(), content=mutated_pdfs(), options=pdf_options(),
       protocol=st.sampled_from(PROTOCOLS))
async def test_stream_extract_document_answers_every_mutated_upload_cleanly(
    stubs, data, content, options, protocol
):
    header = pdf_pb.StreamExtractDocumentHeader(upload=data.draw(upload_header(content)), options=options)
    requests = stream_messages(protocol, header, data.draw(chunked(content)),
                               pdf_pb.StreamExtractDocumentRequest)
    answer = await streaming(stubs.pdf.StreamExtractDocument, "StreamExtractDocument", requests,
                       echoed=_strings(header))
    if answer.code == grpc.StatusCode.OK:
        kinds = [r.WhichOneof("result") for r in answer.responses]
        assert kinds[0] == "metadata" and kinds[-1] == "summary" and kinds.count("summary") == 1
        pages = sum(len(r.pages.pages) if r.HasField("pages") else r.HasField("page")
                    for r in answer.responses)
        assert answer.responses[-1].summary.pages_extracted == pages > 0
    await assert_serving(stubs)


# --- Transcription -----------------------------------------------------------------------

@fuzz(examples=60)
@given(content=mutated_audio(), options=transcription_options())
async def test_transcribe_answers_every_mutated_audio_file_cleanly(stubs, content, options):
    answer = await unary(stubs.transcription.Transcribe, "Transcribe",
                   transcription_pb.TranscribeRequest(content=content, options=options),
                   echoed=_strings(options))
    if content in PLAYLISTS:  # refused, at the latest when FFmpeg would have opened it
        assert answer.code != grpc.StatusCode.OK and not answer.reason.startswith("AUDIO_"), answer
    if answer.code == grpc.StatusCode.OK:
        response = answer.responses[0]
        assert response.summary.segment_count == len(response.segments)
        assert response.info.duration_seconds <= 60  # the fixtures are 2 s; nothing is invented
    await assert_serving(stubs)


@fuzz(examples=40)
@given(data=st.data(), content=mutated_audio(), options=transcription_options(),
       protocol=st.sampled_from(PROTOCOLS))
async def test_stream_transcribe_answers_every_mutated_upload_cleanly(
    stubs, data, content, options, protocol
):
    header = transcription_pb.StreamTranscribeHeader(upload=data.draw(upload_header(content)),
                                                     options=options)
    requests = stream_messages(protocol, header, data.draw(chunked(content)),
                               transcription_pb.StreamTranscribeRequest)
    answer = await streaming(stubs.transcription.StreamTranscribe, "StreamTranscribe", requests,
                       echoed=_strings(header))
    if answer.code == grpc.StatusCode.OK:
        kinds = [r.WhichOneof("result") for r in answer.responses]
        assert kinds[0] == "info" and kinds[-1] == "summary"
        assert answer.responses[-1].summary.segment_count == kinds.count("segment")
    await assert_serving(stubs)


# --- Embedding ---------------------------------------------------------------------------

def images() -> st.SearchStrategy[list[bytes]]:
    return st.one_of(st.lists(mutated_images(), min_size=1, max_size=4), st.just([]))


def texts() -> st.SearchStrategy[list[str]]:
    some = st.lists(text(), min_size=1, max_size=6)
    return st.one_of(some, some, st.just([]),
                     st.integers(250, 300).map(lambda n: ["a red circle"] * n))


@fuzz(examples=150)
@given(images=images(), texts=texts(), options=embed_options(),
       call=st.sampled_from(["EmbedImages", "EmbedTexts", "Score", "GetEmbeddingSpace"]))
async def test_unary_embedding_calls_answer_every_mutated_image_and_text_cleanly(
    stubs, images, texts, options, call
):
    if call == "EmbedImages":
        request: Message = embedding_pb.EmbedImagesRequest(images=images, options=options)
        items = len(images)
    elif call == "EmbedTexts":
        request, items = embedding_pb.EmbedTextsRequest(texts=texts, options=options), len(texts)
    elif call == "Score":
        request, items = embedding_pb.ScoreRequest(images=images, texts=texts), len(images)
    else:
        request, items = embedding_pb.GetEmbeddingSpaceRequest(), 0
    answer = await unary(getattr(stubs.embedding, call), call, request, echoed=texts)
    if answer.code == grpc.StatusCode.OK and call != "GetEmbeddingSpace":
        response = answer.responses[0]
        results = response.rows if call == "Score" else response.results
        assert len(results) == items
        for result in results:
            if call == "Score":
                has_value = len(result.similarities) == len(texts) > 0
            else:
                has_value = result.HasField("vector")
            assert has_value != result.HasField("error"), result
    await assert_serving(stubs)


@st.composite
def stream_items(draw: st.DrawFn) -> list[embedding_pb.StreamEmbedRequest]:
    items = []
    for _ in range(draw(st.integers(0, 6))):
        item = embedding_pb.StreamEmbedRequest(id=draw(text(12)), options=draw(embed_options()))
        kind = draw(st.sampled_from(["text", "image", "image", "neither"]))
        if kind == "text":
            item.text = draw(text())
        elif kind == "image":
            item.image = draw(mutated_images())
        items.append(item)
    return items


@fuzz(examples=80)
@given(items=stream_items())
async def test_stream_embed_answers_every_item_cleanly(stubs, items):
    answer = await streaming(stubs.embedding.StreamEmbed, "StreamEmbed", items,
                       echoed=[s for item in items for s in _strings(item)])
    if answer.code == grpc.StatusCode.OK:
        assert sorted(r.id for r in answer.responses) == sorted(item.id for item in items)
        for response in answer.responses:
            assert response.HasField("vector") != response.HasField("error"), response
    await assert_serving(stubs)


# --- Documents ---------------------------------------------------------------------------

def document_names() -> st.SearchStrategy[str]:
    """The filename a client sends (its extension counts among text formats)."""
    return st.one_of(
        st.sampled_from(["", "report.docx", "slides.pptx", "notes.md", "ships.csv", "ships.tsv", "talk.vtt",
                         "dues.eml", "a.txt", "report.doc", "budget.xlsx", "../../etc/passwd", "C:\\x.rst"]),
        text(),
    )


@st.composite
def document_options(draw: st.DrawFn, unary: bool = False) -> document_pb.ParseOptions:
    """`unary`: plausible options ask for pictures and attachments only where they come back."""
    if draw(wild()):
        return document_pb.ParseOptions(
            include_pictures=draw(st.booleans()), include_attachments=draw(st.booleans()),
            attached=draw(st.booleans()), max_sections_per_message=draw(uint32()))
    return document_pb.ParseOptions(
        include_pictures=not unary and draw(st.booleans()),
        include_attachments=not unary and draw(st.booleans()), attached=draw(st.booleans()),
        max_sections_per_message=draw(st.integers(0, 4)))


@fuzz(examples=100)
@given(content=mutated_documents(), filename=document_names(), options=document_options(unary=True))
async def test_parse_document_answers_every_mutated_document_cleanly(stubs, content, filename, options):
    request = document_pb.ParseDocumentRequest(content=content, filename=filename, options=options)
    answer = await unary(stubs.document.ParseDocument, "ParseDocument", request,
                         echoed=[filename, *_strings(options)])
    if answer.code == grpc.StatusCode.OK:
        response = answer.responses[0]
        assert response.summary.sections == len(response.sections)
        assert response.summary.characters == sum(len(s.text) for s in response.sections)
        assert response.metadata.format != document_pb.DOCUMENT_FORMAT_UNSPECIFIED
    await assert_serving(stubs)


@fuzz(examples=60)
@given(data=st.data(), content=mutated_documents(), options=document_options(),
       protocol=st.sampled_from(PROTOCOLS))
async def test_stream_parse_document_answers_every_mutated_upload_cleanly(
    stubs, data, content, options, protocol
):
    header = document_pb.StreamParseDocumentHeader(upload=data.draw(upload_header(content)), options=options)
    requests = stream_messages(protocol, header, data.draw(chunked(content)),
                               document_pb.StreamParseDocumentRequest)
    answer = await streaming(stubs.document.StreamParseDocument, "StreamParseDocument", requests,
                             echoed=_strings(header))
    if answer.code == grpc.StatusCode.OK:
        kinds = [r.WhichOneof("result") for r in answer.responses]
        assert kinds[0] == "metadata" and kinds[-1] == "summary" and kinds.count("summary") == 1
        summary = answer.responses[-1].summary
        sections = sum(len(r.sections.sections) for r in answer.responses if r.HasField("sections"))
        assert summary.sections == sections
        if not options.include_pictures:
            assert "picture" not in kinds
        parts = [r.attachment for r in answer.responses if r.HasField("attachment")]
        assert summary.attachments == sum(part.offset == 0 for part in parts)
        if not options.include_attachments:
            assert not parts
    await assert_serving(stubs)


# --- Media -------------------------------------------------------------------------------

def image_text_options() -> st.SearchStrategy[media_pb.ImageTextOptions]:
    return st.builds(media_pb.ImageTextOptions, text_mode=st.integers(0, 3),  # 3: not in the enum
                     preview_side=st.one_of(st.integers(0, 512), uint32()))


@fuzz(examples=80)
@given(content=mutated_images(), options=image_text_options())
async def test_read_image_text_answers_every_mutated_image_cleanly(stubs, content, options):
    answer = await unary(stubs.media.ReadImageText, "ReadImageText",
                         media_pb.ReadImageTextRequest(content=content, options=options))
    if answer.code == grpc.StatusCode.OK:
        result = answer.responses[0].result
        assert result.width > 0 and result.height > 0 and result.status != media_pb.TEXT_STATUS_UNSPECIFIED
        assert all(0 <= line.bbox.x0 <= line.bbox.x1 <= result.width for line in result.lines)
        assert len(result.preview) < 4 * 1024 * 1024
    await assert_serving(stubs)


@fuzz(examples=40)
@given(data=st.data(), content=mutated_images(), options=image_text_options(),
       protocol=st.sampled_from(PROTOCOLS))
async def test_stream_read_image_text_answers_every_mutated_upload_cleanly(
    stubs, data, content, options, protocol
):
    header = media_pb.StreamReadImageTextHeader(upload=data.draw(upload_header(content)), options=options)
    requests = stream_messages(protocol, header, data.draw(chunked(content)),
                               media_pb.StreamReadImageTextRequest)
    answer = await streaming(stubs.media.StreamReadImageText, "StreamReadImageText", requests,
                             echoed=_strings(header))
    if answer.code == grpc.StatusCode.OK:
        assert len(answer.responses) == 1 and answer.responses[0].result.width > 0
    await assert_serving(stubs)


@fuzz(examples=60)
@given(data=st.data(), content=mutated_videos(), max_frames=st.one_of(st.integers(0, 4), uint32()),
       protocol=st.sampled_from(PROTOCOLS))
async def test_stream_extract_video_frames_answers_every_mutated_video_cleanly(
    stubs, data, content, max_frames, protocol
):
    header = media_pb.StreamExtractVideoFramesHeader(
        upload=data.draw(upload_header(content)), options=media_pb.VideoOptions(max_frames=max_frames))
    requests = stream_messages(protocol, header, data.draw(chunked(content)),
                               media_pb.StreamExtractVideoFramesRequest)
    answer = await streaming(stubs.media.StreamExtractVideoFrames, "StreamExtractVideoFrames", requests,
                             echoed=_strings(header))
    if answer.code == grpc.StatusCode.OK:
        kinds = [r.WhichOneof("result") for r in answer.responses]
        assert kinds[-1] == "summary" and kinds.count("summary") == 1 and kinds.count("frame") >= 1
        assert max_frames == 0 or kinds.count("frame") <= max_frames
        times = [r.frame.seconds for r in answer.responses if r.HasField("frame")]
        assert times == sorted(times)
    await assert_serving(stubs)


# --- Search ------------------------------------------------------------------------------

@dataclass
class SearchStubs:
    search: Any
    health: Any
    index: Path


@pytest.fixture
async def search_stubs(start_server, tmp_path) -> AsyncIterator[SearchStubs]:
    """A server hosting search over an index of the shapes captions, with the embedding service
    beside it (image queries)."""
    from query_kit import CAPTIONS, add_captions, shapes_model_dir, shapes_tower

    index = tmp_path / "index"
    add_captions(index, shapes_tower(), CAPTIONS)
    model_dir, model = shapes_model_dir()
    server = await start_server(
        services=["search", "embedding"], device="cpu", model_dir=model_dir,
        embedding={"model": model, "pretrained": "", "max_wait_ms": 2.0}, search={"index_dir": index},
    )
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield SearchStubs(search_grpc.SearchServiceStub(channel), health_pb2_grpc.HealthStub(channel), index)


def timestamps() -> st.SearchStrategy[Any]:
    """Unset, ordinary, or past what a datetime holds."""
    from google.protobuf import timestamp_pb2

    return st.one_of(st.none(), st.builds(timestamp_pb2.Timestamp, seconds=st.integers(-2**62, 2**62),
                                          nanos=st.integers(0, 999_999_999)),
                     st.builds(timestamp_pb2.Timestamp, seconds=st.integers(0, 4_000_000_000)))


@st.composite
def search_requests(draw: st.DrawFn) -> search_pb.SearchRequest:
    request = search_pb.SearchRequest(
        k=draw(st.one_of(st.integers(0, 20), st.integers(0, 2**32 - 1))),
        offset=draw(st.one_of(st.integers(0, 5), st.integers(0, 2**32 - 1))),
        mode=draw(st.integers(0, 7)), chunks=draw(st.booleans()),
        kinds=draw(st.lists(st.one_of(st.sampled_from(["pdf_text", "image", "audio"]), text(12)),
                            max_size=3)),
        path_glob=draw(st.one_of(st.just(""), text(20),
                                 st.sampled_from(["*.pdf", "*circle*", "[", "[!a-", "'; DROP", "\\"]))),
    )
    if draw(st.booleans()):
        request.image = draw(mutated_images())
    else:
        request.text = draw(st.one_of(st.sampled_from(["a red circle", '"red circle"', "circle OR square",
                                                       "' OR 1=1 --", "*", ""]), text(60)))
    for name in ("modified_after", "modified_before"):
        stamp = draw(timestamps())
        if stamp is not None:
            getattr(request, name).CopyFrom(stamp)
    if draw(st.booleans()):
        request.min_score = draw(st.floats(allow_nan=True, allow_infinity=True))
    return request


@fuzz(examples=80)
@given(request=search_requests())
async def test_search_answers_any_request_cleanly_and_never_writes(search_stubs, request):
    before = sorted((p, p.stat().st_mtime_ns) for p in search_stubs.index.rglob("*") if p.is_file())
    answer = await unary(search_stubs.search.Search, "Search", request, echoed=_strings(request))
    if answer.code == grpc.StatusCode.OK:
        response = answer.responses[0]
        assert len(response.results) <= (request.k or 10) and len(response.chunks) <= (request.k or 10)
    after = sorted((p, p.stat().st_mtime_ns) for p in search_stubs.index.rglob("*") if p.is_file())
    assert after == before, "a search wrote the index"
    for service in ["", "sensorium.search.v1.SearchService"]:
        status = await asyncio.to_thread(
            search_stubs.health.Check, health_pb2.HealthCheckRequest(service=service), timeout=10)
        assert status.status == health_pb2.HealthCheckResponse.SERVING
