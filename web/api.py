"""The JSON API: /api/search (GET and POST) and /api/health."""

from __future__ import annotations

import time

from flask import Blueprint, current_app, jsonify, request

from web.errors import ApiError
from web.params import parse_k, parse_query

api = Blueprint("api", __name__)


@api.get("/search")
def search_get():
    return _answer(parse_query(request.args.get("q")), parse_k(request.args.get("k")))


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
    unknown = sorted(set(body) - {"q", "k"})
    if unknown:
        raise ApiError(400, "unknown_field", f"unknown field(s): {', '.join(unknown)}; allowed: q, k")
    return _answer(parse_query(body.get("q")), parse_k(body.get("k"), from_json=True))


def _answer(query: str, k: int):
    searcher = current_app.extensions["kb"].current()
    began = time.perf_counter()
    hits = searcher.search(query, k)
    took_ms = (time.perf_counter() - began) * 1000
    return jsonify({"query": query, "k": k, "took_ms": round(took_ms, 2), "results": [h.to_dict() for h in hits]})


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
