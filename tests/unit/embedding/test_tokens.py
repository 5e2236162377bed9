"""The Rust tokenizer gives open_clip's token ids exactly, on every kind of text a user sends.

Parity is checked against open_clip's own `SimpleTokenizer` (the reference, run here) over more
than 10,000 texts: a seeded generator mixing plain words, accents, scripts, emoji, HTML,
mojibake, ligatures, odd whitespace, control characters and special-token look-alikes at every
length up to 100,000 characters; lines of this repository's own documents; and Hypothesis'
arbitrary Unicode text.
"""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from open_clip.tokenizer import SimpleTokenizer

from sensorium.embedding import tokens
from sensorium.embedding.tokens import ClipTokenizer, TokenizerError
from testkit import REPO

WORDS = (
    "a", "photo", "of", "the", "dog", "cat", "bicycle", "mountain", "beach", "street", "kitchen",
    "forest", "red", "circle", "square", "it's", "we'll", "they're", "I've", "you'd", "she'd", "I'M",
    "DON'T", "Won't", "o'clock", "rock'n'roll", "e-mail", "well-known", "U.S.A.", "Dr.", "x86_64",
    "snake_case", "CamelCase", "HTTPServer", "iPhone", "COVID-19", "3D", "4K", "1080p",
)
PIECES = (
    # numbers and punctuation runs
    "0", "42", "3.14159", "1,000,000", "2026-11-26", "12:30", "#1", "$9.99", "50%", "!!!", "...",
    "?!", "--", "—", "–", "(", ")", "[x]", "{}", "<<>>", "<b>", "</p>", "a<b", "x>y", "@user", "C++",
    "'", "''", "'s", "'S", "'ll", "'LL", "'re", "'d", "'t", "'m", "'ve", "''s", "s'", "'ſ", "'K",
    # HTML entities (open_clip unescapes twice) and what looks like them
    "&amp;", "&lt;b&gt;", "&#x2019;", "&#8217;", "&nbsp;", "&amp;amp;", "&hellip;", "&copy", "AT&T",
    "&", "&;", "&#;", "&#x;", "&#99999999;", "&notit;", "&eacute;", "&Eacute;",
    # accents, composed and decomposed, and case pairs
    "café", "naïve", "Ångström", "façade", "Straße", "STRASSE", "ÉCOLE", "crème brûlée", "e\u0301",
    "A\u030a", "o\u0308\u0304", "İstanbul", "ı", "ǅ", "ǆ", "ﬀ", "Σίσυφος", "ΣΊΣΥΦΟΣ", "Ꙃ", "ꭰ",
    # scripts
    "日本語", "東京タワー", "中文字符", "한국어", "Ελληνικά", "русский", "УКРАЇНА", "עברית",
    "العربية", "हिन्दी", "ไทย", "ქართული", "Հայերեն", "አማርኛ", "ᚠᚢᚦ", "𐌰𐌱", "𝔘𝔫𝔦", "𝟘𝟙𝟚",
    "٣٤٥", "۱۲", "१२३", "Ⅻ", "ⅻ", "½", "²", "①", "〇", "零",
    # emoji: single, skin tone, ZWJ family, flags, keycaps, variation selectors
    "😀", "👍🏽", "👨\u200d👩\u200d👧", "🇫🇷",
    "🏴\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f",
    "1️⃣", "❤️", "☃", "✔", "🤖🤖", "🫠",
    # mojibake and lossy sequences ftfy repairs
    "Ã©", "â€™", "Ã¼ber", "â€œquotedâ€\x9d", "Ã\xa0", "ÃƒÂ©", "sÃ³", "\x80", "\x9d", "Â",
    # ligatures, full width, curly quotes
    "ﬁsh", "ﬂow", "ＬＯＵＤ", "ＡＢＣ１２３", "“hi”", "‘single’", "„low“", "«guillemets»", "‹›",
    # whitespace of every kind ftfy or str.split handle
    " ", "  ", "\t", "\n", "\r\n", "\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x1f", "\x85",
    "\u00a0", "\u1680", "\u2000", "\u2009", "\u200a", "\u2028", "\u2029", "\u202f", "\u205f",
    "\u3000", "\u180e",
    # control and invisible characters, terminal escapes
    "\x00", "\x01", "\x07", "\x08", "\x1b", "\x1b[31m", "\x1b[0m", "\x7f", "\u200b", "\u200c",
    "\u200d", "\u2060", "\ufeff", "\u206a", "\ufff9", "\ufffd", "\ue000", "\U000f0000",
    # the special tokens' spellings, alone and glued to other words
    "<start_of_text>", "<end_of_text>", "<START_OF_TEXT>", "<start_of_text", "start_of_text>",
    "x<end_of_text>", "!<end_of_text>", "<end_of_text>!", "<start_of_text><end_of_text>",
)


def _random_codepoint(rng: random.Random) -> str:
    while True:
        point = rng.choice((rng.randrange(0x20, 0x7F), rng.randrange(0x80, 0x3000),
                            rng.randrange(0x3000, 0x110000)))
        if not 0xD800 <= point < 0xE000:  # lone surrogates cannot arrive in a protobuf string
            return chr(point)


def _text(rng: random.Random, pieces: int) -> str:
    parts = []
    for _ in range(pieces):
        kind = rng.random()
        if kind < 0.45:
            word = rng.choice(WORDS)
            parts.append(rng.choice((word, word.upper(), word.capitalize())))
        elif kind < 0.85:
            parts.append(rng.choice(PIECES))
        else:
            parts.append("".join(_random_codepoint(rng) for _ in range(rng.randint(1, 4))))
        parts.append(rng.choice((" ", " ", " ", "", "\n", "  ")))
    return "".join(parts)


