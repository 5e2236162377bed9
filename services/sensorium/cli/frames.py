"""`sensorium frames VIDEO`: the frames a video is indexed by (at scene changes, at least one
per interval), their times, and optionally the frames themselves as JPEG files."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from sensorium.cli.common import add_client_flags, clock, open_engines
from sensorium.exits import Exit
from sensorium.media import wire
from sensorium.media.api import MEDIA, VideoOptions
from sensorium.wire import to_dict


def add_parser(commands: Any) -> None:
    frames = commands.add_parser("frames", help="the frames of a video, at its scene changes",
                                 description="Print the time of each frame chosen from a video "
                                 "(one at each scene change, at least one per "
                                 "SENSORIUM_MEDIA__FRAME_INTERVAL_SECONDS, at most "
                                 "SENSORIUM_MEDIA__MAX_FRAMES_PER_VIDEO), and whether a scene "
                                 "change chose it.")
    frames.add_argument("file", type=Path, help="the video (MP4, MOV, MKV, WebM, AVI, ...)")
    frames.add_argument("--out", type=Path, metavar="DIR", help="write each frame into DIR as a JPEG")
    frames.add_argument("--max-frames", type=int, default=0, metavar="N",
                        help="at most N frames (default and cap: the server's limit)")
    add_client_flags(frames, json_help="print one JSON object: the summary and the frames in "
                     "protobuf's JSON mapping, without the JPEG bytes (use --out for those)")
    frames.set_defaults(run=run)


async def run(args: argparse.Namespace) -> int:
    async with open_engines(args, "media") as engines:
        media = await engines.open(MEDIA)
        video = await media.extract_frames(args.file, VideoOptions(max_frames=max(0, args.max_frames)))
    names = [f"frame-{index:04d}-{frame.seconds:09.3f}s.jpg" for index, frame in enumerate(video.frames, 1)]
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        for name, frame in zip(names, video.frames, strict=True):
            (args.out / name).write_bytes(frame.jpeg)
    if args.json:
        import json

        shown = []
        for name, frame in zip(names, video.frames, strict=True):
            entry = to_dict(wire.frame_to_message(frame))
            entry.pop("jpeg", None)
            if args.out is not None:
                entry["file"] = str(args.out / name)
            shown.append(entry)
        print(json.dumps({"summary": to_dict(wire.summary_to_message(video)), "frames": shown}, indent=2))
        return Exit.OK
    for frame in video.frames:
        why = "scene" if frame.scene_change else "interval"
        print(f"{clock(frame.seconds)}\t{why}\t{frame.score:.2f}\t{frame.width}x{frame.height}")
    declared = f" of {video.declared_seconds:.1f} s declared" if video.declared_seconds is not None else ""
    note = (f"; key frames only after {clock(video.keyframes_only_after)}"
            if video.keyframes_only_after is not None else "")
    print(f"# {len(video.frames)} frames ({video.candidates} before the cap), {video.decoded_seconds:.1f} s "
          f"decoded{declared}, {video.width}x{video.height} {video.codec}{note}", file=sys.stderr)
    return Exit.OK
