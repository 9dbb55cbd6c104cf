"""A real browser (Debian's Chromium driven by Playwright) against a real `kb serve` with the real model.

The search page answers as you type, pages with "More results", opens documents at the cited
passage and can be used from the keyboard alone; every state passes axe-core (serious and
critical rules) and is saved as a screenshot under tests/artifacts/ (git-ignored).
"""

from __future__ import annotations

import json
import shutil
import statistics
import threading
import time
import urllib.parse
import urllib.request

import pytest
from playwright.sync_api import expect

from kb.evaluation.questions import load_questions
from tests.conftest import SEED_CORPUS, SEED_QUESTIONS
from tests.e2e.conftest import ARTIFACTS, accessible, start_server

pytestmark = pytest.mark.browser  # skipped, loudly, where Chromium is not installed (tests/conftest.py)

QUESTIONS = load_questions(SEED_QUESTIONS)
QUESTION = QUESTIONS[0]
OFF_TOPIC = "How do I reset my router password?"
ANSWER_TIMEOUT = 30_000  # ms; generous for a busy CI machine (the latency is measured, not asserted)

# Records, from outside the page's script, when the last key went down and when the summary of
# the answer to the whole question appeared, to report the time from last keystroke to answer.
WATCH = """question => {
  window.kbWatch = {lastKey: 0, answered: 0};
  document.addEventListener('keydown', () => { kbWatch.lastKey = performance.now(); }, true);
  new MutationObserver(() => {
    const summary = document.querySelector('#summary');
    if (!kbWatch.answered && summary && summary.textContent.includes('\u201c' + question + '\u201d')) {
      kbWatch.answered = performance.now();
    }
  }).observe(document.body, {childList: true, subtree: true, characterData: true});
}"""


def type_question(tab, text: str) -> None:
    box = tab.get_by_label("Ask a question")
    box.click()
    box.press_sequentially(text, delay=20)


def summary_for(tab, question: str):
    return tab.locator("#summary", has_text=f"\u201c{question}\u201d")


def test_typing_a_question_shows_the_answer_first_without_pressing_enter(server, open_page):
    tab = open_page().tab
    tab.goto(server.base + "/")
    accessible(tab, "start")
    tab.evaluate(WATCH, QUESTION.q)
    type_question(tab, QUESTION.q)
    expect(summary_for(tab, QUESTION.q)).to_be_visible(timeout=ANSWER_TIMEOUT)
    first = tab.locator("ol#results li.result").first
    assert QUESTION.evidence in first.locator(".passage").inner_text()
    assert any(QUESTION.evidence in marked for marked in first.locator("mark.answer").all_inner_texts())
    assert first.locator(".title").inner_text().startswith("Trump's Kazakhstan Trip")
    assert "passage " in first.locator(".position").inner_text()
    assert tab.locator("#status").inner_text() == "5 passages"  # the live region
    assert urllib.parse.parse_qs(urllib.parse.urlparse(tab.url).query)["q"] == [QUESTION.q]
    waited = tab.evaluate("() => kbWatch.answered - kbWatch.lastKey")
    assert waited > 0
    _report("last keystroke to answer, one seed question (ms)", [waited])
    accessible(tab, "answer")
    # The URL follows the question: a reload shows the same answer, server-rendered.
    tab.reload()
    expect(summary_for(tab, QUESTION.q)).to_be_visible()
    assert QUESTION.evidence in tab.locator("ol#results li.result .passage").first.inner_text()


def test_the_first_answer_comes_soon_after_the_last_keystroke(server, open_page):
    """Reported, not asserted: the issue's aim is 300 ms on the seed index."""
    tab = open_page().tab
    times = []
    for question in QUESTIONS[1:6]:
        tab.goto(server.base + "/")
        tab.evaluate(WATCH, question.q)
        type_question(tab, question.q)
        expect(summary_for(tab, question.q)).to_be_visible(timeout=ANSWER_TIMEOUT)
        times.append(tab.evaluate("() => kbWatch.answered - kbWatch.lastKey"))
    assert all(t > 0 for t in times)
    _report("last keystroke to answer, 5 more seed questions (ms)", times)


