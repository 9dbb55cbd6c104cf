"""Passage text as HTML with its answering sentences and matched query words marked (escaped)."""

from __future__ import annotations

from itertools import groupby

from markupsafe import Markup, escape

from kb.hit import Hit


def _flags(hit: Hit, spans: list[dict]) -> list[bool]:
    flags = [False] * len(hit.text)
    for span in spans:
        for i in range(max(0, span["start"] - hit.start), min(len(flags), span["end"] - hit.start)):
            flags[i] = True
    return flags


def _runs(flags: list[bool], begin: int, end: int):
    """(start, end, flag) runs of equal flags within [begin, end)."""
    position = begin
    for flag, group in groupby(flags[begin:end]):
        size = len(list(group))
        yield position, position + size, flag
        position += size


def marked_passage(hit: Hit) -> Markup:
    """``<mark class="answer">`` around highlighted sentences, ``<strong class="term">`` around query words."""
    sentence, term = _flags(hit, hit.highlights), _flags(hit, hit.terms)
    pieces: list[str] = []
    for start, end, in_sentence in _runs(sentence, 0, len(hit.text)):
        inner = "".join(
            f'<strong class="term">{escape(hit.text[s:e])}</strong>' if is_term else str(escape(hit.text[s:e]))
            for s, e, is_term in _runs(term, start, end)
        )
        pieces.append(f'<mark class="answer">{inner}</mark>' if in_sentence else inner)
    return Markup("".join(pieces))
