"""The insights report over the query log: what people ask, what kb cannot answer, what they open, what is cited.

One function makes it (``report``), and `kb insights`, /api/insights and the /insights page all show its dict.
"""

from __future__ import annotations

import statistics
import time
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterable

from kb.stores.querylog import LoggedClick, LoggedSearch

LIMIT = 20  # groups, documents shown in each list
MAX_DAYS = 3650


def report(searches: list[LoggedSearch], clicks: list[LoggedClick], documents: Iterable[tuple[str, str]],
           passage: Callable[[str, int, int], str | None], days: int, now: float | None = None,
           limit: int = LIMIT) -> dict[str, Any]:
    """The report for the ``days`` up to ``now`` (UTC days, today included).

    ``documents``: every (id, title) in the knowledge base; ``passage(doc_id, start, end)``: a passage's text, or
    None when it is gone (for the nearest passages of an unanswered question).
    """
    now = now or time.time()
    first_day = datetime.fromtimestamp(now, timezone.utc).date() - timedelta(days=days - 1)
    since = datetime(first_day.year, first_day.month, first_day.day, tzinfo=timezone.utc).timestamp()
    searches = [s for s in searches if s.at >= since]
    clicks = [c for c in clicks if c.at >= since]
    titles = dict(documents)

    groups: dict[str, list[LoggedSearch]] = defaultdict(list)
    for search in searches:
        groups[search.key].append(search)

    def wording(rows: list[LoggedSearch]) -> str:
        """The group's most frequent wording (the earliest of equals: most_common keeps first-seen order)."""
        return Counter(row.query for row in rows).most_common(1)[0][0]

    top = sorted(groups.values(), key=lambda rows: (-len(rows), -rows[-1].at))[:limit]
    top_queries = [{"query": wording(rows), "count": len(rows), "wordings": len({r.query for r in rows}),
                    "unanswered": sum(not r.confident for r in rows), "last": _iso(rows[-1].at)} for rows in top]

    missed = {key: [r for r in rows if not r.confident] for key, rows in groups.items()}
    missed_rows = sorted((rows for rows in missed.values() if rows), key=lambda rows: (-len(rows), -rows[-1].at))
    unanswered = [{"query": wording(rows), "count": len(rows), "last": _iso(rows[-1].at),
                   "nearest": [{"doc_id": doc_id, "title": titles.get(doc_id, doc_id), "start": start, "end": end,
                                "score": score, "text": passage(doc_id, start, end)}
                               for doc_id, start, end, score in rows[-1].nearest]}
                  for rows in missed_rows[:limit]]

    page = {s.id for s in searches if s.origin == "page"}
    page_clicks = [c for c in clicks if c.query_id in page]
    clicked = {c.query_id for c in page_clicks}

    cited = Counter(doc_id for s in searches for doc_id in s.cited)
    never = sorted(doc_id for doc_id in titles if doc_id not in cited)

    per_day: dict[str, dict[str, int]] = {
        str(first_day + timedelta(days=n)): {"queries": 0, "unanswered": 0} for n in range(days)}
    for search in searches:
        day = per_day.get(datetime.fromtimestamp(search.at, timezone.utc).date().isoformat())
        if day is not None:
            day["queries"] += 1
            day["unanswered"] += not search.confident

    return {
        "days": days, "since": _iso(since), "until": _iso(now),
        "searches": len(searches), "groups": len(groups),
        "unanswered_searches": sum(not s.confident for s in searches),
        "top_queries": top_queries,
        "unanswered": unanswered,
        "clicks": {"page_searches": len(page), "clicked_searches": len(clicked), "clicks": len(page_clicks),
                   "click_through_rate": round(len(clicked) / len(page), 4) if page else None,
                   "mean_rank_clicked": round(statistics.mean(c.rank for c in page_clicks), 3) if page_clicks else None},
        "most_cited": [{"doc_id": doc_id, "title": titles.get(doc_id, doc_id), "count": count}
                       for doc_id, count in cited.most_common(limit)],
        "never_cited": {"count": len(never), "documents": [{"doc_id": d, "title": titles[d]} for d in never[:limit]]},
        "per_day": [{"day": day, **counts} for day, counts in per_day.items()],
    }


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
