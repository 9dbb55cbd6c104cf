"""The insights report over the query log: what people ask, what kb cannot answer, what they open, what is cited.

One function makes it (``report``), and `kb insights`, /api/insights and the /insights page all show its dict. The
counting is done where the log is kept (``QueryLog.summary``: SQL on both stores), so a report over a million
searches does not read them all into Python.
"""

from __future__ import annotations

import time
from datetime import date, datetime, timedelta, timezone
from typing import Any, Callable, Iterable

from kb.stores.querylog import LogSummary

LIMIT = 20  # groups, documents shown in each list
MAX_DAYS = 3650
EPOCH = date(1970, 1, 1)


def report(summary: LogSummary, documents: Iterable[tuple[str, str]], passage: Callable[[str, int, int], str | None],
           days: int, now: float | None = None) -> dict[str, Any]:
    """The report for the ``days`` up to ``now`` (UTC days, today included), from the log's ``summary`` of the
    searches since the first of them (``window_start``).

    ``documents``: every (id, title) in the knowledge base; ``passage(doc_id, start, end)``: a passage's text, or
    None when it is gone (for the nearest passages of an unanswered question).
    """
    now = now or time.time()
    first_day = datetime.fromtimestamp(now, timezone.utc).date() - timedelta(days=days - 1)
    titles = dict(documents)

    def wording(key: str) -> str:
        """The group's most frequent wording (the earliest of equals)."""
        return summary.wordings[key][0][0]

    top_queries = [{"query": wording(key), "count": count, "wordings": len(summary.wordings[key]),
                    "unanswered": missed, "last": _iso(last)} for key, count, missed, last in summary.top]
    unanswered = [{"query": wording(key), "count": count, "last": _iso(last),
                   "nearest": [{"doc_id": doc_id, "title": titles.get(doc_id, doc_id), "start": start, "end": end,
                                "score": score, "text": passage(doc_id, start, end)}
                               for doc_id, start, end, score in nearest]}
                  for key, count, last, nearest in summary.missed]
    cited = sorted(summary.cited.items(), key=lambda item: (-item[1], item[0]))
    never = sorted(doc_id for doc_id in titles if doc_id not in summary.cited)
    per_day = []
    for n in range(days):
        day = first_day + timedelta(days=n)
        searched, missed = summary.days.get((day - EPOCH).days, (0, 0))
        per_day.append({"day": day.isoformat(), "queries": searched, "unanswered": missed})
    page = summary.page_searches
    return {
        "days": days, "since": _iso(window_start(days, now)), "until": _iso(now),
        "searches": summary.searches, "groups": summary.groups, "unanswered_searches": summary.unanswered,
        "top_queries": top_queries,
        "unanswered": unanswered,
        "clicks": {"page_searches": page, "clicked_searches": summary.clicked_searches, "clicks": summary.clicks,
                   "click_through_rate": round(summary.clicked_searches / page, 4) if page else None,
                   "mean_rank_clicked": round(summary.rank_sum / summary.clicks, 3) if summary.clicks else None},
        "most_cited": [{"doc_id": doc_id, "title": titles.get(doc_id, doc_id), "count": count}
                       for doc_id, count in cited[:LIMIT]],
        "never_cited": {"count": len(never), "documents": [{"doc_id": d, "title": titles[d]} for d in never[:LIMIT]]},
        "per_day": per_day,
    }


def window_start(days: int, now: float | None = None) -> float:
    """The first moment of the ``days`` UTC days that end today: where a report's searches start."""
    first = datetime.fromtimestamp(now or time.time(), timezone.utc).date() - timedelta(days=days - 1)
    return datetime(first.year, first.month, first.day, tzinfo=timezone.utc).timestamp()


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def text(insights: dict[str, Any]) -> str:
    """The report as `kb insights` prints it."""
    clicks = insights["clicks"]
    rate = "no page searches" if clicks["click_through_rate"] is None else f"{clicks['click_through_rate']:.0%}"
    lines = [f"{insights['searches']:,} searches in {insights['groups']:,} groups over {insights['days']} days "
             f"(since {insights['since']}); {insights['unanswered_searches']:,} found no confident answer.",
             f"Page searches: {clicks['page_searches']:,}; a result was opened after {rate}"
             + (f", at mean rank {clicks['mean_rank_clicked']:.2f}." if clicks["mean_rank_clicked"] else "."), ""]
    lines.append("Top questions:")
    lines += [f"  {g['count']:>5}  {g['query']}" + (f"  ({g['unanswered']} unanswered)" if g["unanswered"] else "")
              for g in insights["top_queries"]] or ["  (none)"]
    lines += ["", "Questions kb could not answer (write the missing document):"]
    for group in insights["unanswered"]:
        nearest = group["nearest"][0]["title"] if group["nearest"] else "nothing"
        lines.append(f"  {group['count']:>5}  {group['query']}   nearest: {nearest}")
    if not insights["unanswered"]:
        lines.append("  (none)")
    lines += ["", "Most cited documents:"]
    lines += [f"  {d['count']:>5}  {d['title']} ({d['doc_id']})" for d in insights["most_cited"]] or ["  (none)"]
    never = insights["never_cited"]
    lines += ["", f"Never cited: {never['count']:,} documents" + (
        ": " + ", ".join(d["doc_id"] for d in never["documents"]) + (", …" if never["count"] > len(never["documents"])
                                                                     else "") if never["count"] else ".")]
    lines += ["", "Per day (searches / unanswered):"]
    lines += [f"  {d['day']}  {d['queries']:>5} / {d['unanswered']}" for d in insights["per_day"]]
    return "\n".join(lines)
