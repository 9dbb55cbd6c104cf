"""The JSON API: /api/search (GET and POST) and /api/health."""

from __future__ import annotations

import time

from flask import Blueprint, current_app, jsonify, request

from kb.stores.keys import ANONYMOUS
from web.auth import caller, require_read
from web.errors import ApiError
from web.insights import answered
from web.loading import knowledge_base
from web.params import json_body, parse_filters_args
from web.schemas import SearchBody, SearchQuery, validated

api = Blueprint("api", __name__)


@api.get("/search")
def search_get():
    who = require_read()
    args = request.args
    fields = {"q": args.get("q"), "k": args.get("k"), "mode": args.get("mode"), "offset": args.get("offset"),
              "doc_id": args.getlist("doc_id"),
              "source": args.getlist("source"), "date_from": args.get("date_from"), "date_to": args.get("date_to")}
    params = validated(SearchQuery, {key: value for key, value in fields.items() if value is not None})
    return _answer(params.q, params.k, params.mode, parse_filters_args(args), params.offset, who)


@api.post("/search")
def search_post():
    who = require_read()
    body = json_body()
    if not isinstance(body, dict):
        raise ApiError("invalid_body", f'the body must be a JSON object like {{"q": "...", "k": 5}}, got {type(body).__name__}')
    params = validated(SearchBody, body, json=True)
    return _answer(params.q, params.k, params.mode, params.to_filters(), params.offset, who)


def _answer(query: str, k: int, mode: str | None, filters, offset: int, who):
    base = knowledge_base()
    began = time.perf_counter()
    answer = base.search(query, k, mode, filters=filters, offset=offset, caller=who)
    answered(base, answer, "api")
    text = answer.json_text(k, (time.perf_counter() - began) * 1000)
    return current_app.response_class(text + "\n", mimetype="application/json")


@api.get("/health")
def health():
    try:
        base = knowledge_base()
    except ApiError as exc:
        return jsonify({"status": exc.code, "message": exc.message}), 503
    try:
        who = caller()
    except ApiError:  # health answers anyone (a load balancer has no key): then with the public documents' counts
        who = ANONYMOUS
    documents, passages = base.counts(who)
    sync = base.watching.state.json() if base.watching is not None else {"mode": "off"}
    return jsonify({"status": "ok", "passages": passages, "documents": documents, "model": base.settings.model,
                    "sync": sync})
