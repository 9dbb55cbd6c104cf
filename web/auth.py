"""Who is asking (kb/stores/keys.py's Caller), once per request, and what they may do.

In order:
- a caller handed over in process (``IN_PROCESS``: the MCP bridge's tool calls, as the MCP request's caller);
- a bearer key: KB_API_KEY (reads everything, writes), KB_READ_KEY (reads everything), or a key of the key table
  (its groups; writes with --write); an unknown or revoked key is refused, never taken for no key;
- on GET and HEAD only (and the page's beacons), the same key kept by the page in its session cookie
  (web/session.py; writes need the header, so a cookie can never be made to write by another site);
- the user a trusted reverse proxy names (KB_TRUSTED_USER_HEADER, with its groups header), honoured only from
  KB_TRUSTED_PROXIES: the same header from any other address is ignored;
- nobody: refused when KB_READ_KEY is set, else anonymous, who reads public documents only.
"""

from __future__ import annotations

import hmac
import logging

from flask import current_app, g, request

from kb.documents.access import group_problem
from kb.settings import trusted_networks
from kb.stores.keys import ADMIN, ANONYMOUS, READER, Caller
from web.errors import ApiError
from web.loading import knowledge_base

log = logging.getLogger(__name__)

SESSION_COOKIE = "kb_session"
IN_PROCESS = "kb.caller"  # a WSGI environ key: only code in this process can set it


def presented_key() -> str | None:
    """The bearer token the request presents, if any (which key it is is not asked)."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _equal(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def caller() -> Caller:
    """Who is asking (ApiError 401 for a key kb does not know, or no one where reads need a key)."""
    if "kb_caller" not in g:
        g.kb_caller = _identify()
    return g.kb_caller


def _identify() -> Caller:
    handed = request.environ.get(IN_PROCESS)
    if isinstance(handed, Caller):
        return handed
    settings = current_app.config["KB_SETTINGS"]
    token = presented_key()
    if token is None and (request.method in ("GET", "HEAD") or request.endpoint == "insights.event"):
        token = request.cookies.get(SESSION_COOKIE) or None  # reads, and the page's beacons (they only log)
    if token is not None:
        return key_caller(token)
    proxied = _proxy_user()
    if proxied is not None:
        return proxied
    if settings.read_key:
        raise ApiError("unauthorized", "reads need a key: send 'Authorization: Bearer <key>' (KB_READ_KEY, or a key "
                       "from `kb keys add`)")
    return ANONYMOUS


def key_caller(token: str) -> Caller:
    """Who holds ``token`` (ApiError 401 when it is no key kb knows, or one that was revoked)."""
    settings = current_app.config["KB_SETTINGS"]
    if settings.api_key and _equal(token, settings.api_key):
        return ADMIN
    if settings.read_key and _equal(token, settings.read_key):
        return READER
    found = knowledge_base().keys.caller(token)
    if found is None:
        raise ApiError("unauthorized", "the key is not one kb knows (it may have been revoked): send a valid key as "
                       "'Authorization: Bearer <key>'")
    return found


def _proxy_user() -> Caller | None:
    """The user a trusted proxy names, with the groups it lists (None when there is none, or the request does not
    come from a trusted proxy)."""
    settings = current_app.config["KB_SETTINGS"]
    if not settings.trusted_user_header:
        return None
    user = request.headers.get(settings.trusted_user_header, "").strip()
    if not user:
        return None
    if not _from_trusted_proxy(settings.trusted_proxies):
        log.warning("ignored %s from %s, which is not in KB_TRUSTED_PROXIES", settings.trusted_user_header,
                    request.remote_addr)
        return None
    listed = [part.strip() for part in request.headers.get(settings.trusted_groups_header, "").split(",")]
    groups = tuple(sorted({name for name in listed if name and group_problem(name) is None}))
    return Caller(f"user:{user[:100]}", groups)


def _from_trusted_proxy(raw: str) -> bool:
    import ipaddress

    try:
        address = ipaddress.ip_address(request.remote_addr or "")
    except ValueError:
        return False
    return any(address in network for network in trusted_networks(raw))


def require_write() -> Caller:
    """The caller, when they may write (the bearer header only: never the page's cookie)."""
    disabled = ApiError("writes_disabled", "document writes are disabled: set KB_API_KEY on the server (or make a key "
                        "with `kb keys add NAME --write`) and send it as 'Authorization: Bearer <key>'")
    api_key = current_app.config["KB_SETTINGS"].api_key
    if presented_key() is None and request.environ.get(IN_PROCESS) is None:
        if not api_key:
            raise disabled
        raise ApiError("unauthorized", "send a write key as 'Authorization: Bearer <key>' (KB_API_KEY, or a key "
                       "made with `kb keys add NAME --write`)")
    try:
        who = caller()
    except ApiError:
        if not api_key:  # no write key is set, and this is not a key of the table either
            raise disabled from None
        raise
    if not who.write:
        raise ApiError("forbidden", "this key may read but not write: writes need KB_API_KEY, or a key made with "
                       "`kb keys add NAME --write`")
    return who


def require_read() -> Caller:
    """The caller, when they may read (ApiError 401 otherwise)."""
    return caller()
