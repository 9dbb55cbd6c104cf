"""A document's structure: its section headings, its code blocks and its blocks of prose.

Sentences are split inside blocks of prose, never across two blocks; a code block is never split
into sentences. Where the structure comes from depends on the format:

- Markdown: parsed with markdown-it-py (ATX and setext headings, fenced and indented code,
  paragraphs whose line breaks are soft wraps, list items, table rows, quotes);
- HTML and PDF: the reader records headings (h1-h6, the PDF outline) and code blocks (``<pre>``)
  in the document's metadata as ``sections`` and ``code``, since its text no longer carries them;
- plain text: a blank line ends a block; inside a block, a line break is a hard wrap when the
  block's lines are filled to about one width (a PDF page, a text file wrapped at 72 columns),
  and a line of its own otherwise (one paragraph a line); fenced code stays whole; a short
  line of its own without closing punctuation is a heading (a guess: it labels passages, but
  unlike the author's own headings it does not end them).

The same metadata keys can be sent with a document through the API; kb checks them.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Iterator

STRUCTURE_KEYS = ("page_starts", "sections", "code")  # metadata kb reads itself, never shown as a document's own


@dataclass(frozen=True)
class Section:
    start: int  # where the heading's line starts
    level: int  # 1-6
    title: str  # one line


@dataclass(frozen=True)
class Block:
    start: int
    end: int
    code: bool  # a code block (kept whole); else prose, whose inner line breaks are wraps


@dataclass(frozen=True)
class Structure:
    sections: tuple[Section, ...]
    code: tuple[tuple[int, int], ...]
    blocks: tuple[Block, ...]
    explicit: bool = True  # headings from markup or an outline (passages end at them), not guessed from lines

    def heading_path(self, position: int) -> tuple[str, ...]:
        """The headings above ``position``, outermost first (a lower level closes deeper ones)."""
        index = bisect_right(self._starts, position)
        return self._paths[index - 1] if index else ()

    @cached_property
    def _starts(self) -> list[int]:
        return [s.start for s in self.sections]

    @cached_property
    def _paths(self) -> list[tuple[str, ...]]:
        paths, path = [], []
        for section in self.sections:
            while path and path[-1].level >= section.level:
                path.pop()
            path.append(section)
            paths.append(tuple(s.title for s in path))
        return paths


def one_line(text: str) -> str:
    """A heading as one line: white space collapsed, a trailing permalink mark ('¶', '#') dropped."""
    return " ".join(text.split()).rstrip("¶#").strip()


def fmt_of(path_or_source: str) -> str:
    name = path_or_source.lower()
    if name.endswith((".md", ".markdown")):
        return "markdown"
    if name.endswith((".html", ".htm")):
        return "html"
    if name.endswith(".pdf"):
        return "pdf"
    return "text"


def structure_of(text: str, fmt: str, metadata: dict[str, Any] | None = None) -> Structure:
    """The structure of a document's text; ``sections`` and ``code`` in metadata win where present."""
    metadata = metadata or {}
    if structure_problem(metadata, len(text)):  # checked when the document came in; a bad stored value is ignored
        metadata = {}
    given_sections = metadata.get("sections")
    given_code = metadata.get("code")
    if fmt == "markdown" and given_sections is None:  # its code (also in metadata, for the page) is its own
        return markdown_structure(text)
    code = tuple((int(a), int(b)) for a, b in given_code or ()) or (fenced_code(text) if fmt == "text" else ())
    blocks = tuple(_plain_blocks(text, code, one_per_line=fmt == "html"))
    if given_sections is not None:
        sections = tuple(Section(int(s), int(level), str(title)) for s, level, title in given_sections)
    elif fmt == "text":
        return Structure(tuple(_plain_headings(text, blocks)), code, blocks, explicit=False)
    else:  # HTML and PDF headings come from their markup or outline only, never guessed from lines
        sections = ()
    return Structure(sections, code, blocks)


# Markdown ------------------------------------------------------------------------------------

_FRONT_MATTER = re.compile(r"\A---\n.*?\n(?:---|\.\.\.)\n", re.S)


