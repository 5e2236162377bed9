"""`sensorium ocr IMAGE`: the text of an image, line by line (or with positions, or as JSON)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from sensorium.cli.common import PROTOBUF_JSON, add_client_flags, open_engines
from sensorium.exits import Exit
from sensorium.media import wire
from sensorium.media.api import MEDIA, ImageTextOptions, TextStatus
from sensorium.media.v1 import media_service_pb2 as pb
from sensorium.wire import to_json

_WHY_NONE = {
    TextStatus.NO_TEXT: "no text: the photo's text check found none (recognition did not run)",
    TextStatus.DISABLED: "text recognition is off (SENSORIUM_MEDIA__OCR=false)",
}


def add_parser(commands: Any) -> None:
    ocr = commands.add_parser("ocr", help="read the text in an image (screenshot, photo, scan)",
                              description="Print the text recognised in an image, one line per "
                              "line of text, top to bottom. Photos are checked for text cheaply "
                              "first; screenshots and scans are read directly.")
    ocr.add_argument("file", type=Path, help="the image (JPEG, PNG, WebP, GIF, TIFF, BMP, HEIC, AVIF)")
    ocr.add_argument("--boxes", action="store_true",
                     help="prefix each line with its box (x0,y0,x1,y1 in pixels of the upright "
                     "image) and confidence, tab-separated")
    add_client_flags(ocr, json_help=PROTOBUF_JSON + " (lines, boxes, EXIF time and camera)")
    ocr.set_defaults(run=run)


async def run(args: argparse.Namespace) -> int:
    async with open_engines(args, "media") as engines:
        media = await engines.open(MEDIA)
        found = await media.read_image_text(args.file, ImageTextOptions())
    if args.json:
        print(to_json(pb.ReadImageTextResponse(result=wire.image_text_to_message(found))))
        return Exit.OK
    if found.status in _WHY_NONE:
        print(f"sensorium: {args.file}: {_WHY_NONE[found.status]}", file=sys.stderr)
    for line in found.lines:
        if args.boxes:
            box = line.box
            print(f"{box.x0},{box.y0},{box.x1},{box.y1}\t{line.confidence:.2f}\t{line.text}")
        else:
            print(line.text)
    return Exit.OK
