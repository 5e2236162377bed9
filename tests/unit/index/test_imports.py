"""The index modules load no model library: the job and search pay for those only when used."""

from __future__ import annotations

import subprocess
import sys


def test_index_modules_import_neither_torch_nor_lancedb():
    code = (
        "import sys\n"
        "import sensorium.index.chunking, sensorium.index.layout, sensorium.index.ledger\n"
        "import sensorium.index.reader, sensorium.index.search, sensorium.index.sniff\n"
        "import sensorium.index.writer, sensorium.index.store, sensorium.index.words, sensorium.text\n"
        "heavy = ('torch', 'open_clip', 'lancedb', 'pymupdf', 'faster_whisper',\n"
        "         'pyphen', 'snowballstemmer')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
