"""The API's request and response shapes, as pydantic models.

One source for two things: the handlers validate every request with these models, and
/openapi.json is generated from them (web/openapi.py), so the published contract and the
behaviour cannot drift apart. Field validators delegate to the checks in web/params.py and
kb.readers, which raise ApiError with a specific code (`k_out_of_range`, `blank_query`, ...);
pydantic lets those through unchanged, and anything pydantic itself refuses becomes a 400
naming the field (see `validated`).
"""

from __future__ import annotations

from typing import Any, Literal, Optional, TypeVar, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from kb.filters import DATE_PATTERN, check_date
from kb.ingest import ID_PATTERN
from kb.readers import UnreadableDocument, parse_record
from kb.search import DEFAULT_K, MAX_K, MAX_OFFSET, MAX_QUERY_CHARS
from web.errors import ApiError
from web.params import parse_filters_json, parse_k, parse_mode, parse_offset, parse_query

Mode = Literal["hybrid", "dense", "keyword"]
MAX_PER_PAGE = 100

Model = TypeVar("Model", bound=BaseModel)
# What str.strip() removes, spelled out: regex engines disagree on \s (\x1c-\x1f, \x85, \ufeff),
# and parse_query calls a query of only these blank.
_SPACES = "".join(f"\\u{ord(c):04x}" for c in map(chr, range(0x3001)) if c.isspace())


def validated(model: type[Model], data: Any, **context: Any) -> Model:
    """``model`` validated from ``data``; every refusal is an ApiError (400 unless a check says otherwise)."""
    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"]) or "the body"
        if error["type"] == "missing":
            if where == "q":
                raise ApiError(400, "missing_query", "the query parameter q is required") from None
            raise ApiError(400, "missing_field", f"{where} is required") from None
        if error["type"] == "extra_forbidden":
            allowed = ", ".join(model.model_fields)
            raise ApiError(400, "unknown_field", f"unknown field {where!r}; allowed: {allowed}") from None
        raise ApiError(400, "invalid_parameter", f"{where}: {error['msg']}") from None


# ---- requests -------------------------------------------------------------------------------

class _Search(BaseModel):
    q: str = Field(min_length=1, max_length=MAX_QUERY_CHARS, pattern=rf"^[^\x00]*[^\x00{_SPACES}][^\x00]*$",
                   description="The question, in plain words: not blank, no NUL characters.")
    k: Optional[int] = Field(DEFAULT_K, ge=1, le=MAX_K, description="How many passages to return (null: the default).")
    mode: Optional[Mode] = Field(None, description="hybrid, dense or keyword; the server's KB_SEARCH_MODE when left out.")
    offset: Optional[int] = Field(0, ge=0, le=MAX_OFFSET, description=(
        "Ranked passages to skip: the next page of the same ranking starts at the answer's next_offset."))

    @field_validator("q", mode="before")
    @classmethod
    def _q(cls, raw: Any) -> str:
        return parse_query(raw)

    @field_validator("k", mode="before")
    @classmethod
    def _k(cls, raw: Any, info: ValidationInfo) -> int:
        return parse_k(raw, from_json=bool(info.context and info.context.get("json")))

    @field_validator("offset", mode="before")
    @classmethod
    def _offset(cls, raw: Any, info: ValidationInfo) -> int:
        return parse_offset(raw, from_json=bool(info.context and info.context.get("json")))

    @field_validator("mode", mode="before")
    @classmethod
    def _mode(cls, raw: Any) -> str | None:
        if raw == "":  # the page's form may send an empty mode; the API names one or leaves it out
            raise ApiError(400, "invalid_mode", "mode must be one of hybrid, dense, keyword (or left out), got ''")
        return parse_mode(raw)


class SearchQuery(_Search):
    """GET /api/search. Metadata filters are further parameters named filter.KEY (e.g. filter.author=Smith)."""

    model_config = ConfigDict(extra="ignore")
    doc_id: list[str] = Field(default_factory=list, description="Only these documents (repeatable).")
    source: list[str] = Field(default_factory=list, description="Only documents from these sources (repeatable).")
    date_from: Optional[str] = Field(None, pattern=DATE_PATTERN, description="Only documents dated on or after (YYYY-MM-DD).")
    date_to: Optional[str] = Field(None, pattern=DATE_PATTERN, description="Only documents dated on or before.")

    @field_validator("date_from", "date_to", mode="before")
    @classmethod
    def _date(cls, raw: Any, info: ValidationInfo) -> Any:
        if isinstance(raw, str):
            try:
                check_date(info.field_name, raw)  # the rule and message Filters itself uses
            except ValueError as exc:
                raise ApiError(400, "invalid_date", str(exc)) from None
        return raw


