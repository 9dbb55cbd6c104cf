"""Sentences, found inside a document's blocks of prose with hard wraps joined; code blocks whole.

pysbd reads each block with its line breaks as spaces (and a word hyphenated across a line end
joined), and every span found is mapped back to the original text, so ``text[start:end]`` of a
sentence is always the sentence as written, line breaks and all.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass

import pysbd

from kb.documents.structure import Structure

_local = threading.local()
_NON_SPACE = re.compile(r"\S")
MAX_LINE_CHARS = 2000  # pysbd's time grows faster than the line: 7-17 s a MB in 2 KB pieces, 47 s in 20 KB ones
_CUT_AFTER = re.compile(r"[.!?][\"')\]]*\s+")
_SPACE = re.compile(r"\s+")
_QUOTE_MARKS = re.compile(r"[ \t]*(?:>[ \t]?)*")
_HYPHENATED = re.compile(r"[^\W\d_]-$")


@dataclass(frozen=True)
class Unit:
    """A sentence, or a whole code block: the smallest span a passage is made of."""

    start: int
    end: int
    code: bool = False


def units(text: str, structure: Structure) -> list[Unit]:
    found: list[Unit] = []
    for block in structure.blocks:
        if block.code:
            piece = text[block.start:block.end]
            first = _NON_SPACE.search(piece)
            if first:
                found.append(Unit(block.start + first.start(), block.start + len(piece.rstrip()), code=True))
        else:
            found.extend(Unit(s, e) for s, e in prose_sentences(text, block.start, block.end))
    return found


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence of a plain text, every line break a sentence break (as the
    text of one line, or of one passage, has no structure of its own to go by)."""
    spans, offset = [], 0
    for line in text.split("\n"):
        if line.strip():
            spans.extend(prose_sentences(text, offset, offset + len(line)))
        offset += len(line) + 1
    return spans


def prose_sentences(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Sentences of text[start:end], its line breaks read as spaces; spans in the original text."""
    joined, where = _join_lines(text, start, end)
    spans = []
    for begin, stop in _windows(joined):
        if joined[begin:stop].strip():
            for s, e in _line_sentences(joined[begin:stop]):
                spans.append((where[begin + s], where[begin + e - 1] + 1))
    return spans


def _join_lines(text: str, start: int, end: int) -> tuple[str, list[int]]:
    """The block as one line, and for each of its characters the offset it came from.

    A line break becomes a space; the next line's indentation and quote marks ('>') are dropped;
    a word hyphenated at a line end loses its hyphen ("inter-" + "national").
    """
    parts: list[str] = []
    where: list[int] = []
    offset = start
    for number, line in enumerate(text[start:end].split("\n")):
        skip = 0
        if number:
            skip = _QUOTE_MARKS.match(line).end()  # type: ignore[union-attr]
            if parts and _HYPHENATED.search(parts[-1]) and line[skip:skip + 1].islower():
                parts[-1] = parts[-1][:-1]
                where.pop()
            else:
                parts.append(" ")
                where.append(offset - 1)
        body = line[skip:]
        parts.append(body)
        where.extend(range(offset + skip, offset + len(line)))
        offset += len(line) + 1
    return "".join(parts), where


def _segmenter() -> pysbd.Segmenter:
    # pysbd keeps per-call state on the segmenter, so each thread gets its own.
    seg = getattr(_local, "segmenter", None)
    if seg is None:
        seg = _local.segmenter = pysbd.Segmenter(language="en", clean=False)
    return seg


def _windows(line: str, limit: int = MAX_LINE_CHARS) -> list[tuple[int, int]]:
    """(start, end) pieces of a line, each at most ``limit`` characters, cut after a sentence's end
    where there is one (else at a space, else anywhere), so a megabyte on one line costs seconds."""
    pieces, start = [], 0
    while len(line) - start > limit:
        window = line[start : start + limit]
        cuts = [m.end() for m in _CUT_AFTER.finditer(window)] or [m.end() for m in _SPACE.finditer(window)]
        cut = start + (cuts[-1] if cuts and cuts[-1] > limit // 4 else limit)
        pieces.append((start, cut))
        start = cut
    pieces.append((start, len(line)))
    return pieces


def _line_sentences(line: str) -> list[tuple[int, int]]:
    first = _NON_SPACE.search(line).start()  # type: ignore[union-attr]
    last = len(line.rstrip())
    boundaries = [first]
    try:
        segments = _segmenter().segment(line[first:last])
    except Exception:  # pysbd's regexes can fail on odd input; then the line is one sentence
        segments = []
    cursor = first
    for segment in segments:
        piece = segment.strip()
        if not piece:
            continue
        pos = line.find(piece, cursor, last)
        if pos < 0:
            continue  # pysbd altered the text; keep the boundary we have rather than guess
        if pos > boundaries[-1]:
            boundaries.append(pos)
        cursor = pos + len(piece)
    boundaries.append(last)
    spans = []
    for start, end in zip(boundaries, boundaries[1:]):
        end = start + len(line[start:end].rstrip())
        if end > start:
            spans.append((start, end))
    return spans
