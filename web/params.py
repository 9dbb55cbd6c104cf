"""Reading a request's parts that are not plain fields: filters, JSON bodies, encodings (fields: web/schemas.py)."""

from __future__ import annotations

from typing import Any

from kb.stores.filters import Filters
from web.errors import ApiError


def parse_filters_args(args) -> Filters:
    """doc_id and source (repeatable), filter.KEY=VALUE, date_from and date_to from a query string."""
    metadata = tuple((key[len("filter."):], value) for key, value in args.items(multi=True) if key.startswith("filter."))
    if any(not key for key, _ in metadata):
        raise ApiError("invalid_filter", "metadata filters look like filter.KEY=VALUE")
    return _filters(tuple(args.getlist("doc_id")), tuple(args.getlist("source")), metadata,
                    args.get("date_from") or None, args.get("date_to") or None)


def parse_filters_json(raw: Any) -> Filters:
    """{"doc_id": [...], "source": [...], "metadata": {...}, "date_from": ..., "date_to": ...}."""
    if raw is None:
        return Filters()
    if not isinstance(raw, dict) or set(raw) - {"doc_id", "source", "metadata", "date_from", "date_to"}:
        raise ApiError("invalid_filter", "filters is an object with doc_id, source, metadata, date_from, date_to")

    def strings(value: Any, name: str) -> tuple[str, ...]:
        value = [value] if isinstance(value, str) else (value or [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ApiError("invalid_filter", f"filters.{name} is a string or a list of strings")
        return tuple(value)

    metadata = raw.get("metadata") or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, (str, int, float, bool)) for v in metadata.values()):
        raise ApiError("invalid_filter", "filters.metadata maps keys to plain values")
    dates = [raw.get(k) for k in ("date_from", "date_to")]
    if any(d is not None and not isinstance(d, str) for d in dates):
        raise ApiError("invalid_filter", "filters.date_from and date_to are dates like 2025-06-01")
    return _filters(strings(raw.get("doc_id"), "doc_id"), strings(raw.get("source"), "source"),
                    tuple((k, str(v)) for k, v in metadata.items()), dates[0], dates[1])


def _filters(doc_ids, sources, metadata, date_from, date_to) -> Filters:
    try:
        return Filters(doc_ids, sources, metadata, date_from, date_to)
    except ValueError as exc:
        raise ApiError("invalid_date", str(exc)) from None


def refuse_encoded_body() -> None:
    """kb never inflates a compressed body: a gzip bomb stays a few bytes of refusal."""
    from flask import request

    encoding = request.headers.get("Content-Encoding", "").strip().lower()
    if encoding not in ("", "identity"):
        raise ApiError("unsupported_content_encoding",
                       f"kb does not decompress request bodies ({encoding[:40]}); send the body uncompressed")


def json_body() -> Any:
    """The request's JSON body; 415 for another content type, 400 for JSON that does not parse."""
    from flask import request

    refuse_encoded_body()
    if request.mimetype != "application/json":
        raise ApiError("unsupported_media_type",
                       f"send the body as application/json, not {request.mimetype or 'no content type'}")
    try:
        body = request.get_json(silent=True)
    except RecursionError:
        raise ApiError("malformed_json", "the JSON is nested too deeply") from None
    if body is None:
        raise ApiError("malformed_json", "the body is not valid JSON (or is JSON null)")
    return body
