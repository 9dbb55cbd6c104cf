"""The JSON shapes of kb's answers, as pydantic models: one home for them.

The search answer and its results, a document and a page of them, what a write did, health and errors.
`kb search --json` prints them, the HTTP API answers with them and publishes them in its OpenAPI description
(web/openapi.py; schemathesis checks the server against it), and ``Hit`` and ``Answer`` (kb/search) produce
their JSON through them, so the shape is declared once.
"""

from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import BaseModel, Field

Mode = Literal["hybrid", "dense", "keyword"]


class ErrorDetail(BaseModel):
    code: str = Field(description="Machine-readable, e.g. k_out_of_range.")
    message: str = Field(description="One sentence for people.")


class Error(BaseModel):
    error: ErrorDetail


class Span(BaseModel):
    start: int
    end: int


class Highlight(Span):
    score: float = Field(description="Cosine of the sentence to the question.")


class Term(Span):
    term: str


class PassagePosition(BaseModel):
    ordinal: int = Field(description="Position of the passage in its document, from 0.")
    of: int = Field(description="Passages in the document.")
    doc_length: int = Field(description="Characters in the document.")


class Result(BaseModel):
    rank: int
    score: float = Field(description="The score results are ordered by (fused in hybrid mode).")
    text: str
    doc_id: str
    passage_id: str
    title: str
    source: str
    start: int = Field(description="Character offset of the passage in its document's text.")
    end: int
    heading: str = Field(description="The section the passage falls under: the last of headings, or empty.")
    headings: list[str] = Field(description="The heading path above the passage, outermost first.")
    code: list[Span] = Field(description="Code in the passage (absolute offsets), to show with its line breaks.")
    passage: PassagePosition
    scores: dict[str, float] = Field(description="dense (cosine), keyword (BM25) and, in hybrid mode, fused.")
    ranks: dict[str, Optional[int]]
    confident: bool = Field(description="Whether this passage clears KB_CONFIDENCE_THRESHOLD.")
    highlights: list[Highlight] = Field(description="Answering sentences, absolute offsets in the document.")
    terms: list[Term] = Field(description="Query words found, absolute offsets in the document.")
    metadata: dict[str, Any]

    def quote(self, span: Span) -> str:
        """The passage's text of a span given in document offsets (a highlight, a term)."""
        return self.text[span.start - self.start:span.end - self.start]


class SearchAnswer(BaseModel):
    query: str
    k: int
    offset: int = Field(description="Ranked passages skipped before these results (their ranks start at offset + 1).")
    next_offset: Optional[int] = Field(description="The offset of the next page; null when nothing is ranked after.")
    mode: Mode
    took_ms: float
    confident: bool = Field(description="False when no passage answers the question: a 'no good match'.")
    results: list[Result]
    filters: Optional[dict[str, Any]] = None


class SyncState(BaseModel):
    mode: str = Field(description="The folder watch: on (events), poll, off, or elsewhere (another process "
                                  "watches this store).")
    pending: Optional[int] = Field(None, description="Files changed and not yet in the index.")
    syncing: Optional[bool] = None
    done: Optional[int] = Field(None, description="The sync under way: documents written so far (a large sync, "
                                                  "embedded by the write worker) or passages embedded (a small one).")
    total: Optional[int] = Field(None, description="Of how many.")
    syncs: Optional[int] = None
    last_sync: Optional[str] = Field(None, description="When the last sync ended (UTC, ISO 8601).")
    last_error: Optional[str] = Field(None, description="Why the last sync failed; null once one succeeds.")
    last_report: Optional[str] = None


class Health(BaseModel):
    status: str = Field(description="ok; or, with status 503, loading or failed.")
    passages: Optional[int] = None
    documents: Optional[int] = None
    model: Optional[str] = None
    message: Optional[str] = None
    sync: Optional[SyncState] = Field(None, description="How the index keeps in step with the corpus folder.")


class DocumentBrief(BaseModel):
    id: str
    title: str
    source: str
    passages: int
    characters: int
    metadata: dict[str, Any]
    access: list[str] = Field(description="The groups that may read it; []: everyone who may read the knowledge base.")


class WindowPassage(BaseModel):
    ordinal: int = Field(description="Position of the passage in its document, from 0.")
    start: int = Field(description="Character offset of the passage in the document's text.")
    end: int
    text: str


class DocumentFull(DocumentBrief):
    text: str
    window: Optional[list[WindowPassage]] = Field(None, description=(
        "With `around`: the passage holding that character offset and `window` passages each side, in order."))


class DocumentList(BaseModel):
    page: int
    per_page: int
    total: int
    documents: list[DocumentBrief]


class IndexSummary(BaseModel):
    added: int
    changed: int
    removed: int
    unchanged: int
    passages_embedded: int
    passages: int


class WrittenDocument(BaseModel):
    id: str
    title: Optional[str] = None
    source: Optional[str] = None
    path: Optional[str] = None
    passages: Optional[int] = None


class Added(BaseModel):
    document: Optional[WrittenDocument] = None
    documents: Optional[list[WrittenDocument]] = None
    index: IndexSummary


class Deleted(BaseModel):
    deleted: str
    index: IndexSummary


# ---- insights (kb/insights/report.py) ----------------------------------------------------------------

class QueryGroup(BaseModel):
    query: str = Field(description="The group's most frequent wording.")
    count: int = Field(description="Searches in the group: its wordings differ in case, punctuation, word forms.")
    wordings: int
    unanswered: int = Field(description="Of them, searches with no confident answer.")
    last: str = Field(description="When it was last asked (UTC).")


class NearestPassage(BaseModel):
    doc_id: str
    title: str
    start: int
    end: int
    score: float
    text: Optional[str] = Field(description="The passage's text; null when the document is gone.")


class UnansweredGroup(BaseModel):
    query: str
    count: int = Field(description="Searches of the group with no confident answer.")
    last: str
    nearest: list[NearestPassage] = Field(description="The nearest passages of its latest search.")


class ClickStats(BaseModel):
    page_searches: int = Field(description="Questions asked on the search page (settled).")
    clicked_searches: int = Field(description="Of them, those after which a result was opened.")
    clicks: int
    click_through_rate: Optional[float] = Field(description="clicked_searches / page_searches; null with none.")
    mean_rank_clicked: Optional[float]


class CitedDocument(BaseModel):
    doc_id: str
    title: str
    count: int = Field(description="Searches it was among the results of.")


class DocumentRef(BaseModel):
    doc_id: str
    title: str


class NeverCited(BaseModel):
    count: int
    documents: list[DocumentRef] = Field(description="The first of them, by id.")


class DayCount(BaseModel):
    day: str
    queries: int
    unanswered: int


class Insights(BaseModel):
    days: int
    since: str
    until: str
    searches: int
    groups: int
    unanswered_searches: int
    top_queries: list[QueryGroup]
    unanswered: list[UnansweredGroup] = Field(description="Questions kb could not answer: documents to write.")
    clicks: ClickStats
    most_cited: list[CitedDocument]
    never_cited: NeverCited
    per_day: list[DayCount]


class EventKept(BaseModel):
    kept: bool = Field(description="False when the server holds no question with that id (or the log is off).")
