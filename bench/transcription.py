"""Transcription service vs faster-whisper called directly, same audio, same options, same run.

(a) real-time factor (wall seconds per audio second) of one client through the service
    (unary call, 1 model worker) ÷ faster-whisper's `WhisperModel.transcribe(path)` in this
    process with the same weights, device, compute type and CPU threads — target <= 1.05;
(b) throughput (audio seconds transcribed per wall second) with 4 concurrent clients and 1 vs 2
    model workers (the workers split the CPU threads between them).

The audio is espeak-ng speech of known sentences repeated to at least `--audio-seconds` (64 by
default), as 16 kHz WAV. Options: beam size 5, temperature 0, no conditioning on previous text,
no VAD. The server runs in this process (its model workers are threads); the weights are the
packaged ones (`--model packaged:tiny.en packaged:base`).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import wave
from pathlib import Path
from typing import Any

import harness
import numpy as np

from sensorium.client import Client
from sensorium.device import thread_counts
from sensorium.server import Server
from sensorium.settings import Settings
from sensorium.transcription import models
from sensorium.transcription.remote import TranscriptionClient
from sensorium.transcription.v1 import transcription_service_pb2 as pb

# The first eight: the audio every recorded run of this benchmark used (82.2 s at 64 s asked).
SENTENCES = harness.SENTENCES[:8]
OPTIONS = {"beam_size": 5, "temperature": [0.0], "condition_on_previous_text": False,
           "vad_filter": False}


def make_audio(directory: Path, seconds: float) -> tuple[Path, float]:
    speech = harness.espeak(directory / "speech.wav", " ".join(SENTENCES))
    from faster_whisper.audio import decode_audio

    one = decode_audio(str(speech))
    repeats = int(np.ceil(seconds * 16000 / len(one)))
    samples = np.tile(one, repeats)
    path = directory / "bench.wav"
    with wave.open(str(path), "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(16000)
        writer.writeframes((samples * 32768).clip(-32768, 32767).astype(np.int16).tobytes())
    return path, len(samples) / 16000


def settings(model: str, model_dir: Path, workers: int) -> Settings:
    return Settings(address="127.0.0.1:0", health_port=0, metrics_port=-1, services=["transcription"],
                    shutdown_delay_seconds=0, device="cpu", model_dir=model_dir,
                    transcription={"model": model, "workers": workers, "queue_size": 16})


async def service_run(model: str, model_dir: Path, path: Path, audio_seconds: float, workers: int,
                      concurrency: int, requests: int, args: argparse.Namespace) -> harness.RunResult:
    content = path.read_bytes()  # noqa: ASYNC240 - before the measurement starts
    server = Server(settings(model, model_dir, workers))
    await server.start()
    options = pb.TranscriptionOptions(beam_size=5, temperatures=[0.0],
                                      condition_on_previous_text=False, vad_filter=False)
    try:
        async with Client(f"127.0.0.1:{server.port}") as client:
            async def call(i: int) -> None:
                response = await TranscriptionClient(client).transcribe(content, options)
                assert response.segments

            return await harness.run_closed_loop(
                call, concurrency=concurrency, requests=requests, warmup_requests=concurrency,
                name=f"service {model}, {workers} worker(s)", items_per_call=audio_seconds,
                progress=not args.quiet,
            )
    finally:
        await server.shutdown()


async def direct_run(model: str, model_dir: Path, path: Path, audio_seconds: float, requests: int,
                     args: argparse.Namespace) -> harness.RunResult:
    """What a user would write without Sensorium: load the model, transcribe the file."""
    from faster_whisper import WhisperModel

    threads = thread_counts("cpu", _cpus(), 1).model_threads  # what the service's one worker gets
    whisper = WhisperModel(models.resolve(model, model_dir).source, device="cpu",
                           compute_type="int8", cpu_threads=threads)

    def transcribe(i: int) -> None:
        segments, _ = whisper.transcribe(str(path), **OPTIONS)
        assert list(segments)

    return await harness.measure_sync(
        transcribe, concurrency=1, requests=requests, warmup_requests=1,
        name=f"faster-whisper {model}, direct", items_per_call=audio_seconds, inline=True,
        progress=not args.quiet,
    )


def _cpus() -> int:
    from sensorium.device import available_cpus

    return available_cpus()


async def main(args: argparse.Namespace) -> int:
    results: list[harness.RunResult] = []
    lines: list[str] = []
    extra: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(args.model_dir or tmp)
        path, audio_seconds = make_audio(Path(tmp), args.audio_seconds)
        harness.log(f"audio: {audio_seconds:.1f} s of espeak-ng speech, {path.stat().st_size} bytes")
        for model in args.model:
            n = args.requests or 3
            direct = await direct_run(model, model_dir, path, audio_seconds, n, args)
            service = await service_run(model, model_dir, path, audio_seconds, 1, 1, n, args)
            one = await service_run(model, model_dir, path, audio_seconds, 1, 4, 2 * n, args)
            two = await service_run(model, model_dir, path, audio_seconds, 2, 4, 2 * n, args)
            results += [direct, service, one, two]
            rtf_service = service.wall_s / (service.requests * audio_seconds)
            rtf_direct = direct.wall_s / (direct.requests * audio_seconds)
            ratio = rtf_service / rtf_direct
            # The median is robust to one slow request on a shared machine; report both.
            median_ratio = service.latency_p50_s / direct.latency_p50_s
            extra[model] = {"rtf_service": rtf_service, "rtf_direct": rtf_direct, "ratio": ratio,
                            "median_ratio": median_ratio,
                            "throughput_1_worker": one.items_per_s,
                            "throughput_2_workers": two.items_per_s}
            lines.append(
                f"- `{model}`: RTF service {rtf_service:.4f} ÷ direct {rtf_direct:.4f} = "
                f"**{ratio:.3f}** (target <= 1.05; medians: {median_ratio:.3f}); "
                f"4 clients: 1 worker {one.items_per_s:.1f}, "
                f"2 workers {two.items_per_s:.1f} audio s/s ({two.items_per_s / one.items_per_s:.2f}x)"
            )
    print(harness.machine_markdown())
    print(f"\nCommand: `{' '.join([sys.executable.rsplit('/', 1)[-1], *sys.argv])}`\n")
    print(f"Audio: {audio_seconds:.1f} s, 16 kHz WAV; items/s = audio seconds per second\n")
    print(harness.markdown_header())
    for result in results:
        print(result.markdown_row())
    print()
    print("\n".join(lines))
    if args.json:
        harness.write_json(args.json, results, command=" ".join(sys.argv), extra=extra)
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    harness.add_common_args(parser, concurrency=(1,), duration=10.0, warmup=0.0)
    parser.add_argument("--model", nargs="+", default=["packaged:tiny.en", "packaged:base"])
    parser.add_argument("--audio-seconds", type=float, default=64.0)
    parser.add_argument("--model-dir", default="", help="default: a temporary directory")
    sys.exit(asyncio.run(main(parser.parse_args())))
