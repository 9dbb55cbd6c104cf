"""One reader per file type: bytes in, Documents out (title, text and metadata).

.txt and .md are read as UTF-8 text (code blocks recorded in ``metadata["code"]``); .html
through trafilatura (kb/documents/html.py); .pdf through pypdf (kb/documents/pdf.py); .jsonl holds
one document a line, for scripts that feed kb.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import PurePosixPath
from typing import Any, Callable

from kb.documents.access import parse_access
from kb.documents.html import read_html
from kb.documents.parsed import Parsed, decode_text, first_line
from kb.documents.pdf import read_pdf
from kb.documents.structure import fenced_code, markdown_structure, structure_problem
from kb.errors import UnreadableDocument

log = logging.getLogger(__name__)

__all__ = ["Parsed", "UnreadableDocument", "READERS", "reader_for", "parse_record", "metadata_problem",
           "valid_page_starts", "decode_text", "first_line"]


def markdown_title(text: str) -> str:
    for line in text.splitlines():
        match = re.match(r"^\s{0,3}#\s+(.+?)\s*#*\s*$", line)
        if match:
            return match.group(1)
    return first_line(text).lstrip("#").strip()


def read_txt(raw: bytes) -> list[Parsed]:
    text = decode_text(raw)
    code = fenced_code(text)
    return [Parsed(first_line(text), text, {"code": [list(span) for span in code]} if code else {})]


def read_md(raw: bytes) -> list[Parsed]:
    text = decode_text(raw)
    code = markdown_structure(text).code
    return [Parsed(markdown_title(text), text, {"code": [list(span) for span in code]} if code else {})]


JSONL_FIELDS = {"id", "title", "text", "source", "date", "metadata", "access"}


def parse_record(row: Any, where: str) -> Parsed:
    """One document given as JSON: {id?, title, text, source?, date?, metadata?, access?}."""
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
        if row.get(key) is not None and not isinstance(row[key], str):
            raise UnreadableDocument(f"{where}: {key} must be a string")
    if row.get("date") is not None:  # date filters read it from the metadata
        metadata = {**metadata, "date": row["date"]}
    doc_id = row.get("id")
    if doc_id is not None and not isinstance(doc_id, str):
        raise UnreadableDocument(f"{where}: id must be a string")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    problem = metadata_problem(metadata, len(text))
    if problem:
        raise UnreadableDocument(f"{where}: {problem}")
    access = parse_access(row["access"], where) if row.get("access") is not None else None
    return Parsed(title or first_line(text), text, metadata, doc_id, row.get("source"), access)


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
    return structure_problem(metadata, text_length)


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
