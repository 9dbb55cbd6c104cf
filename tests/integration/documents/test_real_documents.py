"""Real documents through the real model, store and app: titles, heading paths, whole-sentence
highlights across hard wraps, and code shown and highlighted whole."""

import pytest

import kb
from kb.ingestion.sync import build_index
from kb.settings import Settings
from tests.real_documents import BOOK_PAGE, HARD_WRAPPED, MARKDOWN
from web.app import create_app


@pytest.fixture(scope="module")
def real_docs(tmp_path_factory, embedder):
    root = tmp_path_factory.mktemp("real-docs")
    corpus = root / "corpus"
    corpus.mkdir()
    (corpus / "ch08-02-strings.html").write_text(BOOK_PAGE, encoding="utf-8")
    (corpus / "strings-notes.txt").write_text(HARD_WRAPPED, encoding="utf-8")
    (corpus / "guide.md").write_text(MARKDOWN, encoding="utf-8")
    settings = Settings.from_env(environ={}, corpus_dir=corpus, index_dir=root / "index")
    build_index(settings, embedder=embedder)
    base = kb.open(settings, serving=True, embedder=embedder)
    yield create_app(settings, base=base).test_client()
    base.close()


def search(client, q, **extra):
    response = client.get("/api/search", query_string={"q": q, "k": 5, **extra})
    assert response.status_code == 200, response.get_json()
    return response.get_json()["results"]


def document_text(client, doc_id):
    return client.get(f"/api/documents/{doc_id}").get_json()["text"]


def test_an_html_result_carries_its_own_title_and_heading_path(real_docs):
    top = search(real_docs, "Why do new Rustaceans get stuck on strings?")[0]
    assert top["doc_id"] == "ch08-02-strings.html"
    assert top["title"] == "Storing UTF-8 Encoded Text with Strings"
    assert top["metadata"]["site"] == "The Rust Programming Language"
    assert top["headings"][0] == "Storing UTF-8 Encoded Text with Strings"
    slices = search(real_docs, "the string slice in its borrowed form", doc_id="ch08-02-strings.html")[0]
    assert slices["headings"][:2] == ["Storing UTF-8 Encoded Text with Strings", "What Is a String?"]
    assert top["heading"] == top["headings"][-1]
    assert "sections" not in top["metadata"] and "code" not in top["metadata"]


def test_highlights_are_whole_sentences_across_hard_wraps(real_docs):
    hits = search(real_docs, "Is the String type growable and mutable?", doc_id="strings-notes.txt")
    text = document_text(real_docs, "strings-notes.txt")
    marked = [text[h["start"]:h["end"]] for hit in hits for h in hit["highlights"]]
    assert marked, "a confident answer marks its sentences"
    whole = ("The String type, which is provided by the\nstandard library rather than coded into the core language, "
             "is a growable,\nmutable, owned, UTF-8 encoded string type.")
    assert whole in marked
    for sentence in marked:
        assert sentence[0].isupper() and sentence.rstrip()[-1] in ".?!:", sentence


def test_code_is_marked_as_code_and_highlighted_whole_or_not_at_all(real_docs):
    hits = search(real_docs, "run the installer with a prefix in /opt", doc_id="guide.md")
    text = document_text(real_docs, "guide.md")
    with_code = [hit for hit in hits if hit["code"]]
    assert with_code
    block = "```sh\n./install --prefix /opt/kb\necho done\n```"
    first, last = text.index(block), text.index(block) + len(block)
    for hit in with_code:
        for span in hit["code"]:
            assert text[span["start"]:span["end"]] in block and hit["start"] <= span["start"] < span["end"] <= hit["end"]
        for mark in hit["highlights"]:
            if mark["start"] < last and mark["end"] > first:
                assert (mark["start"], mark["end"]) == (first, last), "code is highlighted whole or not at all"
    page = real_docs.get("/?q=run+the+installer+with+a+prefix").get_data(as_text=True)
    assert '<code class="block">' in page and "Guide › Install" in page
    doc = real_docs.get("/documents/guide.md").get_data(as_text=True)
    assert '<code class="block">```sh\n./install --prefix /opt/kb\necho done\n```</code>' in doc
