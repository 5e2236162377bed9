"""CLIP's BPE tokenizer on Hugging Face `tokenizers` (Rust), token for token open_clip's.

open_clip's `SimpleTokenizer` is pure Python: ~160 us a caption on this project's CPUs, held
under the GIL that the event loop and gRPC need too. `ClipTokenizer` gives the same ids (the
parity test, tests/unit/embedding/test_tokens.py, checks >= 10,000 varied texts) in a few
microseconds for plain text, and imports neither torch nor open_clip, so a query path without
torch can use it.

What open_clip does, and how this module does the same:

1. Clean (`_clean_lower`): `ftfy.fix_text`, `html.unescape` twice, strip, collapse whitespace,
   lower-case. ftfy is pure Python and costs ~40 us, but it cannot change printable ASCII text
   without `&` (it fixes mojibake, curly quotes, ligatures, widths, HTML entities, terminal
   escapes and control characters, none of which such text can hold; its line-break fix only
   swaps one whitespace for another, which the collapse erases). Such text skips it.
2. Split into words with open_clip's pattern (`PATTERN`, case-insensitive) in the `regex`
   module, as open_clip does; cleaned ASCII text (no upper case left) with the same pattern
   spelt for ASCII in the standard `re` module, three times faster.
3. Byte-level BPE with CLIP's merges and `</w>` ending each word: the Rust BPE model of
   `tokenizers`, once per distinct word (an LRU cache holds the ids of recent words, as
   open_clip's own cache does). A word that is exactly `<start_of_text>` or `<end_of_text>` is
   that special token, as in open_clip.
4. `[SOT] + ids + [EOT]`, truncated to the context with the last id set to EOT, zero padded.

Measured alternative: the whole pipeline in Rust (`Tokenizer.encode` with a `Split`
pre-tokenizer on the same pattern) costs ~20-40 us a caption here, most of it in the
pre-tokenizer's offset bookkeeping, and Oniguruma's Unicode tables need not match `regex`'s.

The vocabulary is open_clip's own file (`bpe_simple_vocab_16e6.txt.gz`, MIT, OpenAI), found
without importing open_clip; `save` writes the built tokenizer as a `tokenizer.json` that
`from_file` loads where open_clip is not installed.
"""

from __future__ import annotations

import functools
import gzip
import html
import importlib.util
import re
from collections.abc import Sequence
from pathlib import Path

import ftfy
import numpy as np
import numpy.typing as npt
import regex
from tokenizers import Regex, Tokenizer, models, pre_tokenizers

SOT = "<start_of_text>"
EOT = "<end_of_text>"
DEFAULT_CONTEXT_LENGTH = 77
PATTERN = r"""<start_of_text>|<end_of_text>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""
"""open_clip's word pattern (SimpleTokenizer.pat with its two special tokens), case-insensitive."""
VOCABULARY_FILE = "bpe_simple_vocab_16e6.txt.gz"
_MERGES = 49152 - 256 - 2  # open_clip reads merges[1:49152-256-2+1] of the file

# Text ftfy leaves as it is: printable ASCII and the whitespace ftfy keeps, no `&` (HTML).
_NEEDS_FTFY = re.compile(r"[^\t\n\x0c\r\x20-\x25\x27-\x7e]")
_WORDS = regex.compile(PATTERN, regex.IGNORECASE)
# The same pattern for cleaned ASCII text, which has no upper case left and no space but " ".
_ASCII_WORDS = re.compile(
    r"""<start_of_text>|<end_of_text>|'s|'t|'re|'ve|'m|'ll|'d|[a-z]+|[0-9]|[^ a-z0-9]+"""
)

Ids = npt.NDArray[np.int64]


class TokenizerError(Exception):
    """The vocabulary cannot be found or read; the message says what to do."""


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character map (open_clip's `bytes_to_unicode`)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
                 *range(ord("®"), ord("ÿ") + 1)]
    chars = list(printable)
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return {byte: chr(char) for byte, char in zip(printable, chars, strict=True)}


def open_clip_vocabulary() -> Path:
    """open_clip's BPE vocabulary file, located without importing open_clip (and torch)."""
    spec = importlib.util.find_spec("open_clip")
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        path = Path(folder) / VOCABULARY_FILE
        if path.is_file():
            return path
    raise TokenizerError(
        f"open_clip's {VOCABULARY_FILE} was not found (is open-clip-torch installed?); install "
        "sensorium[embedding], or load a tokenizer.json written by ClipTokenizer.save"
    )


def clean(text: str) -> str:
    """open_clip's `_clean_lower`: ftfy, HTML entities, whitespace collapsed, lower case."""
    if _NEEDS_FTFY.search(text) is None:
        return " ".join(text.split()).lower()
    text = html.unescape(html.unescape(ftfy.fix_text(text))).strip()
    return " ".join(text.split()).lower()


