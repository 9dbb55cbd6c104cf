"""Insights over a real index with the real model: the query log (what it keeps, groups, holds and prunes), the
report, the page's events, and /metrics (parsed by prometheus_client's own parser)."""

from __future__ import annotations

import re
import sqlite3
import time
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

import kb
from kb.ingestion.sync import build_index
from kb.stores import store_class
from kb.stores.querylog import LoggedClick, LoggedSearch
from tests.conftest import SEED_CORPUS
from web.app import create_app

QUESTION = "Has an American president ever visited Kazakhstan?"
VARIANTS = [QUESTION, QUESTION, "has an american president ever visited kazakhstan", "HAS AN AMERICAN PRESIDENT "
            "EVER VISITED KAZAKHSTAN?!", "Has an American presidents ever visited Kazakhstan"]
OFF_TOPIC = ["How do I reset my router password?", "how do I reset my router password", "How do I reset my router "
             "password?"]
SEED_ID = "astana-times-runde-interview.txt"
WRITE = {"Authorization": "Bearer write-key"}


def log_rows(settings) -> tuple[int, int]:
    """The log's own row counts, read from its database (none at all when it was never created)."""
    path = Path(settings.corpus_dir) / ".kb" / "queries.sqlite"
    if not path.exists():
        return 0, 0
    with sqlite3.connect(path) as conn:
        try:
            return conn.execute("SELECT count(*) FROM searches").fetchone()[0], \
                conn.execute("SELECT count(*) FROM clicks").fetchone()[0]
        except sqlite3.OperationalError:  # the file is there, its tables not yet (the log is opening it)
            return 0, 0


def test_api_searches_are_grouped_by_their_words_and_the_unanswered_are_listed(make_client):
    client, settings = make_client(query_log="on")
    for question in VARIANTS + OFF_TOPIC:
        assert client.post("/api/search", json={"q": question, "k": 3}).status_code == 200
    client.post("/api/search", json={"q": QUESTION, "k": 3, "offset": 3})  # "more results": not a new question
    report = client.get("/api/insights").get_json()
    assert report["searches"] == 8 and report["groups"] == 2
    top = report["top_queries"][0]
    assert (top["query"], top["count"], top["wordings"], top["unanswered"]) == (QUESTION, 5, 4, 0)
    assert [(g["query"], g["count"]) for g in report["unanswered"]] == [(OFF_TOPIC[0], 3)]
    nearest = report["unanswered"][0]["nearest"]
    assert nearest and nearest[0]["doc_id"] == SEED_ID and nearest[0]["text"]
    assert report["per_day"][-1]["queries"] == 8 and report["per_day"][-1]["unanswered"] == 3
    assert len(report["per_day"]) == 30 and report["unanswered_searches"] == 3
    assert report["most_cited"][0] == {"doc_id": SEED_ID, "title": report["most_cited"][0]["title"], "count": 8}
    assert report["never_cited"]["count"] == 0
    assert log_rows(settings) == (8, 0)  # written with the record, where the report read them


def test_the_page_counts_a_question_once_it_settles_and_counts_its_clicks(make_client):
    client, settings = make_client()  # the default, KB_QUERY_LOG=page
    typed = []
    for prefix in ("Has an", "Has an American", "Has an American president"):  # as you type: held, not kept
        html = client.get("/results", query_string={"q": prefix}).get_data(as_text=True)
        typed.append(int(re.search(r'data-query-id="(\d+)"', html).group(1)))
    assert client.get("/api/insights").get_json()["searches"] == 0
    settled = client.post("/api/events", json={"event": "search", "query_id": typed[-1]})
    assert settled.status_code == 202 and settled.get_json() == {"kept": True}
    clicked = client.post("/api/events", json={"event": "click", "query_id": typed[-1], "rank": 2, "doc_id": SEED_ID})
    assert clicked.get_json() == {"kept": True}
    whole = client.get("/", query_string={"q": "What did Runde say about Jackson-Vanik?"})  # a page loaded whole
    assert whole.status_code == 200 and "data-query-id" in whole.get_data(as_text=True)
    assert client.post("/api/search", json={"q": QUESTION}).status_code == 200  # the API: not kept by default
    report = client.get("/api/insights").get_json()
    assert report["searches"] == 2 and {g["query"] for g in report["top_queries"]} == {
        "Has an American president", "What did Runde say about Jackson-Vanik?"}
    assert report["clicks"] == {"page_searches": 2, "clicked_searches": 1, "clicks": 1, "click_through_rate": 0.5,
                                "mean_rank_clicked": 2.0}
    unknown = client.post("/api/events", json={"event": "click", "query_id": 12345, "rank": 1, "doc_id": SEED_ID})
    assert unknown.get_json() == {"kept": False}
    assert log_rows(settings) == (2, 1)