def _report(what: str, times: list[float]) -> None:
    line = (f"{what}: median {statistics.median(times):.0f}, max {max(times):.0f}, "
            f"all {', '.join(f'{t:.0f}' for t in times)}")
    print(line)
    ARTIFACTS.mkdir(exist_ok=True)
    with open(ARTIFACTS / "page_latency.txt", "a") as out:
        out.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n")


# Holds back the answers to one question (the first typed) until long after the next one is answered,
# so a page that does not drop stale answers would show it last.
SLOW_FIRST = """slow => {
  const real = window.fetch;
  window.fetch = (url, options) => real(url, options).then(response =>
    String(url).includes('q=' + encodeURIComponent(slow).replace(/%20/g, '+'))
      ? new Promise(done => setTimeout(() => done(response), 2500)) : response);
}"""


def test_typing_fast_then_changing_the_question_keeps_only_the_last_answer(server, open_page):
    tab = open_page().tab
    tab.goto(server.base + "/")
    tab.evaluate(SLOW_FIRST, "oil prices")
    seen = []
    tab.expose_function("seen", lambda text: seen.append(text))
    tab.evaluate("""() => new MutationObserver(() => {
        const summary = document.querySelector('#summary');
        if (summary) window.seen(summary.textContent);
      }).observe(document.body, {childList: true, subtree: true})""")
    type_question(tab, "oil prices")
    tab.wait_for_timeout(400)  # its request has gone out and is held back
    expect(tab.locator("#searching")).to_be_visible()  # slower than 150 ms: the page says it is searching
    expect(tab.locator("#answer")).to_have_attribute("aria-busy", "true")
    accessible(tab, "searching")
    box = tab.get_by_label("Ask a question")
    box.fill("")
    type_question(tab, QUESTION.q)
    expect(summary_for(tab, QUESTION.q)).to_be_visible(timeout=ANSWER_TIMEOUT)
    tab.wait_for_timeout(3500)  # the held-back answer to "oil prices" has arrived by now
    expect(summary_for(tab, QUESTION.q)).to_be_visible()
    assert QUESTION.evidence in tab.locator("ol#results li.result .passage").first.inner_text()
    assert not any("\u201coil prices\u201d" in text for text in seen), seen
    assert box.input_value() == QUESTION.q
    expect(tab.locator("#searching")).to_be_hidden()


def test_more_results_continue_the_list_without_repeating_a_sentence(server, open_page):
    tab = open_page().tab
    tab.goto(server.base + "/?" + urllib.parse.urlencode({"q": QUESTION.q, "k": 3}))
    results = tab.locator("ol#results > li.result")
    assert results.count() == 3
    tab.get_by_role("link", name="More results").click()
    expect(results).to_have_count(6)
    ranks = tab.evaluate("() => [...document.querySelectorAll('#results > li')].map(li => li.dataset.passageId)")
    api = json.loads(urllib.request.urlopen(server.base + "/api/search?" + urllib.parse.urlencode(
        {"q": QUESTION.q, "k": 6})).read())
    assert ranks == [r["passage_id"] for r in api["results"]], "the same ranking as the API, without gaps"
    # Keyboard users land on the first new result.
    assert tab.evaluate("() => document.activeElement.closest('li').dataset.passageId") == ranks[3]
    # No sentence of a document shows twice: shown text never overlaps within one document.
    shown = [s.strip() for s in tab.locator("#results .passage").all_inner_texts()]
    sentences = [s for text in shown for s in text.replace("…", "").split(". ") if len(s) > 30]
    assert len(sentences) == len(set(sentences)), "a sentence shown twice"
    accessible(tab, "more-results")


