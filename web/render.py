"""Passage text as HTML with its answering sentences and matched query words marked (escaped)."""

from __future__ import annotations

from itertools import groupby

from markupsafe import Markup, escape

from kb.documents.structure import code_within
from kb.search.hit import Hit


def _flags(length: int, offset: int, spans) -> list[bool]:
    """Which characters of a text of ``length`` that starts at ``offset`` fall in any (start, end) span."""
    flags = [False] * length
    for start, end in spans:
        for i in range(max(0, start - offset), min(length, end - offset)):
            flags[i] = True
    return flags


def _pairs(spans: list[dict]) -> list[tuple[int, int]]:
    return [(span["start"], span["end"]) for span in spans]


def _runs(flags: list[bool], begin: int, end: int):
    """(start, end, flag) runs of equal flags within [begin, end)."""
    position = begin
    for flag, group in groupby(flags[begin:end]):
        size = len(list(group))
        yield position, position + size, flag
        position += size


def marked_passage(hit: Hit) -> Markup:
    """``<mark class="answer">`` around highlighted sentences, ``<strong class="term">`` around query words,
    and ``<code class="block">`` around code (shown with its line breaks and indentation)."""
    return marked_text(hit.text, hit.start, hit.highlights, hit.terms, hit.code)


def marked_text(text: str, offset: int, sentences, words, code) -> Markup:
    """``text`` (which starts at ``offset`` of its document) as HTML, with the spans ({start, end} at
    document offsets) of answering ``sentences``, query ``words`` and ``code`` marked; parts outside are ignored."""
    sentence, term, in_code_flags = (_flags(len(text), offset, _pairs(spans)) for spans in (sentences, words, code))
    pieces: list[str] = []
    for begin, stop, in_code in _runs(in_code_flags, 0, len(text)):
        part: list[str] = []
        for start, end, in_sentence in _runs(sentence, begin, stop):
            inner = "".join(
                f'<strong class="term">{escape(text[s:e])}</strong>' if is_term else str(escape(text[s:e]))
                for s, e, is_term in _runs(term, start, end)
            )
            part.append(f'<mark class="answer">{inner}</mark>' if in_sentence else inner)
        pieces.append(f'<code class="block">{"".join(part)}</code>' if in_code else "".join(part))
    return Markup("".join(pieces))


def with_code(text: str, offset: int, code: list[tuple[int, int]] | None, sentences=()) -> Markup:
    """``text`` (which starts at ``offset`` of its document) with the document's code spans in ``<code class="block">``
    and any answering ``sentences`` marked."""
    return marked_text(text, offset, sentences, (), code_within(code, offset, offset + len(text)))
