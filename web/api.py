"""The JSON API: /api/search (GET and POST) and /api/health."""

from __future__ import annotations

import time

from flask import Blueprint, current_app, jsonify, request

from web.errors import ApiError
from web.params import parse_k, parse_mode, parse_query

api = Blueprint("api", __name__)


@api.get("/search")
def search_get():
    args = request.args
    return _answer(parse_query(args.get("q")), parse_k(args.get("k")), parse_mode(args.get("mode")))


@api.post("/search")
def search_post():
    if request.mimetype != "application/json":
        raise ApiError(415, "unsupported_media_type",
                       f"send the body as application/json, not {request.mimetype or 'no content type'}")
    body = request.get_json(silent=True)
    if body is None:
        raise ApiError(400, "malformed_json", "the body is not valid JSON")
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_body", f'the body must be a JSON object like {{"q": "...", "k": 5}}, got {type(body).__name__}')
    unknown = sorted(set(body) - {"q", "k", "mode"})
    if unknown:
        raise ApiError(400, "unknown_field", f"unknown field(s): {', '.join(unknown)}; allowed: q, k, mode")
    return _answer(parse_query(body.get("q")), parse_k(body.get("k"), from_json=True), parse_mode(body.get("mode")))


def _answer(query: str, k: int, mode: str | None):
    searcher = current_app.extensions["kb"].current()
    began = time.perf_counter()
    answer = searcher.answer(query, k, mode)
    return jsonify(answer.to_json(k, (time.perf_counter() - began) * 1000))


@api.get("/health")
def health():
    live = current_app.extensions["kb"]
    index = live.current().index
    return jsonify({
        "status": "ok",
        "passages": len(index.passages),
        "documents": len(index.documents),
        "model": index.model,
    })
