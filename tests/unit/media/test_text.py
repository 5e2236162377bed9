"""Text in images: screenshots and photographed text are read with their boxes; ordinary
photos give no text and never reach recognition."""

from __future__ import annotations

import io

import pytest
from PIL import Image

import mediakit
from sensorium.media.api import Box, TextStatus
from sensorium.media.text import TextOptions, TextReader, read_image
from testkit import DATA

SCREENSHOTS = mediakit.screenshot_set()


@pytest.fixture(scope="module")
def reader() -> TextReader:
    reader = TextReader()
    reader.warm_up()
    return reader


def _overlap(box: Box, drawn: tuple[int, int, int, int]) -> float:
    """The fraction of the drawn line's area inside the recognised box."""
    x0, y0, x1, y1 = drawn
    width = max(0, min(box.x1, x1) - max(box.x0, x0))
    height = max(0, min(box.y1, y1) - max(box.y0, y0))
    return width * height / ((x1 - x0) * (y1 - y0))


@pytest.mark.parametrize("shot", SCREENSHOTS, ids=[shot.label for shot in SCREENSHOTS])
def test_screenshots_are_read_with_their_lines_where_they_were_drawn(reader, shot):
    found = reader.read_text(shot.image)
    assert found.has_text and found.status is TextStatus.READ
    assert mediakit.word_recall(shot.text, [found.text]) >= 0.9
    # Each drawn line lies inside the boxes recognised on its row (a menu bar's items may come
    # as several), and they hold its words.
    for line, drawn in zip(shot.text.splitlines(), shot.boxes, strict=True):
        row = [each for each in found.lines if drawn[1] <= (each.box.y0 + each.box.y1) / 2 <= drawn[3]]
        assert sum(_overlap(each.box, drawn) for each in row) > 0.8, (line, row)
        assert mediakit.word_recall(line, [each.text for each in row]) >= 0.8, (line, row)
    assert all(0.5 <= each.confidence <= 1.0 for each in found.lines)
    # Reading order: top to bottom.
    assert [each.box.y0 for each in found.lines] == sorted(each.box.y0 for each in found.lines)


@pytest.mark.parametrize("shot", mediakit.photographed_set()[:2], ids=["photo0", "photo1"])
def test_photographed_text_is_read(reader, shot):
    found = reader.read_text(shot.image, photo=True)
    assert mediakit.word_recall(shot.text, [found.text]) >= 0.9


def test_ordinary_photos_have_no_text_and_skip_recognition(reader):
    for photo in mediakit.photo_set((1024, 768), 4):
        found = reader.read_text(photo, photo=True)
        assert (found.status, found.lines, found.read_seconds) == (TextStatus.NO_TEXT, [], 0.0)
    # A real photo (a portrait in uniform): whatever the detector makes of its ribbons, no
    # line of text comes out.
    hopper = Image.open(DATA / "hopper.jpg").convert("RGB")
    assert reader.read_text(hopper, photo=True).lines == []


def test_blank_and_tiny_images_have_no_text(reader):
    for image in (Image.new("RGB", (800, 600), "white"), Image.new("RGB", (1, 1), "black"),
                  Image.new("L", (300, 40), 128)):
        assert reader.read_text(image).lines == []


def test_an_image_file_is_read_upright_in_the_coordinates_a_person_sees(tmp_path):
    shot = mediakit.screenshot(["Meeting moved to room 301 at 3 pm"], size=20, width=500)
    # Stored turned a quarter to the left, with EXIF saying "turn right to view", as cameras do.
    path = tmp_path / "photo.jpg"
    shot.image.transpose(Image.Transpose.ROTATE_90).save(
        path, "JPEG", quality=95, exif=mediakit.exif(orientation=6))
    found = read_image(str(path), TextOptions(), max_bytes=1 << 24, max_pixels=1 << 26)
    assert (found.width, found.height) == shot.image.size
    assert mediakit.word_recall(shot.text, [found.text]) >= 0.9
    assert sum(_overlap(each.box, shot.boxes[0]) for each in found.lines) > 0.8


