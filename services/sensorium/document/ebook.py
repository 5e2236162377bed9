"""EPUB with ebooklib: chapters in spine order, each read as HTML; the heading path starts with
the chapter's title from the table of contents, so a hit names its chapter even where the
chapter's own markup has no headings."""

from __future__ import annotations

import datetime as dt
import posixpath
import urllib.parse
from typing import Any

from sensorium.document.api import Locator, Metadata
from sensorium.document.builder import Builder
from sensorium.document.guards import encrypted, unreadable
from sensorium.document.markup import parse_html


def parse_epub(path: str, builder: Builder, names: set[str], encryption: bytes) -> Metadata:
    import ebooklib
    from ebooklib import epub

    if b"EncryptedData" in encryption and b"http://www.idpf.org/2008/embedding" not in encryption \
            and b"http://ns.adobe.com/pdf/enc#RC" not in encryption:
        raise encrypted("the EPUB e-book (DRM)")  # font obfuscation alone is no encryption
    try:
        book = epub.read_epub(path, options={"ignore_ncx": False})
    except (epub.EpubException, KeyError, ValueError, AttributeError, IndexError, TypeError) as error:
        raise unreadable(
            f"the EPUB cannot be read ({type(error).__name__}: {error}); it is damaged"
        ) from None
    titles = _toc_titles(book.toc)
    items = {item.get_name(): item for item in book.get_items()}
    for idref, _linear in book.spine:
        item = book.get_item_with_id(idref)
        if item is None or item.get_type() != ebooklib.ITEM_DOCUMENT:
            continue
        chapter = item.get_name()
        base = (titles[chapter],) if titles.get(chapter) else ()
        try:
            parse_html(item.get_content(), builder, base_headings=base,
                       images=_loader(chapter, items))
        except (ValueError, TypeError, UnicodeDecodeError) as error:
            builder.failed(Locator(headings=base), f"chapter {chapter!r}", error)
    return _metadata(book)


def _loader(chapter: str, items: dict[str, Any]) -> Any:
    def load(src: str) -> tuple[str, bytes] | None:
        target = posixpath.normpath(posixpath.join(posixpath.dirname(chapter), urllib.parse.unquote(src)))
        item = items.get(target)
        return (target, item.get_content()) if item is not None else None

    return load


def _toc_titles(toc: Any) -> dict[str, str]:
    """Chapter file -> its first title in the table of contents (iterative: TOCs nest)."""
    titles: dict[str, str] = {}
    stack = [toc]
    while stack:
        entry = stack.pop()
        if isinstance(entry, (list, tuple)):
            stack.extend(reversed(entry))
            continue
        href = str(getattr(entry, "href", "") or "").split("#", 1)[0]
        title = " ".join(str(getattr(entry, "title", "") or "").split())
        if href and title and href not in titles:
            titles[href] = title
    return titles


def _metadata(book: Any) -> Metadata:
    def first(name: str) -> str:
        values = book.get_metadata("DC", name)
        return " ".join(str(values[0][0] or "").split()) if values else ""

    modified = None
    for value, attributes in book.get_metadata("OPF", "meta") or []:
        if (attributes or {}).get("property") == "dcterms:modified" and value:
            modified = _date(str(value))
    return Metadata(title=first("title"), author=first("creator"),
                    created=_date(first("date")), modified=modified, language=first("language"))


def _date(value: str) -> dt.datetime | None:
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
