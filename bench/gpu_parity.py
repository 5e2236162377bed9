"""GPU parity: vectors from the service on CUDA equal open_clip in-process on CUDA.

Starts the embedding service with `SENSORIUM_DEVICE=cuda` (ViT-B-32, random weights by default:
the architecture of production), sends many distinct images and texts concurrently as
single-item calls (so the server batches them across requests) and as one multi-item call, and
compares every vector with open_clip's own `encode_image` / `encode_text` on the same GPU under
the same fp16 autocast. Prints the worst cosine; exits 1 below the threshold. Needs a GPU.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import sys

import numpy as np
import torch
from PIL import Image

from sensorium.client import Client
from sensorium.embedding.remote import EmbeddingClient
from sensorium.embedding.runtime import EmbeddingRuntime
from sensorium.server import Server
from sensorium.settings import Settings


def noise_png(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, size=(96, 128, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


async def main(args: argparse.Namespace) -> int:
    images = [noise_png(seed) for seed in range(args.items)]
    texts = [f"a photo of thing number {i}, seen from the {i % 7}th side" for i in range(args.items)]
    settings = Settings(address="127.0.0.1:0", health_port=0, metrics_port=-1, device="cuda",
                        services=["embedding"], shutdown_delay_seconds=0,
                        embedding={"model": args.model, "pretrained": args.pretrained})
    server = Server(settings)
    await server.start()
    try:
        async with Client(f"127.0.0.1:{server.port}", timeout=120) as client:
            space = await EmbeddingClient(client).embedding_space()
            singles = await asyncio.gather(*(EmbeddingClient(client).embed_images([i]) for i in images))
            single_texts = await asyncio.gather(*(EmbeddingClient(client).embed_texts([t]) for t in texts))
            batch = await EmbeddingClient(client).embed_images(images)
        # The same weights (random ones are drawn at load) and open_clip's own transforms.
        assert server.runtimes is not None
        engine = server.runtimes.of(EmbeddingRuntime).model
        model, preprocess, tokenizer = engine.model, engine.preprocess, engine.tokenizer
    finally:
        await server.shutdown()
    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.float16):
        pixels = torch.stack([preprocess(Image.open(io.BytesIO(i)).convert("RGB")) for i in images])
        want_images = model.encode_image(pixels.cuda(), normalize=True).float().cpu().numpy()
        want_texts = model.encode_text(tokenizer(texts).cuda(), normalize=True).float().cpu().numpy()

    def worst(got: list[list[float]], want: np.ndarray) -> float:
        return float(min(np.dot(np.asarray(g), w) for g, w in zip(got, want, strict=True)))

    rows = {
        "images, single-item calls (batched across requests)":
            worst([r.results[0].vector.values for r in singles], want_images),
        "images, one multi-item call": worst([r.vector.values for r in batch.results], want_images),
        "texts, single-item calls (batched across requests)":
            worst([r.results[0].vector.values for r in single_texts], want_texts),
    }
    print(f"device {space.device}, {torch.cuda.get_device_name()}, model {args.model}, "
          f"{args.items} items per path")
    for name, cosine in rows.items():
        print(f"  worst cosine, {name}: {cosine:.6f}")
    return 0 if min(rows.values()) >= args.threshold else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="ViT-B-32")
    parser.add_argument("--pretrained", default="", help='"" = random weights')
    parser.add_argument("--items", type=int, default=64)
    parser.add_argument("--threshold", type=float, default=0.9999)
    sys.exit(asyncio.run(main(parser.parse_args())))