class ClipTokenizer:
    """Token ids exactly as open_clip's `SimpleTokenizer` (clean="lower") makes them.

    Thread-safe: after construction the Rust model is only read, and the word cache is
    `functools.lru_cache`, which is.
    """

    def __init__(
        self, tokenizer: Tokenizer, context_length: int = DEFAULT_CONTEXT_LENGTH,
        cache_words: int = 1 << 16,
    ) -> None:
        if context_length < 2:
            raise ValueError("the context must hold at least the start and end tokens")
        self.tokenizer = tokenizer
        self.context_length = context_length
        sot, eot = tokenizer.token_to_id(SOT), tokenizer.token_to_id(EOT)
        if sot is None or eot is None:
            raise TokenizerError(f"the tokenizer has no {SOT} / {EOT} tokens: not CLIP's vocabulary")
        self.sot_token_id: int = sot
        self.eot_token_id: int = eot
        self.vocab_size: int = tokenizer.get_vocab_size()
        model = tokenizer.model
        byte_chars = _bytes_to_unicode()
        table = [byte_chars[byte] for byte in range(256)]
        specials = {SOT: (sot,), EOT: (eot,)}

        def word_ids(word: str) -> tuple[int, ...]:
            if word in specials:
                return specials[word]
            symbols = "".join([table[byte] for byte in word.encode("utf-8")])
            return tuple(token.id for token in model.tokenize(symbols))

        self._word_ids = functools.lru_cache(maxsize=cache_words)(word_ids)

    @classmethod
    def from_bpe(
        cls, path: Path | None = None, context_length: int = DEFAULT_CONTEXT_LENGTH
    ) -> ClipTokenizer:
        """Build from open_clip's gzipped BPE merges file (default: the one open_clip ships)."""
        path = path or open_clip_vocabulary()
        try:
            lines = gzip.decompress(path.read_bytes()).decode("utf-8").split("\n")
        except (OSError, UnicodeDecodeError, EOFError) as exc:
            raise TokenizerError(f"cannot read the BPE vocabulary {path}: {exc}") from exc
        merges = [tuple(line.split()) for line in lines[1:_MERGES + 1]]
        if len(merges) != _MERGES or any(len(pair) != 2 for pair in merges):
            raise TokenizerError(f"{path} is not CLIP's BPE merges file ({len(merges)} merges)")
        symbols = list(_bytes_to_unicode().values())
        # open_clip's order gives the ids: bytes, bytes ending a word, one per merge, specials.
        vocab = [*symbols, *(s + "</w>" for s in symbols), *("".join(pair) for pair in merges), SOT, EOT]
        bpe = models.BPE(
            vocab={token: index for index, token in enumerate(vocab)},
            merges=[(a, b) for a, b in merges], end_of_word_suffix="</w>",
            continuing_subword_prefix="", fuse_unk=False,
        )
        tokenizer = Tokenizer(bpe)
        # This class uses only the BPE model; the full pipeline makes the saved tokenizer.json
        # usable by other tools (exact for ASCII text; see the module docstring).
        tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(PATTERN), behavior="removed", invert=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ])
        return cls(tokenizer, context_length)

    @classmethod
    def from_file(cls, path: Path, context_length: int = DEFAULT_CONTEXT_LENGTH) -> ClipTokenizer:
        """Load a tokenizer.json written by `save`."""
        try:
            tokenizer = Tokenizer.from_file(str(path))
        except Exception as exc:  # tokenizers raises a bare Exception for unreadable files
            raise TokenizerError(f"cannot load the tokenizer {path}: {exc}") from exc
        return cls(tokenizer, context_length)

    def save(self, path: Path) -> None:
        """Write the tokenizer as Hugging Face's tokenizer.json (for `from_file`)."""
        self.tokenizer.save(str(path))

    def encode(self, text: str) -> list[int]:
        """Ids of `text` without start and end tokens, untruncated (`SimpleTokenizer.encode`)."""
        cleaned = clean(text)
        words = (_ASCII_WORDS if cleaned.isascii() else _WORDS).findall(cleaned)
        word_ids = self._word_ids
        ids: list[int] = []
        for word in words:
            ids += word_ids(word)
        return ids

    def count(self, text: str) -> int:
        """Tokens of the whole `text`, start and end tokens included (not truncated)."""
        return len(self.encode(text)) + 2

    def row(self, text: str, context_length: int | None = None) -> tuple[Ids, int]:
        """The model's input for `text` (context_length,) int64, and the untruncated count."""
        ids = self.encode(text)
        out = np.zeros(context_length or self.context_length, dtype=np.int64)
        self._fill(out, ids)
        return out, len(ids) + 2

    def _fill(self, out: Ids, ids: list[int]) -> None:
        body = ids[:out.shape[0] - 2]
        out[0] = self.sot_token_id
        out[1:1 + len(body)] = body
        out[1 + len(body)] = self.eot_token_id  # after truncation too, as open_clip does

    def __call__(self, texts: str | Sequence[str], context_length: int | None = None) -> Ids:
        """Ids (len(texts), context_length) as `SimpleTokenizer.__call__`, as numpy int64."""
        if isinstance(texts, str):
            texts = [texts]
        out = np.zeros((len(texts), context_length or self.context_length), dtype=np.int64)
        for index, text in enumerate(texts):
            self._fill(out[index], self.encode(text))
        return out
