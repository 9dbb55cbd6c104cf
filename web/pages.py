"""The search page (server-rendered, works without JavaScript), its results as a fragment for the
page's script, and the document view."""

from __future__ import annotations

import time

from flask import Blueprint, abort, render_template, request

from kb.search.pipeline import DEFAULT_K, MAX_K
from kb.settings import MODES
from web.auth import caller, require_read
from web.errors import ApiError
from web.insights import answered
from web.loading import knowledge_base
from web.render import marked_passage, with_code
from web.results import read_marks, shown_results
from web.schemas import SearchQuery, validated

pages = Blueprint("pages", __name__)

@pages.before_request
def _reads_need_the_read_key():
    require_read()


def _answer_state() -> tuple[dict, int]:
    """What the results area shows for this request's q, k, mode and offset, and the status it answers with.

    One of: nothing asked; not ready (503 while the model and index load, or when they failed to); an error in the question;
    an empty knowledge base; an answer (confident or not), as its results trimmed of repeats.
    """
    raw_query = request.args.get("q")
    state = {"query": raw_query or "", "k": DEFAULT_K, "offset": 0, "mode": None, "answer": None, "shown": [],
             "error": None, "not_ready": None, "empty": False, "took_ms": None, "marked_passage": marked_passage,
             "query_id": None}
    try:
        base = knowledge_base()
    except ApiError as exc:
        state["not_ready"] = exc  # code "loading", or "failed" when kb could not start
        return state, exc.status
    who = caller()
    state["mode"] = base.settings.search_mode
    state["empty"] = not base.counts(who)[1]
    if raw_query is None or state["empty"]:
        return state, 200
    try:
        fields = {key: request.args.get(key) for key in ("q", "k", "mode", "offset") if key in request.args}
        params = validated(SearchQuery, fields)  # the API's own model: one set of checks and messages
        query, k, mode, offset = params.q, params.k, params.mode, params.offset
    except ApiError as exc:
        state["error"] = exc.message
        return state, exc.status
    began = time.perf_counter()
    answer = base.search(query, k, mode, offset=offset, caller=who)
    above = base.search(query, offset, mode, highlights=False, caller=who).hits if offset else []
    # As you type, the page's script says when a question settled (web/static/search.js); a page loaded whole has.
    query_id = answered(base, answer, "page", settled=request.path == "/")
    state.update(query=query, k=k, offset=offset, mode=answer.mode, answer=answer, shown=shown_results(answer.hits, above),
                 took_ms=(time.perf_counter() - began) * 1000, query_id=query_id)
    return state, 200


@pages.get("/")
def search_page():
    state, status = _answer_state()
    return render_template("search.html", modes=MODES, max_k=MAX_K, **state), status


@pages.get("/results")
def results_fragment():
    """The results area alone (the page's script asks for it as you type): the same HTML as the page's."""
    state, status = _answer_state()
    return render_template("answer.html", **state), status


@pages.get("/documents/<doc_id>")
def document_page(doc_id: str):
    """The whole document, with the cited passage and its answering sentences marked, so a citation
    can be checked in place; links to the passages before and after it."""
    base, who = knowledge_base(), caller()
    document = base.get(doc_id, who)
    if document is None:
        abort(404)
    start = request.args.get("start", type=int)
    end = request.args.get("end", type=int)
    if start is None or end is None or not 0 <= start < end <= len(document.text):
        start = end = 0
    spans = base.passage_spans(doc_id, who) if end else []
    # Passages overlap: the one cited exactly, else the first that holds the start (an older link).
    ordinal = next((i for i, span in enumerate(spans) if span == (start, end)),
                   next((i for i, (a, b) in enumerate(spans) if a <= start < b), None))
    query = request.args.get("q", "")
    neighbour = {}
    if ordinal is not None:
        for name, i in (("previous", ordinal - 1), ("next", ordinal + 1)):
            if 0 <= i < len(spans):
                neighbour[name] = {"start": spans[i][0], "end": spans[i][1]}
    code = document.metadata.get("code")
    return render_template(
        "document.html",
        document=document,
        before=with_code(document.text[:start], 0, code),
        marked=with_code(document.text[start:end], start, code, read_marks(request.args.get("hl"), start, end)),
        after=with_code(document.text[end:], end, code),
        ordinal=ordinal, neighbour=neighbour, query=query,
    )
