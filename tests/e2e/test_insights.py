"""Insights in a real browser (Chromium, Playwright) against a real `kb serve` with the real model: questions typed
on the page count once each when they settle (not once per keystroke), results opened count with their rank, the
report says so, the /insights page passes axe-core and links each unanswered question to the search page, and
/metrics moves with the traffic."""

from __future__ import annotations

import json
import time
import urllib.request

import pytest
from playwright.sync_api import expect
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import accessible, server_on_a_copy
from tests.e2e.test_browser import ANSWER_TIMEOUT, summary_for, type_question

pytestmark = pytest.mark.browser

FIRST = "Has an American president ever visited Kazakhstan?"
OFF_TOPIC = "How do I reset my router password?"
THIRD = "What did Runde say about the Jackson-Vanik amendment?"


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    server = server_on_a_copy(tmp_path_factory, "insights", {"KB_QUERY_LOG": "page"})
    yield server
    server.stop()


def report(server) -> dict:
    with urllib.request.urlopen(server.base + "/api/insights", timeout=30) as response:
        return json.loads(response.read())


def wait_for(check, seconds: float = 15.0):
    deadline = time.monotonic() + seconds
    while not (value := check()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return value


def searches(server) -> float:
    with urllib.request.urlopen(server.base + "/metrics", timeout=30) as response:
        text = response.read().decode("utf-8")
    return sum(sample.value for family in text_string_to_metric_families(text) for sample in family.samples
               if sample.name == "kb_searches_total")


def test_typed_questions_count_once_when_they_settle_and_clicks_count_with_their_rank(logged, open_page):
    searched_before = searches(logged)
    tab = open_page().tab
    tab.goto(logged.base + "/")
    type_question(tab, FIRST[:15])  # as you type: a prefix is answered too, and must not count
    expect(summary_for(tab, FIRST[:15])).to_be_visible(timeout=ANSWER_TIMEOUT)
    tab.get_by_label("Ask a question").press_sequentially(FIRST[15:], delay=20)  # within 1.5 s: not settled
    expect(summary_for(tab, FIRST)).to_be_visible(timeout=ANSWER_TIMEOUT)
    assert wait_for(lambda: report(logged)["searches"] == 1), report(logged)  # it settled (1.5 s unchanged)
    time.sleep(2)
    assert report(logged)["searches"] == 1  # and only it
    tab.locator("ol#results li.result .title").first.click()  # opened at rank 1
    expect(tab.locator("#passage")).to_be_visible()

    tab.goto(logged.base + "/")
    type_question(tab, OFF_TOPIC)
    tab.keyboard.press("Enter")  # Enter settles at once
    expect(tab.locator("#no-match")).to_be_visible(timeout=ANSWER_TIMEOUT)
    tab.goto(logged.base + "/")
    type_question(tab, THIRD)
    expect(summary_for(tab, THIRD)).to_be_visible(timeout=ANSWER_TIMEOUT)
    tab.locator("ol#results li.result .title").nth(1).click()  # opened at rank 2, before the question settled
    expect(tab.locator("#passage")).to_be_visible()

    insights = wait_for(lambda: (r := report(logged))["clicks"]["clicks"] == 2 and r["searches"] == 3 and r)
    assert insights, report(logged)
    assert {g["query"] for g in insights["top_queries"]} == {FIRST, OFF_TOPIC, THIRD}
    assert [g["query"] for g in insights["unanswered"]] == [OFF_TOPIC]  # the in-domain questions are not there
    assert insights["clicks"] == {"page_searches": 3, "clicked_searches": 2, "clicks": 2,
                                  "click_through_rate": 0.6667, "mean_rank_clicked": 1.5}
    assert insights["per_day"][-1] == {"day": insights["per_day"][-1]["day"], "queries": 3, "unanswered": 1}
    assert searches(logged) - searched_before >= 4  # /metrics counts every answer, the prefix included

    tab.goto(logged.base + "/insights")
    expect(tab.locator("#unanswered-table")).to_contain_text(OFF_TOPIC)
    assert tab.locator("svg[role=img] rect.bar").count() == 2 * 30
    accessible(tab, "insights")
    tab.locator("#unanswered-table a", has_text=OFF_TOPIC).click()  # runs the question on the search page
    expect(tab.locator("#no-match")).to_be_visible(timeout=ANSWER_TIMEOUT)
    assert tab.get_by_label("Ask a question").input_value() == OFF_TOPIC
