"""Reading and checking search parameters, shared by the page and the API."""

from __future__ import annotations

from typing import Any

from kb.filters import Filters
from kb.search import DEFAULT_K, MAX_K, MAX_OFFSET, MAX_QUERY_CHARS
from kb.settings import MODES
from web.errors import ApiError


def parse_query(raw: Any) -> str:
    if raw is None:
        raise ApiError(400, "missing_query", "the query parameter q is required")
    if not isinstance(raw, str):
        raise ApiError(400, "invalid_query", f"q must be a string, got {type(raw).__name__}")
    if len(raw) > MAX_QUERY_CHARS:
        raise ApiError(400, "query_too_long", f"q is {len(raw):,} characters; the limit is {MAX_QUERY_CHARS:,}")
    if "\x00" in raw:
        raise ApiError(400, "invalid_query", "q must not contain NUL characters")
    if not raw.strip():
        raise ApiError(400, "blank_query", "q is blank; type a question")
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
        raise ApiError(400, f"invalid_{name}", f"{name} must be a whole number from {low} to {high}, got {raw!r}")
    if isinstance(raw, str):
        text = raw.strip()
        if not text.isascii() or not text.lstrip("+-").isdigit() or len(text) > 12:
            raise ApiError(400, f"invalid_{name}", f"{name} must be a whole number from {low} to {high}, got {raw[:40]!r}")
        raw = int(text)
    if not low <= raw <= high:
        raise ApiError(400, f"{name}_out_of_range", f"{name} must be between {low} and {high}, got {raw}")
    return raw


def parse_mode(raw: Any) -> str | None:
    """None means the configured default (KB_SEARCH_MODE)."""
    if raw is None or raw == "":
        return None
    if raw not in MODES:
        shown = raw[:40] if isinstance(raw, str) else raw
        raise ApiError(400, "invalid_mode", f"mode must be one of {', '.join(MODES)}, got {shown!r}")
    return raw


def parse_filters_args(args) -> Filters:
    """doc_id and source (repeatable), filter.KEY=VALUE, date_from and date_to from a query string."""
    metadata = tuple((key[len("filter."):], value) for key, value in args.items(multi=True) if key.startswith("filter."))
    if any(not key for key, _ in metadata):
        raise ApiError(400, "invalid_filter", "metadata filters look like filter.KEY=VALUE")
    return _filters(tuple(args.getlist("doc_id")), tuple(args.getlist("source")), metadata,
                    args.get("date_from") or None, args.get("date_to") or None)


def parse_filters_json(raw: Any) -> Filters:
    """{"doc_id": [...], "source": [...], "metadata": {...}, "date_from": ..., "date_to": ...}."""
    if raw is None:
        return Filters()
    if not isinstance(raw, dict) or set(raw) - {"doc_id", "source", "metadata", "date_from", "date_to"}:
        raise ApiError(400, "invalid_filter", "filters is an object with doc_id, source, metadata, date_from, date_to")

    def strings(value: Any, name: str) -> tuple[str, ...]:
        value = [value] if isinstance(value, str) else (value or [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ApiError(400, "invalid_filter", f"filters.{name} is a string or a list of strings")
        return tuple(value)

    metadata = raw.get("metadata") or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, (str, int, float, bool)) for v in metadata.values()):
        raise ApiError(400, "invalid_filter", "filters.metadata maps keys to plain values")
    dates = [raw.get(k) for k in ("date_from", "date_to")]
    if any(d is not None and not isinstance(d, str) for d in dates):
        raise ApiError(400, "invalid_filter", "filters.date_from and date_to are dates like 2025-06-01")
    return _filters(strings(raw.get("doc_id"), "doc_id"), strings(raw.get("source"), "source"),
                    tuple((k, str(v)) for k, v in metadata.items()), dates[0], dates[1])


def _filters(doc_ids, sources, metadata, date_from, date_to) -> Filters:
    try:
        return Filters(doc_ids, sources, metadata, date_from, date_to)
    except ValueError as exc:
        raise ApiError(400, "invalid_date", str(exc)) from None


def refuse_encoded_body() -> None:
    """kb never inflates a compressed body: a gzip bomb stays a few bytes of refusal."""
    from flask import request

    encoding = request.headers.get("Content-Encoding", "").strip().lower()
    if encoding not in ("", "identity"):
        raise ApiError(415, "unsupported_content_encoding",
                       f"kb does not decompress request bodies ({encoding[:40]}); send the body uncompressed")


def json_body() -> Any:
    """The request's JSON body; 415 for another content type, 400 for JSON that does not parse."""
    from flask import request

    refuse_encoded_body()
    if request.mimetype != "application/json":
        raise ApiError(415, "unsupported_media_type",
                       f"send the body as application/json, not {request.mimetype or 'no content type'}")
    try:
        body = request.get_json(silent=True)
    except RecursionError:
        raise ApiError(400, "malformed_json", "the JSON is nested too deeply") from None
    if body is None:
        raise ApiError(400, "malformed_json", "the body is not valid JSON (or is JSON null)")
    return body