def generated_texts(count: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    texts = ["", " ", "\n\t ", "a", "A", "I", "0", "&", "'", "<", "<start_of_text>", "<end_of_text>"]
    while len(texts) < count:
        roll = rng.random()
        if roll < 0.001:  # very long: truncated far past the context, counted in full
            texts.append(_text(rng, rng.randint(2_000, 20_000)))
        elif roll < 0.01:  # one long "word" without spaces
            texts.append(rng.choice(WORDS) * rng.randint(50, 2_000))
        elif roll < 0.2:  # around the 77-token context
            texts.append(_text(rng, rng.randint(30, 120)))
        else:
            texts.append(_text(rng, rng.randint(1, 30)))
    return texts


def document_lines() -> list[str]:
    """Real prose: every non-empty line of this repository's README and docs."""
    files = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    return [line for path in files for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="module")
def reference() -> SimpleTokenizer:
    return SimpleTokenizer()


@pytest.fixture(scope="module")
def rust() -> ClipTokenizer:
    return ClipTokenizer.from_bpe()


def _assert_same(
    texts: list[str], reference: SimpleTokenizer, rust: ClipTokenizer, context_length: int,
    *, counts: bool = True,
) -> None:
    """The model's input rows (start, end, truncation, padding) and the untruncated counts."""
    expected = reference(texts, context_length=context_length).numpy()
    got = rust(texts, context_length=context_length)
    assert got.dtype == np.int64 and got.shape == expected.shape
    differ = np.flatnonzero((got != expected).any(axis=1))
    assert differ.size == 0, [(texts[i][:80], got[i].tolist(), expected[i].tolist()) for i in differ[:3]]
    if counts:
        wrong = [t[:80] for t in texts if rust.count(t) != len(reference.encode(t)) + 2]
        assert not wrong, wrong[:3]


def test_ten_thousand_generated_texts_give_open_clips_exact_ids(reference, rust):
    texts = generated_texts(10_500)
    assert len(set(texts)) > 10_000
    assert sum(len(t) > 10_000 for t in texts) >= 5 and sum(not t.strip() for t in texts) >= 3
    _assert_same(texts, reference, rust, 77)
    # Truncation against a short context (the project's tiny test models read 16 tokens).
    short = [t for t in texts[:3_000] if len(t) < 2_000]
    _assert_same(short, reference, rust, 16, counts=False)


def test_the_repositorys_documents_give_open_clips_exact_ids(reference, rust):
    lines = document_lines()
    assert len(lines) > 500
    _assert_same(lines, reference, rust, 77)


@settings(max_examples=1_500, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=300))
def test_arbitrary_unicode_gives_open_clips_exact_ids(reference, rust, text):
    # Hypothesis draws from every Unicode category and shrinks a failure to its smallest text.
    assert rust.encode(text) == reference.encode(text)


def test_rows_carry_start_end_truncation_and_padding_as_open_clip(rust):
    row, count = rust.row("a red circle")
    assert row[0] == rust.sot_token_id == 49406 and rust.eot_token_id == 49407
    assert count == 5 and row[4] == rust.eot_token_id and not row[5:].any()
    long_row, long_count = rust.row("word " * 200, context_length=16)
    assert long_count == 202 and long_row.shape == (16,) and long_row[-1] == rust.eot_token_id
    assert rust("").tolist() == [[49406, 49407] + [0] * 75]


def test_plain_ascii_text_skips_ftfy_only_when_ftfy_would_leave_it_alone():
    import ftfy

    for text in ["Plain text, 100% ASCII!", "tab\tand\nnew line", "x" * 1000]:
        assert tokens._NEEDS_FTFY.search(text) is None
        assert ftfy.fix_text(text).split() == text.split()
    for text in ["AT&amp;T", "a\x0bb", "\x1b[31mred", "caf\u00e9", "a\x7f"]:
        assert tokens._NEEDS_FTFY.search(text) is not None


def test_saved_tokenizer_json_loads_without_open_clip_and_gives_the_same_ids(rust, tmp_path):
    path = tmp_path / "tokenizer.json"
    rust.save(path)
    texts = generated_texts(300, seed=7)
    code = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from sensorium.embedding.tokens import ClipTokenizer\n"
        f"tok = ClipTokenizer.from_file(Path({str(path)!r}), context_length=32)\n"
        "texts = json.loads(sys.stdin.read())\n"
        "print(json.dumps(tok(texts).tolist()))\n"
        "heavy = [m for m in ('torch', 'open_clip') if m in sys.modules]\n"
        "sys.exit(f'imported {heavy}' if heavy else 0)\n"
    )
    import json

    done = subprocess.run([sys.executable, "-c", code], input=json.dumps(texts), capture_output=True,
                          text=True, check=False, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == rust(texts, context_length=32).tolist()


def test_a_missing_or_foreign_vocabulary_says_what_to_do(tmp_path):
    with pytest.raises(TokenizerError, match="cannot read the BPE vocabulary"):
        ClipTokenizer.from_bpe(tmp_path / "absent.txt.gz")
    import gzip

    foreign = tmp_path / "foreign.txt.gz"
    foreign.write_bytes(gzip.compress(b"version\na b\nc d\n"))
    with pytest.raises(TokenizerError, match="not CLIP's BPE merges file"):
        ClipTokenizer.from_bpe(foreign)
    with pytest.raises(TokenizerError, match="cannot load the tokenizer"):
        ClipTokenizer.from_file(Path(tmp_path / "absent.json"))
