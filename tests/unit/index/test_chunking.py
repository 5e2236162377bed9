"""Chunks and windows fit CLIP's context, proven with open_clip's own tokenizer."""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass

import pytest
from open_clip.tokenizer import SimpleTokenizer

from sensorium.index.chunking import chunk_page, window_transcript

CONTEXT = 77
_TOKENIZER = SimpleTokenizer()


def clip_tokens(text: str) -> int:
    """Tokens as CLIP sees `text`: its BPE tokens plus the start and end tokens."""
    return len(_TOKENIZER.encode(text)) + 2


@dataclass(frozen=True)
class Box:
    x0: float
    y0: float
    x1: float
    y1: float


@dataclass(frozen=True)
class Block:
    bbox: Box
    text: str


@dataclass(frozen=True)
class Segment:
    start: float
    end: float
    text: str


WORDS = [
    "the",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "lazy",
    "dogs",
    "while",
    "photosynthesis,",
    "electroencephalography",
    "and",
    "3.14159",
    "numbers",
    "like",
    "2026-11-26",
    "or",
    "e-mail@example.com",
    "appear;",
    "naïve",
    "café",
    "résumé",
    "übermäßig",
    "(parenthetical)",
    '"quoted"',
    "don't",
    "can't",
    "won't",
    "Zürich",
    "東京",
    "emoji",
    "🙂",
    "hyphen-ated",
]


def prose(count: int, seed: int) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(WORDS) for _ in range(count))


def page_blocks(seed: int = 0) -> list[Block]:
    rng = random.Random(seed)
    return [
        Block(Box(10 + i, 20 * i, 300 + i, 20 * i + 15), prose(rng.randint(1, 60), seed * 100 + i))
        for i in range(12)
    ]


def without_overlap(chunks: list[str]) -> list[str]:
    """The words of consecutive chunks with each chunk's overlap with the previous removed."""
    words: list[str] = []
    for chunk in chunks:
        chunk_words = chunk.split()
        shared = next(
            (
                n
                for n in range(min(len(words), len(chunk_words)), -1, -1)
                if words[len(words) - n :] == chunk_words[:n]
            ),
            0,
        )
        words.extend(chunk_words[shared:])
    return words


@pytest.mark.parametrize("seed", range(5))
def test_every_pdf_chunk_fits_and_no_word_is_lost(seed):
    blocks = page_blocks(seed)
    chunks = chunk_page(3, blocks, count_tokens=clip_tokens, context_length=CONTEXT, overlap_tokens=10)
    assert len(chunks) > 3
    assert all(clip_tokens(chunk.text) <= CONTEXT for chunk in chunks)
    assert all(chunk.page == 3 for chunk in chunks)
    original = [word for block in blocks for word in block.text.split()]
    assert without_overlap([chunk.text for chunk in chunks]) == original
    # Chunks are filled: all but the last leave less room than one more word would take.
    assert all(clip_tokens(chunk.text) >= CONTEXT - 15 for chunk in chunks[:-1])


def test_chunks_overlap_by_at_most_the_overlap_budget():
    chunks = chunk_page(
        1, page_blocks(7), count_tokens=clip_tokens, context_length=CONTEXT, overlap_tokens=10
    )
    for before, after in itertools.pairwise(chunks):
        first, second = before.text.split(), after.text.split()
        shared = max(n for n in range(len(second) + 1) if first[len(first) - n :] == second[:n])
        assert shared >= 1, "consecutive chunks share their boundary words"
        assert clip_tokens(" ".join(second[:shared])) - 2 <= 10
    plain = chunk_page(1, page_blocks(7), count_tokens=clip_tokens, context_length=CONTEXT, overlap_tokens=0)
    assert sum(len(c.text.split()) for c in plain) == sum(len(b.text.split()) for b in page_blocks(7))


def test_a_chunks_bbox_covers_exactly_the_blocks_its_words_came_from():
    blocks = [
        Block(Box(10, 10, 100, 20), "alpha beta"),
        Block(Box(50, 30, 200, 40), "gamma"),
        Block(Box(5, 500, 20, 510), " ".join(["delta"] * 200)),
    ]
    chunks = chunk_page(2, blocks, count_tokens=clip_tokens, context_length=CONTEXT, overlap_tokens=5)
    assert chunks[0].text.startswith("alpha beta gamma delta")
    assert chunks[0].bbox == (5, 10, 200, 510)
    assert chunks[-1].bbox == (5, 500, 20, 510)  # only delta's block


def test_words_longer_than_the_context_are_cut_into_fitting_pieces():
    url = "https://example.com/" + "/".join(f"segment{i}x{i * 7919 % 1000}" for i in range(80))
    blocks = [Block(Box(0, 0, 1, 1), f"see {url} here")]
    chunks = chunk_page(1, blocks, count_tokens=clip_tokens, context_length=CONTEXT, overlap_tokens=0)
    assert len(chunks) > 2
    assert all(clip_tokens(chunk.text) <= CONTEXT for chunk in chunks)
    assert "".join(chunk.text.replace(" ", "") for chunk in chunks) == f"see{url}here"


def test_text_without_blocks_is_chunked_without_a_bbox():
    chunks = chunk_page(
        4, [], text=prose(200, 1), count_tokens=clip_tokens, context_length=CONTEXT, overlap_tokens=8
    )
    assert len(chunks) > 2 and all(c.bbox is None and c.page == 4 for c in chunks)
    assert all(clip_tokens(c.text) <= CONTEXT for c in chunks)


