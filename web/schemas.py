"""The API's request and response shapes, as pydantic models.

One source for two things: the handlers validate every request with these models, and
/openapi.json is generated from them (web/openapi.py), so the published contract and the
behaviour cannot drift apart. Field validators delegate to the checks in web/params.py and
kb.documents.readers, which raise ApiError with a specific code (`k_out_of_range`, `blank_query`, ...);
pydantic lets those through unchanged, and anything pydantic itself refuses becomes a 400
naming the field (see `validated`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Optional, TypeVar, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    RootModel,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from kb.documents.document import ID_PATTERN
from kb.documents.readers import parse_record
from kb.errors import UnreadableDocument
from kb.insights.report import MAX_DAYS
from kb.schemas import (
    Added,
    Deleted,
    DocumentFull,
    DocumentList,
    Error,
    EventKept,
    Health,
    Insights,
    Mode,
    SearchAnswer,
)
from kb.search.pipeline import DEFAULT_K, MAX_K, MAX_OFFSET, MAX_QUERY_CHARS
from kb.settings import MODES
from kb.stores.filters import DATE_PATTERN, check_date
from web.errors import ApiError
from web.params import parse_filters_json

MAX_PER_PAGE = 100
MAX_WINDOW = 10  # passages each side of the one a document view is asked around

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
                raise ApiError("missing_query", "the query parameter q is required") from None
            raise ApiError("missing_field", f"{where} is required") from None
        if error["type"] == "extra_forbidden":
            allowed = ", ".join(model.model_fields)
            raise ApiError("unknown_field", f"unknown field {where!r}; allowed: {allowed}") from None
        raise ApiError("invalid_parameter", f"{where}: {error['msg']}") from None


# ---- the checks behind the fields (one home: the page and the API both validate with these models) ----

def parse_query(raw: Any) -> str:
    if raw is None:
        raise ApiError("missing_query", "the query parameter q is required")
    if not isinstance(raw, str):
        raise ApiError("invalid_query", f"q must be a string, got {type(raw).__name__}")
    if len(raw) > MAX_QUERY_CHARS:
        raise ApiError("query_too_long", f"q is {len(raw):,} characters; the limit is {MAX_QUERY_CHARS:,}")
    if "\x00" in raw:
        raise ApiError("invalid_query", "q must not contain NUL characters")
    if not raw.strip():
        raise ApiError("blank_query", "q is blank; type a question")
    return raw.strip()


def parse_k(raw: Any, from_json: bool = False) -> int:
    """k from a query string (digits) or a JSON body (a number, not a string)."""
    return DEFAULT_K if raw is None else _whole("k", raw, 1, MAX_K, from_json)


def parse_offset(raw: Any, from_json: bool = False) -> int:
    """How many ranked passages to skip ("more results"): 0 to MAX_OFFSET."""
    return 0 if raw is None else _whole("offset", raw, 0, MAX_OFFSET, from_json)


def _whole(name: str, raw: Any, low: int, high: int, from_json: bool) -> int:
    if from_json and isinstance(raw, float) and raw.is_integer() and abs(raw) < 2**53:
        raw = int(raw)  # JSON Schema counts 4.0 as an integer
    if isinstance(raw, bool) or not isinstance(raw, (int, str)) or (from_json and isinstance(raw, str)):
        raise ApiError(f"invalid_{name}", f"{name} must be a whole number from {low} to {high}, got {raw!r}")
    if isinstance(raw, str):
        text = raw.strip()
        if not text.isascii() or not text.lstrip("+-").isdigit() or len(text) > 12:
            raise ApiError(f"invalid_{name}", f"{name} must be a whole number from {low} to {high}, got {raw[:40]!r}")
        raw = int(text)
    if not low <= raw <= high:
        raise ApiError(f"{name}_out_of_range", f"{name} must be between {low} and {high}, got {raw}")
    return raw


def parse_mode(raw: Any) -> str | None:
    """None means the configured default (KB_SEARCH_MODE)."""
    if raw is None or raw == "":
        return None
    if raw not in MODES:
        shown = raw[:40] if isinstance(raw, str) else raw
        raise ApiError("invalid_mode", f"mode must be one of {', '.join(MODES)}, got {shown!r}")
    return raw


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
            raise ApiError("invalid_mode", "mode must be one of hybrid, dense, keyword (or left out), got ''")
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
                raise ApiError("invalid_date", str(exc)) from None
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
    access: Optional[list[str]] = Field(
        None, max_length=50, description="The groups that may read it (docs/access.md); left out or []: everyone who "
        "may read the knowledge base. A key made with `kb keys add --write` gives only its own groups.")

    @model_validator(mode="before")
    @classmethod
    def _record(cls, raw: Any) -> Any:
        try:
            parse_record(raw, "the document")  # the same checks the corpus's .jsonl files get
        except UnreadableDocument as exc:
            raise ApiError("invalid_document", str(exc)) from None
        return raw


def _whole_parameter(model: type[BaseModel], raw: Any, info: ValidationInfo, low: int, most: int) -> Any:
    """A query-string number of a GET model: digits only, ``low`` to ``most``; left out, the field's default."""
    if raw is None:
        return model.model_fields[info.field_name].default
    if not isinstance(raw, str) or not raw.isascii() or not raw.isdigit() or len(raw) > 10 or not low <= int(raw) <= most:
        raise ApiError(f"invalid_{info.field_name}", f"{info.field_name} must be a whole number from {low} to {most}")
    return int(raw)


