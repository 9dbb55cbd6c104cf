"""The page's sign-in: a key entered once, kept in an HttpOnly, SameSite=Strict session cookie (web/auth.py reads it
on GET and HEAD only), and signing out. Both forms carry a CSRF token (the double-submit pattern: a random value in
a cookie of its own and in the form, which must agree), and a POST whose Origin is another site is refused.

A user named by a trusted proxy (KB_TRUSTED_USER_HEADER) is signed in by the proxy; this is for everyone else.
"""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import urlsplit

from flask import Blueprint, make_response, redirect, render_template, request, url_for

from web.auth import SESSION_COOKIE, caller, key_caller
from web.errors import ApiError

session = Blueprint("session", __name__)

CSRF_COOKIE = "kb_csrf"


@session.app_context_processor
def _viewer() -> dict:
    """For every page's header: who is signed in (name, or None), whether by the session cookie, and the CSRF
    token its sign-out form carries (the cookie's, set by the sign-in page)."""
    try:
        who = caller()
    except ApiError:
        who = None
    signed = request.cookies.get(SESSION_COOKIE) is not None and who is not None
    return {"viewer": {"name": who.name if who is not None and (signed or who.name.startswith("user:")) else None,
                       "signed_in": signed},
            "csrf_token": request.cookies.get(CSRF_COOKIE, "")}


def _csrf_token() -> str:
    return request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(24)


def _with_csrf(response, token: str):
    response.set_cookie(CSRF_COOKIE, token, httponly=True, samesite="Strict", secure=request.is_secure, path="/")
    return response


def _check_csrf() -> None:
    origin = request.headers.get("Origin")
    if origin and origin != "null" and urlsplit(origin).netloc != request.host:
        raise ApiError("forbidden", "the form was sent from another site")
    sent, kept = request.form.get("csrf", ""), request.cookies.get(CSRF_COOKIE, "")
    if not kept or not hmac.compare_digest(sent.encode(), kept.encode()):
        raise ApiError("forbidden", "the form has expired or was not sent from this site: load the page and try again")


@session.get("/sign-in")
def sign_in_page():
    token = _csrf_token()
    return _with_csrf(make_response(render_template("sign-in.html", csrf=token, error=None)), token)


@session.post("/sign-in")
def sign_in():
    _check_csrf()
    token = _csrf_token()
    key = request.form.get("key", "").strip()
    try:
        if not key:
            raise ApiError("unauthorized", "enter a key")
        key_caller(key)
    except ApiError as exc:
        response = make_response(render_template("sign-in.html", csrf=token, error=exc.message), 401)
        return _with_csrf(response, token)
    response = redirect(url_for("pages.search_page"), 303)
    response.set_cookie(SESSION_COOKIE, key, httponly=True, samesite="Strict", secure=request.is_secure, path="/")
    return _with_csrf(response, secrets.token_urlsafe(24))  # a new token once signed in


@session.post("/sign-out")
def sign_out():
    _check_csrf()
    response = redirect(url_for("pages.search_page"), 303)
    response.delete_cookie(SESSION_COOKIE, path="/", samesite="Strict", httponly=True, secure=request.is_secure)
    return _with_csrf(response, secrets.token_urlsafe(24))
