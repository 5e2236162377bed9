"""Words as the search store's full-text index reads them, and snippets that show them.

The store's full-text index (LanceDB's own, `FTS` in store.py) splits text into runs of letters
and digits, lower-cases them, stems them with the Snowball English stemmer ("running", "runs" ->
"run"), drops English stop words and folds accents. Its stemmer runs before its accent folding,
so "résumé" would be stemmed as written and never meet "resume": the store therefore indexes
`fold_accents(text)`, and queries are folded the same way.

Snippets are cut from a passage's text around the densest run of query words, found by the same
analysis in Python (`terms`: the same splitting, lower-casing, folding and Snowball stemmer),
so the words highlighted are the words that matched.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

MAX_TOKEN_LENGTH = 40
"""Longer tokens are not indexed (the store's FTS `max_token_length`)."""

STOP_WORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "but",
        "by",
        "for",
        "if",
        "in",
        "into",
        "is",
        "it",
        "no",
        "not",
        "of",
        "on",
        "or",
        "such",
        "that",
        "the",
        "their",
        "then",
        "there",
        "these",
        "they",
        "this",
        "to",
        "was",
        "will",
        "with",
    ]
)
"""English stop words the store's index drops (tantivy's list, which LanceDB's FTS uses)."""

_TOKEN = re.compile(r"[^\W_]+")
_PHRASE = re.compile(r'"([^"]*)"')


def fold_accents(text: str) -> str:
    """`text` with combining accents removed ("résumé" -> "resume"); other letters are kept."""
    if text.isascii():
        return text
    decomposed = unicodedata.normalize("NFKD", text)
    return unicodedata.normalize("NFC", "".join(c for c in decomposed if not unicodedata.combining(c)))


@functools.lru_cache(maxsize=1)
def _stemmer() -> Any:
    import snowballstemmer

    return snowballstemmer.stemmer("english")


@functools.lru_cache(maxsize=65536)
def term(word: str) -> str:
    """One word as the index keys it: lower-cased, accents folded, stemmed."""
    stem: str = _stemmer().stemWord(fold_accents(word.lower()))
    return stem


def terms(text: str) -> list[str]:
    """The index's terms of `text`, stop words and over-long tokens left out, in order."""
    return [
        term(token)
        for token in _TOKEN.findall(text)
        if len(token) <= MAX_TOKEN_LENGTH and token.lower() not in STOP_WORDS
    ]


@dataclass(frozen=True)
class Query:
    """A user's text query: loose words, and "quoted phrases" whose words must appear in order."""

    words: str
    phrases: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> Query:
        """Split `text` into "quoted phrases" and the rest; an unpaired quote is a plain word
        boundary. A phrase with no indexed word (only stop words) counts as loose words."""
        phrases, rest = [], []
        position = 0
        for match in _PHRASE.finditer(text):
            rest.append(text[position : match.start()])
            phrase = " ".join(match.group(1).split())
            if terms(phrase):
                phrases.append(phrase)
            else:
                rest.append(phrase)
            position = match.end()
        rest.append(text[position:])
        words = " ".join(" ".join(rest).replace('"', " ").split())
        return cls(words, tuple(phrases))

    @property
    def terms(self) -> frozenset[str]:
        """Every indexed term of the query, phrases' included."""
        return frozenset(terms(" ".join([self.words, *self.phrases])))

    def __bool__(self) -> bool:
        return bool(self.words.strip() or self.phrases)


def snippet(text: str, query_terms: frozenset[str], width: int = 200) -> tuple[str, list[tuple[int, int]]]:
    """Up to about `width` characters of `text` (whitespace collapsed) around its densest run of
    `query_terms`, and the character ranges [start, end) of the matched words in it.

    The window is the one holding the most distinct query terms (then the most matches); it
    starts and ends on word boundaries, and "…" marks a cut. Without matches: the text's start.
    """
    text = " ".join(text.split())
    matches = [
        (m.start(), m.end(), term(m.group()))
        for m in _TOKEN.finditer(text)
        if len(m.group()) <= MAX_TOKEN_LENGTH and term(m.group()) in query_terms
    ]
    if len(text) <= width:
        return text, [(start, end) for start, end, _ in matches]
    best, best_score = 0, (-1, -1)
    for i, (start, _, _) in enumerate(matches):
        inside = [m for m in matches[i:] if m[1] <= start + width]
        score = (len({m[2] for m in inside}), len(inside))
        if score > best_score:
            best, best_score = i, score
    first = matches[best][0] if matches else 0
    # Some context before the first match, starting at a word boundary.
    start = max(0, first - width // 4)
    if start:
        space = text.find(" ", start, first)
        start = space + 1 if space >= 0 else first
    end = min(len(text), start + width)
    if end < len(text):
        space = text.rfind(" ", start, end)
        end = space if space > start else end
    prefix = "…" if start else ""
    piece = prefix + text[start:end] + ("…" if end < len(text) else "")
    shift = len(prefix) - start
    highlights = [(s + shift, e + shift) for s, e, _ in matches if s >= start and e <= end]
    return piece, highlights