def test_the_document_view_opens_at_the_cited_passage_with_its_neighbours(server, open_page):
    tab = open_page(viewport={"width": 1000, "height": 700}).tab
    tab.goto(server.base + "/")
    type_question(tab, QUESTION.q)
    expect(summary_for(tab, QUESTION.q)).to_be_visible(timeout=ANSWER_TIMEOUT)
    answers = tab.locator("ol#results li.result").first.locator("mark.answer").all_inner_texts()
    tab.locator("ol#results li.result .title").first.click()
    cited = tab.locator("mark#passage")
    expect(cited).to_be_in_viewport()
    assert QUESTION.evidence in cited.inner_text()
    assert cited.locator("mark.answer").all_inner_texts() == answers, "the same answering sentences"
    where = tab.locator("nav.passages .current").inner_text()
    assert where.startswith("Passage ")
    ordinal = int(where.split()[1])
    accessible(tab, "document")
    text = cited.inner_text()
    tab.get_by_role("link", name="Next passage").click()
    expect(tab.locator("nav.passages .current")).to_have_text(f"Passage {ordinal + 1} of 9")
    expect(tab.locator("mark#passage")).to_be_in_viewport()
    assert tab.locator("mark#passage").inner_text() != text
    tab.get_by_role("link", name="Previous passage").click()
    expect(tab.locator("nav.passages .current")).to_have_text(f"Passage {ordinal} of 9")
    assert tab.locator("mark#passage").inner_text() == text


def test_an_off_topic_question_shows_the_no_match_state(server, open_page):
    tab = open_page().tab
    tab.goto(server.base + "/")
    type_question(tab, OFF_TOPIC)
    expect(tab.locator("#no-match")).to_contain_text("Nothing in the knowledge base answers")
    assert tab.locator("ol#results li.result").count() == 5
    assert "none answers confidently" in tab.locator("#status").inner_text()
    accessible(tab, "no-match")


def test_errors_are_a_friendly_line_never_json(server, open_page):
    tab = open_page().tab
    tab.goto(server.base + "/?q=oil&k=99")  # no script involved: the server's page
    expect(tab.locator("#error")).to_contain_text("k must be between 1 and 50")
    accessible(tab, "error")
    tab.goto(server.base + "/")
    tab.route("**/results?**", lambda route: route.abort())  # the network fails under the script
    type_question(tab, "oil")
    expect(tab.locator("#error")).to_have_text("kb could not be reached. Check the connection and try again.")
    assert "{" not in tab.locator("#answer").inner_text()
    accessible(tab, "error-network")
    # "More results" failing keeps the results shown, and can be tried again.
    tab.goto(server.base + "/?" + urllib.parse.urlencode({"q": QUESTION.q, "k": 3}))
    tab.get_by_role("link", name="More results").click()
    expect(tab.locator("#error")).to_have_text("kb could not be reached. Check the connection and try again.")
    assert tab.locator("ol#results > li.result").count() == 3
    tab.unroute("**/results?**")
    tab.get_by_role("link", name="More results").click()
    expect(tab.locator("ol#results > li.result")).to_have_count(6)
    expect(tab.locator("#error")).to_have_count(0)


def test_keyboard_alone_searches_moves_opens_and_clears(server, open_page):
    tab = open_page().tab
    tab.goto(server.base + "/")
    tab.locator("body").click(position={"x": 5, "y": 5})  # focus away from the box
    tab.keyboard.press("/")
    box = tab.get_by_label("Ask a question")
    expect(box).to_be_focused()
    tab.keyboard.type(QUESTION.q, delay=20)
    expect(summary_for(tab, QUESTION.q)).to_be_visible(timeout=ANSWER_TIMEOUT)
    titles = tab.locator("ol#results li.result .title")
    tab.keyboard.press("ArrowDown")
    expect(titles.nth(0)).to_be_focused()
    tab.keyboard.press("ArrowDown")
    tab.keyboard.press("ArrowDown")
    expect(titles.nth(2)).to_be_focused()
    tab.keyboard.press("ArrowUp")
    expect(titles.nth(1)).to_be_focused()
    href = titles.nth(1).get_attribute("href")
    tab.keyboard.press("Enter")
    tab.wait_for_url("**/documents/**")
    assert urllib.parse.urlparse(tab.url).query == urllib.parse.urlparse(href).query
    tab.go_back()
    expect(summary_for(tab, QUESTION.q)).to_be_visible()
    tab.get_by_label("Ask a question").focus()
    tab.keyboard.press("ArrowDown")
    expect(titles.nth(0)).to_be_focused()
    tab.keyboard.press("Escape")
    expect(box).to_be_focused()
    expect(box).to_have_value("")
    expect(tab.locator("ol#results")).to_have_count(0)
    assert tab.url.rstrip("/") == server.base


