"""What reduced-scale JPEG decoding (`draft()`) buys and costs, on photo-sized images.

For each size, on the same JPEGs in the same run:
- time per image of the service's decode + preprocess (`sensorium.embedding.images` with
  `draft()` to the model's input side, then open_clip's transform), vs open_clip's own path
  (PIL's full decode, then the same transform), and their ratio;
- the worst cosine between the two paths' vectors on ViT-B-32 (random weights by default: the
  question is whether the pixels the model sees differ, not what they mean).

The images are synthetic photos: smooth gradients, large shapes with sharp edges, fine texture
and sensor noise, saved as quality-90 JPEGs.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time

import numpy as np
import torch
from PIL import Image, ImageDraw

from sensorium.embedding.images import decode_image

SIZES = {"3 MP": (2048, 1536), "12 MP": (4000, 3000), "24 MP": (6000, 4000)}


def photo(width: int, height: int, seed: int) -> bytes:
    """A photo-like JPEG: gradients, shapes with edges, texture and noise."""
    rng = np.random.default_rng(seed)
    x = np.linspace(0, 1, width, dtype=np.float32)[None, :, None]
    y = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
    phase = rng.uniform(0, 6, 3).astype(np.float32)
    base = 255 * (0.5 + 0.4 * np.sin(3 * x + 2 * y + phase))
    texture = 12 * np.sin(x * width / 7 + y * height / 11)
    pixels = np.clip(base + texture + rng.normal(0, 6, (height, width, 1)), 0, 255).astype(np.uint8)
    image = Image.fromarray(np.ascontiguousarray(np.broadcast_to(pixels, (height, width, 3))), "RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(12):
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        size = int(rng.integers(min(width, height) // 12, min(width, height) // 3))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
        shape([x0, y0, x0 + size, y0 + size], fill=colour)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def main(args: argparse.Namespace) -> int:
    import open_clip

    torch.set_num_threads(args.threads)
    model, _, preprocess = open_clip.create_model_and_transforms(
        args.model, pretrained=args.pretrained or None)
    model.eval()
    size = model.visual.image_size
    side = max(size) if isinstance(size, tuple) else size
    print(f"model {args.model} ({args.pretrained or 'random weights'}), input {side} px, "
          f"{args.images} images per size, torch threads {args.threads}\n")
    print("| size | service decode+preprocess | full decode+preprocess | speed-up | worst cosine |")
    print("|---|---|---|---|---|")
    worst_all, unrelated = 1.0, -1.0
    for label, (width, height) in SIZES.items():
        if args.sizes and label.split()[0] not in args.sizes:
            continue
        jpegs = [photo(width, height, seed) for seed in range(args.images)]
        fast, full, fast_t, full_t = [], [], [], []
        for data in jpegs:
            start = time.perf_counter()
            decoded = decode_image(data, max_bytes=1 << 30, max_pixels=1 << 40, min_side=side)
            fast.append(preprocess(decoded.image))
            fast_t.append(time.perf_counter() - start)
            start = time.perf_counter()
            full.append(preprocess(Image.open(io.BytesIO(data)).convert("RGB")))
            full_t.append(time.perf_counter() - start)
        with torch.inference_mode():
            a = model.encode_image(torch.stack(fast), normalize=True)
            b = model.encode_image(torch.stack(full), normalize=True)
        worst = float((a * b).sum(dim=1).min())
        worst_all = min(worst_all, worst)
        ms_fast, ms_full = 1000 * statistics.median(fast_t), 1000 * statistics.median(full_t)
        print(f"| {label} ({width}x{height}) | {ms_fast:.1f} ms | {ms_full:.1f} ms | "
              f"{ms_full / ms_fast:.1f}x | {worst:.5f} |")
        unrelated = max(unrelated, float((b @ b.T).fill_diagonal_(-1).max()))
    print(f"\nworst cosine over all sizes: {worst_all:.5f} (target >= {args.threshold})")
    # The metric must tell images apart, or parity would prove nothing.
    print(f"most similar pair of different photos: cosine {unrelated:.5f}")
    return 0 if worst_all >= args.threshold else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="ViT-B-32")
    parser.add_argument("--pretrained", default="", help='"" = random weights')
    parser.add_argument("--images", type=int, default=5, help="images per size")
    parser.add_argument("--sizes", nargs="*", default=[], help='e.g. "3 12" (default: all)')
    parser.add_argument("--threads", type=int, default=1, help="torch threads (decode is single-threaded)")
    parser.add_argument("--threshold", type=float, default=0.999)
    sys.exit(main(parser.parse_args()))
