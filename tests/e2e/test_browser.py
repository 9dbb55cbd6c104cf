"""A real browser (Debian's Chromium driven by Playwright) against a real `kb serve`."""

import pytest
from playwright.sync_api import sync_playwright

from kb.questions import load_questions
from tests.conftest import SEED_QUESTIONS

pytestmark = pytest.mark.browser  # skipped, loudly, where Chromium is not installed (tests/conftest.py)

QUESTION = load_questions(SEED_QUESTIONS)[0]
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def page():
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        context = browser.new_context()
        yield context.new_page()
        browser.close()


def test_a_person_types_a_question_and_sees_the_answer_first(server, page):
    page.goto(server.base + "/")
    page.get_by_label("Ask a question").fill(QUESTION.q)
    page.keyboard.press("Enter")
    page.wait_for_selector("ol#results li.result")
    results = page.locator("ol#results li.result")
    assert results.count() == 5
    first = results.nth(0)
    assert QUESTION.evidence in first.locator(".passage").inner_text()
    assert first.locator(".title").inner_text().startswith("Trump's Kazakhstan Trip")
    assert "passage " in first.locator(".position").inner_text()
    assert page.get_by_label("Ask a question").input_value() == QUESTION.q


def test_the_title_link_opens_the_document_at_the_cited_passage(server, page):
    page.goto(server.base + "/?q=" + QUESTION.q.replace(" ", "+"))
    page.locator("ol#results li.result .title").first.click()
    page.wait_for_selector("mark#passage")
    assert QUESTION.evidence in page.locator("mark#passage").inner_text()


def test_the_answering_sentence_is_marked_and_the_mode_can_be_changed(server, page):
    page.goto(server.base + "/")
    page.get_by_label("Ask a question").fill(QUESTION.q)
    page.get_by_label("Retrieval").select_option("keyword")
    page.get_by_role("button", name="Search").click()
    page.wait_for_selector("ol#results li.result")
    assert "mode=keyword" in page.url
    assert page.get_by_label("Retrieval").input_value() == "keyword"
    first = page.locator("ol#results li.result").first
    assert QUESTION.evidence in first.locator("mark.answer").first.inner_text()
    assert first.locator("strong.term").count() >= 2


def test_an_off_topic_question_gets_a_plain_no(server, page):
    page.goto(server.base + "/?q=How+do+I+reset+my+router+password%3F")
    assert "Nothing in the knowledge base answers" in page.locator("#no-match").inner_text()
    assert page.locator("ol#results li.result").count() == 5
