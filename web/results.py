"""Results as shown on the page: a passage that overlaps one shown above it is trimmed to what is new.

Passages of one document overlap (each starts a sentence or two before the last one ends), so two
of them in a list repeat sentences. In rank order, each hit is cut to the part of its span that no
higher-ranked hit of the same document has shown; a hit with nothing new left points at the one
that showed it. The API keeps whole passages: this is for people reading a list.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Iterable

from kb.search.hit import Hit

MAX_MARKS = 20  # answering sentences a document link may mark


@dataclass
class Shown:
    hit: Hit  # the whole passage: its link and position
    view: Hit  # what is drawn: the hit, or a copy cut to its new text (spans outside it are simply not drawn)
    cut_before: bool = False  # text before ``hit.start`` was shown by a higher result
    cut_after: bool = False  # text after ``hit.end`` was shown by a higher result
    shown_by: int | None = None  # when all of it was shown above: the rank that showed it

    @property
    def marks(self) -> str:
        """The answering sentences as the document link's ``hl`` ("start-end,..."; ``read_marks`` reads it)."""
        return ",".join(f"{span['start']}-{span['end']}" for span in self.hit.highlights)


def read_marks(raw: str | None, start: int, end: int) -> list[dict[str, int]]:
    """Answering sentences from a document link's ``hl``, kept to the cited passage [start, end); anything else is ignored."""
    marks = []
    for pair in (raw or "").split(",")[:MAX_MARKS]:
        low, _, high = pair.partition("-")
        if low.isdigit() and high.isdigit() and start <= int(low) < int(high) <= end:
            marks.append({"start": int(low), "end": int(high)})
    return marks


def _new_pieces(hit: Hit, shown: list[tuple[int, int, int]]) -> list[tuple[int, int]]:
    """The pieces of the hit's span outside every shown (start, end, rank), in order, without their
    outer white space; pieces of nothing but white space are left out."""
    pieces, position = [], hit.start
    for low, high, _ in sorted(shown) + [(hit.end, hit.end, 0)]:
        if high <= position or low > hit.end:
            continue
        if low > position:
            text = hit.text[position - hit.start : low - hit.start]
            if text.strip():
                pieces.append((position + len(text) - len(text.lstrip()), low - len(text) + len(text.rstrip())))
        position = max(position, high)
    return pieces


def shown_results(hits: Iterable[Hit], above: Iterable[Hit] = ()) -> list[Shown]:
    """``hits`` (best first) as shown under ``above`` (the hits of earlier pages, already on screen).

    The longest new piece of each hit is kept; spans are ranges of the document, so its highlights
    and marked words stay where they are.
    """
    shown: dict[str, list[tuple[int, int, int]]] = {}
    for hit in above:
        shown.setdefault(hit.doc_id, []).append((hit.start, hit.end, hit.rank))
    results = []
    for hit in hits:
        spans = shown.setdefault(hit.doc_id, [])
        pieces = _new_pieces(hit, spans)
        shown_by = next((r for s, e, r in spans if s < hit.end and hit.start < e), None)
        if not pieces and shown_by is not None:
            results.append(Shown(hit, hit, shown_by=shown_by))
        elif not pieces or pieces == [(hit.start, hit.end)]:
            results.append(Shown(hit, hit))
        else:
            start, end = max(pieces, key=lambda piece: piece[1] - piece[0])
            view = replace(hit, text=hit.text[start - hit.start : end - hit.start], start=start, end=end)
            results.append(Shown(hit, view, cut_before=start > hit.start, cut_after=end < hit.end))
        spans.append((hit.start, hit.end, hit.rank))
    return results
