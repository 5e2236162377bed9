"""Media fixtures made at test time: screenshots rendered with PIL, photographed-looking text,
photo-like images without text, videos with known scenes (PyAV), HEIC photos with EXIF; and
word recall, the measure of the OCR tests and of bench/ocr.py."""

from __future__ import annotations

import io
import re
import struct
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
FONTS = ("DejaVuSans.ttf", "DejaVuSerif.ttf", "DejaVuSansMono.ttf", "DejaVuSansCondensed.ttf",
         "DejaVuSans-Bold.ttf")
"""System fonts (Debian fonts-dejavu-core); "pillow" in a list of fonts is Pillow's own bundled
font (`ImageFont.load_default(size)`), which needs nothing installed."""

LINES = (
    "Error: connection refused while contacting the payment server",
    "Traceback (most recent call last): File main.py, line 42, in handler",
    "Your invoice number 20418 is due on Friday, March 14",
    "Settings  Network  Bluetooth  Display  Sound  Notifications",
    "The meeting with the design team moved to room 301 at 3 pm",
    "Download failed: the disk is full. Free some space and retry",
    "Quarterly revenue grew by twelve percent over the last year",
    "Click Continue to accept the licence agreement and install",
    "Battery low: connect your charger within the next ten minutes",
    "Whiteboard: migrate database, update client, write release notes",
    "Total amount 48.90 including tax, paid by card ending 7731",
    "Remember to water the tomato plants before the weekend trip",
)
"""Sentences of the kind screenshots, receipts and whiteboards show."""

WORD = re.compile(r"[a-z0-9]+")


def words(text: str) -> list[str]:
    """Lower-case alphanumeric tokens: what recall is counted on (punctuation is not a word)."""
    return WORD.findall(text.lower())


def word_recall(expected: str, found: Iterable[str]) -> float:
    """The fraction of `expected`'s words (with multiplicity) found among the words of `found`."""
    want = Counter(words(expected))
    got = Counter(word for text in found for word in words(text))
    total = sum(want.values())
    return sum((want & got).values()) / total if total else 1.0


def font(name: str, size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    if name == "pillow":
        return ImageFont.load_default(size)
    return ImageFont.truetype(str(FONT_DIR / name), size)


@dataclass(frozen=True)
class TextImage:
    image: Image.Image
    text: str
    """Every word drawn on the image, lines separated by newlines."""
    label: str
    boxes: tuple[tuple[int, int, int, int], ...] = ()
    """Where each line was drawn (x0, y0, x1, y1), when known."""


def screenshot(
    lines: Sequence[str], *, font_name: str = "DejaVuSans.ttf", size: int = 14, dark: bool = False,
    width: int = 900,
) -> TextImage:
    """A window-like screenshot: a title bar, a side panel and `lines` of text at `size` px."""
    bg, fg, panel, accent = ((30, 30, 32), (222, 222, 222), (45, 45, 50), (120, 170, 255)) if dark \
        else ((255, 255, 255), (25, 25, 25), (238, 238, 242), (20, 90, 200))
    line_height = int(size * 1.6)
    height = 60 + line_height * len(lines) + 30
    image = Image.new("RGB", (width, height), bg)
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, width, 28), fill=panel)
    for index, colour in enumerate(((236, 95, 90), (245, 190, 80), (98, 197, 85))):
        draw.ellipse((10 + 20 * index, 8, 22 + 20 * index, 20), fill=colour)
    draw.rectangle((0, 28, 40, height), fill=panel)
    face = font(font_name, size)
    y = 50
    boxes = []
    for index, line in enumerate(lines):
        colour = accent if index == 0 else fg
        draw.text((60, y), line, font=face, fill=colour)
        x0, y0, x1, y1 = draw.textbbox((60, y), line, font=face)
        boxes.append((int(x0), int(y0), int(x1), int(y1)))
        y += line_height
    label = f"{font_name.removesuffix('.ttf')} {size}px{' dark' if dark else ''}"
    return TextImage(image, "\n".join(lines), label, tuple(boxes))


