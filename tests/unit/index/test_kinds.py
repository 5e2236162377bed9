"""The kind table's rules for a new row: a row kind two file kinds share must mean the same."""

from __future__ import annotations

import pytest

from sensorium.index import kinds


async def _nothing(work: kinds.FileWork) -> None:
    return None


def test_a_row_kind_may_be_shared_only_with_the_same_meaning() -> None:
    # The built-in video kind already shares `audio` rows with the audio kind.
    assert kinds.KINDS["video"].rows["audio"] == kinds.KINDS["audio"].rows["audio"]
    assert list(kinds.row_kinds()).count("audio") == 1
    same = kinds.FileKind("voicemail", "voicemail", {"audio": kinds.AUDIO_ROWS["audio"]}, _nothing)
    kinds.register(same)
    try:
        assert kinds.row_kinds()["audio"] == kinds.AUDIO_ROWS["audio"]
    finally:
        kinds.KINDS.pop("voicemail")
    other = kinds.FileKind("karaoke", "karaoke", {"audio": "a song's lyrics"}, _nothing)
    with pytest.raises(ValueError, match="audio are registered already, with another meaning"):
        kinds.register(other)
    assert "karaoke" not in kinds.KINDS
