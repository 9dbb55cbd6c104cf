"""The one result type: the CLI, the JSON API and the page all render a list of Hit (its JSON: kb/schemas.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kb.schemas import Result


@dataclass
class Hit:
    rank: int
    score: float  # the score the results are ordered by (fused in hybrid mode)
    passage_id: str
    doc_id: str
    title: str
    source: str
    text: str
    start: int
    end: int
    ordinal: int  # the passage's position in its document, from 0
    doc_passages: int  # how many passages the document has
    doc_length: int  # characters in the document
    heading: str = ""  # the section the passage falls under (the innermost of ``headings``)
    headings: list[str] = field(default_factory=list)  # the heading path, outermost first
    code: list[dict[str, int]] = field(default_factory=list)  # {start, end}: code in the passage, shown as written
    scores: dict[str, float] = field(default_factory=dict)  # dense, keyword, fused
    ranks: dict[str, int | None] = field(default_factory=dict)  # rank in the dense and keyword lists
    confident: bool = False
    highlights: list[dict[str, Any]] = field(default_factory=list)  # {start, end, score}: answering sentences
    terms: list[dict[str, Any]] = field(default_factory=list)  # {start, end, term}: query words found
    metadata: dict[str, Any] = field(default_factory=dict)  # the document's (date, author, ...), and pages for PDFs

    def position(self) -> str:
        """Where the passage stands in its document, for people."""
        first = round(100 * self.start / self.doc_length) if self.doc_length else 0
        last = round(100 * self.end / self.doc_length) if self.doc_length else 0
        return (
            f"passage {self.ordinal + 1} of {self.doc_passages}, "
            f"characters {self.start:,}\u2013{self.end:,} of {self.doc_length:,} ({first}\u2013{last}%)"
        )

    def to_dict(self) -> dict[str, Any]:
        """The result as kb answers it. Its fields, their order and types are kb/schemas.py's ``Result`` (a test
        validates this against it); the values are made here, without validating each one on the query path."""
        values = {
            "rank": self.rank, "score": round(self.score, 6), "text": self.text, "doc_id": self.doc_id,
            "passage_id": self.passage_id, "title": self.title, "source": self.source, "start": self.start,
            "end": self.end, "heading": self.heading, "headings": self.headings, "code": self.code,
            "passage": {"ordinal": self.ordinal, "of": self.doc_passages, "doc_length": self.doc_length},
            "scores": {name: round(value, 6) for name, value in self.scores.items()}, "ranks": self.ranks,
            "confident": self.confident, "highlights": self.highlights, "terms": self.terms, "metadata": self.metadata,
        }
        return {name: values[name] for name in Result.model_fields}
