"""PDF files: the text of each page (pypdf), where each page starts, and the outline's sections.

The title is the document's metadata title, else the outline's first entry (unless it is a
generic "Introduction" or "Contents"), else the first line when it is short, else the file's
name (set by the caller). Outline entries (bookmarks) become ``metadata["sections"]``: each is
placed where its title is found on its page, else at the page's start.
"""

from __future__ import annotations

import io
import logging
import re
from typing import Any

from kb.documents.parsed import Parsed
from kb.documents.structure import one_line
from kb.errors import UnreadableDocument

MAX_PDF_TEXT_CHARS = 64 * 2**20  # decompression bombs stop here, whatever the page count
MAX_OUTLINE_ENTRIES = 10_000


def read_pdf(raw: bytes) -> list[Parsed]:
    from pypdf import PdfReader

    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        reader = PdfReader(io.BytesIO(raw))
        pages, total = [], 0
        for page in reader.pages:
            pages.append((page.extract_text() or "").strip())
            total += len(pages[-1])
            if total > MAX_PDF_TEXT_CHARS:  # each stream is capped by pypdf; this caps them all
                raise UnreadableDocument(f"PDF text is over {MAX_PDF_TEXT_CHARS // 2**20} M characters")
        info = reader.metadata or {}
    except UnreadableDocument:
        raise
    except Exception as exc:  # noqa: BLE001 - a hostile PDF can raise anything; it must only ever be skipped
        kind = "over pypdf's decompression limit" if type(exc).__name__ == "LimitReachedError" else "could not be read"
        raise UnreadableDocument(f"PDF {kind} ({str(exc)[:200]})") from None
    text_parts, page_starts, offset = [], [], 0
    for page in pages:
        page_starts.append(offset)
        text_parts.append(page)
        offset += len(page) + 2
    text = "\n\n".join(text_parts)
    metadata: dict[str, Any] = {"page_starts": page_starts}
    if info.get("/Author"):
        metadata["author"] = str(info["/Author"])
    entries = outline(reader)
    sections = place_sections(text, page_starts, entries)
    if sections:
        metadata["sections"] = sections
    return [Parsed(pdf_title(str(info.get("/Title") or ""), entries, text), text, metadata)]


_GENERIC = re.compile(r"^(?:[\dIVXivx]+[.)]?\s*)*(?:introduction|contents|table of contents|preface|foreword|abstract|"
                      r"overview|summary|copyright|license|about this (?:document|manual))$", re.I)


def pdf_title(info_title: str, entries: list[tuple[int, int, str]], text: str) -> str:
    """The metadata title; else the outline's first entry, unless it is a generic section name
    ("1 Introduction", "Contents"), which would give many manuals one title; else the first line
    of the text when it is short enough to be a title; else "" (the caller uses the file name)."""
    if one_line(info_title):
        return one_line(info_title)
    if entries and not _GENERIC.match(entries[0][2]):
        return entries[0][2]
    first = one_line(text.split("\n", 1)[0]) if text.strip() else ""
    return first if 0 < len(first) <= 100 and any(c.isalpha() for c in first) else ""


def outline(reader: Any) -> list[tuple[int, int, str]]:
    """(page index, level, title) of each outline entry, in document order; [] when there is none or it is broken."""
    found: list[tuple[int, int, str]] = []

    def walk(items: Any, level: int) -> None:
        for item in items:
            if len(found) >= MAX_OUTLINE_ENTRIES:
                return
            if isinstance(item, list):
                walk(item, level + 1)
                continue
            title = one_line(str(getattr(item, "title", "") or ""))
            page = reader.get_destination_page_number(item)
            if title and page is not None and page >= 0:
                found.append((page, min(level, 6), title))

    try:
        walk(reader.outline, 1)
    except Exception:  # noqa: BLE001 - an outline is optional; a broken one is ignored, the text is kept
        return []
    return found


def place_sections(text: str, page_starts: list[int], entries: list[tuple[int, int, str]]) -> list[list[Any]]:
    """[start, level, title] of each entry: where its title first appears on its page (white space and
    case aside), at or after the previous entry; else the page's start. Ascending by start."""
    sections: list[list[Any]] = []
    floor = 0
    for page, level, title in entries:
        if page >= len(page_starts):
            continue
        begin = max(page_starts[page], floor)
        stop = page_starts[page + 1] if page + 1 < len(page_starts) else len(text)
        at = _find(text, title, begin, stop)
        start = at if at is not None else max(page_starts[page], floor)
        sections.append([start, level, title])
        floor = start
    return sections


def _find(text: str, title: str, begin: int, stop: int) -> int | None:
    """Where ``title`` starts in text[begin:stop], matching any run of white space to any other."""
    words = title.split()
    if not words or begin >= stop:
        return None
    pattern = r"\s+".join(re.escape(word) for word in words)
    match = re.compile(pattern, re.I).search(text, begin, stop)
    return match.start() if match else None
