"""Read source documents (.txt, .md, .html) from a folder into Document records.

A file that cannot be decoded or parsed is skipped with a warning that names it; the rest
are read. Ids come from the path relative to the corpus folder, so they are stable across
rebuilds and safe to use in URLs.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Iterator

log = logging.getLogger(__name__)

SUPPORTED_SUFFIXES = (".txt", ".md", ".html", ".htm")
_ID_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Document:
    id: str
    title: str
    source: str
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def content_hash(self) -> str:
        return content_hash(self.title, self.text)


class UnreadableDocument(ValueError):
    """A file that is not text kb can read (bad encoding, binary, unparsable)."""


def content_hash(title: str, text: str) -> str:
    return hashlib.sha256(f"{title}\0{text}".encode("utf-8")).hexdigest()


def doc_id_for(relative_path: str) -> str:
    """A URL-safe id from a relative path: 'news/a b.txt' -> 'news--a-b.txt'."""
    parts = [_ID_UNSAFE.sub("-", part).strip("-") or "_" for part in Path(relative_path).parts]
    return "--".join(parts)


def read_corpus(corpus_dir: Path, skipped: list[str] | None = None) -> list[Document]:
    """Every supported file under corpus_dir, sorted by path.

    Unreadable files are skipped with a warning naming them, and their paths appended to ``skipped``.
    """
    corpus_dir = Path(corpus_dir)
    if not corpus_dir.is_dir():
        raise FileNotFoundError(f"corpus folder {corpus_dir} does not exist (set KB_CORPUS_DIR)")
    documents: list[Document] = []
    seen: dict[str, Path] = {}
    for path in _iter_files(corpus_dir):
        rel = path.relative_to(corpus_dir).as_posix()
        try:
            document = read_document(path, rel)
        except UnreadableDocument as exc:
            log.warning("skipped %s: %s", path, exc)
            if skipped is not None:
                skipped.append(rel)
            continue
        if document.id in seen:
            # Two paths that slug to the same id: keep both, disambiguated by a path hash.
            suffix = hashlib.sha1(rel.encode()).hexdigest()[:8]
            document = Document(f"{document.id}-{suffix}", document.title, document.source, document.text)
        seen[document.id] = path
        documents.append(document)
    return documents


def _iter_files(corpus_dir: Path) -> Iterator[Path]:
    for path in sorted(corpus_dir.rglob("*")):
        if path.is_file() and path.suffix.lower() in SUPPORTED_SUFFIXES and not _hidden(path, corpus_dir):
            yield path


def _hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def read_document(path: Path, relative_path: str | None = None) -> Document:
    """Read one file into a Document; raises UnreadableDocument when it is not readable text."""
    relative_path = relative_path or path.name
    raw = path.read_bytes()
    text = decode_text(raw)
    suffix = path.suffix.lower()
    if suffix in (".html", ".htm"):
        title, text = parse_html(text)
    elif suffix == ".md":
        title = markdown_title(text)
    else:
        title = first_line(text)
    if not text.strip():
        raise UnreadableDocument("no text in it")
    return Document(
        id=doc_id_for(relative_path),
        title=title or Path(relative_path).stem,
        source=relative_path,
        text=text,
    )


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
    """(title, main text) of an HTML page: scripts, styles, navigation and footers dropped."""
    parser = _TextExtractor()
    try:
        parser.feed(markup)
        parser.close()
    except Exception as exc:  # html.parser is lenient; anything it raises means unparsable input
        raise UnreadableDocument(f"HTML could not be parsed ({exc})") from None
    title = " ".join(parser.title.split()) or " ".join(parser.first_heading.split())
    return title, parser.text()
