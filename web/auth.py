"""Bearer keys: KB_API_KEY for writes (no key: writes are off), KB_READ_KEY for reads (no key: open)."""

from __future__ import annotations

import hmac

from flask import current_app, request

from web.errors import ApiError


def presented_key() -> str | None:
    """The bearer token the request presents, if any (which key it is is not asked)."""
    return _presented()


def _presented() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _equal(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def holds_write_key() -> bool:
    """Whether the request presents KB_API_KEY (false when writes are off)."""
    settings = current_app.config["KB_SETTINGS"]
    token = _presented()
    return bool(settings.api_key) and token is not None and _equal(token, settings.api_key)


def require_write() -> None:
    settings = current_app.config["KB_SETTINGS"]
    if not settings.api_key:
        raise ApiError("writes_disabled",
                       "document writes are disabled: set KB_API_KEY on the server and send it as 'Authorization: Bearer <key>'")
    if not holds_write_key():
        raise ApiError("unauthorized", "send the write key as 'Authorization: Bearer <KB_API_KEY>'")


def require_read() -> None:
    settings = current_app.config["KB_SETTINGS"]
    if not settings.read_key:
        return
    token = _presented()
    if token is None or not (_equal(token, settings.read_key) or (settings.api_key and _equal(token, settings.api_key))):
        raise ApiError("unauthorized", "reads need 'Authorization: Bearer <KB_READ_KEY>'")
