"""Each `<service>/wire.py` both ways: every domain type the servicer sends comes back equal
from the message a remote engine decodes, so the CLI, the index job and a gRPC client see the
same results in-process and remote."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sensorium.document import wire as document_wire
from sensorium.document.api import (
    Attachment,
    Document,
    DocumentKind,
    Locator,
    Metadata,
    ParseOptions,
    Picture,
    Section,
    SectionKind,
)
from sensorium.embedding import wire as embedding_wire
from sensorium.embedding.api import ImageOutcome, ScoreRow, Scores, Space, SpaceInfo, TextOutcome
from sensorium.errors import Reason, SensoriumError
from sensorium.media import wire as media_wire
from sensorium.media.api import (
    Box,
    ImageText,
    ImageTextOptions,
    TextLine,
    TextStatus,
    VideoFrame,
    VideoFrames,
    VideoOptions,
)
from sensorium.pdf import wire as pdf_wire
from sensorium.pdf.api import (
    BBox,
    Block,
    DocumentInfo,
    ExtractionSummary,
    ExtractOptions,
    ImageResult,
    OcrStatus,
    PageResult,
)
from sensorium.transcription import wire as transcription_wire
from sensorium.transcription.api import (
    Info,
    Options,
    RequestedOptions,
    Segment,
    TranscriptionSummary,
    Word,
)

EXAMPLES = settings(max_examples=60, deadline=None, derandomize=True)
f32 = st.floats(width=32, allow_nan=False, allow_infinity=False)
text = st.text(max_size=40)
count = st.integers(0, 2**31 - 1)
# Item errors travel without a setting (the message is worded for the client): the ones here
# have none, so they must come back exactly.
errors = st.builds(SensoriumError, st.sampled_from(list(Reason)), text,
                   st.dictionaries(st.text("abc_", min_size=1, max_size=8), text, max_size=2))


def _same_error(a: SensoriumError | None, b: SensoriumError | None) -> bool:
    if a is None or b is None:
        return a is b
    return (a.reason, a.message, a.metadata) == (b.reason, b.message, b.metadata)


# --- PDF ---------------------------------------------------------------------------------------

boxes = st.builds(BBox, f32, f32, f32, f32)
pages = st.builds(
    PageResult, count, text, st.lists(st.builds(Block, boxes, text), max_size=3), st.booleans(),
    st.sampled_from(list(OcrStatus)), text, st.just(""), f32, f32, st.none() | errors, count,
    st.none() | errors,
)
images = st.builds(ImageResult, count, count, st.none() | boxes, st.sampled_from(["png", "jpeg", ""]),
                   st.binary(max_size=64), count, count, st.none() | errors)
times = st.none() | st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2100, 1, 1),
                                 timezones=st.just(UTC))


@EXAMPLES
@given(st.builds(ExtractOptions, count, count, text, st.booleans(), st.booleans(), st.booleans()))
def test_pdf_options_round_trip(options: ExtractOptions) -> None:
    assert pdf_wire.options_from_message(pdf_wire.options_to_message(options, 32)) == options


@EXAMPLES
@given(st.builds(DocumentInfo, text, text, text, text, text, text, times, times, count, text,
                 st.booleans(), st.booleans()))
def test_pdf_info_round_trips(info: DocumentInfo) -> None:
    assert pdf_wire.info_from_message(pdf_wire.info_to_message(info)) == info


@EXAMPLES
@given(pages)
def test_pdf_page_round_trips(page: PageResult) -> None:
    back = pdf_wire.page_from_message(pdf_wire.page_to_message(page))
    assert _same_error(back.error, page.error) and _same_error(back.limit, page.limit)
    assert back.__class__(**{**vars(back), "error": page.error, "limit": page.limit}) == page


@EXAMPLES
@given(images)
def test_pdf_image_round_trips(image: ImageResult) -> None:
    back = pdf_wire.image_from_message(pdf_wire.image_to_message(image))
    assert _same_error(back.error, image.error)
    assert back.__class__(**{**vars(back), "error": image.error}) == image


@EXAMPLES
@given(st.builds(ExtractionSummary, count, count, count, count, st.floats(0, 1e6), count))
def test_pdf_summary_round_trips(summary: ExtractionSummary) -> None:
    assert pdf_wire.summary_from_message(pdf_wire.summary_to_message(summary)) == summary


def test_an_ocr_message_names_the_setting_for_whoever_reads_it() -> None:
    page = PageResult(1, "", ocr_status=OcrStatus.UNAVAILABLE, ocr_message="OCR is disabled",
                      ocr_setting="pdf.ocr")
    client = pdf_wire.page_to_message(page).ocr_message
    local = pdf_wire.page_to_message(page, "operator").ocr_message
    assert "SENSORIUM_PDF__OCR" in client and "operator" in client
    assert "SENSORIUM_PDF__OCR" in local and "operator" not in local


# --- transcription -----------------------------------------------------------------------------

requested = st.builds(
    RequestedOptions, text, st.sampled_from(["transcribe", "translate"]), count, st.booleans(),
    st.none() | st.booleans(), text, text, st.lists(f32, max_size=4).map(tuple),
    st.none() | st.booleans(), st.booleans(), count,
)
words = st.builds(Word, st.floats(0, 1e5), st.floats(0, 1e5), text, f32)
segments = st.builds(Segment, count, st.floats(0, 1e5), st.floats(0, 1e5), text,
                     st.lists(words, max_size=3).map(tuple), f32, f32, f32, f32)


@EXAMPLES
@given(requested, st.booleans())
def test_transcription_options_round_trip(options: RequestedOptions, allow_truncated: bool) -> None:
    message = transcription_wire.options_to_message(options, allow_truncated=allow_truncated)
    assert transcription_wire.options_from_message(message) == options
    assert message.allow_truncated == allow_truncated


@EXAMPLES
@given(st.builds(
    Info, text, f32, st.floats(0, 1e5), st.floats(0, 1e5), text,
    st.builds(Options, task=st.sampled_from(["transcribe", "translate"]), vad_filter=st.booleans(),
              condition_on_previous_text=st.booleans(), batched=st.booleans()),
    st.none() | st.floats(0.5, 1e5), st.booleans(),
))
def test_transcription_info_round_trips(info: Info) -> None:
    # Of the options used, the message carries task, batched mode, VAD and conditioning.
    assert transcription_wire.info_from_message(transcription_wire.info_to_message(info)) == info


@EXAMPLES
@given(segments)
def test_transcription_segment_round_trips(segment: Segment) -> None:
    assert transcription_wire.segment_from_message(transcription_wire.segment_to_message(segment)) == segment


@EXAMPLES
@given(st.builds(TranscriptionSummary, count, st.floats(0, 1e5), st.floats(0, 1e3)))
def test_transcription_summary_round_trips(summary: TranscriptionSummary) -> None:
    back = transcription_wire.summary_from_message(transcription_wire.summary_to_message(summary))
    assert back == summary


# --- embedding ---------------------------------------------------------------------------------

spaces = st.builds(Space, text, text, st.text("0123456789abcdef", min_size=64, max_size=64),
                   st.integers(1, 8))
vectors = st.lists(f32, min_size=1, max_size=8).map(lambda values: np.asarray(values, np.float32))


def _same_outcome(a: TextOutcome | ImageOutcome, b: TextOutcome | ImageOutcome) -> bool:
    if not _same_error(a.error, b.error):
        return False
    if a.vector is None or b.vector is None:
        return a.vector is b.vector
    rest = [(k, v) for k, v in vars(a).items() if k not in ("vector", "error")]
    return np.array_equal(a.vector, b.vector) and rest == [
        (k, v) for k, v in vars(b).items() if k not in ("vector", "error")]


@EXAMPLES
@given(st.none() | st.booleans(), st.booleans())
def test_embedding_options_round_trip(strict: bool | None, normalize: bool) -> None:
    message = embedding_wire.options_to_message(strict, normalize)
    assert embedding_wire.options_from_message(message) == (strict, normalize)


@EXAMPLES
@given(spaces, st.booleans())
def test_embedding_space_round_trips(space: Space, normalized: bool) -> None:
    message = embedding_wire.space_to_message(space, normalized)
    assert embedding_wire.space_from_message(message) == space and message.normalized == normalized


@EXAMPLES
@given(st.one_of(st.builds(TextOutcome, vectors, st.none(), st.booleans(), count),
                 st.builds(TextOutcome, st.none(), errors)), spaces)
def test_text_outcome_round_trips(outcome: TextOutcome, space: Space) -> None:
    back = embedding_wire.text_from_message(embedding_wire.text_to_message(outcome, space, True))
    assert _same_outcome(back, outcome)


@EXAMPLES
@given(st.one_of(st.builds(ImageOutcome, vectors, st.none(), count, count),
                 st.builds(ImageOutcome, st.none(), errors)), spaces)
def test_image_outcome_round_trips(outcome: ImageOutcome, space: Space) -> None:
    back = embedding_wire.image_from_message(embedding_wire.image_to_message(outcome, space, True))
    assert _same_outcome(back, outcome)
    # StreamEmbed's answers carry no image size.
    answer = embedding_wire.stream_answer("7", outcome, space, True)
    streamed = embedding_wire.image_from_stream_answer(answer)
    assert _same_outcome(streamed, ImageOutcome(outcome.vector, outcome.error))


@EXAMPLES
@given(st.lists(st.one_of(st.builds(ScoreRow, st.lists(f32, max_size=3), st.lists(f32, max_size=3)),
                          st.builds(ScoreRow, st.just([]), st.just([]), errors)), max_size=3),
       st.sampled_from(["softmax", "sigmoid"]), spaces)
def test_scores_round_trip(rows: list[ScoreRow], scoring: str, space: Space) -> None:
    scores = Scores(rows, scoring, space)  # type: ignore[arg-type]
    back = embedding_wire.scores_from_message(embedding_wire.scores_to_message(scores))
    assert (back.scoring, back.space) == (scoring, space)
    for got, want in zip(back.rows, rows, strict=True):
        assert _same_error(got.error, want.error)
        assert (got.similarities, got.probabilities) == (want.similarities, want.probabilities)


@EXAMPLES
@given(st.builds(SpaceInfo, spaces, count, st.sampled_from(["softmax", "sigmoid"]), count, count, text))
def test_space_info_round_trips(info: SpaceInfo) -> None:
    assert embedding_wire.space_info_from_message(embedding_wire.space_info_to_message(info)) == info


# --- documents -----------------------------------------------------------------------------------

maybe_seconds = st.none() | st.floats(0, 1e6)
locators = st.builds(Locator, count, text, text, text, st.lists(text, max_size=3).map(tuple), count,
                     maybe_seconds, maybe_seconds)
sections = st.builds(Section, text, locators, st.sampled_from(list(SectionKind)), st.none() | errors)
pictures = st.builds(Picture, st.binary(max_size=64), st.sampled_from(["png", "jpeg", ""]), count, count,
                     locators, text, st.none() | errors)
attachments = st.builds(Attachment, text, text, st.binary(max_size=200), st.none() | errors)
metadata = st.builds(Metadata, text, text, times, times, text)
documents = st.builds(
    Document, st.sampled_from(list(DocumentKind)), metadata, st.lists(sections, max_size=4).map(tuple),
    errors=st.lists(errors, max_size=2).map(tuple), page_count=count, converted_with=text,
    extra=st.dictionaries(text, text, max_size=3),
)


def _same_items(a: Section | Picture | Attachment, b: Section | Picture | Attachment) -> bool:
    """Equal, item errors compared as they travel (no setting)."""
    return _same_error(a.error, b.error) and a.__class__(**{**vars(a), "error": b.error}) == b


@EXAMPLES
@given(st.builds(ParseOptions, text, st.none(), st.booleans(), st.booleans(), st.booleans()))
def test_document_options_round_trip(options: ParseOptions) -> None:
    message = document_wire.options_to_message(options, 64)
    assert document_wire.options_from_message(message, options.name) == options


@EXAMPLES
@given(locators)
def test_document_locator_round_trips(locator: Locator) -> None:
    message = document_wire.locator_to_message(locator)
    assert document_wire.locator_from_message(message) == locator
    assert message.description == locator.describe()


@EXAMPLES
@given(sections)
def test_document_section_round_trips(section: Section) -> None:
    back = document_wire.section_from_message(document_wire.section_to_message(section))
    assert _same_items(back, section)


@EXAMPLES
@given(pictures)
def test_document_picture_round_trips(picture: Picture) -> None:
    back = document_wire.picture_from_message(document_wire.picture_to_message(picture))
    assert _same_items(back, picture)


@EXAMPLES
@given(st.lists(attachments, max_size=3), st.integers(1, 64))
def test_document_attachments_come_back_from_their_parts(listed: list[Attachment], part_bytes: int) -> None:
    assembler = document_wire.AttachmentAssembler()
    parts = 0
    for attachment in listed:
        for part in document_wire.attachment_to_messages(attachment, part_bytes=part_bytes):
            assembler.add(part)
            parts += 1
    back = assembler.finish()
    assert len(back) == len(listed)
    assert all(_same_items(b, a) for b, a in zip(back, listed, strict=True))
    assert parts == sum(max(1, -(-len(a.data) // part_bytes)) for a in listed)


@EXAMPLES
@given(documents)
def test_document_round_trips(document: Document) -> None:
    response = document_wire.document_response(document, 0.5)
    back = document_wire.document_from_response(response)
    assert len(back.errors) == len(document.errors)
    assert all(_same_error(b, a) for b, a in zip(back.errors, document.errors, strict=True))
    assert len(back.sections) == len(document.sections)
    assert all(_same_items(b, a) for b, a in zip(back.sections, document.sections, strict=True))
    rest = {**vars(back), "errors": document.errors, "sections": document.sections}
    assert back.__class__(**rest) == document
    assert response.summary.sections == len(document.sections)


def test_an_attachment_part_out_of_order_is_refused() -> None:
    first, second = document_wire.attachment_to_messages(Attachment("a.txt", "m.eml!/a.txt", b"abcd"),
                                                         part_bytes=2)
    assembler = document_wire.AttachmentAssembler()
    with pytest.raises(ValueError, match="without its first part"):
        assembler.add(second)
    assembler.add(first)
    second.offset = 3
    with pytest.raises(ValueError, match="out of order"):
        assembler.add(second)


# --- media -------------------------------------------------------------------------------------

pixel = st.integers(0, 2**24)  # exact in the message's float32
seconds = st.floats(0, 1e6, allow_nan=False)
confidence = st.integers(0, 10_000).map(lambda n: n / 10_000)  # the engine's 4 decimals
offsets = st.integers(-14 * 60, 14 * 60).map(lambda minutes: timezone(timedelta(minutes=minutes)))
moments = st.datetimes(datetime(1970, 1, 2), datetime(2100, 1, 1))
# A capture time with its offset (aware) or a camera clock in an unknown zone (naive).
aware_times = st.builds(lambda when, zone: when.replace(tzinfo=zone), moments, offsets)
capture_times = st.none() | moments | aware_times
lines = st.builds(TextLine, text, st.builds(Box, pixel, pixel, pixel, pixel), confidence)
image_texts = st.builds(
    ImageText, st.lists(lines, max_size=4), st.sampled_from(list(TextStatus)), pixel, pixel,
    st.sampled_from(["JPEG", "PNG", "HEIF", ""]), st.booleans(), text, capture_times, seconds,
    seconds, st.binary(max_size=64),
)
frames = st.builds(VideoFrame, seconds, st.binary(max_size=64), pixel, pixel, st.booleans(), confidence)
videos = st.builds(
    VideoFrames, st.lists(frames, max_size=4), seconds, st.none() | seconds, pixel, pixel, text, text,
    count, count, st.none() | seconds, st.none() | aware_times,  # container times are aware
)


@EXAMPLES
@given(st.builds(ImageTextOptions, st.booleans(), st.integers(0, 4096)))
def test_media_image_options_round_trip(options: ImageTextOptions) -> None:
    assert media_wire.image_options_from_message(media_wire.image_options_to_message(options)) == options


@EXAMPLES
@given(image_texts)
def test_media_image_text_round_trips(found: ImageText) -> None:
    back = media_wire.image_text_from_message(media_wire.image_text_to_message(found))
    assert back == found
    # The same moment and the same clock reading, offset included.
    if found.taken_at is not None:
        assert back.taken_at is not None and back.taken_at.utcoffset() == found.taken_at.utcoffset()


@EXAMPLES
@given(st.builds(VideoOptions, count))
def test_media_video_options_round_trip(options: VideoOptions) -> None:
    assert media_wire.video_options_from_message(media_wire.video_options_to_message(options)) == options


@EXAMPLES
@given(videos)
def test_media_video_frames_round_trip(video: VideoFrames) -> None:
    assert media_wire.video_from_messages(media_wire.video_to_messages(video)) == video


def test_a_naive_capture_time_travels_as_the_clock_reading() -> None:
    message = media_wire.capture_time_to_message(datetime(2023, 7, 14, 18, 30, 5))
    assert not message.zone_known and message.time.ToDatetime() == datetime(2023, 7, 14, 18, 30, 5)
    aware = datetime(2023, 7, 14, 18, 30, 5, tzinfo=timezone(timedelta(hours=2)))
    message = media_wire.capture_time_to_message(aware)
    assert message.zone_known and message.utc_offset_minutes == 120
    assert message.time.ToDatetime(tzinfo=UTC) == datetime(2023, 7, 14, 16, 30, 5, tzinfo=UTC)
