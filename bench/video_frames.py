"""Video frames at scene changes against PyAV decoding the same file, in the same run.

For each generated H.264 video (tests/support/mediakit.py: distinct scenes with motion inside
them, B-frames as libx264 writes them by default):
- `pyav all frames`: a plain PyAV loop decoding every frame (one thread): what any frame
  extractor built on PyAV pays at least;
- `pyav reference frames`: the same loop with non-reference frames skipped;
- `extract_frames`: Sensorium's engine (`sensorium.media.video`), default options (skips
  non-reference frames, samples the scene measure twice a second, encodes the chosen frames);
- `extract_frames, every frame`: the engine decoding every frame;
- `extract_frames, key frames only`: the engine past its time budget from the start (what a
  long video falls back to).

Reported: CPU seconds per video, how many times faster than real time, the ratio to the plain
all-frames loop, and the frames chosen.

    .venv/bin/python bench/video_frames.py           # ~1-2 minutes on 2 cores
    .venv/bin/python bench/video_frames.py --quick   # proves it runs
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "support"))  # the fixtures the tests use

import av  # noqa: E402
import harness  # noqa: E402

import mediakit  # noqa: E402
from sensorium.media.video import FrameOptions, extract_frames  # noqa: E402


def pyav_loop(path: Path, skip: str) -> int:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "SLICE"
        stream.codec_context.thread_count = 1
        stream.codec_context.skip_frame = skip
        return sum(1 for _ in container.decode(stream))


def timed(function, repeats: int) -> tuple[float, object]:
    """Median CPU seconds of `repeats` calls, and the last result."""
    seconds, result = [], None
    for _ in range(repeats):
        started = time.process_time()
        result = function()
        seconds.append(time.process_time() - started)
    return statistics.median(seconds), result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short videos, one repeat")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    seconds = 10.0 if args.quick else 60.0
    repeats = 1 if args.quick else args.repeats
    videos = {"640x360 30 fps": (640, 360), "1280x720 30 fps": (1280, 720)}
    if not args.quick:
        videos["1920x1080 30 fps"] = (1920, 1080)
    scenes = [0.0, *[seconds * k / 8 + 0.37 for k in range(1, 8)]]
    load_before = os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for label, size in videos.items():
            harness.log(f"encoding {label}, {seconds:g} s ...")
            path = mediakit.scene_video(Path(folder) / "clip.mp4", scenes, seconds, fps=30, size=size)
            base, frames = timed(lambda p=path: pyav_loop(p, "DEFAULT"), repeats)
            cases = {
                "pyav all frames": (base, f"{frames} decoded"),
                "pyav reference frames": timed(lambda p=path: pyav_loop(p, "NONREF"), repeats),
                "extract_frames": timed(lambda p=path: extract_frames(p, FrameOptions()), repeats),
                "extract_frames, every frame": timed(
                    lambda p=path: extract_frames(p, FrameOptions(skip_nonreference=False)), repeats),
                "extract_frames, key frames only": timed(
                    lambda p=path: extract_frames(p, FrameOptions(time_budget_seconds=1e-6)), repeats),
            }
            for case, (cpu, result) in cases.items():
                if hasattr(result, "frames"):
                    cuts = sum(frame.scene_change for frame in result.frames)
                    what = f"{len(result.frames)} frames ({cuts} at cuts, {len(scenes)} scenes)"
                else:
                    what = result if isinstance(result, str) else f"{result} decoded"
                rows.append((label, case, cpu, seconds / cpu, cpu / base, what))
    load_after = os.getloadavg()
    print("## Video frames (scene changes) against PyAV decoding\n")
    print(harness.machine_markdown())
    before, after = ("/".join(f"{value:.2f}" for value in load) for load in (load_before, load_after))
    print(f"- Load average (1/5/15 min) before: {before}, after: {after} (a shared machine)")
    print(f"- PyAV {av.__version__}; {seconds:g} s H.264 videos (libx264 defaults), one decoder thread")
    print(f"- Command: `{' '.join(['.venv/bin/python', *sys.argv])}`\n")
    print("| video | decoder | CPU s per video | x real time | ÷ all-frames loop | result |")
    print("|---|---|---|---|---|---|")
    for label, case, cpu, speed, ratio, what in rows:
        print(f"| {label} | {case} | {cpu:.2f} | {speed:.0f} | {ratio:.2f} | {what} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
