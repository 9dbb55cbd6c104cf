"""One reader per file type: bytes in, Documents out (title, text and metadata).

.txt and .md are read as UTF-8 text; .html through trafilatura (main text only, with title,
author and date); .pdf through pypdf (page offsets kept so passages know their pages);
.jsonl holds one document a line, for scripts that feed kb.
"""

from __future__ import annotations

import io
import json
import logging
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import PurePosixPath
from typing import Any, Callable

log = logging.getLogger(__name__)


class UnreadableDocument(ValueError):
    """A file that is not a document kb can read (bad encoding, binary, unparsable)."""


@dataclass
class Parsed:
    """What a reader found in one file or one JSON line; the caller assigns ids and sources."""

    title: str
    text: str
    metadata: dict[str, Any]
    id: str | None = None  # only JSON lines carry their own id


def decode_text(raw: bytes) -> str:
    if b"\x00" in raw:
        raise UnreadableDocument("binary content (NUL bytes), not text")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UnreadableDocument(f"not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return ""


def markdown_title(text: str) -> str:
    for line in text.splitlines():
        match = re.match(r"^\s{0,3}#\s+(.+?)\s*#*\s*$", line)
        if match:
            return match.group(1)
    return first_line(text).lstrip("#").strip()


def read_txt(raw: bytes) -> list[Parsed]:
    text = decode_text(raw)
    return [Parsed(first_line(text), text, {})]


def read_md(raw: bytes) -> list[Parsed]:
    text = decode_text(raw)
    return [Parsed(markdown_title(text), text, {})]


SHORT_PAGE_CHARS = 250


def read_html(raw: bytes) -> list[Parsed]:
    markup = decode_text(raw)
    import trafilatura

    logging.getLogger("trafilatura").setLevel(logging.ERROR)
    try:
        extracted = trafilatura.bare_extraction(markup, with_metadata=True, include_comments=False)
    except Exception:  # trafilatura raises a variety of parser errors on broken markup
        extracted = None
    fallback_title, fallback_text = parse_html(markup)
    if extracted is None:
        return [Parsed(fallback_title, fallback_text, {})]
    metadata = {key: getattr(extracted, key) for key in ("author", "date", "sitename", "url")
                if getattr(extracted, key, None)}
    text = extracted.text or ""
    if len(text) < SHORT_PAGE_CHARS:
        # On short pages trafilatura's fallbacks keep menus and break inline tags into lines.
        text = fallback_text
    return [Parsed(extracted.title or fallback_title, text, metadata)]


MAX_PDF_TEXT_CHARS = 64 * 2**20  # decompression bombs stop here, whatever the page count


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
    title = str(info.get("/Title") or "") or first_line(text)
    return [Parsed(title, text, metadata)]


JSONL_FIELDS = {"id", "title", "text", "source", "date", "metadata"}


def parse_record(row: Any, where: str) -> Parsed:
    """One document given as JSON: {id?, title, text, source?, date?, metadata?}."""
    if not isinstance(row, dict):
        raise UnreadableDocument(f"{where}: expected a JSON object")
    unknown = set(row) - JSONL_FIELDS
    if unknown:
        raise UnreadableDocument(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    text, title = row.get("text"), row.get("title")
    if not isinstance(text, str) or not text.strip():
        raise UnreadableDocument(f"{where}: text must be a non-empty string")
    if title is not None and not isinstance(title, str):
        raise UnreadableDocument(f"{where}: title must be a string")
    metadata = row.get("metadata") or {}
    if not isinstance(metadata, dict) or not all(isinstance(k, str) for k in metadata):
        raise UnreadableDocument(f"{where}: metadata must be a JSON object")
    for key in ("source", "date"):
        if row.get(key) is not None:
            if not isinstance(row[key], str):
                raise UnreadableDocument(f"{where}: {key} must be a string")
            metadata = {**metadata, key: row[key]}
    doc_id = row.get("id")
    if doc_id is not None and not isinstance(doc_id, str):
        raise UnreadableDocument(f"{where}: id must be a string")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    problem = metadata_problem(metadata, len(text))
    if problem:
        raise UnreadableDocument(f"{where}: {problem}")
    return Parsed(title or first_line(text), text, metadata, doc_id)


_DATE_START = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}(?:[T ][0-9:.+\-Z]*)?")


def valid_page_starts(value: Any, text_length: int | None = None) -> bool:
    """A list of whole numbers from 0, ascending, within the text: where each page starts."""
    if not isinstance(value, list) or not value:
        return False
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value):
        return False
    if any(b < a for a, b in zip(value, value[1:])):
        return False
    return text_length is None or value[-1] <= text_length


