"""Speech fixtures for the transcription tests: espeak-ng sentences, format conversion with
PyAV, and a word error rate."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np
import numpy.typing as npt

SAMPLE_RATE = 16000

SENTENCES = (
    "The quick brown fox jumps over the lazy dog.",
    "Please call Stella and ask her to bring these things with her from the store.",
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background.",
    "It is easy to tell the depth of a well.",
    "These days a chicken leg is a rare dish.",
    "Rice is often served in round bowls.",
    "The juice of lemons makes fine punch.",
    "The box was thrown beside the parked truck.",
    "Four hours of steady work faced us.",
)
"""Known sentences (mostly Harvard sentences, written for intelligibility tests)."""

JFK_TEXT = ("And so my fellow Americans, ask not what your country can do for you, ask what you "
            "can do for your country.")

ESPEAK = shutil.which("espeak-ng")


def espeak(text: str, path: Path, *, voice: str = "en-us", words_per_minute: int = 150) -> Path:
    """`text` spoken by espeak-ng into a WAV file (22.05 kHz mono)."""
    assert ESPEAK, "espeak-ng is not installed (apt-get install espeak-ng)"
    subprocess.run([ESPEAK, "-v", voice, "-s", str(words_per_minute), "-w", str(path), text],
                   check=True, capture_output=True)
    return path


def load(path: Path) -> npt.NDArray[np.float32]:
    from faster_whisper.audio import decode_audio

    samples: npt.NDArray[np.float32] = decode_audio(str(path))
    return samples


def silence(seconds: float) -> npt.NDArray[np.float32]:
    return np.zeros(int(seconds * SAMPLE_RATE), np.float32)


# format -> (container, codec, sample rate, layout, codec options)
FORMATS: dict[str, tuple[str, str, int, str, dict[str, str]]] = {
    "wav": ("wav", "pcm_s16le", 16000, "mono", {}),
    "flac": ("flac", "flac", 16000, "mono", {}),
    "mp3": ("mp3", "libmp3lame", 16000, "mono", {}),
    # FFmpeg's own Vorbis encoder is "experimental" and stereo-only; libvorbis is not bundled.
    "ogg": ("ogg", "vorbis", 16000, "stereo", {"strict": "experimental"}),
    "opus": ("ogg", "libopus", 48000, "mono", {}),
    "m4a": ("ipod", "aac", 16000, "mono", {}),
}


def encode(samples: npt.NDArray[np.float32], path: Path, fmt: str, *, with_video: bool = False) -> Path:
    """Write 16 kHz mono `samples` as `fmt` (see FORMATS, plus "mp4": AAC beside a video track)."""
    import av

    if fmt == "mp4":
        container_name, codec, rate, layout, options = "mp4", "aac", 16000, "mono", {}
        with_video = True
    else:
        container_name, codec, rate, layout, options = FORMATS[fmt]
    # x 32768 inverts the decoder's / 32768: lossless formats round-trip sample for sample.
    pcm = np.clip(np.round(samples * 32768), -32768, 32767).astype(np.int16)
    with av.open(str(path), "w", format=container_name) as container:
        stream = container.add_stream(codec, rate=rate, layout=layout)
        stream.codec_context.options = options
        video = None
        if with_video:
            video = container.add_stream("mpeg4", rate=Fraction(5))
            video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        resampler = av.AudioResampler(
            format=stream.codec_context.format.name if stream.codec_context.format else "fltp",
            layout=layout, rate=rate,
        )
        step = SAMPLE_RATE
        for i in range(0, max(len(pcm), 1), step):
            frame = av.AudioFrame.from_ndarray(pcm[None, i:i + step], format="s16", layout="mono")
            frame.sample_rate = SAMPLE_RATE
            frame.pts = None
            for out in resampler.resample(frame):
                container.mux(stream.encode(out))
        for out in resampler.resample(None):
            container.mux(stream.encode(out))
        container.mux(stream.encode(None))
        if video is not None:
            seconds = len(pcm) / SAMPLE_RATE
            for n in range(max(1, int(seconds * 5))):
                image = av.VideoFrame.from_ndarray(np.full((48, 64, 3), n % 255, np.uint8), format="rgb24")
                image.pts = n
                container.mux(video.encode(image))
            container.mux(video.encode(None))
    return path


def write_wav(samples: npt.NDArray[np.float32], path: Path) -> Path:
    return encode(samples, path, "wav")


_ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
         "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
         "nineteen"]
_TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]


def _number(n: int) -> str:
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    if n < 1000:
        rest = n % 100
        return _ONES[n // 100] + " hundred" + ("" if rest == 0 else " " + _number(rest))
    return " ".join(_ONES[int(d)] for d in str(n))


def normalize(text: str) -> list[str]:
    """Lower case, numbers as words, punctuation dropped (apostrophes inside words kept)."""
    text = re.sub(r"\d+", lambda m: f" {_number(int(m.group()))} ", text.lower())
    text = re.sub(r"[^a-z' ]+", " ", text.replace("-", " "))
    return [word.strip("'") for word in text.split() if word.strip("'")]


def wer(reference: str | Sequence[str], hypothesis: str | Sequence[str]) -> float:
    """Word error rate: (substitutions + deletions + insertions) / reference words."""
    ref = normalize(reference if isinstance(reference, str) else " ".join(reference))
    hyp = normalize(hypothesis if isinstance(hypothesis, str) else " ".join(hypothesis))
    row = list(range(len(hyp) + 1))
    for i, word in enumerate(ref, 1):
        previous, row[0] = row[0], i
        for j, other in enumerate(hyp, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (word != other))
    return row[len(hyp)] / max(len(ref), 1)