class SearchFilters(BaseModel):
    model_config = ConfigDict(extra="forbid")
    doc_id: Union[str, list[str], None] = None
    source: Union[str, list[str], None] = None
    metadata: Optional[dict[str, Union[str, int, float, bool]]] = None
    date_from: Optional[str] = Field(None, pattern=DATE_PATTERN)
    date_to: Optional[str] = Field(None, pattern=DATE_PATTERN)


class SearchBody(_Search):
    """POST /api/search."""

    model_config = ConfigDict(extra="forbid")
    filters: Optional[SearchFilters] = None

    @field_validator("filters", mode="before")
    @classmethod
    def _filters(cls, raw: Any) -> Any:
        parse_filters_json(raw)  # kb's own checks and error codes first
        return raw

    def to_filters(self):
        return parse_filters_json(self.filters.model_dump(exclude_none=True) if self.filters else None)


class DocumentBody(BaseModel):
    """POST /api/documents as JSON: one document. An existing id is replaced."""

    model_config = ConfigDict(extra="forbid")
    id: Optional[str] = Field(None, pattern=ID_PATTERN,
                              description="Letters, digits, '.', '_' and '-' (no '..'); made from the title when left out.")
    title: Optional[str] = Field(None, description="Made from the first line of the text when left out.")
    text: str = Field(min_length=1, description="The document's text (plain text or Markdown).")
    source: Optional[str] = None
    date: Optional[str] = Field(None, description="For date filters, e.g. 2025-06-01.")
    metadata: Optional[dict[str, Any]] = None

    @model_validator(mode="before")
    @classmethod
    def _record(cls, raw: Any) -> Any:
        try:
            parse_record(raw, "the document")  # the same checks the corpus's .jsonl files get
        except UnreadableDocument as exc:
            raise ApiError(400, "invalid_document", str(exc)) from None
        return raw


class DocumentPage(BaseModel):
    """GET /api/documents."""

    model_config = ConfigDict(extra="ignore")
    page: int = Field(1, ge=1, le=10**9)
    per_page: int = Field(20, ge=1, le=MAX_PER_PAGE)

    @field_validator("page", "per_page", mode="before")
    @classmethod
    def _whole(cls, raw: Any, info: ValidationInfo) -> Any:
        if raw is None:
            return cls.model_fields[info.field_name].default
        most = 10**9 if info.field_name == "page" else MAX_PER_PAGE
        if not isinstance(raw, str) or not raw.isascii() or not raw.isdigit() or len(raw) > 10 or not 1 <= int(raw) <= most:
            raise ApiError(400, f"invalid_{info.field_name}", f"{info.field_name} must be a whole number from 1 to {most}")
        return int(raw)


# ---- responses (published in the spec; schemathesis checks the server against them) ---------

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


class Health(BaseModel):
    status: str = Field(description="ok; or, with status 503, loading or failed.")
    passages: Optional[int] = None
    documents: Optional[int] = None
    model: Optional[str] = None
    message: Optional[str] = None


class DocumentBrief(BaseModel):
    id: str
    title: str
    source: str
    passages: int
    characters: int
    metadata: dict[str, Any]


class DocumentFull(DocumentBrief):
    text: str


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


class StoredDocument(BaseModel):
    id: str
    title: Optional[str] = None
    source: Optional[str] = None
    path: Optional[str] = None
    passages: Optional[int] = None


class Added(BaseModel):
    document: Optional[StoredDocument] = None
    documents: Optional[list[StoredDocument]] = None
    index: IndexSummary


class Deleted(BaseModel):
    deleted: str
    index: IndexSummary


RESPONSE_MODELS = (Error, SearchAnswer, Health, DocumentList, DocumentFull, Added, Deleted)
REQUEST_MODELS = (SearchBody, DocumentBody)
