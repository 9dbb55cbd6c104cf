"""Errors as JSON under /api/ (never an HTML page or a traceback), as pages elsewhere."""

from __future__ import annotations

import logging

from flask import Flask, current_app, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from kb.store import StoreUnavailable

log = logging.getLogger(__name__)

_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
    500: "internal_error",
}


class ApiError(Exception):
    """A client error with a machine-readable code and a sentence for people."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def error_response(status: int, code: str, message: str):
    response = jsonify({"error": {"code": code, "message": message}})
    response.status_code = status
    return response


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        if not request.path.startswith("/api/"):
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
        if request.path.startswith("/api/") or request.path == "/api":
            response = error_response(status, _CODES.get(status, "http_error"), message)
            if status == 405 and getattr(exc, "valid_methods", None):
                response.headers["Allow"] = ", ".join(exc.valid_methods)
            return response
        return render_template("error.html", status=status, message=message), status

    @app.errorhandler(StoreUnavailable)
    def _store_unavailable(exc: StoreUnavailable):
        # The database is down or unreachable: say so (a retry may work), never a 500.
        log.warning("store unavailable on %s %s: %s", request.method, request.path, exc)
        return _api_error(ApiError(503, "store_unavailable", str(exc)))

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.path)
        if request.path.startswith("/api/"):
            return error_response(500, "internal_error", "the server failed to answer; the error is logged")
        return render_template("error.html", status=500, message="The server failed to answer."), 500
