"""Cut PDF page text and transcripts into pieces that fit the embedding model's context.

Every piece must fit, or the model silently drops its tail and the index cannot find it. The
chunkers take the model's own token counter (`count_tokens(text)`, counting the start and end
tokens too) and its `context_length` (77 for CLIP), and check every piece they emit with it.

To stay cheap they first estimate: a word costs `count_tokens(word) - count_tokens("")`
tokens (cached per distinct word), which for CLIP's BPE is exact, because the tokenizer splits
on whitespace before it merges. The estimate picks where a piece ends; the real count of the
joined piece decides, dropping words from its end while it does not fit.

- PDF text: the words of a page's blocks, in reading order, are packed into chunks on word
  boundaries; the next chunk starts with the last few words of the previous one (at most
  `overlap_tokens` tokens), so a phrase cut by a boundary is whole in one of them. A chunk never
  spans two pages; its bbox covers the blocks its words came from.
- Transcripts: consecutive segments are packed into windows; windows do not overlap, so each
  moment of speech is in exactly one. A segment too long for the context on its own is split on
  word boundaries, and each piece's times are interpolated from its character offsets within the
  segment (speech runs at a roughly even rate of characters; truncating would make the rest of
  the segment unsearchable).
- A single "word" longer than the context (a URL, a run of digits) is cut into pieces of
  characters that fit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from sensorium.index.layout import BBoxTuple

CountTokens = Callable[[str], int]
"""Tokens of a text as the model sees it, start and end tokens included."""


class BoxLike(Protocol):
    """A rectangle (e.g. `sensorium.pdf.extractor.BBox`)."""

    @property
    def x0(self) -> float: ...
    @property
    def y0(self) -> float: ...
    @property
    def x1(self) -> float: ...
    @property
    def y1(self) -> float: ...


class BlockLike(Protocol):
    """A text block with its bounding box (e.g. `sensorium.pdf.extractor.Block`)."""

    @property
    def bbox(self) -> BoxLike: ...
    @property
    def text(self) -> str: ...


class SegmentLike(Protocol):
    """A timed piece of a transcript (e.g. `sensorium.transcription.transcriber.Segment`)."""

    @property
    def start(self) -> float: ...
    @property
    def end(self) -> float: ...
    @property
    def text(self) -> str: ...




@dataclass(frozen=True)
class TextChunk:
    """A piece of one PDF page's text."""

    text: str
    page: int
    """1-based page number."""
    bbox: BBoxTuple | None
    """The union of the boxes of the blocks the words came from; None when the page had none."""


@dataclass(frozen=True)
class TimedChunk:
    """A window of a transcript."""

    text: str
    start_seconds: float
    end_seconds: float


class _Budget:
    """Token costs under one counter and context, with per-word costs cached."""

    def __init__(self, count_tokens: CountTokens, context_length: int) -> None:
        self.count = count_tokens
        self.context = context_length
        self.overhead = count_tokens("")
        if context_length <= self.overhead:
            raise ValueError(
                f"context_length {context_length} leaves no room for text "
                f"({self.overhead} tokens are start/end tokens)"
            )
        self._costs: dict[str, int] = {}

    def cost(self, word: str) -> int:
        cost = self._costs.get(word)
        if cost is None:
            cost = max(1, self.count(word) - self.overhead)
            if len(self._costs) < 100_000:  # bounded: a huge document must not grow it forever
                self._costs[word] = cost
        return cost

    def fits(self, text: str) -> bool:
        return self.count(text) <= self.context

    def split_long(self, word: str) -> list[str]:
        """`word` as pieces that each fit the context (only itself when it already does)."""
        if self.cost(word) + self.overhead <= self.context:
            return [word]
        pieces = []
        rest = word
        while rest:
            if self.fits(rest):
                pieces.append(rest)
                break
            # The longest prefix that fits: fitting shrinks as the prefix grows, so bisect.
            low, high = 1, len(rest)
            while low < high:
                middle = (low + high + 1) // 2
                if self.fits(rest[:middle]):
                    low = middle
                else:
                    high = middle - 1
            pieces.append(rest[:low])
            rest = rest[low:]
        return pieces

    def pack(self, words: Sequence[str], start: int) -> int:
        """The end of the longest run of `words` from `start` that fits (at least one word)."""
        total, end = 0, start
        room = self.context - self.overhead
        while end < len(words) and total + self.cost(words[end]) <= room:
            total += self.cost(words[end])
            end += 1
        end = max(end, start + 1)
        # The estimate can be off for tokenizers that do not split on whitespace: the real
        # count of the joined text has the last word.
        while end > start + 1 and not self.fits(" ".join(words[start:end])):
            end -= 1
        return end