def markdown_structure(text: str) -> Structure:
    from markdown_it import MarkdownIt

    starts = _line_starts(text)
    front = _FRONT_MATTER.match(text)
    skip = text[: front.end()].count("\n") if front else 0
    body = "\n" * skip + text[front.end():] if front else text  # same line numbers, front matter blanked
    tokens = MarkdownIt("commonmark").enable("table").parse(body)
    sections, code, blocks = [], [], []
    covered: set[int] = set()

    def span(first: int, last: int) -> tuple[int, int]:
        start = starts[first]
        end = starts[last] - 1 if last < len(starts) else len(text)
        return start, max(start, end)

    for index, token in enumerate(tokens):
        if token.map is None:
            continue
        first, last = token.map
        if token.type == "heading_open":
            inline = tokens[index + 1]
            title = one_line("".join(c.content for c in inline.children or [] if c.type in ("text", "code_inline"))
                             or inline.content)
            if title:
                sections.append(Section(starts[first], int(token.tag[1]), title))
            blocks.append(Block(*span(first, last), code=False))
            covered.update(range(first, last))
        elif token.type in ("fence", "code_block"):
            start, end = span(first, last)
            code.append((start, end))
            blocks.append(Block(start, end, code=True))
            covered.update(range(first, last))
        elif token.type == "paragraph_open" and not covered.intersection(range(first, last)):
            blocks.append(Block(*span(first, last), code=False))
            covered.update(range(first, last))
        elif token.type == "tr_open":
            blocks.append(Block(*span(first, last), code=False))
            covered.update(range(first, last))
    for number in range(len(starts)):  # what markdown-it left out (front matter, html, rules): a line each
        if number not in covered:
            blocks.append(Block(*span(number, number + 1), code=False))
    blocks = [b for b in sorted(blocks, key=lambda b: b.start) if text[b.start:b.end].strip()]
    return Structure(tuple(sections), tuple(code), tuple(blocks))


# Plain text ------------------------------------------------------------------------------------

_FENCE = re.compile(r"^ {0,3}(```+|~~~+)")


def fenced_code(text: str) -> tuple[tuple[int, int], ...]:
    """``` or ~~~ fenced blocks in plain text (people paste them into notes and mails too)."""
    found, opened, offset = [], None, 0
    for line in text.split("\n"):
        match = _FENCE.match(line)
        if match and opened is None:
            opened = (offset, match.group(1)[0])
        elif match and opened and match.group(1)[0] == opened[1]:
            found.append((opened[0], offset + len(line)))
            opened = None
        offset += len(line) + 1
    return tuple(found)


WRAP_WIDTH = 160  # a block whose longest line is longer is not hard-wrapped: each line is a paragraph
FULL_LINE = 0.6  # a line filled to this share of its block's width continues on the next
_LIST_ITEM = re.compile(r"^\s*(?:[-*+•▪◦‣–]\s|\(?(?:\d{1,3}|[a-zA-Z]|[ivxIVX]{1,4})[.)]\s)")
_TABLE_ROW = re.compile(r"^\s*\|.*\||\S\s+\|\s+\S")


def _line_starts(text: str) -> list[int]:
    starts, offset = [], 0
    for line in text.split("\n"):
        starts.append(offset)
        offset += len(line) + 1
    return starts


def _plain_blocks(text: str, code: tuple[tuple[int, int], ...], one_per_line: bool) -> Iterator[Block]:
    """Blocks of prose and code. Code spans are blocks of their own; between them, lines go into
    paragraphs (blank lines end one) and each paragraph is cut where a line is not a wrap."""
    cursor = 0
    for start, end in sorted(code):
        yield from _prose_blocks(text, cursor, start, one_per_line)
        if text[start:end].strip():
            yield Block(start, end, code=True)
        cursor = max(cursor, end)
    yield from _prose_blocks(text, cursor, len(text), one_per_line)


