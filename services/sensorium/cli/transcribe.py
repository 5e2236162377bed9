"""`sensorium transcribe FILE`: timed segments of speech, or the whole result as JSON."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from sensorium.cli.common import PROTOBUF_JSON, add_client_flags, clock, deadline, open_engines
from sensorium.exits import Exit
from sensorium.transcription import wire
from sensorium.transcription.api import TRANSCRIPTION, Info, RequestedOptions, Segment, TranscriptionSummary
from sensorium.wire import to_json


def add_parser(commands: Any) -> None:
    transcribe = commands.add_parser("transcribe", help="transcribe speech in an audio file",
                                     description="Print timed segments of the transcript.")
    transcribe.add_argument("file", type=Path, help="audio file (wav, mp3, flac, ogg, opus, m4a)")
    transcribe.add_argument("--language", default="", help="ISO 639-1 code; default: detect")
    transcribe.add_argument("--translate", action="store_true", help="translate to English")
    transcribe.add_argument("--word-timestamps", action="store_true", help="include words")
    transcribe.add_argument("--vad", action="store_true", help="skip non-speech (Silero VAD)")
    transcribe.add_argument("--beam-size", type=int, default=0, help="beam size (default 5)")
    add_client_flags(transcribe, json_help=PROTOBUF_JSON)
    transcribe.set_defaults(run=run)


async def run(args: argparse.Namespace) -> int:
    options = RequestedOptions(
        language=args.language, task="translate" if args.translate else "transcribe",
        beam_size=args.beam_size, word_timestamps=args.word_timestamps,
        vad_filter=True if args.vad else None,
    )
    started = time.perf_counter()
    info: Info | None = None
    segments: list[Segment] = []
    async with open_engines(args, "transcription") as engines:
        transcription = await engines.open(TRANSCRIPTION)
        async for piece in transcription.transcribe_file(args.file, options, deadline=deadline(args)):
            if isinstance(piece, Info):
                info = piece
                continue
            segments.append(piece)
            if not args.json:
                print(f"[{clock(piece.start)} -> {clock(piece.end)}] {piece.text}", flush=True)
    if args.json:
        duration = info.duration if info is not None else 0.0
        summary = TranscriptionSummary.of(len(segments), time.perf_counter() - started, duration)
        print(to_json(wire.transcript_response(info, segments, summary)))
    return Exit.OK
