"""Text as a reader sees it: the one normalisation every engine applies where it extracts text.

PDF text layers, OCR and transcripts store text the way it was drawn or decoded, not the way a
person reads and types it. `normalize` makes the words searchable:

1. **Compatibility characters folded** (Unicode NFKC): ligatures ("ef\\ufb01cient" ->
   "efficient"), no-break and other spaces, full-width letters, "…" -> "...", superscript digits.
   Spacing accents (category Sk, e.g. "´", "˜") are left alone: NFKC would turn each into a space
   and a combining mark, and TeX documents draw an accented letter as such an accent beside it.
2. **Invisible characters dropped**: soft hyphens, zero-width spaces and joiners, byte-order
   marks, direction marks (Unicode format characters, category Cf); control characters become
   spaces. A soft hyphen at the end of a line marks a hyphenation: the word is joined.
3. **Words broken across lines by a hyphen joined**, real compound hyphens kept: "Spi-\\nderMonkey"
   -> "SpiderMonkey", but "third-\\nparty" -> "third-party". Which is which is decided by
   evidence, in this order:
   - a word after the break that starts with a capital (after a word that is not all capitals)
     is a compound's or a name's ("Anglo-\\nSaxon"): hyphenation never capitalises;
   - the same text's other occurrences: "ab" vs "a-b" elsewhere in the `vocabulary` (the page);
   - the hyphenation patterns of LibreOffice and TeX (pyphen, `language`): automatic
     hyphenation breaks a word only where its patterns allow, so a break elsewhere is a
     compound's own hyphen.
   Measured on 40 documents laid out by LibreOffice and groff (bench/text_normalisation.py:
   2,879 line-end hyphens whose source text tells which are which): 39 wrong decisions, where
   always joining (PyMuPDF's TEXT_DEHYPHENATE) makes 166 and never joining 2,713. The two lines are
   joined into one, as PyMuPDF's flag does, so no line ends in a broken word afterwards.

`normalize` is idempotent, never adds or removes letters or digits other than by steps 1-2, and
leaves plain text without such characters or line-end hyphens unchanged.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable
from typing import Any

DEFAULT_LANGUAGE = "en_US"
"""Hyphenation patterns used to tell a line-break hyphen from a compound's (pyphen's names)."""

_HYPHENS = "-\u2010"  # hyphen-minus, and HYPHEN (NFKC also maps the non-breaking hyphen to it)
_HYPHEN_CHARS = tuple(_HYPHENS)
_WORD = r"[^\W\d_]+"
# Possessive quantifiers and a word-start lookbehind keep these linear in the text's length.
_WORD_START = r"(?<![^\W\d_])"
_LINE_END_WORD = re.compile(rf"{_WORD_START}([^\W\d_]++)[{_HYPHENS}][ \t]*$")
_LINE_START_WORD = re.compile(rf"^[ \t]*({_WORD})")
_SOFT_HYPHEN_BREAK = re.compile(r"\u00ad[ \t]*\r?\n[ \t]*")
_SPACING_ACCENTS = re.compile(
    r"[\u00a8\u00af\u00b4\u00b8\u02d8-\u02dd\u0384\u0385\u1fbd\u1fbf-\u1fc1"
    r"\u1fcd-\u1fcf\u1fdd-\u1fdf\u1fed\u1fee\u1ffd\u1ffe\u309b\u309c\uffe3]"
)


class Vocabulary:
    """The words of a text, as evidence for a line-end hyphen: how often it holds "headtail"
    and "head-tail", case-insensitively. A line break ends every word here, so the broken word
    itself counts as neither."""

    def __init__(self, texts: Iterable[str] = ()) -> None:
        self._texts = list(texts)
        self._lowered: str | None = None

    def add(self, text: str) -> None:
        self._texts.append(text)
        self._lowered = None

    def count(self, word: str) -> int:
        """Occurrences of `word` as a whole word (not inside a longer run of letters)."""
        if self._lowered is None:
            # Searched only for the words a page breaks: cheaper than counting every word.
            self._lowered = "\n".join(self._texts).lower()
        text, word = self._lowered, word.lower()
        found, start = 0, text.find(word)
        while start >= 0:
            end = start + len(word)
            before = text[start - 1] if start else " "
            after = text[end] if end < len(text) else " "
            found += not (_is_letter(before) or _is_letter(after))
            start = text.find(word, start + 1)
        return found

    def prefers_join(self, head: str, tail: str) -> bool | None:
        """True when the text holds "headtail" more often than "head-tail", False for the
        opposite, None when it holds neither more often."""
        joined = self.count(head + tail)
        hyphenated = sum(self.count(f"{head}{hyphen}{tail}") for hyphen in _HYPHENS)
        if joined == hyphenated:
            return None
        return joined > hyphenated


def _is_letter(char: str) -> bool:
    return char.isalpha()


def normalize(text: str, *, vocabulary: Vocabulary | None = None, language: str = DEFAULT_LANGUAGE) -> str:
    """`text` as a reader sees it (see the module docstring).

    `vocabulary`: the words of the surrounding text (a page, a document) as evidence for
    line-end hyphens; by default the text's own words.
    """
    if not text:
        return text
    text = fold(text)
    if "\n" not in text:
        return text
    return _join_broken_words(text, vocabulary if vocabulary is not None else Vocabulary([text]), language)


def fold(text: str) -> str:
    """Steps 1 and 2 of `normalize`: compatibility characters folded, invisible ones dropped,
    control characters (but line breaks and tabs) made spaces, line breaks made "\\n"."""
    text = _SOFT_HYPHEN_BREAK.sub("", text).replace("\r\n", "\n").replace("\r", "\n")
    if not text.isascii():
        if _SPACING_ACCENTS.search(text):
            pieces = _SPACING_ACCENTS.split(text)
            accents = _SPACING_ACCENTS.findall(text)
            folded = [unicodedata.normalize("NFKC", piece) for piece in pieces]
            text = "".join(piece + accent for piece, accent in zip(folded, [*accents, ""], strict=True))
        else:
            text = unicodedata.normalize("NFKC", text)
    return text.translate(_VISIBLE)


class _Visible(dict[int, str | None]):
    """`str.translate` table: format characters (Cf) dropped, control characters (Cc) but line
    breaks and tabs made spaces; filled per character as met (a C-speed lookup afterwards)."""

    def __missing__(self, code: int) -> str | None:
        char = chr(code)
        category = unicodedata.category(char)
        value = None if category == "Cf" else " " if category == "Cc" and char not in "\n\t" else char
        self[code] = value
        return value


_VISIBLE = _Visible()


def _join_broken_words(text: str, vocabulary: Vocabulary, language: str) -> str:
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        while i + 1 < len(lines) and line.rstrip(" \t").endswith(_HYPHEN_CHARS):
            end = _LINE_END_WORD.search(line)
            start = _LINE_START_WORD.match(lines[i + 1])
            if end is None or start is None:
                break
            head, tail = end.group(1), start.group(1)
            rest = lines[i + 1][start.end(1) :]
            keep = _keeps_hyphen(head, tail, vocabulary, language)
            hyphen = line[end.end(1)] if keep else ""
            line = line[: end.start(1)] + head + hyphen + tail + rest
            i += 1
        out.append(line)
        i += 1
    return "\n".join(out)


def _keeps_hyphen(head: str, tail: str, vocabulary: Vocabulary, language: str) -> bool:
    """Whether "head-\\ntail" is a compound ("head-tail") rather than a hyphenated word."""
    if tail[0].isupper() and not head.isupper():
        return True
    joined = vocabulary.prefers_join(head, tail)
    if joined is not None:
        return not joined
    return len(head) not in _hyphenator(language).positions((head + tail).lower())


@functools.lru_cache(maxsize=4)
def _hyphenator(language: str) -> Any:
    import pyphen  # ~60 ms to load a language's patterns: only when a line ends in a hyphen

    return pyphen.Pyphen(lang=language)
