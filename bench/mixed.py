"""Mixed load: all three services in one server process, loaded at once, vs each alone.

Each service runs alone (a server hosting only it, which gets every CPU) and then in a mix
(one server hosting all three, every client group loading it at the same time), under two
CPU policies:

- `before`: every service sized for every CPU, as before the process-wide CPU budget (PDF
  workers = CPUs, Whisper threads = CPUs, torch threads = CPUs; the settings that size a
  service explicitly reproduce it);
- `after`: the default CPU budget, which splits the CPUs among the hosted services
  (`SENSORIUM_CPUS`, docs/architecture.md).

The figure of merit is the sum over the services of (throughput in the mix ÷ throughput
alone): 1.0 means the mix loses nothing to contention beyond sharing the CPUs; lower means
the services get in each other's way. p95 latency is reported for each service in each run.

Load, by default: PDF: 2 clients, a 20-page generated document per call (pages/s);
transcription: 2 clients, 8 s of espeak-ng speech per call with packaged tiny.en Whisper
(audio seconds/s); embedding: 8 clients, one 640x480 JPEG per call, ViT-B-32 with random
weights (images/s). The server runs in a subprocess (`sensorium serve`); the clients in this
process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import harness
import numpy as np
from PIL import Image

from sensorium.client import Client, ClientError
from sensorium.device import available_cpus
from sensorium.embedding.remote import EmbeddingClient
from sensorium.pdf.remote import PdfClient
from sensorium.pdf.v1 import pdf_service_pb2 as pdf_pb
from sensorium.transcription.remote import TranscriptionClient
from sensorium.transcription.v1 import transcription_service_pb2 as transcription_pb

SERVICES = ("pdf", "transcription", "embedding")
SENTENCES = ("The quick brown fox jumps over the lazy dog. The birch canoe slid on the smooth "
             "planks. Glue the sheet to the dark blue background.")


def make_pdf(pages: int) -> bytes:
    import pymupdf

    doc = pymupdf.open()
    words = ["the", "index", "job", "turns", "a", "folder", "of", "files", "into", "one",
             "searchable", "index", "of", "vectors"]
    for page in range(pages):
        text = " ".join(words[(page + i) % len(words)] for i in range(400))
        doc.new_page().insert_textbox(pymupdf.Rect(36, 36, 560, 800), text, fontsize=8)
    data: bytes = doc.tobytes()
    return data


def make_speech(directory: Path, seconds: float) -> tuple[bytes, float]:
    path = harness.espeak(directory / "speech.wav", SENTENCES)
    import wave

    with wave.open(str(path)) as handle:
        rate, frames = handle.getframerate(), handle.readframes(handle.getnframes())
    one = np.frombuffer(frames, np.int16)
    audio = np.tile(one, int(np.ceil(seconds * rate / len(one))))
    out = io.BytesIO()
    with wave.open(out, "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes(audio.tobytes())
    return out.getvalue(), len(audio) / rate


def make_jpeg(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    x = np.linspace(0, 1, 640)[None, :, None]
    y = np.linspace(0, 1, 480)[:, None, None]
    base = 255 * (0.5 + 0.5 * np.sin(6 * x * (1 + seed % 5) + 4 * y + np.arange(3) * (seed + 1)))
    pixels = np.clip(base + rng.normal(0, 20, (480, 640, 3)), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def policy_env(policy: str, cpus: int) -> dict[str, str]:
    if policy == "after":
        return {}
    return {  # each service sized for every CPU, as before the CPU budget
        "SENSORIUM_PDF__WORKERS": str(cpus),
        "SENSORIUM_TRANSCRIPTION__CPU_THREADS": str(cpus),
        "SENSORIUM_EMBEDDING__CPU_THREADS": str(cpus),
        "SENSORIUM_EMBEDDING__PREPROCESS_THREADS": str(max(1, cpus // 8)),
    }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def serving(services: list[str], env: dict[str, str], model_dir: Path) -> AsyncIterator[str]:
    """`sensorium serve` hosting `services`, until the block ends; yields its address."""
    address = f"127.0.0.1:{_free_port()}"
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SENSORIUM_")}
    environment.update({
        "SENSORIUM_ADDRESS": address, "SENSORIUM_HEALTH_PORT": "0", "SENSORIUM_METRICS_PORT": "-1",
        "SENSORIUM_SERVICES": ",".join(services), "SENSORIUM_DEVICE": "cpu",
        "SENSORIUM_SHUTDOWN_DELAY_SECONDS": "0", "SENSORIUM_MODEL_DIR": str(model_dir),
        "SENSORIUM_TRANSCRIPTION__MODEL": "packaged:tiny.en",
        "SENSORIUM_EMBEDDING__MODEL": "ViT-B-32", "SENSORIUM_EMBEDDING__PRETRAINED": "",
        "SENSORIUM_LOG_LEVEL": "WARNING", **env,
    })
    process = subprocess.Popen(  # noqa: ASYNC220 - starting it is instant; waiting is off the loop
        [sys.executable, "-m", "sensorium.cli", "serve"], env=environment)
    try:
        async with Client(address, timeout=2) as client:
            deadline = time.monotonic() + 300
            while True:
                with contextlib.suppress(ClientError):
                    if await client.health() == "SERVING":
                        break
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the server did not start (exit {process.poll()})")
                await asyncio.sleep(0.5)
        yield address
    finally:
        process.terminate()
        await asyncio.to_thread(process.wait, 60)


class Loads:
    """One closed-loop client group per service, sharing inputs across runs."""

    def __init__(self, args: argparse.Namespace, directory: Path) -> None:
        self.args = args
        self.pdf = make_pdf(args.pdf_pages)
        self.speech, self.speech_seconds = make_speech(directory, args.audio_seconds)
        self.images = [make_jpeg(seed) for seed in range(32)]

    def group(self, service: str, client: Client) -> tuple[Callable[[int], Awaitable[Any]], int, float]:
        """(call, concurrency, items per call) for `service`."""
        if service == "pdf":
            options = pdf_pb.ExtractOptions(ocr_mode=pdf_pb.OCR_MODE_NEVER)

            async def extract(i: int) -> None:
                response = await PdfClient(client).extract_document(self.pdf, options)
                assert len(response.pages) == self.args.pdf_pages

            return extract, self.args.pdf_clients, float(self.args.pdf_pages)
        if service == "transcription":
            options_t = transcription_pb.TranscriptionOptions(
                beam_size=1, temperatures=[0.0], condition_on_previous_text=False)

            async def transcribe(i: int) -> None:
                response = await TranscriptionClient(client).transcribe(self.speech, options_t)
                assert response.segments

            return transcribe, self.args.transcription_clients, self.speech_seconds

        async def embed(i: int) -> None:
            response = await EmbeddingClient(client).embed_images([self.images[i % len(self.images)]])
            assert not response.results[0].HasField("error")

        return embed, self.args.embedding_clients, 1.0

    async def run(self, address: str, services: list[str], label: str) -> dict[str, harness.RunResult]:
        async with Client(address, timeout=600) as client:
            groups = {service: self.group(service, client) for service in services}
            runs = [
                harness.run_closed_loop(
                    call, concurrency=concurrency, duration=self.args.duration, warmup=self.args.warmup,
                    name=f"{label}: {service}", items_per_call=items, progress=not self.args.quiet,
                )
                for service, (call, concurrency, items) in groups.items()
            ]
            results = await asyncio.gather(*runs)
        return dict(zip(services, results, strict=True))


async def main(args: argparse.Namespace) -> int:
    cpus = available_cpus()
    rows: list[str] = []
    figures: dict[str, float] = {}
    all_results: list[harness.RunResult] = []
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(args.model_dir or tmp)
        loads = Loads(args, Path(tmp))
        alone: dict[str, harness.RunResult] = {}
        for service in SERVICES:
            async with serving([service], {}, model_dir) as address:
                alone.update(await loads.run(address, [service], "alone"))
        mixes: dict[str, dict[str, harness.RunResult]] = {}
        for policy in args.policies:
            async with serving(list(SERVICES), policy_env(policy, cpus), model_dir) as address:
                mixes[policy] = await loads.run(address, list(SERVICES), f"mix, {policy}")
    all_results += list(alone.values()) + [r for mix in mixes.values() for r in mix.values()]
    units = {"pdf": "pages/s", "transcription": "audio s/s", "embedding": "images/s"}
    header = "| service | alone | " + " | ".join(
        f"mix {p} (÷ alone) | p95 {p} (alone)" for p in args.policies) + " |"
    rows.append(header)
    rows.append("|" + "---|" * (2 + 2 * len(args.policies)))
    for service in SERVICES:
        base = alone[service]
        cells = [f"{service} ({units[service]})", f"{base.items_per_s:.2f}"]
        for policy in args.policies:
            mixed = mixes[policy][service]
            cells.append(f"{mixed.items_per_s:.2f} ({mixed.items_per_s / base.items_per_s:.2f})")
            cells.append(f"{mixed.latency_p95_s * 1000:.0f} ms ({base.latency_p95_s * 1000:.0f} ms)")
        rows.append("| " + " | ".join(cells) + " |")
    for policy in args.policies:
        figures[policy] = sum(mixes[policy][s].items_per_s / alone[s].items_per_s for s in SERVICES)
    print(harness.machine_markdown())
    print(f"\nCommand: `{' '.join([Path(sys.executable).name, *sys.argv])}`\n")
    print("\n".join(rows))
    print()
    for policy, figure in figures.items():
        print(f"- sum of (mix ÷ alone), {policy}: **{figure:.2f}**")
    if args.json:
        harness.write_json(args.json, all_results, command=" ".join(sys.argv), extra={"figures": figures})
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    harness.add_common_args(parser, concurrency=(1,), duration=20.0, warmup=3.0)
    parser.add_argument("--policies", nargs="+", choices=("before", "after"), default=["before", "after"])
    parser.add_argument("--pdf-clients", type=int, default=2)
    parser.add_argument("--pdf-pages", type=int, default=20)
    parser.add_argument("--transcription-clients", type=int, default=2)
    parser.add_argument("--audio-seconds", type=float, default=8.0)
    parser.add_argument("--embedding-clients", type=int, default=8)
    parser.add_argument("--model-dir", default="", help="default: a temporary directory")
    sys.exit(asyncio.run(main(parser.parse_args())))
