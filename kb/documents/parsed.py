"""What a reader gives back, and the small text helpers every reader shares."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kb.errors import UnreadableDocument


@dataclass
class Parsed:
    """What a reader found in one file or one JSON line; the caller assigns ids and sources."""

    title: str
    text: str
    metadata: dict[str, Any]
    id: str | None = None  # only JSON lines carry their own id
    source: str | None = None  # and their own source (the file's path otherwise)
    access: tuple[str, ...] | None = None  # and their own access (None: the folder's rule, kb/documents/access.py)


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
