"""Embedding service vs open_clip in-process, same model, same inputs, same run.

(a) in-process baseline: what a user would write with open_clip — bytes -> PIL decode ->
    preprocess -> `encode_image` (or tokenizer -> `encode_text`) at batch 16, items/s;
(b) the service under C concurrent clients (default 16), ONE item per call (cross-request
    batching has to build the batches), with p50/p95; reported as (b)/(a), target >= 0.9;
(c) the same load with batching off (SENSORIUM_EMBEDDING__MAX_BATCH_SIZE=1).
Images first, then texts. The server runs in this process, as in bench/pdf.py.

ViT-B-32 with random weights by default (--pretrained ""): the speed of the architecture is
that of the production model. On a GPU: `--device cuda` (fp16 autocast in both the service and
the baseline, the service's precision policy); weights stay fp32, as in the service.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import sys
from typing import Any

import harness
import numpy as np
import torch
from PIL import Image

from sensorium.client import Client
from sensorium.embedding.remote import EmbeddingClient
from sensorium.server import Server
from sensorium.settings import Settings

BATCH = 16


def make_images(count: int, size: tuple[int, int]) -> list[bytes]:
    """Distinct JPEGs shaped like photos: smooth gradients plus noise, quality 90."""
    rng = np.random.default_rng(0)
    width, height = size
    out = []
    for i in range(count):
        x = np.linspace(0, 1, width)[None, :, None]
        y = np.linspace(0, 1, height)[:, None, None]
        base = 255 * (0.5 + 0.5 * np.sin(6 * x * (1 + i % 5) + 4 * y + np.arange(3) * (i + 1)))
        pixels = np.clip(base + rng.normal(0, 20, (height, width, 3)), 0, 255).astype(np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels, "RGB").save(buffer, format="JPEG", quality=90)
        out.append(buffer.getvalue())
    return out


def make_texts(count: int) -> list[str]:
    things = ["dog", "cat", "bicycle", "mountain", "beach", "city street", "kitchen", "forest"]
    moods = ["sunny", "rainy", "old", "colourful", "quiet", "crowded", "dark", "bright"]
    return [f"a photo of a {moods[i % 8]} {things[(i // 8) % 8]}, picture number {i}" for i in range(count)]


class InProcess:
    """The baseline: open_clip used directly, the way its README shows."""

    def __init__(self, model: str, pretrained: str, device: str) -> None:
        import open_clip

        self.device = torch.device(device)
        self.model, _, self.preprocess = open_clip.create_model_and_transforms(
            model, pretrained=pretrained or None, device=self.device
        )
        self.model.eval()
        self.tokenizer = open_clip.get_tokenizer(model)

    def _encode(self, tower: Any, batch: torch.Tensor) -> np.ndarray:
        with torch.inference_mode(), torch.autocast(
            self.device.type, dtype=torch.float16, enabled=self.device.type == "cuda"
        ):
            return tower(batch.to(self.device), normalize=True).float().cpu().numpy()

    def images(self, data: list[bytes]) -> np.ndarray:
        pixels = torch.stack([self.preprocess(Image.open(io.BytesIO(d)).convert("RGB")) for d in data])
        return self._encode(self.model.encode_image, pixels)

    def texts(self, texts: list[str]) -> np.ndarray:
        return self._encode(self.model.encode_text, self.tokenizer(texts))


async def service_run(kind: str, inputs: list[Any], args: argparse.Namespace, concurrency: int,
                      max_batch: int, name: str) -> harness.RunResult:
    settings = Settings(
        address="127.0.0.1:0", health_port=0, metrics_port=-1, services=["embedding"],
        shutdown_delay_seconds=0, device=args.device,
        embedding={"model": args.model, "pretrained": args.pretrained, "max_batch_size": max_batch,
                   "preprocess_threads": args.preprocess_threads},
    )
    server = Server(settings)
    await server.start()
    try:
        async with Client(f"127.0.0.1:{server.port}") as client:
            async def call(i: int) -> None:
                item = inputs[i % len(inputs)]
                if kind == "images":
                    response = await EmbeddingClient(client).embed_images([item])
                else:
                    response = await EmbeddingClient(client).embed_texts([item])
                assert not response.results[0].HasField("error"), response.results[0].error

            return await harness.run_closed_loop(
                call, concurrency=concurrency, duration=args.duration, requests=args.requests,
                warmup=args.warmup, name=name, progress=not args.quiet,
            )
    finally:
        await server.shutdown()


async def measure(kind: str, inputs: list[Any], baseline: InProcess, args: argparse.Namespace,
                  concurrency: int) -> list[harness.RunResult]:
    encode = baseline.images if kind == "images" else baseline.texts

    def batch(i: int) -> None:
        start = (i * BATCH) % len(inputs)
        encode([inputs[(start + k) % len(inputs)] for k in range(BATCH)])

    base = await harness.measure_sync(
        batch, concurrency=1, duration=args.duration, requests=args.requests, warmup=args.warmup,
        name=f"{kind}: open_clip in-process, batch {BATCH}", items_per_call=BATCH, inline=True,
        progress=not args.quiet,
    )
    on = await service_run(kind, inputs, args, concurrency, 32,
                           f"{kind}: service, 1 per call, batching on (max 32)")
    off = await service_run(kind, inputs, args, concurrency, 1,
                            f"{kind}: service, 1 per call, batching off (max 1)")
    return [base, on, off]


async def main(args: argparse.Namespace) -> int:
    if args.switch_interval:
        sys.setswitchinterval(args.switch_interval)
    concurrency = args.concurrency[0]
    images = make_images(64, (args.width, args.height))
    texts = make_texts(64)
    harness.log(f"{args.model}/{args.pretrained or 'random weights'} on {args.device}; "
                f"{len(images)} JPEGs {args.width}x{args.height}, {len(texts)} texts")
    baseline = InProcess(args.model, args.pretrained, args.device)
    results: list[harness.RunResult] = []
    ratios: dict[str, float] = {}
    for kind, inputs in (("images", images), ("texts", texts)):
        if kind not in args.kinds:
            continue
        base, on, off = await measure(kind, inputs, baseline, args, concurrency)
        results += [base, on, off]
        ratios[f"{kind}_service_over_inprocess"] = harness.ratio(on, base)
        ratios[f"{kind}_batching_on_over_off"] = harness.ratio(on, off)
    print(harness.machine_markdown())
    gpu = torch.cuda.get_device_name(0) if args.device == "cuda" else "none used"
    print(f"- GPU: {gpu}; torch {torch.__version__}, {torch.get_num_threads()} intra-op threads")
    print(f"\nCommand: `{' '.join([sys.executable.rsplit('/', 1)[-1], *sys.argv])}`\n")
    print(f"Model: {args.model}, {args.pretrained or 'random weights'}, device {args.device}; "
          f"{len(images)} distinct {args.width}x{args.height} JPEGs, {len(texts)} distinct texts; "
          f"{concurrency} clients\n")
    print(harness.markdown_header())
    for result in results:
        print(result.markdown_row())
    print()
    for kind in args.kinds:
        print(f"- {kind}: service ÷ in-process = **{ratios[f'{kind}_service_over_inprocess']:.2f}** "
              f"(target >= 0.9); batching on ÷ off = **{ratios[f'{kind}_batching_on_over_off']:.2f}**")
    if args.json:
        harness.write_json(args.json, results, command=" ".join(sys.argv), extra=ratios)
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    harness.add_common_args(parser, concurrency=(16,), duration=20.0, warmup=5.0)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--kinds", nargs="+", choices=["images", "texts"], default=["images", "texts"])
    parser.add_argument("--switch-interval", type=float, default=0.0,
                        help="sys.setswitchinterval for this process (0 = Python's 5 ms)")
    parser.add_argument("--preprocess-threads", type=int, default=0,
                        help="SENSORIUM_EMBEDDING__PREPROCESS_THREADS for the service (0 = its default)")
    parser.add_argument("--model", default="ViT-B-32")
    parser.add_argument("--pretrained", default="", help='open_clip tag or file; "" = random weights')
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    sys.exit(asyncio.run(main(parser.parse_args())))