def _prose_blocks(text: str, begin: int, stop: int, one_per_line: bool) -> Iterator[Block]:
    paragraph: list[tuple[int, str]] = []
    offset = begin
    for line in text[begin:stop].split("\n"):
        if line.strip():
            paragraph.append((offset, line))
        elif paragraph:
            yield from _cut_paragraph(paragraph, one_per_line)
            paragraph = []
        offset += len(line) + 1
    if paragraph:
        yield from _cut_paragraph(paragraph, one_per_line)


def _cut_paragraph(lines: list[tuple[int, str]], one_per_line: bool) -> Iterator[Block]:
    width = max(len(line.rstrip()) for _, line in lines)
    wrapped = not one_per_line and len(lines) > 1 and width <= WRAP_WIDTH
    first = 0
    for i in range(len(lines)):
        last = i == len(lines) - 1
        if last or not (wrapped and _continues(lines[i][1], lines[i + 1][1], width)):
            start = lines[first][0]
            end = lines[i][0] + len(lines[i][1].rstrip())
            yield Block(start, end, code=False)
            first = i + 1


_ENDS_SENTENCE = re.compile(r"[.!?:;][\"'”’)\]]*\s*$")


def _continues(line: str, following: str, width: int) -> bool:
    """A hard wrap: the line is filled to the block's width and ends mid-sentence, and the next is no
    list item or table row. (A line that ends a sentence ends a block: that costs nothing when it was a
    wrap, and keeps one-paragraph-a-line text apart when its lines happen to be short.)"""
    return (len(line.rstrip()) >= FULL_LINE * width and not _ENDS_SENTENCE.search(line)
            and not _LIST_ITEM.match(following) and not _TABLE_ROW.search(following) and not _TABLE_ROW.search(line))


_SENTENCE_END = tuple(".?!:;,\"'”’)")


def _plain_headings(text: str, blocks: tuple[Block, ...]) -> Iterator[Section]:
    """Short one-line blocks of prose without closing punctuation, after the first line (the title)."""
    first_line_end = text.find("\n") if "\n" in text else len(text)
    for block in blocks:
        line = text[block.start:block.end].strip()
        if (not block.code and "\n" not in line and block.start > first_line_end and len(line) <= 100
                and len(line.split()) <= 14 and not line.endswith(_SENTENCE_END) and not line[0].isdigit()
                and not _LIST_ITEM.match(line) and not _TABLE_ROW.search(line)):
            yield Section(block.start, 1, one_line(line))


# Metadata checks ---------------------------------------------------------------------------------

def structure_problem(metadata: dict[str, Any], text_length: int) -> str | None:
    """What is wrong with ``sections`` or ``code`` in a document's metadata (None when nothing is)."""
    sections = metadata.get("sections")
    if sections is not None:
        if not isinstance(sections, list) or not all(
                isinstance(s, list) and len(s) == 3 and _whole(s[0]) and _whole(s[1]) and 1 <= s[1] <= 6
                and isinstance(s[2], str) and "\n" not in s[2] and s[0] <= text_length for s in sections) \
                or any(b[0] < a[0] for a, b in zip(sections, sections[1:])):
            return ("metadata.sections must be a list of [start, level 1-6, one-line title], ascending by start, "
                    "within the text")
    code = metadata.get("code")
    if code is not None:
        if not isinstance(code, list) or not all(
                isinstance(c, list) and len(c) == 2 and _whole(c[0]) and _whole(c[1]) and c[0] <= c[1] <= text_length
                for c in code) or any(b[0] < a[1] for a, b in zip(code, code[1:])):
            return "metadata.code must be a list of [start, end] spans, ascending, not overlapping, within the text"
    return None


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def code_within(code: Any, start: int, end: int) -> list[dict[str, int]]:
    """The parts of a document's code spans inside [start, end), for showing them as code.

    Spans were checked when the document came in; a bad stored value shows no code, never an error.
    """
    try:
        index = max(0, bisect_right([a for a, _ in code], start) - 1) if code else 0
        found = []
        for a, b in (code or ())[index:]:
            if a >= end:
                break
            if b > start:
                found.append({"start": int(max(a, start)), "end": int(min(b, end))})
        return found
    except (TypeError, ValueError):
        return []