def metadata_problem(metadata: dict[str, Any], text_length: int) -> str | None:
    """What is wrong with the metadata fields kb itself reads (None when nothing is).

    kb interprets ``page_starts`` (the pages each passage spans), ``date`` (date filters) and
    ``source`` (source filters and the page); a stored value must never break a search later.
    """
    if "page_starts" in metadata and not valid_page_starts(metadata["page_starts"], text_length):
        return ("metadata.page_starts must be a non-empty list of ascending whole numbers from 0 "
                "up to the text's length (where each page starts)")
    date = metadata.get("date")
    if date is not None and (not isinstance(date, str) or not _DATE_START.fullmatch(date)):
        return f"date must be a date like 2025-06-01 (optionally with a time), got {str(date)[:40]!r}"
    if "source" in metadata and not isinstance(metadata["source"], str):
        return "source must be a string"
    return None


def read_jsonl(raw: bytes) -> list[Parsed]:
    documents = []
    for number, line in enumerate(decode_text(raw).split("\n"), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            raise UnreadableDocument(f"line {number} is not valid JSON") from None
        documents.append(parse_record(row, f"line {number}"))
    return documents


READERS: dict[str, Callable[[bytes], list[Parsed]]] = {
    ".txt": read_txt,
    ".md": read_md,
    ".html": read_html,
    ".htm": read_html,
    ".pdf": read_pdf,
    ".jsonl": read_jsonl,
}


def reader_for(name: str) -> Callable[[bytes], list[Parsed]] | None:
    return READERS.get(PurePosixPath(name).suffix.lower())


# A small fallback for pages trafilatura finds no main text in (short pages, fragments).
_SKIP_TAGS = {"script", "style", "nav", "footer", "header", "aside", "noscript", "template", "svg", "form"}
_BLOCK_TAGS = {
    "p", "div", "section", "article", "main", "br", "li", "ul", "ol", "table", "tr",
    "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "figcaption", "dd", "dt", "hr",
}


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.title = ""
        self.first_heading = ""
        self._chunks: list[str] = []
        self._skip_depth = 0
        self._in_title = False
        self._in_h1 = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP_TAGS:
            self._skip_depth += 1
        elif tag == "title":
            self._in_title = True
        elif tag == "h1":
            self._in_h1 = True
        if tag in _BLOCK_TAGS:
            self._chunks.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_TAGS and self._skip_depth:
            self._skip_depth -= 1
        elif tag == "title":
            self._in_title = False
        elif tag == "h1":
            self._in_h1 = False
        if tag in _BLOCK_TAGS:
            self._chunks.append("\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
            return
        if self._skip_depth:
            return
        if self._in_h1:
            self.first_heading += data
        self._chunks.append(data)

    def text(self) -> str:
        joined = "".join(self._chunks)
        lines = [" ".join(line.split()) for line in joined.split("\n")]
        return "\n".join(line for line in lines if line)


def parse_html(markup: str) -> tuple[str, str]:
    """(title, text) of an HTML page by a plain parse: scripts, styles, navigation and footers dropped."""
    parser = _TextExtractor()
    try:
        parser.feed(markup)
        parser.close()
    except Exception as exc:  # html.parser is lenient; anything it raises means unparsable input
        raise UnreadableDocument(f"HTML could not be parsed ({exc})") from None
    title = " ".join(parser.title.split()) or " ".join(parser.first_heading.split())
    return title, parser.text()