def test_a_360_pixel_screen_in_the_dark(server, open_page):
    tab = open_page(viewport={"width": 360, "height": 740}, color_scheme="dark").tab
    tab.goto(server.base + "/")
    type_question(tab, QUESTION.q)
    expect(summary_for(tab, QUESTION.q)).to_be_visible(timeout=ANSWER_TIMEOUT)
    assert tab.evaluate("() => document.documentElement.scrollWidth") <= 360, "nothing wider than the screen"
    box = tab.get_by_label("Ask a question").bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 360
    background = tab.evaluate("() => getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(17, 20, 24)", "the dark scheme is followed"
    accessible(tab, "phone-dark")


def test_without_javascript_the_form_still_answers(server, open_page):
    tab = open_page(java_script_enabled=False).tab
    tab.goto(server.base + "/?" + urllib.parse.urlencode({"q": QUESTION.q}))
    assert QUESTION.evidence in tab.locator("ol#results li.result .passage").first.inner_text()
    tab.get_by_label("Ask a question").fill(OFF_TOPIC)
    tab.get_by_role("button", name="Search").click()
    tab.wait_for_url("**router**")
    assert "Nothing in the knowledge base answers" in tab.locator("#no-match").inner_text()
    tab.get_by_label("Ask a question").fill(QUESTION.q)
    tab.get_by_label("Retrieval").select_option("keyword")
    tab.get_by_role("button", name="Search").click()
    tab.wait_for_url("**mode=keyword**")
    first = tab.locator("ol#results li.result").first
    assert QUESTION.evidence in first.locator("mark.answer").first.inner_text()
    assert first.locator("strong.term").count() >= 2
    tab.get_by_role("link", name="More results").click()
    tab.wait_for_url("**offset=5**")
    assert tab.locator("#summary").inner_text().startswith("Passages 6–")


def test_an_empty_knowledge_base_says_how_to_add_documents(open_page, tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    server = start_server(tmp_path / "index", tmp_path / "serve.log", corpus_dir=corpus)
    try:
        tab = open_page().tab
        tab.goto(server.base + "/")
        expect(tab.locator("#empty")).to_contain_text("The knowledge base is empty")
        type_question(tab, QUESTION.q)
        tab.wait_for_url("**q=**")
        expect(tab.locator("#empty")).to_contain_text("POST /api/documents")
        assert tab.locator("#status").inner_text() == "The knowledge base is empty"
        accessible(tab, "empty")
    finally:
        server.stop()


def test_while_kb_starts_the_page_says_so_and_answers_when_ready(open_page, tmp_path):
    shutil.copytree(SEED_CORPUS, tmp_path / "corpus")
    server = start_server(tmp_path / "index", tmp_path / "serve.log", corpus_dir=tmp_path / "corpus", ready=False)
    try:
        tab = open_page().tab
        tab.goto(server.base + "/?" + urllib.parse.urlencode({"q": QUESTION.q}))
        expect(tab.locator("#not-ready")).to_contain_text("kb is starting")  # the first build is still running
        accessible(tab, "starting")
        # The script asks again until kb is ready: the answer appears without a reload.
        expect(summary_for(tab, QUESTION.q)).to_be_visible(timeout=180_000)
        assert QUESTION.evidence in tab.locator("ol#results li.result .passage").first.inner_text()
    finally:
        server.stop()


def test_the_page_says_it_is_updating_while_the_folder_watch_has_changes_waiting(open_page, tmp_path, embedder):
    from tests.e2e.test_folder_watch import Folder

    watched = Folder(tmp_path, embedder)
    try:
        tab = open_page().tab
        tab.goto(watched.server.base + "/")
        expect(tab.locator("#updating")).to_be_hidden()
        stop = threading.Event()

        def keep_copying() -> None:  # a file still being written: held back, so it waits
            with open(watched.corpus / "growing.txt", "w", encoding="utf-8") as handle:
                while not stop.is_set():
                    handle.write("The archive grows line by line.\n")
                    handle.flush()
                    time.sleep(0.1)

        writer = threading.Thread(target=keep_copying)
        writer.start()
        try:
            expect(tab.locator("#updating")).to_have_text("Updating 1 document…", timeout=15_000)
            accessible(tab, "updating")
        finally:
            stop.set()
            writer.join()
        expect(tab.locator("#updating")).to_be_hidden(timeout=20_000)
    finally:
        watched.stop()