def test_a_search_reaches_the_log_within_two_seconds_without_a_report(make_client):
    client, settings = make_client(query_log="on")
    client.post("/api/search", json={"q": QUESTION})
    deadline = time.monotonic() + 2
    while log_rows(settings)[0] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert log_rows(settings)[0] == 1


def test_with_the_log_off_nothing_is_written(make_client):
    client, settings = make_client(query_log="off")
    html = client.get("/results", query_string={"q": QUESTION}).get_data(as_text=True)
    assert "data-query-id" not in html
    client.get("/", query_string={"q": QUESTION})
    client.post("/api/search", json={"q": QUESTION})
    client.post("/api/events", json={"event": "search", "query_id": 1})
    assert client.get("/api/insights").get_json()["searches"] == 0
    assert log_rows(settings) == (0, 0)


def test_searches_with_a_key_are_left_out_unless_asked_for(make_client):
    client, _ = make_client(query_log="on", api_key="write-key")
    client.post("/api/search", json={"q": QUESTION}, headers=WRITE)  # a script's
    client.post("/api/search", json={"q": OFF_TOPIC[0]})
    assert [g["query"] for g in client.get("/api/insights").get_json()["top_queries"]] == [OFF_TOPIC[0]]
    keyed, _ = make_client(query_log="on", api_key="write-key", query_log_keyed="on")  # the same store and log
    keyed.post("/api/search", json={"q": QUESTION}, headers=WRITE)
    assert {g["query"] for g in keyed.get("/api/insights").get_json()["top_queries"]} == {OFF_TOPIC[0], QUESTION}


def test_retention_deletes_what_is_older_than_kb_query_log_days(make_client):
    client, settings = make_client(query_log="on", query_log_days=7)
    base = client.application.extensions["kb"]
    now = time.time()
    old = [LoggedSearch(n, now - 8 * 86400, "old question", "old question", "api", "hybrid", False) for n in (1, 2)]
    new = [LoggedSearch(3, now - 6 * 86400, "new question", "new question", "api", "hybrid", True)]
    base.queries.log.append(old + new, [LoggedClick(1, now - 8 * 86400, 1, SEED_ID), LoggedClick(3, now, 1, SEED_ID)])
    assert log_rows(settings) == (3, 2)
    assert base.queries.prune() == 3
    assert log_rows(settings) == (1, 1)


def test_bad_events_and_windows_are_refused_with_a_code(make_client):
    client, _ = make_client()
    for body in ({"event": "scroll", "query_id": 1}, {"event": "click", "query_id": "x"},
                 {"event": "click", "query_id": 1, "rank": 0, "doc_id": SEED_ID},
                 {"event": "click", "query_id": 1, "rank": 1}, [1, 2]):
        refused = client.post("/api/events", json=body)
        assert refused.status_code == 400 and refused.get_json()["error"]["code"] == "invalid_event", body
    for days in ("0", "x", "99999"):
        refused = client.get("/api/insights", query_string={"days": days})
        assert refused.status_code == 400 and refused.get_json()["error"]["code"] == "invalid_days"
    assert client.get("/insights", query_string={"days": "0"}).status_code == 400


def scrape(client) -> dict[tuple[str, tuple], float]:
    response = client.get("/metrics")
    assert response.status_code == 200 and response.mimetype == "text/plain"
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(response.get_data(as_text=True)) for sample in family.samples}


