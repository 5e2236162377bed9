"""Text in images: recognised lines with their boxes, for screenshots, receipts, whiteboards
and photographed pages. RapidOCR runs PaddleOCR's PP-OCRv6 detector and recogniser (ONNX,
shipped in the `rapidocr` wheel: nothing is downloaded) on onnxruntime.

Chosen by measurement (bench/ocr.py, docs/benchmarks.md): on rendered screenshots it finds as
many words as Tesseract; on photographed text (perspective, blur, noise, uneven light) it finds
far more; it is slower per image, which the check below pays back on photos.

Two steps for photos, so that ordinary photos do not pay for recognition:
1. `find_text` (the check): the detector alone on the photo shrunk to `photo_check_side`
   pixels. Its boxes are kept only when they look like text lines (see `_plausible`): on noisy
   photos the detector's probability map can cover the whole image, which no line of text
   does. The detector finds lines down to ~5 pixels tall at the size it looks at, and its cost
   grows with that size. Text in a photo (a sign, a whiteboard, a receipt, a page's heading)
   is mostly over ~1.5 % of the photo's height, so photos are checked small: 400 px costs about
   a tenth of recognition on a 12 MP photo (docs/benchmarks.md).
   Screenshots, scans and graphics are not checked: they hold small text (13 px lines in a
   1920-pixel screenshot vanish at any size much below recognition's own) and almost always
   some, and recognition's detector pass is itself the check: lines are recognised only where
   it finds them.
2. `read_text`: when the check found a line, the detector at `read_side` and the recogniser on
   every line it finds, cut from the image at up to 2000 pixels (RapidOCR shrinks larger ones
   first, which bounds the time a 50 MP photo takes). Lines under `min_confidence`, and lines
   without a letter or digit, are dropped.

Coordinates are pixels of the image as given, which the caller has turned upright (EXIF
orientation applied: `sensorium.embedding.images.decode_image`). One `TextReader` per process;
it is not meant to be shared between threads (onnxruntime sessions are, RapidOCR's Python
state is not). The models load on first use.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from sensorium.media.api import Box, ImageText, TextLine, TextStatus

if TYPE_CHECKING:
    from sensorium.embedding.images import DecodedImage

log = logging.getLogger("sensorium.media")


@dataclass(frozen=True)
class TextOptions:
    """How text is looked for and read (the media settings, as plain values)."""

    photo_check_side: int = 400
    """Longest side, in pixels, of the image the text check looks at (photos only); 0 = no
    check, every photo is read."""
    read_side: int = 1280
    """Longest side, in pixels, of the image the detector looks at when reading; lines are
    recognised from the full-resolution image."""
    min_confidence: float = 0.5
    """Recognised lines below this confidence (0..1) are dropped."""
    threads: int = 1
    """onnxruntime threads for one image (parallelism comes from worker processes)."""


class TextReader:
    """The OCR engine (see the module docstring)."""

    def __init__(self, options: TextOptions | None = None) -> None:
        self.options = options or TextOptions()
        self._engine: Any = None

    def _load(self) -> Any:
        if self._engine is None:
            import cv2
            from rapidocr import RapidOCR

            threads = max(1, self.options.threads)
            # OpenCV resizes and warps line crops on a thread per core unless told otherwise;
            # workers get their share of the CPUs, not all of them.
            cv2.setNumThreads(threads)
            self._engine = RapidOCR(params={
                "Global.log_level": "error",
                "Global.use_cls": False,  # upright images; 180-degree text is rare in photos
                "Global.text_score": self.options.min_confidence,
                "Det.limit_type": "max",
                "Det.limit_side_len": self.options.read_side,
                "EngineConfig.onnxruntime.intra_op_num_threads": threads,
                "EngineConfig.onnxruntime.inter_op_num_threads": 1,
            })
            logging.getLogger("RapidOCR").setLevel(logging.ERROR)
        return self._engine

    def warm_up(self) -> None:
        """Load both models and run them once (the first inference allocates its arenas; the
        recogniser loads only when the detector has found a line)."""
        image = Image.new("RGB", (240, 60), "white")
        ImageDraw.Draw(image).text((10, 15), "Warm up", fill="black", font=ImageFont.load_default(28))
        self.read_text(image)

    def find_text(self, image: Image.Image, side: int | None = None) -> list[Box]:
        """The check: boxes of likely text lines in `image`, found by the detector alone on it
        shrunk to `side` pixels (default `photo_check_side`), in coordinates of `image`.
        Empty: no text worth reading.

        The detector is called directly, not through RapidOCR's pipeline: the image goes in at
        the network's own size (sides multiples of 32) in one resize, and nothing is cut out
        for a recogniser that will not run. On 1024x768 photos that is ~9 % less CPU per check
        and finds as many text images (bench/ocr.py's check table; docs/benchmarks.md)."""
        detector = self._detector()
        width, height = image.size
        scale = min(1.0, (side or self.options.photo_check_side) / max(width, height))
        # The network's input: sides rounded to multiples of 32, as RapidOCR's own resize does.
        net_w, net_h = (max(32, round(length * scale / 32) * 32) for length in (width, height))
        small = _rgb(image).resize((net_w, net_h), Image.Resampling.BILINEAR, reducing_gap=2.0)
        bgr = np.asarray(small, np.float32)[:, :, ::-1]  # the models were trained on BGR
        batch = ((bgr * (1 / 255) - detector.mean) / detector.std).transpose(2, 0, 1)[None]
        boxes, _ = detector.postprocess_op(
            detector.session(np.ascontiguousarray(batch, np.float32)), (net_h, net_w))
        found = (_box(points, (width / net_w, height / net_h)) for points in boxes)
        return [box for box in found if _plausible(box, image.size)]

    def _detector(self) -> Any:
        """RapidOCR's text detector (its ONNX session, normalisation and DB post-processing),
        loaded once. `_load_det_model` is RapidOCR's own lazy loader (rapidocr is pinned in the
        lock; tests/unit/media cover the check)."""
        return self._load()._load_det_model()

    def read_text(self, image: Image.Image, *, photo: bool = False) -> ImageText:
        """The text lines of `image` (RGB, upright), in reading order. A `photo`
        (`sensorium.photos.is_photo`) is checked first, and not recognised unless
        `find_text` finds a line."""
        started = time.perf_counter()
        if photo and self.options.photo_check_side and not self.find_text(image):
            return ImageText([], TextStatus.NO_TEXT, photo=True, check_seconds=time.perf_counter() - started)
        checked = time.perf_counter()
        result = self._load()(_rgb(image), use_det=True, use_cls=False, use_rec=True)
        lines = []
        for points, text, score in zip(_points(result), result.txts or (), result.scores or (), strict=True):
            box = _box(points, 1.0)
            # A line without a letter or digit ("***" on a uniform's ribbons) is no text to find.
            if any(char.isalnum() for char in text) and _plausible(box, image.size):
                lines.append(TextLine(normalised(text), box, round(float(score), 4)))
        lines.sort(key=lambda line: (line.box.y0 + line.box.y1, line.box.x0))
        return ImageText(_reading_order(lines), TextStatus.READ, photo=photo,
                         check_seconds=checked - started, read_seconds=time.perf_counter() - checked)


def normalised(text: str) -> str:
    """THE place where recognised text leaves the OCR engine: every line passes here once,
    through the project's one text normalisation (`sensorium.text.normalize`: compatibility
    characters folded, invisible ones dropped), so text in images is searched like all text."""
    from sensorium.text import normalize

    return normalize(text).strip()


def _rgb(image: Image.Image) -> Image.Image:
    return image if image.mode == "RGB" else image.convert("RGB")


def _points(result: Any) -> list[Any]:
    boxes = getattr(result, "boxes", None)
    return [] if boxes is None else list(boxes)


def _box(points: Any, scale: float | tuple[float, float]) -> Box:
    """The box around `points` (x, y pairs), scaled by `scale` (one factor, or x's and y's)."""
    array = np.asarray(points, np.float64) * np.asarray(scale, np.float64)
    x0, y0 = array.min(axis=0)
    x1, y1 = array.max(axis=0)
    return Box(int(np.floor(x0)), int(np.floor(y0)), int(np.ceil(x1)), int(np.ceil(y1)))


def _plausible(box: Box, size: tuple[int, int]) -> bool:
    """Whether a detected box can be a line of text: not taller than a quarter of the image
    (a line that large fills a poster, not a photo) and not covering most of it. On noise and
    fine texture the detector's map can spread over the whole image; lines never do."""
    width, height = size
    box_w, box_h = box.x1 - box.x0, box.y1 - box.y0
    if box_w <= 1 or box_h <= 1:
        return False
    return box_h <= 0.25 * height and box_w * box_h <= 0.5 * width * height


def _reading_order(lines: list[TextLine]) -> list[TextLine]:
    """Top to bottom; lines whose vertical centres are within half a line height of each other
    are one row, read left to right (columns of a form, cells of a table)."""
    rows: list[list[TextLine]] = []
    for line in lines:
        centre = (line.box.y0 + line.box.y1) / 2
        if rows:
            last = rows[-1][0]
            last_centre = (last.box.y0 + last.box.y1) / 2
            if abs(centre - last_centre) <= (last.box.y1 - last.box.y0) / 2:
                rows[-1].append(line)
                continue
        rows.append([line])
    return [line for row in rows for line in sorted(row, key=lambda each: each.box.x0)]


_readers: dict[TextOptions, TextReader] = {}


def reader(options: TextOptions) -> TextReader:
    """This process's reader for `options` (worker processes keep one, models loaded once)."""
    with contextlib.suppress(KeyError):
        return _readers[options]
    _readers[options] = TextReader(options)
    return _readers[options]


def warm_up(options: TextOptions) -> None:
    """Load this process's reader for `options` and run it once (a worker task)."""
    reader(options).warm_up()


def read_image(
    path: str, options: TextOptions | None, *, max_bytes: int, max_pixels: int,
    without_text: TextStatus = TextStatus.SKIPPED, preview_side: int = 0,
) -> ImageText:
    """The text of the image file at `path` and what is known of it: decoded safely (limits,
    EXIF orientation, HEIC), checked when it is a photo, and read. `options` None: no text is
    looked for, and the status says `without_text` (SKIPPED: the caller's choice, DISABLED: the
    server's). `preview_side`: also return the image upright, reduced so its shorter side is at
    most that, as a JPEG (`ImageText.preview`). The worker-process entry point
    (`sensorium.media.runtime`); raises `SensoriumError` for an image that cannot be decoded
    (IMAGE_UNDECODABLE, IMAGE_TOO_LARGE, INPUT_TOO_LARGE, ...).

    A JPEG is decoded once, at the reduced DCT scale that still covers the check and the
    preview (a 12 MP photo at 1/4: a sixteenth of the pixels); it is decoded in full only when
    the check finds text. A photo without text costs that small decode and the check.
    """
    from sensorium.embedding.images import decode_image
    from sensorium.photos import is_photo

    with open(path, "rb") as handle:
        data = handle.read(max_bytes + 1)
    limits: dict[str, Any] = {"max_bytes": max_bytes, "max_pixels": max_pixels,
                              "settings": ("media.max_image_bytes", "media.max_pixels")}
    check_side = options.photo_check_side if options is not None else 0
    decoded = decode_image(data, **limits, min_side=max(check_side, preview_side, _METADATA_SIDE))
    photo = is_photo(decoded.format, decoded.camera)
    found = ImageText(
        [], without_text, width=decoded.width, height=decoded.height, format=decoded.format,
        photo=photo, camera=decoded.camera, taken_at=decoded.taken_at,
        preview=_preview(decoded, data, preview_side) if preview_side else b"",
    )
    if options is None:
        return found
    engine = reader(options)
    if photo and check_side:
        started = time.perf_counter()
        boxes = engine.find_text(decoded.image)
        found = dataclasses.replace(found, check_seconds=time.perf_counter() - started)
        if not boxes:
            return dataclasses.replace(found, status=TextStatus.NO_TEXT)
    if decoded.image.size != (decoded.width, decoded.height):  # reduced for the check
        decoded = decode_image(data, **limits)
    read = engine.read_text(decoded.image)
    return dataclasses.replace(found, lines=read.lines, status=TextStatus.READ,
                               read_seconds=read.read_seconds)


_METADATA_SIDE = 64
"""Without text or preview, the image is decoded only for its size, orientation and EXIF: at
the smallest DCT scale that keeps this side."""
PREVIEW_QUALITY = 90


_AS_IS = frozenset({"JPEG", "PNG", "WEBP", "GIF", "TIFF", "BMP"})
"""Formats every embedding service decodes (HEIC and AVIF need plugins it may lack)."""


def _preview(decoded: DecodedImage, data: bytes, side: int) -> bytes:
    """The image for CLIP: the file itself when it is already no larger than `side` on its
    shorter side and in a format every embedding service reads (nothing to gain from a second
    encoding, and nothing lost to it), else the decoded image reduced so that its shorter side
    is at most `side`, as a JPEG."""
    image = decoded.image
    if decoded.format in _AS_IS and min(decoded.width, decoded.height) <= side:
        return data
    scale = side / min(image.size)
    if scale < 1.0:
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.BICUBIC, reducing_gap=2.0)
    buffer = io.BytesIO()
    _rgb(image).save(buffer, "JPEG", quality=PREVIEW_QUALITY)
    return buffer.getvalue()