def photographed(
    lines: Sequence[str], *, seed: int = 0, size: int = 30, tilt: float = 0.12, blur: float = 1.2,
    noise: float = 8.0,
) -> TextImage:
    """Text on a sheet of paper as a phone photographs it: perspective, uneven light, blur,
    sensor noise, JPEG compression, on a cluttered background."""
    rng = np.random.default_rng(seed)
    face = font("DejaVuSans.ttf", size)
    line_height = int(size * 1.5)
    sheet_w = max(int(face.getlength(line)) for line in lines) + 80
    sheet_h = line_height * len(lines) + 80
    sheet = Image.new("RGB", (sheet_w, sheet_h), (246, 244, 236))
    draw = ImageDraw.Draw(sheet)
    for index, line in enumerate(lines):
        draw.text((40, 40 + index * line_height), line, font=face, fill=(35, 35, 60))
    canvas_w, canvas_h = int(sheet_w * 1.35), int(sheet_h * 1.6)
    canvas = photo_like(canvas_w, canvas_h, seed=seed + 1000, shapes=4)
    # Where the sheet's corners land: a trapezoid, as when the phone is held at an angle.
    left, top = (canvas_w - sheet_w) / 2, (canvas_h - sheet_h) / 2
    dx, dy = tilt * sheet_w, tilt * sheet_h * 0.5
    corners = [(left + dx, top), (left + sheet_w - dx * 0.3, top + dy),
               (left + sheet_w, top + sheet_h - dy * 0.2), (left - dx * 0.2, top + sheet_h)]
    coefficients = _perspective(corners, [(0, 0), (sheet_w, 0), (sheet_w, sheet_h), (0, sheet_h)])
    warped = sheet.transform((canvas_w, canvas_h), Image.Transform.PERSPECTIVE, coefficients,
                             Image.Resampling.BICUBIC)
    mask = Image.new("L", sheet.size, 255).transform(
        (canvas_w, canvas_h), Image.Transform.PERSPECTIVE, coefficients, Image.Resampling.BICUBIC)
    canvas.paste(warped, (0, 0), mask)
    pixels = np.asarray(canvas, np.float32)
    light = np.linspace(0.75, 1.05, canvas_w, dtype=np.float32)[None, :, None]  # a lamp on the right
    pixels = pixels * light + rng.normal(0, noise, pixels.shape).astype(np.float32)
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(blur))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=80)
    return TextImage(Image.open(buffer).convert("RGB"), "\n".join(lines), f"photo seed={seed}")


def _perspective(
    source: Sequence[tuple[float, float]], target: Sequence[tuple[float, float]]
) -> list[float]:
    """PIL's PERSPECTIVE coefficients mapping output points `source` to input points `target`."""
    rows = []
    for (x, y), (u, v) in zip(source, target, strict=True):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
    solution = np.linalg.solve(np.array(rows, float), np.array([c for p in target for c in p], float))
    return [float(value) for value in solution]


