"""Text in images: which OCR engine, and what the text check saves on photos without text.

Every engine reads the same generated images in the same run (tests/support/mediakit.py):
- screenshots: window-like captures in five DejaVu faces and Pillow's own font, 11-20 px,
  light and dark; plus a dense 1920-pixel terminal at 13 px and a 2880-pixel 2x window;
- photographed text: a printed sheet under perspective, uneven light, blur, sensor noise and
  JPEG compression (mild and hard sets);
- photos without text: photo-like images (gradients, shapes, texture, noise) at 1024x768 and
  4032x3024, and the Pillow "hopper" photo (tests/data).

Engines (each in a process of its own, so its peak memory is its own):
- `rapidocr`: Sensorium's engine (`sensorium.media.text`, RapidOCR PP-OCRv6 det + rec), without
  the text check;
- `tesseract`: Tesseract 5 through tesserocr (page segmentation, grey, dark images inverted);
- `mupdf-tesseract`: MuPDF's built-in Tesseract, as the PDF service OCRs pages;
- `rapidocr-det+tesseract`: RapidOCR's detector, then Tesseract on each line it finds.

Measured: word recall (multiset of lower-case words found / drawn) per set, wall and CPU
seconds per image, peak RSS of the engine's process. Then the text check (`find_text`) on each
photo without text and each text image: its verdict, and its CPU time against full recognition
of the same image (the ratio is the check's cost on a photo; the target is <= 10 %).

    .venv/bin/python bench/ocr.py            # ~3 minutes on 2 cores
    .venv/bin/python bench/ocr.py --quick    # proves it runs (~40 s)
"""

from __future__ import annotations

import argparse
import glob
import json
import multiprocessing
import os
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_THREAD_LIMIT", "1")  # Tesseract: one thread, as in a worker
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "support"))  # the fixtures the tests use

import harness  # noqa: E402
from PIL import Image, ImageOps  # noqa: E402

import mediakit  # noqa: E402

ENGINES = ("rapidocr", "tesseract", "mupdf-tesseract", "rapidocr-det+tesseract")


def text_sets(quick: bool) -> dict[str, list[mediakit.TextImage]]:
    sets = {
        "screenshots": mediakit.screenshot_set(),
        "screenshots, full screen": mediakit.large_screenshot_set(),
        "photographed": mediakit.photographed_set(),
        "photographed, hard": mediakit.photographed_hard_set(),
        "receipt 12 MP": [mediakit.receipt()],
    }
    if quick:
        sets = {name: items[:2] for name, items in sets.items()
                if name not in ("screenshots, full screen", "receipt 12 MP")}
    return sets


def photos(quick: bool) -> dict[str, Image.Image]:
    count = 2 if quick else 6
    small = mediakit.photo_set((1024, 768), count)
    found = {f"photo-like 1024x768 #{i}": image for i, image in enumerate(small)}
    if not quick:
        found |= {f"photo-like 4032x3024 #{i}": image
                  for i, image in enumerate(mediakit.photo_set((4032, 3024), 3))}
    found["hopper (tests/data)"] = Image.open(REPO / "tests" / "data" / "hopper.jpg").convert("RGB")
    return found


def _tessdata() -> str:
    found = sorted(glob.glob("/usr/share/tesseract-ocr/*/tessdata"))
    if not found:
        sys.exit("Tesseract's English data is missing: apt-get install tesseract-ocr-eng")
    return found[-1]


def _grey_for_tesseract(image: Image.Image) -> Image.Image:
    grey = image.convert("L")
    # Tesseract reads dark text on light ground; dark-mode screenshots are inverted first.
    return ImageOps.invert(grey) if statistics.fmean(grey.resize((64, 64)).getdata()) < 110 else grey


