"""RTF with striprtf, plus the title and author from its {\\info} group.

RTF has no page breaks a reader keeps reliably and no heading structure striprtf exposes, so
its sections are blocks of paragraphs with the line of the extracted text they start at.
"""

from __future__ import annotations

import datetime as dt
import re

from sensorium.document.api import Locator, Metadata
from sensorium.document.builder import Builder
from sensorium.document.guards import unreadable

_INFO = re.compile(r"\{\\(title|author)\s+((?:[^{}\\]|\\[^{}])*)\}")
_TIME = re.compile(r"\{\\(creatim|revtim)\\yr(\d+)\\mo(\d+)\\dy(\d+)(?:\\hr(\d+))?(?:\\min(\d+))?")
_MAX_RTF_BYTES = 64 * 1024 * 1024  # striprtf holds the text at once; pictures make RTF large
_BLOCK_LINES = 60


def parse_rtf(path: str, builder: Builder) -> Metadata:
    from striprtf.striprtf import rtf_to_text

    with open(path, "rb") as handle:
        raw = handle.read(_MAX_RTF_BYTES + 1)
    if len(raw) > _MAX_RTF_BYTES:
        raise unreadable(f"the RTF file is over {_MAX_RTF_BYTES // (1024 * 1024)} MiB, more than this "
                         "reader takes; "
                         "save it as .docx or .odt")
    # RTF is 7-bit; \'xx escapes carry the code page's bytes, which striprtf decodes itself.
    source = raw.decode("latin-1")
    if not source.lstrip().startswith("{\\rtf"):
        raise unreadable("the file does not start with {\\rtf; it is not RTF")
    info = {key: rtf_to_text("{\\rtf1 " + value + "}", errors="ignore").strip()
            for key, value in _INFO.findall(source[:65536])}
    text = rtf_to_text(source, errors="ignore")
    lines = text.splitlines()
    for start in range(0, len(lines), _BLOCK_LINES):
        builder.section("\n".join(lines[start:start + _BLOCK_LINES]), Locator(line=start + 1))
    times = {}
    for key, *parts in _TIME.findall(source[:65536]):
        try:  # RTF times are the author's local time; UTC keeps them stable
            year, month, day, hour, minute = (int(p or 0) for p in parts)
            times[key] = dt.datetime(year, month, day, hour, minute, tzinfo=dt.UTC)
        except ValueError:
            continue
    return Metadata(title=info.get("title", ""), author=info.get("author", ""),
                    created=times.get("creatim"), modified=times.get("revtim"))
