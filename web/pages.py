"""The search page (server-rendered, works without JavaScript) and the document view."""

from __future__ import annotations

import time

from flask import Blueprint, abort, current_app, g, render_template, request

from kb.search import DEFAULT_K, MAX_K
from kb.settings import MODES
from web.auth import require_read
from web.errors import ApiError
from web.params import parse_k, parse_mode, parse_query
from web.render import marked_passage, with_code

pages = Blueprint("pages", __name__)


@pages.before_request
def _reads_need_the_read_key():
    require_read()


@pages.get("/")
def search_page():
    raw_query = request.args.get("q")
    searcher = current_app.extensions["kb"].current()
    with searcher.store.snapshot() as snapshot:
        empty = not snapshot.counts()[1]
    context = {"query": raw_query or "", "k": DEFAULT_K, "max_k": MAX_K, "modes": MODES,
               "mode": searcher.settings.search_mode, "answer": None, "error": None, "took_ms": None,
               "marked_passage": marked_passage, "empty": empty}
    if raw_query is None:
        return render_template("search.html", **context)
    try:
        query, k, mode = parse_query(raw_query), parse_k(request.args.get("k")), parse_mode(request.args.get("mode"))
    except ApiError as exc:
        context["error"] = exc.message
        return render_template("search.html", **context), exc.status
    began = time.perf_counter()
    answer = searcher.answer(query, k, mode)
    g.result_count = len(answer.hits)
    context.update(answer=answer, k=k, mode=answer.mode, took_ms=(time.perf_counter() - began) * 1000)
    return render_template("search.html", **context)


@pages.get("/documents/<doc_id>")
def document_page(doc_id: str):
    """The whole document, with the cited span marked, so a citation can be checked in place."""
    document = current_app.extensions["kb"].current().store.document(doc_id)
    if document is None:
        abort(404)
    start = request.args.get("start", type=int)
    end = request.args.get("end", type=int)
    if start is None or end is None or not 0 <= start < end <= len(document.text):
        start = end = 0
    code = document.metadata.get("code")
    return render_template(
        "document.html",
        document=document,
        before=with_code(document.text[:start], 0, code),
        marked=with_code(document.text[start:end], start, code),
        after=with_code(document.text[end:], end, code),
        query=request.args.get("q", ""),
    )