def test_a_page_without_words_gives_no_chunks():
    assert (
        chunk_page(
            1,
            [Block(Box(0, 0, 1, 1), "  \n ")],
            count_tokens=clip_tokens,
            context_length=CONTEXT,
            overlap_tokens=5,
        )
        == []
    )


def test_a_context_with_no_room_for_text_is_refused():
    with pytest.raises(ValueError, match="no room"):
        chunk_page(1, [], text="x", count_tokens=clip_tokens, context_length=2, overlap_tokens=0)


def test_chunks_fit_even_when_joining_words_costs_more_than_the_words():
    # A tokenizer whose cost is not additive (each space is a token of its own): the word
    # estimate undercounts, and the real count of the joined text must decide.
    def spaced(text: str) -> int:
        return len(text.split()) + text.count(" ") + 2

    chunks = chunk_page(1, [], text=prose(300, 3), count_tokens=spaced, context_length=40, overlap_tokens=4)
    assert all(spaced(c.text) <= 40 for c in chunks)
    assert all(spaced(c.text) >= 38 for c in chunks[:-1])


def test_transcript_windows_fit_keep_order_and_span_their_segments():
    rng = random.Random(5)
    segments, clock = [], 0.0
    for i in range(40):
        duration = rng.uniform(1, 6)
        segments.append(Segment(clock, clock + duration, prose(rng.randint(2, 10), i)))
        clock += duration + rng.uniform(0, 0.5)
    windows = window_transcript(segments, count_tokens=clip_tokens, context_length=CONTEXT)
    assert 5 < len(windows) < len(segments)
    assert all(clip_tokens(w.text) <= CONTEXT for w in windows)
    assert " ".join(w.text for w in windows).split() == " ".join(s.text for s in segments).split()
    starts = {s.start for s in segments}
    ends = {s.end for s in segments}
    for before, after in itertools.pairwise(windows):
        assert before.end_seconds <= after.start_seconds  # windows do not overlap
    for window in windows:
        assert window.start_seconds in starts and window.end_seconds in ends
    assert windows[0].start_seconds == 0.0 and windows[-1].end_seconds == segments[-1].end


def test_a_segment_too_long_for_the_context_is_split_with_interpolated_times():
    long_text = prose(300, 11)
    windows = window_transcript(
        [Segment(10.0, 70.0, long_text)], count_tokens=clip_tokens, context_length=CONTEXT
    )
    assert len(windows) >= 4
    assert all(clip_tokens(w.text) <= CONTEXT for w in windows)
    assert " ".join(w.text for w in windows) == long_text
    assert windows[0].start_seconds == 10.0 and windows[-1].end_seconds == pytest.approx(70.0)
    # Each piece's times sit where its characters sit in the segment, at an even pace.
    offset = 0
    for window in windows:
        begin = long_text.index(window.text, offset)
        offset = begin + len(window.text)
        assert window.start_seconds == pytest.approx(10.0 + 60.0 * begin / len(long_text))
        assert window.end_seconds == pytest.approx(10.0 + 60.0 * offset / len(long_text))


def test_pieces_of_a_long_segment_pack_with_their_neighbours():
    long_text = prose(300, 11)
    segments = [
        Segment(0.0, 2.0, "short opening"),
        Segment(10.0, 70.0, long_text),
        Segment(71.0, 72.0, "bye"),
    ]
    windows = window_transcript(segments, count_tokens=clip_tokens, context_length=CONTEXT)
    assert all(clip_tokens(w.text) <= CONTEXT for w in windows)
    assert " ".join(w.text for w in windows).split() == ["short", "opening", *long_text.split(), "bye"]
    assert windows[0].start_seconds == 0.0 and windows[-1].end_seconds == 72.0
    for before, after in itertools.pairwise(windows):
        assert before.start_seconds < before.end_seconds <= after.start_seconds


def test_empty_segments_are_dropped():
    windows = window_transcript(
        [Segment(0, 1, " "), Segment(1, 2, "hello"), Segment(2, 3, "")],
        count_tokens=clip_tokens,
        context_length=CONTEXT,
    )
    assert [(w.text, w.start_seconds, w.end_seconds) for w in windows] == [("hello", 1, 2)]


def test_transcript_stretches_group_segments_and_windows_nest_in_them():
    from dataclasses import dataclass

    from sensorium.index.chunking import transcript_stretches, window_transcript

    @dataclass(frozen=True)
    class Seg:
        start: float
        end: float
        text: str

    segments = [Seg(10.0 * i, 10.0 * i + 9.0, f"segment {i} words here") for i in range(13)]
    segments.insert(3, Seg(30.0, 30.0, "   "))  # empty: dropped
    stretches = transcript_stretches(segments, max_seconds=60.0)
    times = [(s.start_seconds, s.end_seconds) for s in stretches]
    assert times == [(0.0, 59.0), (60.0, 119.0), (120.0, 129.0)]
    assert stretches[0].text == " ".join(f"segment {i} words here" for i in range(6))
    assert sum(len(s.segments) for s in stretches) == 13
    for stretch in stretches:
        for window in window_transcript(stretch.segments, count_tokens=lambda t: len(t.split()) + 2,
                                        context_length=12):
            assert stretch.start_seconds <= window.start_seconds <= window.end_seconds <= stretch.end_seconds
    (long,) = transcript_stretches([Seg(0.0, 500.0, "one very long segment")], max_seconds=60.0)
    assert (long.start_seconds, long.end_seconds) == (0.0, 500.0)
