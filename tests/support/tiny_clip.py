"""A tiny CLIP the project trains itself on synthetic coloured shapes, for tests and demos.

No real CLIP weights are reachable offline, yet a test must show that the service's vectors
*mean* something: this trains a small open_clip config (same code paths as `ViT-B-32`; 32 x 32
images; the CLIP BPE tokenizer with a 16-token context) on images of 3 shapes x 4 colours
captioned "a red circle",
with a fixed seed, in well under a minute of CPU. The result is saved in open_clip's own
`local-dir:` format (open_clip_config.json + open_clip_model.safetensors), which the service
loads like any other model: SENSORIUM_EMBEDDING__MODEL=local-dir:/path/to/folder.

    python tests/support/tiny_clip.py /tmp/shapes-clip   # prints the model setting
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw

SHAPES = ("circle", "square", "triangle")
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30), "green": (30, 170, 50), "blue": (40, 60, 220), "yellow": (235, 215, 30),
}
CLASSES: list[tuple[str, str]] = [(shape, colour) for shape in SHAPES for colour in COLOURS]
"""The 12 classes, as (shape, colour)."""

CONFIG_NAME = "sensorium-shapes"
TINY_CONFIG: dict[str, Any] = {
    "embed_dim": 64,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "head_width": 32, "patch_size": 8},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}
"""An open_clip CLIP config: a 2-layer ViT on 32 x 32 images, a 2-layer text transformer over a
16-token context (captions are 5 tokens; a short context keeps training fast and makes
truncation easy to test)."""

DEFAULT_STEPS = 500
IMAGES_PER_CLASS = 4
DEFAULT_SEED = 0


def caption(shape: str, colour: str) -> str:
    return f"a {colour} {shape}"


def draw(shape: str, colour: str, rng: np.random.Generator, size: int = 32) -> Image.Image:
    """One image: the shape at a random place and size on a light, slightly noisy background."""
    background = tuple(int(v) for v in rng.integers(200, 256, size=3))
    image = Image.new("RGB", (size, size), background)
    pen = ImageDraw.Draw(image)
    radius = rng.uniform(0.22, 0.4) * size
    cx, cy = rng.uniform(radius, size - radius, size=2)
    jitter = rng.integers(-20, 21, size=3)
    fill = tuple(int(np.clip(c + j, 0, 255)) for c, j in zip(COLOURS[colour], jitter, strict=True))
    box = (cx - radius, cy - radius, cx + radius, cy + radius)
    if shape == "circle":
        pen.ellipse(box, fill=fill)
    elif shape == "square":
        pen.rectangle(box, fill=fill)
    else:
        turn = rng.uniform(0, 2 * math.pi)
        points = [(cx + radius * math.cos(turn + k * 2 * math.pi / 3),
                   cy + radius * math.sin(turn + k * 2 * math.pi / 3)) for k in range(3)]
        pen.polygon(points, fill=fill)
    return image


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def train(steps: int = DEFAULT_STEPS, seed: int = DEFAULT_SEED) -> Any:
    """Train the tiny CLIP contrastively: each step sees every caption once and
    `IMAGES_PER_CLASS` fresh images of each class. Returns the model."""
    threads = torch.get_num_threads()
    # One thread: on a small, busy machine spinning intra-op threads cost more than they give.
    torch.set_num_threads(1)
    try:
        return _train(steps, seed)
    finally:
        torch.set_num_threads(threads)


def _train(steps: int, seed: int) -> Any:
    import open_clip

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = open_clip.CLIP(**TINY_CONFIG)
    preprocess = open_clip.image_transform(TINY_CONFIG["vision_cfg"]["image_size"], is_train=False)
    tokenizer = open_clip.SimpleTokenizer(context_length=TINY_CONFIG["text_cfg"]["context_length"])
    texts = tokenizer([caption(shape, colour) for shape, colour in CLASSES])
    labels = torch.arange(len(CLASSES)).repeat(IMAGES_PER_CLASS)
    # Text -> image targets: each caption's images, equally likely.
    text_targets = (torch.arange(len(CLASSES))[:, None] == labels[None, :]).float() / IMAGES_PER_CLASS
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.01)
    model.train()
    for _ in range(steps):
        pixels = torch.stack([preprocess(draw(s, c, rng)) for s, c in CLASSES * IMAGES_PER_CLASS])
        image_features = model.encode_image(pixels, normalize=True)
        text_features = model.encode_text(texts, normalize=True)
        logits = model.logit_scale.exp() * image_features @ text_features.T
        loss = (torch.nn.functional.cross_entropy(logits, labels)
                + torch.nn.functional.cross_entropy(logits.T, text_targets))
        optimizer.zero_grad()
        torch.autograd.backward(loss)
        optimizer.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
    model.eval()
    return model


def save(model: Any, folder: Path) -> Path:
    """Write `model` as an open_clip local-dir folder; returns the folder."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "open_clip_config.json").write_text(
        json.dumps({"model_cfg": TINY_CONFIG, "preprocess_cfg": {}}, indent=2)
    )
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(folder / "open_clip_model.safetensors"))
    return folder


def build(folder: Path | None = None, steps: int = DEFAULT_STEPS, seed: int = DEFAULT_SEED) -> Path:
    """The trained model folder, reused when a previous run with the same code, steps and
    seed left it in `folder` (default: a folder in the temporary directory)."""
    key = hashlib.sha256(Path(__file__).read_bytes() + f"{steps}/{seed}".encode()).hexdigest()[:12]
    folder = folder or Path(tempfile.gettempdir()) / f"sensorium-shapes-clip-{key}"
    marker = folder / f"trained-{key}"
    if marker.is_file():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=".partial-", dir=folder.parent))
    save(train(steps, seed), partial)
    (partial / f"trained-{key}").write_text("ok\n")
    try:
        os.replace(partial, folder)  # atomic: concurrent builders never see half a model
    except OSError:
        shutil.rmtree(partial, ignore_errors=True)  # another process finished first
    return folder


if __name__ == "__main__":
    target = build(Path(sys.argv[1]) if len(sys.argv) > 1 else None)
    print(f"SENSORIUM_EMBEDDING__MODEL=local-dir:{target}")
