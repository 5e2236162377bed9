"""`sensorium embed` and `sensorium score`: CLIP vectors of texts and images, zero-shot scores."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from sensorium.cli.common import PROTOBUF_JSON, CliError, add_client_flags, deadline, open_engines
from sensorium.embedding import wire
from sensorium.embedding.api import EMBEDDING
from sensorium.errors import explain
from sensorium.exits import Exit
from sensorium.wire import to_dict, to_json


def add_parser(commands: Any) -> None:
    embed = commands.add_parser("embed", help="embed texts and images into the CLIP space",
                                description="Print one vector per input (JSON with --json). "
                                "Images of up to 4 MiB in all go in one EmbedImages call; more "
                                "go through StreamEmbed, one image per message (their JSON results "
                                "then carry no width and height).")
    embed.add_argument("--text", action="append", default=[], help="a text (repeatable)")
    embed.add_argument("--image", action="append", default=[], type=Path,
                       help="an image file (repeatable)")
    add_client_flags(embed, json_help=PROTOBUF_JSON)
    embed.set_defaults(run=run_embed)

    score = commands.add_parser("score", help="score images against texts (zero-shot)",
                                description="Print, for each image, every text's probability.")
    score.add_argument("--image", action="append", default=[], type=Path, required=True,
                       help="an image file (repeatable)")
    score.add_argument("--text", action="append", default=[], required=True,
                       help='a label or query, e.g. "a photo of a dog" (repeatable)')
    add_client_flags(score, json_help=PROTOBUF_JSON)
    score.set_defaults(run=run_score)


async def run_embed(args: argparse.Namespace) -> int:
    if not args.text and not args.image:
        raise CliError("give at least one --text or --image", Exit.USAGE)
    results: list[tuple[str, Any]] = []
    async with open_engines(args, "embedding") as engines:
        embedding = await engines.open(EMBEDDING)
        space = (await embedding.describe()).space
        if args.text:
            texts = await embedding.embed_texts(args.text, deadline=deadline(args))
            results += [(text, wire.text_to_message(o, space, True, "operator"))
                        for text, o in zip(args.text, texts, strict=True)]
        if args.image:
            images = await embedding.embed_images([path.read_bytes() for path in args.image],
                                                  deadline=deadline(args))
            results += [(str(path), wire.image_to_message(o, space, True, "operator"))
                        for path, o in zip(args.image, images, strict=True)]
    failed = any(result.HasField("error") for _, result in results)
    if args.json:
        print(json.dumps([{"input": name, **to_dict(result)} for name, result in results], indent=2))
        return Exit.FAILED if failed else Exit.OK
    for name, result in results:
        if result.HasField("error"):
            print(f"{name}: error: {result.error.message}")
        else:
            values = ", ".join(f"{v:+.4f}" for v in result.vector.values[:4])
            print(f"{name}: [{values}, ...] ({space.dimension}-d, {space.model}/{space.pretrained})")
    return Exit.FAILED if failed else Exit.OK


async def run_score(args: argparse.Namespace) -> int:
    images = [path.read_bytes() for path in args.image]
    async with open_engines(args, "embedding") as engines:
        embedding = await engines.open(EMBEDDING)
        scores = await embedding.score(images, args.text, deadline=deadline(args))
    if args.json:
        print(to_json(wire.scores_to_message(scores, "operator")))
        return Exit.OK
    for path, row in zip(args.image, scores.rows, strict=True):
        if row.error is not None:
            print(f"{path}: error: {explain(row.error, 'operator')}")
            continue
        ranked = sorted(zip(args.text, row.probabilities, strict=True), key=lambda p: -p[1])
        print(f"{path}: " + ", ".join(f"{text!r} {p:.3f}" for text, p in ranked))
    return Exit.OK
