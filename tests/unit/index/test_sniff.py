"""Sniffing judges files by content: real files of every supported format, made here."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

import testkit
from sensorium.errors import Reason
from sensorium.index.sniff import HEAD_BYTES, Sniffed, hash_and_sniff, sniff, sniff_file


def _audio(container: str, codec: str, rate: int = 16000) -> bytes:
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=container) as output:
        stream = output.add_stream(codec, rate=rate)
        samples = (np.sin(np.arange(rate // 2) / 8) * 8000).astype(np.int16)[None]
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = rate
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            output.mux(packet)
    return buffer.getvalue()


def _image(format: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (24, 16), "red").save(buffer, format)
    return buffer.getvalue()


AUDIO = {
    "wav": lambda: _audio("wav", "pcm_s16le"),
    "mp3": lambda: _audio("mp3", "mp3"),
    "flac": lambda: _audio("flac", "flac"),
    "opus": lambda: _audio("ogg", "libopus", 48000),
    "m4a": lambda: _audio("ipod", "aac"),
}
# Containers of video and sound alike: the video kind reads them (a file with no picture is
# indexed by its sound alone: tests/e2e/test_media_index.py).
VIDEO_CONTAINERS = {
    "mp4": lambda: _audio("mp4", "aac"),
    "webm": lambda: _audio("webm", "libopus", 48000),
    "mkv": lambda: _audio("matroska", "libopus", 48000),
}
IMAGES = ["JPEG", "PNG", "GIF", "WEBP", "TIFF", "BMP"]


@pytest.mark.parametrize("name", sorted(AUDIO))
def test_audio_formats_are_audio(name, tmp_path):
    path = tmp_path / "recording.bin"  # the name says nothing
    path.write_bytes(AUDIO[name]())
    assert sniff_file(path).kind == "audio"


@pytest.mark.parametrize("name", sorted(VIDEO_CONTAINERS))
def test_video_containers_are_video_whatever_they_carry(name, tmp_path):
    path = tmp_path / "recording.bin"
    path.write_bytes(VIDEO_CONTAINERS[name]())
    assert sniff_file(path).kind == "video"


def test_mp3_without_an_id3_tag_is_audio():
    data = _audio("mp3", "mp3")
    assert data[:3] == b"ID3"
    size = (data[6] << 21) | (data[7] << 14) | (data[8] << 7) | data[9]  # syncsafe tag size
    bare = data[10 + size :]
    assert bare[0] == 0xFF  # a frame header, as from a stream ripper
    assert sniff(bare[:HEAD_BYTES]).kind == "audio"


@pytest.mark.parametrize("format", IMAGES)
def test_image_formats_are_images(format, tmp_path):
    path = tmp_path / "picture.dat"
    path.write_bytes(_image(format))
    assert sniff_file(path).kind == "image"


def test_a_pdf_under_an_mp3_name_is_a_pdf(tmp_path):
    path = tmp_path / "song.mp3"
    path.write_bytes(testkit.make_pdf(["hello"]))
    verdict = sniff_file(path)
    assert (verdict.kind, verdict.mime) == ("pdf", "application/pdf")


def test_pdf_header_counts_within_the_first_1024_bytes_as_the_pdf_service_does():
    pdf = testkit.make_pdf(["hello"])
    assert sniff(b"\0" * 1000 + pdf).kind == "pdf"  # junk before the header, as readers allow
    late = sniff(b"\0" * 1100 + pdf)
    assert late.kind is None and late.reason == Reason.UNSUPPORTED_TYPE


def test_an_image_under_a_pdf_name_is_an_image(tmp_path):
    path = tmp_path / "scan.pdf"
    path.write_bytes(_image("PNG"))
    assert sniff_file(path).kind == "image"


def test_other_types_are_skipped_with_the_type_named(tmp_path):
    path = tmp_path / "bundle.docx"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("a.txt", "x")
    for verdict in (sniff(path.read_bytes()), sniff_file(path)):
        assert verdict.kind is None and verdict.reason == Reason.UNSUPPORTED_TYPE
        assert verdict.mime == "application/zip" and "zip archive" in verdict.message
        assert "does not index inside archives" in verdict.message
    assert "(1 file)" in sniff_file(path).message  # its directory read from the file
    tar = b"x" * 257 + b"ustar\x0000" + b"\x00" * 300
    verdict = sniff(tar)
    assert verdict.kind is None and verdict.mime == "application/x-tar"


def test_text_is_a_document_and_binary_named_text_is_not(tmp_path):
    diary = tmp_path / "diary"
    diary.write_bytes(b"Dear diary, today I wrote a plain text file.\n")
    assert sniff_file(diary) == Sniffed("document", "text/plain")
    notes = tmp_path / "notes.md"
    notes.write_bytes(b"# Notes\n\nPlain words.\n")
    assert sniff_file(notes) == Sniffed("document", "text/markdown")
    binary = tmp_path / "data.txt"
    binary.write_bytes(bytes(range(256)) * 8)
    verdict = sniff_file(binary)
    assert verdict.kind is None and verdict.reason == Reason.UNSUPPORTED_TYPE
    assert "binary, not text" in verdict.message and ".txt" in verdict.message


def test_signatures_come_before_text(tmp_path):
    """PDF and media are claimed before documents, whose text check would take anything."""
    path = tmp_path / "paper.txt"
    path.write_bytes(b"%PDF-1.7\n" + b"plain looking text\n" * 20)
    assert sniff_file(path).kind == "pdf"


def test_empty_files_are_skipped_as_empty(tmp_path):
    path = tmp_path / "empty.pdf"
    path.write_bytes(b"")
    verdict = sniff_file(path)
    assert verdict.kind is None and verdict.reason == Reason.INPUT_EMPTY


def test_unreadable_files_raise_oserror(tmp_path: Path):
    with pytest.raises(FileNotFoundError):
        sniff_file(tmp_path / "missing")


def test_one_read_gives_the_content_hash_and_the_kind(tmp_path):
    data = _image("PNG") + bytes(range(256)) * 50  # longer than the head and than one chunk
    path = tmp_path / "x"
    path.write_bytes(data)
    sha, verdict = hash_and_sniff(path, chunk_bytes=1000)
    assert sha == hashlib.sha256(data).hexdigest()
    assert verdict.kind == "image"
    assert hash_and_sniff(tmp_path / "x")[0] == sha
