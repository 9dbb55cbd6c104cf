"""The insights report's logic on rows made by hand: grouping, wordings, the day window, clicks and citations."""

from __future__ import annotations

from datetime import datetime, timezone

from kb.insights.log import group_key
from kb.insights.report import LIMIT, report, window_start
from kb.stores.querylog import LoggedClick, LoggedSearch, summarize

NOON = datetime(2026, 11, 30, 12, tzinfo=timezone.utc).timestamp()
DAY = 86400


def made(rows, clicks, documents, passage, days):
    """The report over these rows, summarized as the stores summarize (tests/integration/stores/test_query_log.py
    holds both stores' SQL to ``summarize``)."""
    return report(summarize(rows, clicks, window_start(days, NOON), LIMIT), documents, passage, days, now=NOON)


def search(n: int, query: str, at: float, confident: bool = True, origin: str = "page", cited=("a",)) -> LoggedSearch:
    return LoggedSearch(n, at, query, group_key(query), origin, "hybrid", confident,
                        [[doc, 0, 10, 0.5] for doc in cited[:3]], list(cited))


def test_variants_of_case_punctuation_word_form_and_order_share_a_group_and_others_do_not():
    assert group_key("Has an American president ever visited Kazakhstan?") == \
        group_key("has an american PRESIDENTS ever visited kazakhstan!!") == \
        group_key("Kazakhstan: visited ever, American president?")
    assert group_key("oil prices") != group_key("oil exports")
    assert group_key("Who is he?") == group_key("who is HE") == "who is he"  # only stop words: its own words


def test_the_report_counts_groups_days_clicks_and_citations():
    rows = [search(1, "Oil prices?", NOON - 2 * DAY, cited=("a", "b")),
            search(2, "oil prices", NOON - DAY),
            search(3, "oil prices", NOON, origin="api"),
            search(4, "router password", NOON, confident=False, cited=("b",)),
            search(5, "too old", NOON - 9 * DAY)]
    clicks = [LoggedClick(1, NOON, 2, "a"), LoggedClick(2, NOON, 1, "a"), LoggedClick(3, NOON, 1, "a")]
    made_ = made(rows, clicks, [("a", "A"), ("b", "B"), ("c", "C")], lambda d, s, e: f"{d}:{s}-{e}", days=7)
    assert made_["searches"] == 4 and made_["groups"] == 2 and made_["unanswered_searches"] == 1
    oil = made_["top_queries"][0]
    assert (oil["query"], oil["count"], oil["wordings"], oil["unanswered"]) == ("oil prices", 3, 2, 0)
    assert made_["unanswered"] == [{"query": "router password", "count": 1, "last": "2026-11-30T12:00:00Z",
                                   "nearest": [{"doc_id": "b", "title": "B", "start": 0, "end": 10, "score": 0.5,
                                                "text": "b:0-10"}]}]
    # The api search (3) and its click are not the page's; the click on search 1 and on 2 are.
    assert made_["clicks"] == {"page_searches": 3, "clicked_searches": 2, "clicks": 2, "click_through_rate": 0.6667,
                              "mean_rank_clicked": 1.5}
    assert made_["most_cited"] == [{"doc_id": "a", "title": "A", "count": 3}, {"doc_id": "b", "title": "B", "count": 2}]
    assert made_["never_cited"] == {"count": 1, "documents": [{"doc_id": "c", "title": "C"}]}
    assert [d["day"] for d in made_["per_day"]] == [f"2026-11-{n}" for n in range(24, 31)]
    assert [(d["queries"], d["unanswered"]) for d in made_["per_day"][-3:]] == [(1, 0), (1, 0), (2, 1)]


def test_the_most_frequent_wording_names_a_group_and_the_first_seen_breaks_a_tie():
    rows = [search(1, "Oil Prices", NOON), search(2, "oil prices", NOON), search(3, "oil prices?", NOON),
            search(4, "oil prices?", NOON)]
    assert made(rows, [], [], lambda *_: None, days=1)["top_queries"][0]["query"] == "oil prices?"
    tie = made(rows[:2], [], [], lambda *_: None, days=1)
    assert tie["top_queries"][0]["query"] == "Oil Prices"