def photo_like(width: int, height: int, *, seed: int = 0, shapes: int = 12) -> Image.Image:
    """A photo-like image without text: a smooth two-colour gradient (sky, wall), soft blobs and
    shapes (objects), fine texture (grass, fabric) and sensor noise."""
    rng = np.random.default_rng(seed)
    top, bottom = rng.integers(20, 235, 3), rng.integers(20, 235, 3)
    ramp = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    pixels = (top * (1 - ramp) + bottom * ramp) * np.ones((1, width, 1), np.float32)
    image = Image.fromarray(pixels.astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(shapes):
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        w, h = int(rng.integers(width // 12, width // 3)), int(rng.integers(height // 12, height // 3))
        colour = tuple(int(c) for c in rng.integers(0, 255, 3))
        if rng.random() < 0.5:
            draw.ellipse((x, y, x + w, y + h), fill=colour)
        else:
            points = [(int(x + rng.integers(-w, w)), int(y + rng.integers(-h, h))) for _ in range(5)]
            draw.polygon(points, fill=colour)
    image = image.filter(ImageFilter.GaussianBlur(float(rng.uniform(1.5, 6.0))))
    pixels = np.asarray(image, np.float32)
    texture = rng.normal(0, float(rng.uniform(3, 14)), (height, width, 1)).astype(np.float32)
    pixels = pixels + texture + rng.normal(0, 3.0, pixels.shape).astype(np.float32)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def screenshot_set() -> list[TextImage]:
    """The screenshots of the OCR tests and benchmark: each font at small and common sizes,
    light and dark."""
    shots = []
    for index, (name, size, dark) in enumerate([
        ("DejaVuSans.ttf", 13, False), ("DejaVuSans.ttf", 16, True), ("DejaVuSerif.ttf", 14, False),
        ("DejaVuSansMono.ttf", 13, True), ("DejaVuSansCondensed.ttf", 12, False),
        ("DejaVuSans-Bold.ttf", 20, True), ("pillow", 15, False), ("DejaVuSerif.ttf", 11, True),
    ]):
        lines = [LINES[(index * 3 + k) % len(LINES)] for k in range(4)]
        shots.append(screenshot(lines, font_name=name, size=size, dark=dark))
    return shots


def large_screenshot_set() -> list[TextImage]:
    """Full-screen captures: a dense 1920-pixel terminal at 13 px, and a 2x ("retina") window at
    26 px, as a laptop with a high-density display saves it."""
    dense = screenshot([LINES[k % len(LINES)] for k in range(40)], font_name="DejaVuSansMono.ttf",
                       size=13, dark=True, width=1920)
    retina = screenshot([LINES[(k + 5) % len(LINES)] for k in range(14)], size=26, width=2880)
    return [dense, retina]


def photographed_set() -> list[TextImage]:
    return [photographed([LINES[(seed * 2 + k) % len(LINES)] for k in range(3)], seed=seed,
                         tilt=0.06 + 0.03 * seed, blur=0.8 + 0.3 * seed) for seed in range(4)]


def photographed_hard_set() -> list[TextImage]:
    """Harder photographs of text: smaller, blurrier, more tilted, noisier."""
    return [photographed([LINES[(seed * 3 + k) % len(LINES)] for k in range(4)], seed=10 + seed, size=22,
                         tilt=0.15 + 0.03 * seed, blur=1.5 + 0.3 * seed, noise=10) for seed in range(4)]


def receipt(seed: int = 42) -> TextImage:
    """A long receipt photographed at a phone's 12 MP (lines ~1.7 % of the photo's height)."""
    shot = photographed([LINES[(seed + k) % len(LINES)] for k in range(24)], seed=seed, size=26,
                        tilt=0.05, blur=1.0)
    height = 3024
    width = shot.image.width * height // shot.image.height
    image = shot.image.resize((width, height), Image.Resampling.BICUBIC)
    return TextImage(image, shot.text, "receipt 12 MP")


def photo_set(size: tuple[int, int] = (1024, 768), count: int = 6) -> list[Image.Image]:
    return [photo_like(*size, seed=seed) for seed in range(count)]


def encode(image: Image.Image, format: str = "PNG", **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format, **params)
    return buffer.getvalue()



def exif(
    *, orientation: int | None = None, original: str | None = None, offset: str | None = None,
    subsec: str | None = None, digitized: str | None = None, modified: str | None = None,
) -> Image.Exif:
    """EXIF data as cameras write it: IFD0 Orientation and DateTime ("modified"), the Exif
    IFD's DateTimeOriginal, OffsetTimeOriginal, SubSecTimeOriginal and DateTimeDigitized."""
    data = Image.Exif()
    if orientation is not None:
        data[0x0112] = orientation
    if modified is not None:
        data[0x0132] = modified
    ifd = data.get_ifd(0x8769)
    for tag, value in ((0x9003, original), (0x9011, offset), (0x9291, subsec), (0x9004, digitized)):
        if value is not None:
            ifd[tag] = value
    return data


def two_tone(width: int = 64, height: int = 32) -> Image.Image:
    """Red with a blue left quarter: which way up it is shows after any rotation or mirroring."""
    image = Image.new("RGB", (width, height), (255, 0, 0))
    image.paste((0, 0, 255), (0, 0, width // 4, height))
    return image


def heic(image: Image.Image, exif_data: Image.Exif | None = None, quality: int = 90) -> bytes:
    """`image` as a HEIC file written by pillow-heif (which the test registers)."""
    params: dict[str, object] = {"quality": quality}
    if exif_data is not None:
        params["exif"] = exif_data.tobytes()
    return encode(image, "HEIF", **params)


SCENE_COLOURS = ((200, 40, 40), (40, 160, 60), (40, 70, 200), (230, 200, 40), (150, 60, 170), (30, 30, 30))


def scene_frame(scene: int, t: float, size: tuple[int, int]) -> np.ndarray:
    """A frame of scene `scene` at `t` s into it: the scene's background colour and a block
    drifting right (motion within a scene, which must not count as a cut)."""
    width, height = size
    rng = np.random.default_rng(scene)
    pixels = np.empty((height, width, 3), np.uint8)
    pixels[:] = SCENE_COLOURS[scene % len(SCENE_COLOURS)]
    block = max(2, width // 6)
    x = int((rng.integers(0, width // 2) + t * width / 20) % (width - block))
    y = int(rng.integers(0, height - block))
    pixels[y:y + block, x:x + block] = 255 - pixels[y, x]
    return pixels


def scene_video(
    path: Path, scene_starts: Sequence[float], duration: float, *, fps: int = 10,
    size: tuple[int, int] = (96, 54), container: str = "mp4", codec: str = "libx264",
    faststart: bool = False, rotate_clockwise: bool = False,
    soundtrack: np.ndarray | None = None, metadata: dict[str, str] | None = None,
) -> Path:
    """A video whose scene `i` starts at `scene_starts[i]` s (the first at 0), encoded with PyAV.
    `faststart` puts the MP4 index first, as streaming-friendly encoders do (a cut-short file
    then still opens); `rotate_clockwise` marks the track to be shown turned a quarter to the
    right, as phones mark portrait videos. `soundtrack`: 16 kHz mono float samples (-1..1) for
    an AAC sound track; `metadata`: container tags (e.g. "creation_time")."""
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), "w", format=container, options=options) as output:
        output.metadata.update(metadata or {})
        stream = output.add_stream(codec, rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        sound = None
        if soundtrack is not None:
            sound = output.add_stream("aac", rate=16000)
            sound.layout = "mono"
        for index in range(round(duration * fps)):
            t = index / fps
            scene = max(i for i, start in enumerate(scene_starts) if start <= t + 1e-9)
            pixels = scene_frame(scene, t - scene_starts[scene], size)
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            for packet in stream.encode(frame):
                output.mux(packet)
        for packet in stream.encode(None):
            output.mux(packet)
        if sound is not None and soundtrack is not None:
            samples = np.zeros(round(duration * 16000), np.float32)
            clip = np.asarray(soundtrack, np.float32)[: len(samples)]
            samples[: len(clip)] = clip
            audio = av.AudioFrame.from_ndarray(samples[None], format="flt", layout="mono")
            audio.sample_rate = 16000
            for packet in [*sound.encode(audio), *sound.encode(None)]:
                output.mux(packet)
    if rotate_clockwise:
        _rotate_track(path)
    return path


def _rotate_track(path: Path) -> None:
    """Set the MP4 track header's display matrix to a quarter turn clockwise (what FFmpeg
    writes for `-metadata:s:v rotate=90`; PyAV has no API to write it)."""
    data = bytearray(path.read_bytes())
    identity = struct.pack(">9i", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
    at = data.find(identity, data.find(b"tkhd"))
    assert at > 0, "no track header matrix found"
    data[at:at + 36] = struct.pack(">9i", 0, 0x10000, 0, -0x10000, 0, 0, 0, 0, 0x40000000)
    path.write_bytes(bytes(data))


def audio_only(path: Path, seconds: float = 1.0) -> Path:
    rate = 16000
    with av.open(str(path), "w", format="mp4") as output:
        stream = output.add_stream("aac", rate=rate)
        samples = (np.sin(np.arange(int(rate * seconds)) / 8) * 8000).astype(np.int16)[None]
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = rate
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            output.mux(packet)
    return path
