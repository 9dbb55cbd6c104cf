"""Insights over HTTP: the page's events (searches that settled, results opened), the report as JSON
(/api/insights) and as a page (/insights), and Prometheus metrics (/metrics). All behind the read key."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, g, jsonify, render_template, request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from web.auth import caller, presented_key, require_read
from web.errors import ApiError
from web.loading import Loading, knowledge_base
from web.params import json_body
from web.schemas import EventBody, InsightsWindow, validated

insights = Blueprint("insights", __name__)


@insights.before_request
def _reads_need_the_read_key():
    require_read()


def answered(base, answer, origin: str, settled: bool = True) -> int | None:
    """A search was answered (``origin``: page or api): its figures for the request log and /metrics, and, for a
    new question ("more results" is not one) that KB_QUERY_LOG keeps, the query log. The logged search's id (the
    page's clicks name it), or None."""
    g.result_count, g.search_mode, g.search_confident = len(answer.hits), answer.mode, answer.confident
    if answer.offset or not base.queries.wants(origin, keyed=presented_key() is not None):
        return None
    return base.queries.search(answer, origin, settled=settled)


@insights.post("/api/events")
def event():
    """The page's beacon: {"event": "search", "query_id"} when a question settled, {"event": "click", "query_id",
    "rank", "doc_id"} when a result was opened."""
    body = json_body()  # the page's navigator.sendBeacon sends a Blob of type application/json
    try:
        sent = validated(EventBody, body, json=True).root
    except ApiError as exc:
        raise ApiError("invalid_event", exc.message) from None
    base = knowledge_base()
    if sent.event == "search":
        return jsonify({"kept": base.queries.settle(sent.query_id)}), 202
    return jsonify({"kept": base.queries.click(sent.query_id, sent.rank, sent.doc_id)}), 202


def _days() -> int:
    return validated(InsightsWindow, {"days": request.args.get("days")}).days


@insights.get("/api/insights")
def report_json():
    return jsonify(knowledge_base().insights(_days(), caller()))


@insights.get("/insights")
def report_page():
    days = _days()
    report = knowledge_base().insights(days, caller())
    return render_template("insights.html", report=report, chart=day_chart(report["per_day"]),
                           query_log=current_app.config["KB_SETTINGS"].query_log)


@insights.get("/metrics")
def metrics():
    base = current_app.extensions["kb"]
    if not isinstance(base, Loading) and not base.reads_everything(caller()):
        raise ApiError("forbidden", "/metrics counts every document: it needs a key that may read every document "
                       "(KB_API_KEY or KB_READ_KEY)")
    return current_app.response_class(generate_latest(current_app.extensions["kb_metrics"].registry),
                                      mimetype=None, content_type=CONTENT_TYPE_LATEST)


def day_chart(per_day: list[dict[str, Any]], width: int = 720, height: int = 180) -> dict[str, Any]:
    """Bars of searches per day, each with its "no good match" part, laid out for the page's inline SVG."""
    top = max([day["queries"] for day in per_day] + [1])
    slot = width / max(len(per_day), 1)
    bars = []
    for n, day in enumerate(per_day):
        whole = day["queries"] / top * (height - 20)
        missed = day["unanswered"] / top * (height - 20)
        bars.append({"x": round(n * slot + slot * 0.1, 2), "width": round(slot * 0.8, 2), "day": day["day"],
                     "queries": day["queries"], "unanswered": day["unanswered"],
                     "y": round(height - whole, 2), "height": round(whole, 2),
                     "missed_y": round(height - missed, 2), "missed_height": round(missed, 2)})
    return {"width": width, "height": height, "top": top, "bars": bars}
