"""Errors as JSON under /api/ (never an HTML page or a traceback), as pages elsewhere.

``STATUS`` is the one table of what every error code means in HTTP: the web layer's own codes (a bad
parameter, a missing key) and kb's (kb/errors.py: a document refused, a store that cannot be reached).
docs/api.md lists them, and tests/unit/test_docs.py holds the table, the code and the docs to each other.
"""

from __future__ import annotations

import logging

from flask import Flask, current_app, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from kb.errors import KbError

log = logging.getLogger(__name__)

STATUS = {
    # a request kb cannot take as it is
    **dict.fromkeys(("missing_query", "blank_query", "query_too_long", "invalid_query", "invalid_k", "k_out_of_range",
                     "invalid_mode", "invalid_offset", "offset_out_of_range", "malformed_json", "invalid_body",
                     "unknown_field", "missing_field", "invalid_parameter", "invalid_filter", "invalid_date",
                     "invalid_page", "invalid_per_page", "invalid_around", "invalid_window", "invalid_event", "invalid_days", "invalid_document", "invalid_id", "missing_file",
                     "invalid_name", "name_too_long", "bad_request", "key_problem"), 400),
    "unauthorized": 401,
    "writes_disabled": 403, "forbidden": 403,
    "not_found": 404,
    "method_not_allowed": 405,
    "id_taken": 409, "shared_file": 409,
    "payload_too_large": 413,
    "unsupported_media_type": 415, "unsupported_content_encoding": 415, "unsupported_type": 415,
    "unreadable_document": 422,
    "rate_limited": 429,
    "internal_error": 500,
    # kb cannot answer now: starting, or a store or model it depends on is missing, damaged or unreachable
    **dict.fromkeys(("loading", "failed", "store_unavailable", "embedding_failed", "no_index", "index_mismatch",
                     "index_damaged", "store_problem", "model_unavailable"), 503),
    "storage_unwritable": 507, "index_unwritable": 507,
}
HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "payload_too_large",
              415: "unsupported_media_type", 429: "rate_limited", 500: "internal_error"}  # werkzeug's own refusals
OTHER_HTTP = "http_error"  # any other HTTP status werkzeug answers with


class ApiError(Exception):
    """A refusal with a machine-readable code (its status from ``STATUS``) and a sentence for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = STATUS[code], code, message


def error_response(status: int, code: str, message: str):
    response = jsonify({"error": {"code": code, "message": message}})
    response.status_code = status
    return response


def _for_programs() -> bool:
    """Whether the request is a program's (the JSON API, MCP): its refusals are JSON, not a page."""
    return request.path.startswith("/api/") or request.path in ("/api", "/mcp")


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        if not _for_programs():
            return render_template("error.html", status=exc.status, message=exc.message), exc.status
        response = error_response(exc.status, exc.code, exc.message)
        if exc.status == 401:
            response.headers["WWW-Authenticate"] = 'Bearer realm="kb"'
        return response

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        status = exc.code or 500
        if status == 405:
            message = f"{request.method} is not allowed on {request.path}; allowed: {', '.join(sorted(exc.valid_methods or []))}"
        elif status == 404:
            message = f"no such path: {request.path}"
        else:
            message = exc.description or exc.name
        if status == 429:
            message = f"too many requests from your address ({exc.description}); wait and retry"
        if status == 413:
            limit = current_app.config["KB_SETTINGS"].max_upload_mb
            message = f"the request body is over the {limit} MiB limit (KB_MAX_UPLOAD_MB)"
        if _for_programs():
            response = error_response(status, HTTP_CODES.get(status, OTHER_HTTP), message)
            if status == 405 and getattr(exc, "valid_methods", None):
                response.headers["Allow"] = ", ".join(exc.valid_methods)
            return response
        return render_template("error.html", status=status, message=message), status

    @app.errorhandler(KbError)
    def _kb_error(exc: KbError):
        # kb's own refusals (a document it will not take, a database that is down): their code and sentence,
        # never a 500 (a code this table does not know is a bug, and answers as one).
        if exc.code not in STATUS:
            return _unexpected(exc)
        log.warning("%s on %s %s: %s", exc.code, request.method, request.path, exc.message)
        return _api_error(ApiError(exc.code, exc.message))

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.path)
        if _for_programs():
            return error_response(500, "internal_error", "the server failed to answer; the error is logged")
        return render_template("error.html", status=500, message="The server failed to answer."), 500
