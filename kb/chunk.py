"""Split a document into passages of whole sentences, sized in the model's own tokens.

Every passage is a span of the document: ``document.text[p.start:p.end] == p.text`` holds
by construction, because passages are cut from sentence spans found in the original
text, never re-joined from cleaned-up pieces (which is how offsets drift elsewhere).
A sentence is cut only when it alone is longer than the limit.
"""

from __future__ import annotations

import hashlib
import re
import threading
from dataclasses import dataclass
from typing import Callable, Iterable

import pysbd

TokenCounter = Callable[[str], int]

_local = threading.local()
_NON_SPACE = re.compile(r"\S")


@dataclass(frozen=True)
class Passage:
    id: str
    doc_id: str
    ordinal: int
    text: str
    start: int
    end: int
    heading: str = ""  # the section heading the passage falls under, if the document has one


_MD_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.+?)\s*#*\s*$")
_SENTENCE_END = tuple(".?!:;,\"'”’)")


def headings(text: str, markdown: bool = False) -> list[tuple[int, str]]:
    """(offset, heading) of each section heading: Markdown '#' lines, or short lines
    without closing punctuation after the first line (how plain-text articles set headings)."""
    found = []
    offset = 0
    for number, line in enumerate(text.split("\n")):
        stripped = line.strip()
        match = _MD_HEADING.match(line) if markdown else None
        if match:
            found.append((offset, match.group(1)))
        elif (not markdown and number > 0 and stripped and len(stripped) <= 100
              and len(stripped.split()) <= 14 and not stripped.endswith(_SENTENCE_END)
              and not stripped[0].isdigit()):
            found.append((offset, stripped))
        offset += len(line) + 1
    return found


def heading_at(sections: list[tuple[int, str]], position: int) -> str:
    """The last heading that starts at or before ``position``."""
    current = ""
    for offset, heading in sections:
        if offset > position:
            break
        current = heading
    return current


def passage_id(doc_id: str, start: int, end: int, text: str) -> str:
    digest = hashlib.sha1(f"{doc_id}\0{start}\0{end}\0{text}".encode("utf-8")).hexdigest()[:16]
    return f"{doc_id}:{digest}"


def _segmenter() -> pysbd.Segmenter:
    # pysbd keeps per-call state on the segmenter, so each thread gets its own.
    seg = getattr(_local, "segmenter", None)
    if seg is None:
        seg = _local.segmenter = pysbd.Segmenter(language="en", clean=False)
    return seg


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence, in order, trimmed of surrounding white space.

    Lines are split first (headings and list items have no full stop), then pysbd splits
    each line. The spans partition every non-space character of the text.
    """
    spans: list[tuple[int, int]] = []
    offset = 0
    for line in text.split("\n"):
        for begin, end in _windows(line):
            if line[begin:end].strip():
                spans.extend((offset + begin + s, offset + begin + e) for s, e in _line_sentences(line[begin:end]))
        offset += len(line) + 1
    return spans


MAX_LINE_CHARS = 2000  # pysbd's time grows faster than the line: 7-17 s a MB in 2 KB pieces, 47 s in 20 KB ones
_CUT_AFTER = re.compile(r"[.!?][\"')\]]*\s+")
_SPACE = re.compile(r"\s+")


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


def split_long(text: str, start: int, end: int, count: TokenCounter, limit: int) -> list[tuple[int, int]]:
    """Cut text[start:end] into spans of at most ``limit`` tokens, at white space where possible."""
    pieces: list[tuple[int, int]] = []
    while start < end:
        if count(text[start:end]) <= limit:
            pieces.append((start, end))
            break
        cuts = [m.start() for m in re.finditer(r"\s+", text[start:end])]
        cuts = [start + c for c in cuts if c > 0] or list(range(start + 1, end))
        lo, hi, best = 0, len(cuts) - 1, None
        while lo <= hi:  # largest cut whose prefix fits
            mid = (lo + hi) // 2
            if count(text[start : cuts[mid]]) <= limit:
                best, lo = mid, mid + 1
            else:
                hi = mid - 1
        if best is None:
            # Even the shortest white-space prefix is too long: cut inside the word.
            cuts = list(range(start + 1, cuts[0] + 1))
            best = 0
            for i, cut in enumerate(cuts):
                if count(text[start:cut]) > limit:
                    break
                best = i
        cut = cuts[best]
        pieces.append((start, cut))
        match = _NON_SPACE.search(text, cut, end)
        start = match.start() if match else end
    return pieces


def chunk_text(
    doc_id: str,
    text: str,
    count: TokenCounter,
    limit: int,
    overlap: int = 0,
    sections: list[tuple[int, str]] | None = None,
) -> list[Passage]:
    """Pack whole sentences into passages of at most ``limit`` tokens.

    Consecutive passages share up to ``overlap`` tokens of whole trailing sentences. Each
    passage records the heading from ``sections`` that it falls under.
    """
    if limit < 1:
        raise ValueError("limit must be at least 1 token")
    overlap = max(0, min(overlap, limit - 1))
    sentences: list[tuple[int, int]] = []
    tokens: list[int] = []
    for start, end in sentence_spans(text):
        n = count(text[start:end])
        if n <= limit:
            sentences.append((start, end))
            tokens.append(n)
        else:
            for s, e in split_long(text, start, end, count, limit):
                sentences.append((s, e))
                tokens.append(count(text[s:e]))
    return [
        Passage(passage_id(doc_id, s, e, text[s:e]), doc_id, ordinal, text[s:e], s, e, heading_at(sections or [], s))
        for ordinal, (s, e) in enumerate(_pack(text, sentences, tokens, count, limit, overlap))
    ]


def _pack(
    text: str,
    sentences: list[tuple[int, int]],
    tokens: list[int],
    count: TokenCounter,
    limit: int,
    overlap: int,
) -> Iterable[tuple[int, int]]:
    n = len(sentences)
    i = 0
    while i < n:
        j, total = i, tokens[i]
        while j + 1 < n and total + tokens[j + 1] <= limit:
            j += 1
            total += tokens[j]
        # Token counts of joined sentences are nearly additive; check the real span and shrink if not.
        while j > i and count(text[sentences[i][0] : sentences[j][1]]) > limit:
            j -= 1
        yield sentences[i][0], sentences[j][1]
        if j == n - 1:
            break
        k, carried = j + 1, 0
        while k - 1 > i and carried + tokens[k - 1] <= overlap:
            k -= 1
            carried += tokens[k]
        while k <= j and carried + tokens[j + 1] > limit:
            carried -= tokens[k]
            k += 1
        i = k