def chunk_page(
    page: int,
    blocks: Sequence[BlockLike],
    *,
    count_tokens: CountTokens,
    context_length: int,
    overlap_tokens: int,
    text: str = "",
) -> list[TextChunk]:
    """Cut one page's text into chunks that fit `context_length` tokens.

    `page` is the 1-based page number. `blocks` are the page's text blocks in reading order;
    when there are none (a caller that did not ask for blocks), `text` is chunked instead and
    the chunks have no bbox. A page with no words gives no chunks.
    """
    if overlap_tokens < 0:
        raise ValueError("overlap_tokens must be 0 or more")
    budget = _Budget(count_tokens, context_length)
    words: list[str] = []
    origins: list[int] = []  # index of the block each word came from; -1: from `text`
    sources: list[tuple[str, int]] = (
        [(block.text, i) for i, block in enumerate(blocks)] if blocks else [(text, -1)]
    )
    for source, origin in sources:
        for word in source.split():
            for piece in budget.split_long(word):
                words.append(piece)
                origins.append(origin)
    chunks = []
    start = 0
    while start < len(words):
        end = budget.pack(words, start)
        chunk_blocks = sorted({origins[i] for i in range(start, end)} - {-1})
        bbox = _union([blocks[i].bbox for i in chunk_blocks]) if chunk_blocks else None
        chunks.append(TextChunk(" ".join(words[start:end]), page, bbox))
        if end == len(words):
            break
        start = _overlap_start(words, start, end, budget, overlap_tokens)
    return chunks


def _overlap_start(words: Sequence[str], start: int, end: int, budget: _Budget, overlap: int) -> int:
    """Where the next chunk starts: the last words of this one worth at most `overlap` tokens,
    but always after this chunk's first word, so every chunk moves forward."""
    next_start, total = end, 0
    while next_start - 1 > start and total + budget.cost(words[next_start - 1]) <= overlap:
        next_start -= 1
        total += budget.cost(words[next_start])
    return next_start


def _union(boxes: Iterable[BoxLike]) -> BBoxTuple:
    listed = list(boxes)
    return (
        min(b.x0 for b in listed),
        min(b.y0 for b in listed),
        max(b.x1 for b in listed),
        max(b.y1 for b in listed),
    )


def window_transcript(
    segments: Iterable[SegmentLike], *, count_tokens: CountTokens, context_length: int
) -> list[TimedChunk]:
    """Pack consecutive transcript segments into windows that fit `context_length` tokens.

    Each window's times run from its first segment's start to its last segment's end. Empty
    segments are dropped; a segment that does not fit on its own is split (see the module's
    docstring).
    """
    budget = _Budget(count_tokens, context_length)
    pieces: list[TimedChunk] = []
    for segment in segments:
        text = " ".join(segment.text.split())
        if text:
            pieces.extend(_split_segment(text, segment.start, segment.end, budget))
    windows = []
    start = 0
    texts = [piece.text for piece in pieces]
    while start < len(pieces):
        end = budget.pack(texts, start)
        windows.append(
            TimedChunk(" ".join(texts[start:end]), pieces[start].start_seconds, pieces[end - 1].end_seconds)
        )
        start = end
    return windows


def _split_segment(text: str, start: float, end: float, budget: _Budget) -> list[TimedChunk]:
    if budget.fits(text):
        return [TimedChunk(text, start, end)]
    words = [piece for word in text.split() for piece in budget.split_long(word)]
    # Character offsets of each word in the text the words rebuild when joined by spaces.
    offsets, position = [], 0
    for word in words:
        offsets.append(position)
        position += len(word) + 1
    length = position - 1
    duration = end - start
    pieces = []
    first = 0
    while first < len(words):
        last = budget.pack(words, first)
        begin_char = offsets[first]
        end_char = offsets[last - 1] + len(words[last - 1])
        pieces.append(
            TimedChunk(
                " ".join(words[first:last]),
                start + duration * begin_char / length,
                start + duration * end_char / length,
            )
        )
        first = last
    return pieces


TRANSCRIPT_PASSAGE_SECONDS = 60.0
"""How long a transcript's passages (the stretches full-text search ranks) grow at most."""


@dataclass(frozen=True)
class Stretch:
    """Consecutive segments of a transcript: one passage. Window its `segments` with
    `window_transcript` to make its rows, so that every row lies inside one passage."""

    text: str
    start_seconds: float
    end_seconds: float
    segments: tuple[SegmentLike, ...]


def transcript_stretches(
    segments: Iterable[SegmentLike], *, max_seconds: float = TRANSCRIPT_PASSAGE_SECONDS
) -> list[Stretch]:
    """Group consecutive segments into stretches of at most `max_seconds` (a longer segment is a
    stretch of its own; segments are never split). Empty segments are dropped."""
    stretches: list[Stretch] = []
    group: list[SegmentLike] = []

    def close() -> None:
        if group:
            text = " ".join(" ".join(segment.text.split()) for segment in group)
            stretches.append(Stretch(text, group[0].start, group[-1].end, tuple(group)))
            group.clear()

    for segment in segments:
        if not segment.text.strip():
            continue
        if group and segment.end - group[0].start > max_seconds:
            close()
        group.append(segment)
    close()
    return stretches