class DocumentPage(BaseModel):
    """GET /api/documents."""

    model_config = ConfigDict(extra="ignore")
    page: int = Field(1, ge=1, le=10**9)
    per_page: int = Field(20, ge=1, le=MAX_PER_PAGE)

    @field_validator("page", "per_page", mode="before")
    @classmethod
    def _whole(cls, raw: Any, info: ValidationInfo) -> Any:
        return _whole_parameter(cls, raw, info, 1, 10**9 if info.field_name == "page" else MAX_PER_PAGE)


class DocumentView(BaseModel):
    """GET /api/documents/{doc_id}: with ``around`` (a character offset, e.g. a result's ``start``), also the
    passages around it."""

    model_config = ConfigDict(extra="ignore")
    around: Optional[int] = Field(None, ge=0, le=10**9, description=(
        "A character offset in the document (a result's start): answer also with the passages around it."))
    window: int = Field(1, ge=0, le=MAX_WINDOW, description="Passages each side of the one holding around.")

    @field_validator("around", "window", mode="before")
    @classmethod
    def _whole(cls, raw: Any, info: ValidationInfo) -> Any:
        return _whole_parameter(cls, raw, info, 0, 10**9 if info.field_name == "around" else MAX_WINDOW)


class InsightsWindow(BaseModel):
    """GET /api/insights and /insights."""

    model_config = ConfigDict(extra="ignore")
    days: int = Field(30, ge=1, le=MAX_DAYS, description="The last N days, today included.")

    @field_validator("days", mode="before")
    @classmethod
    def _whole(cls, raw: Any, info: ValidationInfo) -> Any:
        return _whole_parameter(cls, raw, info, 1, MAX_DAYS)


def _json_whole(raw: Any) -> Any:
    """JSON Schema counts 4.0 as an integer: take it as 4 (a bool stays a bool, and strict fields refuse it)."""
    return int(raw) if isinstance(raw, float) and raw.is_integer() and abs(raw) < 2**53 else raw


class SearchEvent(BaseModel):
    """A question asked on the page settled (its answer stayed, Enter, or the page was left)."""

    model_config = ConfigDict(extra="forbid")
    event: Literal["search"]
    query_id: int = Field(ge=0, lt=2**53, strict=True, description="The id the page's answer carries (data-query-id).")

    @field_validator("query_id", mode="before")
    @classmethod
    def _whole(cls, raw: Any) -> Any:
        return _json_whole(raw)


class ClickEvent(BaseModel):
    """A result was opened."""

    model_config = ConfigDict(extra="forbid")
    event: Literal["click"]
    query_id: int = Field(ge=0, lt=2**53, strict=True, description="The id the page's answer carries (data-query-id).")
    rank: int = Field(ge=1, le=10_000, strict=True, description="The opened result's rank.")
    doc_id: str = Field(min_length=1, max_length=1000, description="Its document's id.")

    @field_validator("query_id", "rank", mode="before")
    @classmethod
    def _whole(cls, raw: Any) -> Any:
        return _json_whole(raw)


class EventBody(RootModel[Annotated[Union[SearchEvent, ClickEvent], Field(discriminator="event")]]):
    """POST /api/events: the search page's beacon."""


# ---- responses: kb's own shapes (kb/schemas.py) ----------------------------------------------

RESPONSE_MODELS = (Error, SearchAnswer, Health, DocumentList, DocumentFull, Added, Deleted, Insights, EventKept)
REQUEST_MODELS = (SearchBody, DocumentBody, EventBody)