def test_a_large_jpeg_photo_is_checked_small_and_read_in_full(tmp_path):
    empty = tmp_path / "garden.jpg"
    mediakit.photo_like(1600, 1200, seed=7).save(empty, "JPEG", quality=90)
    nothing = read_image(str(empty), TextOptions(), max_bytes=1 << 26, max_pixels=1 << 26)
    assert (nothing.status, nothing.lines, nothing.read_seconds) == (TextStatus.NO_TEXT, [], 0.0)
    assert nothing.photo and nothing.check_seconds > 0

    shot = mediakit.photographed(list(mediakit.LINES[:3]), seed=3, size=30)
    scale = 1200 / shot.image.height  # a photo of 2 MP or so; JPEG draft halves it for the check
    photo = shot.image.resize((round(shot.image.width * scale), 1200), Image.Resampling.BICUBIC)
    path = tmp_path / "sheet.jpg"
    photo.save(path, "JPEG", quality=90)
    found = read_image(str(path), TextOptions(), max_bytes=1 << 26, max_pixels=1 << 26)
    assert found.status is TextStatus.READ
    assert mediakit.word_recall(shot.text, [found.text]) >= 0.9
    # Boxes are in the full photo's pixels, not the reduced image the check looked at.
    assert max(line.box.x1 for line in found.lines) > 0.6 * photo.width
    assert all(line.box.y1 <= photo.height for line in found.lines)


def test_without_text_an_image_gives_its_metadata_and_an_upright_preview(tmp_path):
    # A 12 MP camera JPEG held sideways: EXIF says "turn right to view" and when it was taken.
    photo = mediakit.photo_like(4032, 3024, seed=3)
    photo.paste((0, 0, 255), (0, 0, 1008, 3024))  # blue on the stored left edge
    path = tmp_path / "IMG_2041.JPG"
    tags = mediakit.exif(orientation=6, original="2024:08:03 09:15:00", offset="-04:00")
    photo.save(path, "JPEG", quality=85, exif=tags)
    found = read_image(str(path), None, max_bytes=1 << 26, max_pixels=1 << 26, preview_side=448)
    assert (found.status, found.lines, found.check_seconds) == (TextStatus.SKIPPED, [], 0.0)
    assert (found.width, found.height, found.format, found.photo) == (3024, 4032, "JPEG", True)
    assert found.taken_at is not None and found.taken_at.isoformat() == "2024-08-03T09:15:00-04:00"
    preview = Image.open(io.BytesIO(found.preview))
    assert preview.format == "JPEG" and min(preview.size) == 448 and preview.width < preview.height
    top = preview.convert("RGB").getpixel((preview.width // 2, 5))
    assert top[2] > 200 and top[0] < 80  # the stored left edge is on top once turned upright


def test_the_check_and_the_preview_share_one_reduced_decode(tmp_path, monkeypatch):
    """A photo without text is decoded once, at a reduced scale that serves both."""
    from sensorium.embedding import images

    path = tmp_path / "garden.jpg"
    mediakit.photo_like(4032, 3024, seed=5).save(path, "JPEG", quality=85)
    sizes = []
    decode = images.decode_image

    def counting(data, **kwargs):
        decoded = decode(data, **kwargs)
        sizes.append(decoded.image.size)
        return decoded

    monkeypatch.setattr(images, "decode_image", counting)
    found = read_image(str(path), TextOptions(), max_bytes=1 << 26, max_pixels=1 << 26, preview_side=448)
    assert found.status is TextStatus.NO_TEXT and found.preview
    assert sizes == [(1008, 756)]  # a sixteenth of the pixels; both the check and CLIP need less


def test_a_small_image_is_its_own_preview(tmp_path):
    """Nothing to reduce: CLIP gets the file's own bytes (no second, lossy encoding), as the
    embedding service would from the file; a HEIC one is re-encoded (not every embedding
    service reads HEIC)."""
    path = tmp_path / "icon.png"
    data = mediakit.encode(mediakit.two_tone(200, 100), "PNG")
    path.write_bytes(data)
    small = read_image(str(path), None, max_bytes=1 << 20, max_pixels=1 << 24, preview_side=448)
    assert small.preview == data
    heic = tmp_path / "small.heic"
    heic.write_bytes(mediakit.heic(mediakit.two_tone(200, 100)))
    preview = read_image(str(heic), None, max_bytes=1 << 20, max_pixels=1 << 24, preview_side=448).preview
    assert Image.open(io.BytesIO(preview)).format == "JPEG"


def test_recognised_text_goes_through_the_one_normalisation():
    from sensorium.media.text import normalised
    from sensorium.text import normalize

    line = " e\ufb03cient\u00a0caf\u0065\u0301 total\u200b "
    assert normalised(line) == normalize(line).strip() == "efficient café total"
