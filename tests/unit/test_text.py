"""sensorium.text.normalize: the text every engine stores, as a reader sees it."""

from __future__ import annotations

import re
import unicodedata

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from sensorium.text import Vocabulary, fold, normalize

LETTERS = st.text(
    alphabet=st.characters(categories=["Ll"], max_codepoint=0x24F), min_size=2, max_size=12
).filter(lambda word: unicodedata.normalize("NFKC", word) == word)
"""Lower-case words in Latin scripts that folding leaves alone."""


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("the ef\ufb01cient \ufb02ow", "the efficient flow"),  # ligatures
        ("o\ufb00er \ufb03x \ufb04e", "offer ffix ffle"),
        ("a\u00a0b\u2009c\u3000d", "a b c d"),  # no-break, thin, ideographic spaces
        ("\uff33\uff45\uff4e\uff53\uff4f\uff52\uff49\uff55\uff4d", "Sensorium"),  # full-width
        ("re\u00adsume", "resume"),  # a soft hyphen inside a word
        ("zero\u200bwidth\u200c join\u200d\ufeffer", "zerowidth joiner"),
        ("\u200eleft\u200f to\u202a right\u202c", "left to right"),
        ("bell\x07 and\x00 nul", "bell  and  nul"),
        ("caf\u00e9 na\u00efve r\u00e9sum\u00e9", "caf\u00e9 na\u00efve r\u00e9sum\u00e9"),  # letters kept
        ("cafe\u0301", "caf\u00e9"),  # composed
        ("\u00b4e and \u02dcn", "\u00b4e and \u02dcn"),  # spacing accents stay as they are
        ("one\r\ntwo\rthree", "one\ntwo\nthree"),
    ],
)
def test_characters_are_folded_and_invisible_ones_dropped(raw, expected):
    assert normalize(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # Automatic hyphenation: the patterns allow the break, nothing says otherwise.
        ("requiring copy-\nright permission", "requiring copyright permission"),
        ("tells the user that war-\nranties are pro-\nvided", "tells the user that warranties are provided"),
        ("ef\ufb01-\ncient code", "efficient code"),  # a ligature inside the broken word
        ("soft\u00ad\nhyphen", "softhyphen"),  # a soft hyphen at the end of a line
        ("Spi-\nderMonkey", "SpiderMonkey"),
        ("un-  \n   usual spacing", "unusual spacing"),
        # A capital after the break: a compound or a name.
        ("the Anglo-\nSaxon chronicle", "the Anglo-Saxon chronicle"),
        # The patterns never break "userdefined" after "user": a compound's own hyphen.
        ("a user-\ndefined function", "a user-defined function"),
        ("case-\ninsensitive", "case-insensitive"),
        # Digits are not words: nothing to decide.
        ("COVID-\n19 cases", "COVID-\n19 cases"),
        # The next line starts with punctuation: a dash, not a broken word.
        ("the end -\n- the start", "the end -\n- the start"),
    ],
)
def test_line_break_hyphens(raw, expected):
    assert normalize(raw) == expected


def test_the_texts_own_words_decide_a_compound():
    # "well-known" is a legal hyphenation of "wellknown" for the patterns; the page writes it
    # with a hyphen elsewhere, so the hyphen at the break is the compound's.
    page = "a well-known fact\nand another well-\nknown one"
    assert normalize(page) == "a well-known fact\nand another well-known one"
    assert normalize("a well-\nknown one") == "a wellknown one"  # no evidence: the patterns decide
    # The other way round: the word written whole elsewhere wins over a pattern that would not
    # break it there.
    assert normalize("nonfree\nnon-\nfree") == "nonfree\nnonfree"


def test_a_vocabulary_from_elsewhere_is_evidence_too():
    vocabulary = Vocabulary(["third-party modules", "more third-party code"])
    assert normalize("a third-\nparty tool", vocabulary=vocabulary) == "a third-party tool"
    assert vocabulary.prefers_join("third", "party") is False
    assert Vocabulary(["thirdparty"]).prefers_join("third", "party") is True
    assert Vocabulary().prefers_join("third", "party") is None


def test_lines_are_joined_only_where_a_word_was_broken():
    text = "first line\nsecond ends in a hy-\nphenated word and goes on\nthird line"
    assert normalize(text) == "first line\nsecond ends in a hyphenated word and goes on\nthird line"


# --- properties ----------------------------------------------------------------------------

PIECES = st.one_of(
    st.characters(codec="utf-8"),
    st.sampled_from(
        [
            "-",
            "\n",
            " ",
            "\t",
            "\u00ad",
            "\u2010",
            "\u200b",
            "\ufb01",
            "\u00a0",
            "\u00b4",
            "-\n",
            "\u00ad\n",
            "\r\n",
            "ab",
            "Ab",
        ]
    ),
)
TEXTS = st.lists(PIECES, max_size=80).map("".join)
"""Any text, weighted towards what normalisation acts on: hyphens at line ends, ligatures,
invisible characters, spacing accents."""


@settings(max_examples=400, deadline=None)
@given(TEXTS)
@example("a-\nb-\nc")
@example("x-\n-\ny")
@example("\u00b4\u0301")
def test_normalize_is_idempotent(text):
    once = normalize(text)
    assert normalize(once) == once


@settings(max_examples=400, deadline=None)
@given(TEXTS)
def test_the_output_has_no_invisible_or_foldable_characters(text):
    out = normalize(text)
    assert not any(unicodedata.category(char) in ("Cf", "Cc") and char not in "\n\t" for char in out)
    for piece in re.split(
        "[\u00a8\u00af\u00b4\u00b8\u02d8-\u02dd\u0384\u0385\u1fbd-\u1fc1\u1fcd-\u1fcf"
        "\u1fdd-\u1fdf\u1fed-\u1fef\u1ffd\u1ffe\u309b\u309c\uffe3]",
        out,
    ):
        assert unicodedata.normalize("NFKC", piece) == piece


@settings(max_examples=400, deadline=None)
@given(TEXTS)
def test_only_hyphens_and_whitespace_at_line_breaks_are_removed(text):
    # Letters, digits and punctuation survive folding; dehyphenation takes away only hyphens
    # and the whitespace of the joined line break, never adds anything.
    folded = fold(text)
    out = normalize(text)

    def strip(value: str) -> str:
        return re.sub(r"[\s\-\u2010]", "", value)

    assert strip(out) == strip(folded)
    assert len(out) <= len(folded)


@settings(max_examples=300, deadline=None)
@given(
    st.text(
        alphabet=st.characters(codec="ascii", exclude_characters="-\r\x7f", min_codepoint=32) | st.just("\n"),
        max_size=200,
    )
)
def test_plain_text_without_broken_words_is_unchanged(text):
    assert normalize(text) == text


@settings(max_examples=200, deadline=None)
@given(LETTERS, st.data())
def test_a_word_found_whole_elsewhere_is_joined_and_a_hyphenated_one_kept(word, data):
    cut = data.draw(st.integers(1, len(word) - 1))
    head, tail = word[:cut], word[cut:]
    broken = f"x {head}-\n{tail} y"
    assert normalize(f"{word} z\n{broken}") == f"{word} z\nx {word} y"
    assert normalize(f"{head}-{tail} z\n{broken}") == f"{head}-{tail} z\nx {head}-{tail} y"