def test_metrics_parse_and_move_with_real_traffic(make_client):
    client, _ = make_client(api_key="write-key")
    before = scrape(client)
    assert before[("kb_documents", ())] == 1 and before[("kb_passages", ())] >= 1
    assert before[("process_resident_memory_bytes", ())] > 0 and before[("kb_ready", ())] == 1
    assert ("kb_index_age_seconds", ()) in before
    client.post("/api/search", json={"q": QUESTION, "mode": "hybrid"})
    client.post("/api/search", json={"q": QUESTION, "mode": "hybrid"})  # the same again: from the answer cache
    client.post("/api/search", json={"q": OFF_TOPIC[0], "mode": "keyword"})
    added = client.post("/api/documents", json={"id": "note", "text": "The heron stood in the reeds."}, headers=WRITE)
    assert added.status_code == 201
    after = scrape(client)

    def moved(name, **labels):
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0) - before.get(key, 0)

    assert moved("kb_searches_total", confident="true") == 2 and moved("kb_searches_total", confident="false") == 1
    assert moved("kb_request_duration_seconds_count", endpoint="api.search_post", method="POST", mode="hybrid") == 2
    assert moved("kb_request_duration_seconds_count", endpoint="api.search_post", method="POST", mode="keyword") == 1
    assert moved("kb_answer_cache_hits_total") >= 1 and moved("kb_answers_total") == 3
    assert moved("kb_write_duration_seconds_count") == 1 and after[("kb_documents", ())] == 2
    assert not any("Kazakhstan" in str(labels) for _, labels in after)  # no query text in a label
    client.open("/api/search", method="BREW")  # any token a client sends is not a label value of its own
    brewed = scrape(client)
    assert not any("BREW" in str(labels) for _, labels in brewed)
    assert brewed[("kb_request_duration_seconds_count", (("endpoint", "unmatched"), ("method", "other"),
                                                         ("mode", "")))] >= 1


def test_postgres_keeps_the_log_in_its_schema_and_reports_its_pools(pg_settings, embedder, tmp_path):
    import shutil

    import psycopg

    shutil.copytree(SEED_CORPUS, pg_settings.corpus_dir)
    settings = pg_settings.with_(query_log="on", query_log_days=7)
    build_index(settings, embedder=embedder)
    base = kb.open(settings, serving=True, embedder=embedder)
    client = create_app(settings, base=base).test_client()
    try:
        for question in VARIANTS + OFF_TOPIC:
            client.post("/api/search", json={"q": question})
        report = client.get("/api/insights").get_json()
        assert report["top_queries"][0]["count"] == 5 and report["unanswered"][0]["count"] == 3
        with psycopg.connect(settings.pg_dsn) as conn:
            assert conn.execute(f"SELECT count(*) FROM {settings.pg_schema}.queries").fetchone()[0] == 8
        base.queries.log.append([LoggedSearch(7, time.time() - 8 * 86400, "old", "old", "api", "hybrid", True)], [])
        assert base.queries.prune() == 1
        with psycopg.connect(settings.pg_dsn) as conn:
            assert conn.execute(f"SELECT count(*) FROM {settings.pg_schema}.queries").fetchone()[0] == 8
        metrics = scrape(client)
        assert metrics[("kb_pg_pool_connections", (("pool", "write"),))] >= 1
        assert ("kb_index_age_seconds", ()) in metrics
    finally:
        base.close()
    log = store_class(settings).query_log(settings)
    try:
        assert log.counts() == (8, 0)  # kept with the record: another process reads the same rows
    finally:
        log.close()


def test_kb_insights_prints_the_same_report(make_client, capsys, monkeypatch):
    import json

    from kb.cli import main

    client, settings = make_client(query_log="on")
    for question in VARIANTS + OFF_TOPIC:
        client.post("/api/search", json={"q": question})
    served = client.get("/api/insights", query_string={"days": 7}).get_json()
    monkeypatch.setenv("KB_CORPUS_DIR", str(settings.corpus_dir))
    assert main(["insights", "--days", "7", "--json", "--index-dir", str(settings.index_dir)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert {k: v for k, v in printed.items() if k != "until"} == {k: v for k, v in served.items() if k != "until"}
    assert main(["insights", "--index-dir", str(settings.index_dir)]) == 0
    out = capsys.readouterr().out
    assert f"{OFF_TOPIC[0]}   nearest: " in out and "8 searches in 2 groups over 30 days" in out
    assert main(["insights", "--days", "0", "--index-dir", str(settings.index_dir)]) == 1
    assert capsys.readouterr().err.strip() == "kb: --days must be from 1 to 3650, got 0"