def make_engine(name: str) -> Callable[[Image.Image], list[str]]:
    if name == "rapidocr":
        from sensorium.media.text import TextReader

        reader = TextReader()
        reader.warm_up()
        return lambda image: [line.text for line in reader.read_text(image).lines]
    if name == "tesseract":
        import tesserocr

        api = tesserocr.PyTessBaseAPI(path=_tessdata(), lang="eng")

        def tesseract(image: Image.Image) -> list[str]:
            api.SetImage(_grey_for_tesseract(image))
            return [api.GetUTF8Text()]
        return tesseract
    if name == "mupdf-tesseract":
        import pymupdf

        tessdata = _tessdata()

        def mupdf(image: Image.Image) -> list[str]:
            pixmap = pymupdf.Pixmap(mediakit.encode(image.convert("RGB")))
            with pymupdf.open("pdf", pixmap.pdfocr_tobytes(language="eng", tessdata=tessdata)) as doc:
                return [doc[0].get_text()]
        return mupdf
    if name == "rapidocr-det+tesseract":
        import numpy as np
        import tesserocr
        from rapidocr.utils.process_img import get_rotate_crop_image

        from sensorium.media.text import TextReader

        engine = TextReader()._load()
        api = tesserocr.PyTessBaseAPI(path=_tessdata(), lang="eng", psm=tesserocr.PSM.SINGLE_LINE)

        def hybrid(image: Image.Image) -> list[str]:
            found = engine(image, use_det=True, use_cls=False, use_rec=False)
            pixels, texts = np.asarray(image.convert("RGB")), []
            for box in [] if found.boxes is None else found.boxes:
                line = Image.fromarray(get_rotate_crop_image(pixels, np.asarray(box, np.float32)))
                if line.height < 40:  # Tesseract's LSTM reads lines best at ~30-40 px
                    line = line.resize((line.width * 40 // line.height, 40), Image.Resampling.LANCZOS)
                api.SetImage(_grey_for_tesseract(line))
                texts.append(api.GetUTF8Text())
            return texts
        return hybrid
    raise ValueError(name)


def measure_engine(name: str, quick: bool) -> dict[str, Any]:
    """One engine on every set, in this (fresh) process."""
    engine = make_engine(name)
    engine(mediakit.screenshot_set()[0].image)  # warm: first inferences allocate
    result: dict[str, Any] = {"engine": name, "sets": {}}
    for set_name, items in text_sets(quick).items():
        recalls, walls, cpus = [], [], []
        for item in items:
            wall, cpu = time.perf_counter(), time.process_time()
            found = engine(item.image)
            walls.append(time.perf_counter() - wall)
            cpus.append(time.process_time() - cpu)
            recalls.append(mediakit.word_recall(item.text, found))
        result["sets"][set_name] = {
            "images": len(items), "recall_mean": statistics.fmean(recalls), "recall_min": min(recalls),
            "wall_s": statistics.fmean(walls), "cpu_s": statistics.fmean(cpus),
        }
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def measure_check(quick: bool, check_sides: list[int]) -> list[dict[str, Any]]:
    """The text check at each `check_side` against full recognition, per image."""
    from sensorium.media.text import TextReader

    full = TextReader()
    full.warm_up()
    rows = []
    images: list[tuple[str, str, Image.Image]] = [
        ("photo", name, image) for name, image in photos(quick).items()]
    for set_name, items in text_sets(quick).items():
        images += [(set_name, item.label, item.image) for item in items]
    read_cpu = {}
    for _kind, label, image in images:
        # not a photo: no check, recognition alone
        full_cpu, found = _least_cpu(lambda image=image: full.read_text(image))
        read_cpu[label] = (full_cpu, len(found.lines))
    for side in check_sides:
        for kind, label, image in images:
            check_cpu, boxes = _least_cpu(lambda image=image, side=side: full.find_text(image, side))
            full_cpu, lines = read_cpu[label]
            rows.append({"check_side": side, "kind": kind, "image": label,
                         "size": f"{image.width}x{image.height}",
                         "text_found": bool(boxes), "check_cpu_s": check_cpu, "full_cpu_s": full_cpu,
                         "full_lines": lines, "ratio": check_cpu / full_cpu if full_cpu else float("nan")})
    return rows


def _least_cpu(work: Callable[[], Any], repeats: int = 3) -> tuple[float, Any]:
    """The least CPU time of `repeats` runs of `work` (what it costs without the machine's
    other load) and its result."""
    times = []
    for _ in range(repeats):
        cpu = time.process_time()
        result = work()
        times.append(time.process_time() - cpu)
    return min(times), result


def measure_files(quick: bool) -> list[dict[str, Any]]:
    """What a photo file without text costs end to end: `read_image` (reduced JPEG decode and
    the check) against a full decode and recognition without the check."""
    import tempfile

    from sensorium.embedding.images import decode_image
    from sensorium.media.text import TextOptions, TextReader, read_image, reader

    options = TextOptions()
    reader(options).warm_up()
    full = TextReader(options)
    full.warm_up()
    limits = {"max_bytes": 1 << 27, "max_pixels": 1 << 27}
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for index, image in enumerate(mediakit.photo_set((4032, 3024), 1 if quick else 3)):
            path = Path(folder) / f"photo{index}.jpg"
            image.save(path, "JPEG", quality=90)
            cpu = time.process_time()
            found = read_image(str(path), options, max_bytes=limits["max_bytes"],
                               max_pixels=limits["max_pixels"])
            checked = time.process_time() - cpu
            cpu = time.process_time()
            decoded = decode_image(path.read_bytes(), **limits)
            full.read_text(decoded.image)
            rows.append({"photo": f"4032x3024 JPEG #{index}", "read_image_cpu_s": checked,
                         "full_cpu_s": time.process_time() - cpu, "lines": len(found.lines)})
    return rows


def _in_process(function: Callable[..., Any], *args: Any) -> Any:
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        return pool.apply(function, args)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few images per set: proves it runs")
    parser.add_argument("--engines", nargs="+", default=list(ENGINES), choices=ENGINES)
    parser.add_argument("--check-sides", nargs="+", type=int, default=[320, 400, 480, 640])
    parser.add_argument("--json", type=Path, help="also write every number here")
    args = parser.parse_args()

    load_before = os.getloadavg()
    engines = []
    for name in args.engines:
        harness.log(f"engine {name} ...")
        engines.append(_in_process(measure_engine, name, args.quick))
    harness.log("text check ...")
    checks = _in_process(measure_check, args.quick, args.check_sides)
    harness.log("photo files ...")
    files = _in_process(measure_files, args.quick)
    load_after = os.getloadavg()

    print("## Text in images (OCR engines and the text check)\n")
    print(harness.machine_markdown())
    before, after = ("/".join(f"{value:.2f}" for value in load) for load in (load_before, load_after))
    print(f"- Load average (1/5/15 min) before: {before}, after: {after} (a shared machine)")
    print(f"- Command: `{' '.join(['.venv/bin/python', *sys.argv])}`\n")
    set_names = list(engines[0]["sets"])
    print("| engine | " + " | ".join(f"{name}: recall (min), s/image" for name in set_names)
          + " | peak RSS |")
    print("|---|" + "---|" * len(set_names) + "---|")
    for result in engines:
        cells = [f"{s['recall_mean']:.3f} ({s['recall_min']:.2f}), {s['wall_s']:.2f} s (CPU {s['cpu_s']:.2f})"
                 for s in result["sets"].values()]
        print(f"| {result['engine']} | " + " | ".join(cells) + f" | {result['peak_rss_mb']:.0f} MB |")
    print("\nText check (`find_text` at each side) vs full recognition (`read_text` without the check), "
          "CPU time per image; the default checks photos at 400 and reads other images without a check:\n")
    kinds = list(dict.fromkeys(row["kind"] for row in checks if row["kind"] != "photo"))
    print("| check side | photos without text: text found | check / full, median (max) | "
          + " | ".join(f"{kind}: text found" for kind in kinds) + " |")
    print("|---|---|---|" + "---|" * len(kinds))
    for side in args.check_sides:
        rows = [row for row in checks if row["check_side"] == side]
        photo_rows = [row for row in rows if row["kind"] == "photo"]
        ratios = [row["ratio"] for row in photo_rows]
        found = [f"{sum(r['text_found'] for r in rows if r['kind'] == kind)} of "
                 f"{sum(1 for r in rows if r['kind'] == kind)}" for kind in kinds]
        print(f"| {side} | {sum(r['text_found'] for r in photo_rows)} of {len(photo_rows)} | "
              f"{statistics.median(ratios):.1%} ({max(ratios):.1%}) | " + " | ".join(found) + " |")
    print("\nPer photo (check side 400, the default for camera photos):\n")
    print("| photo | check CPU | full recognition CPU | ratio | text found |")
    print("|---|---|---|---|---|")
    for row in checks:
        if row["check_side"] == 400 and row["kind"] == "photo":
            print(f"| {row['image']} | {row['check_cpu_s']:.3f} s | {row['full_cpu_s']:.3f} s | "
                  f"{row['ratio']:.1%} | {row['text_found']} |")
    print("\nA 12 MP JPEG photo file without text, end to end: `read_image` (decode at a reduced "
          "DCT scale, the check) against a full decode and recognition without the check (CPU):\n")
    print("| photo | read_image | full decode + recognition | ratio | lines |")
    print("|---|---|---|---|---|")
    for row in files:
        print(f"| {row['photo']} | {row['read_image_cpu_s']:.3f} s | {row['full_cpu_s']:.3f} s | "
              f"{row['read_image_cpu_s'] / row['full_cpu_s']:.1%} | {row['lines']} |")
    if args.json:
        report = {"machine": harness.describe_machine(), "load": [load_before, load_after],
                  "engines": engines, "check": checks, "files": files}
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
