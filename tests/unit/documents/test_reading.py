import logging
import re

import pytest

from kb.documents.document import content_hash, doc_id_for
from kb.documents.reading import read_corpus, read_document


def write(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        path.write_text(data, encoding="utf-8")
    else:
        path.write_bytes(data)
    return path


def test_txt_title_is_first_non_empty_line(tmp_path):
    doc = read_document(write(tmp_path / "a.txt", "\n\n  Headline here  \nBody text.\n"), "a.txt")[0]
    assert doc.title == "Headline here"
    assert doc.text == "\n\n  Headline here  \nBody text.\n"
    assert doc.source == "a.txt"


def test_crlf_is_normalised_so_offsets_match_the_stored_text(tmp_path):
    doc = read_document(write(tmp_path / "a.txt", b"Title\r\nLine one.\r\nLine two."), "a.txt")[0]
    assert doc.text == "Title\nLine one.\nLine two."


def test_markdown_title_is_first_heading(tmp_path):
    doc = read_document(write(tmp_path / "n.md", "Intro line\n\n# The Real Title #\n\nText."), "n.md")[0]
    assert doc.title == "The Real Title"


def test_html_keeps_title_and_main_text_and_drops_scripts_and_navigation(tmp_path):
    page = """<html><head><title>Page &amp; Title</title><style>p{color:red}</style></head>
    <body><nav>Home | About</nav><h1>Heading</h1><p>First paragraph.</p>
    <script>var secret = 1;</script><p>Second <b>bold</b> paragraph.</p><footer>Copyright</footer></body></html>"""
    doc = read_document(write(tmp_path / "p.html", page), "p.html")[0]
    assert doc.title in ("Page & Title", "Heading")  # trafilatura prefers the page's own heading
    assert "First paragraph." in doc.text and "Second bold paragraph." in doc.text
    for dropped in ("secret", "Home | About", "Copyright", "color:red"):
        assert dropped not in doc.text


def test_html_without_title_uses_first_heading(tmp_path):
    doc = read_document(write(tmp_path / "p.htm", "<h1>Only heading</h1><p>text</p>"), "p.htm")[0]
    assert doc.title == "Only heading"


def test_unreadable_files_are_skipped_with_a_warning_naming_them(tmp_path, caplog):
    write(tmp_path / "good.txt", "Good\nA readable document.")
    write(tmp_path / "latin1.txt", "caf\xe9 cr\xe8me".encode("latin-1"))
    write(tmp_path / "binary.txt", b"\x89PNG\x00\x00\x01")
    write(tmp_path / "empty.md", "   \n")
    write(tmp_path / "broken.pdf", b"%PDF-1.4 truncated")
    write(tmp_path / "notes.docx", b"PK\x03\x04")  # not a supported type: ignored, not an error
    skipped = []
    with caplog.at_level(logging.WARNING):
        docs = read_corpus(tmp_path, skipped)
    assert [d.source for d in docs] == ["good.txt"]
    assert sorted(skipped) == ["binary.txt", "broken.pdf", "empty.md", "latin1.txt"]
    for name in skipped:
        assert any(name in record.getMessage() for record in caplog.records)


def test_ids_are_stable_url_safe_and_unique(tmp_path):
    write(tmp_path / "news" / "a b.txt", "A\ntext")
    write(tmp_path / "news--a-b.txt", "B\ntext")
    write(tmp_path / ".hidden" / "x.txt", "hidden\ntext")
    first = read_corpus(tmp_path)
    second = read_corpus(tmp_path)
    assert [d.id for d in first] == [d.id for d in second]
    assert len({d.id for d in first}) == 2
    assert all(set(d.id) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") for d in first)
    assert doc_id_for("news/wheat.txt") == "news--wheat.txt", "a path that is already an id is its own id"
    assert doc_id_for("news/a b.txt").startswith("news--a-b-") and doc_id_for("news/a b.txt").endswith(".txt")


@pytest.mark.parametrize("names", [
    ("报告.txt", "总结.txt"),
    ("report (1).pdf", "report [1].pdf"),
    ("a b.txt", "a-b.txt"),
    ("x/y.txt", "x--y.txt"),
    ("notes.md", "notes.MD"),
    ("a" * 250 + "1.txt", "a" * 250 + "2.txt"),
])
def test_distinct_file_names_get_distinct_stable_readable_ids(names):
    from kb.documents.document import valid_id

    ids = [doc_id_for(f"uploads/{name}") for name in names]
    assert len(set(ids)) == 2, ids
    assert ids == [doc_id_for(f"uploads/{name}") for name in names], "stable"
    for name, doc_id in zip(names, ids):
        assert valid_id(doc_id) and len(doc_id) <= 200, doc_id
        assert doc_id.startswith("uploads--"), doc_id
        for word in re.findall(r"[A-Za-z0-9]+", name.split(".")[0])[:3]:
            assert word[:50] in doc_id, (name, doc_id)  # what can be kept of the name is kept


def test_the_same_rule_names_corpus_files(tmp_path):
    write(tmp_path / "报告.txt", "Report\ntext one")
    write(tmp_path / "总结.txt", "Summary\ntext two")
    assert sorted(d.id for d in read_corpus(tmp_path)) == sorted([doc_id_for("报告.txt"), doc_id_for("总结.txt")])


@pytest.mark.parametrize("doc_id", ["note\n", "note\r", "a/b", "../x", ".hidden", "", "x" * 201, "-x", "a..b"])
def test_invalid_ids_are_refused_whole(doc_id):
    from kb.documents.document import valid_id

    assert not valid_id(doc_id)
    assert valid_id("note") and valid_id("x" * 200)


def test_content_hash_follows_text_and_title():
    assert content_hash("t", "x") == content_hash("t", "x")
    assert content_hash("t", "x") != content_hash("t", "y")
    assert content_hash("t", "x") != content_hash("u", "x")


def test_missing_corpus_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="KB_CORPUS_DIR"):
        read_corpus(tmp_path / "nope")


ARTICLE_HTML = """<html><head><title>Site | Story</title><meta name="author" content="Jane Doe">
<meta property="article:published_time" content="2025-06-01"></head><body>
<nav><a href="/">Home</a> Menu Items Here</nav><script>var tracking = 1;</script>
<article><h1>The Headline</h1><p>First paragraph of the article, long enough for an extractor to keep it as main text.</p>
<h2>A Section</h2><p>Second paragraph with more words in it, so that the main content is plain to see.</p></article>
<footer>Copyright footer text</footer></body></html>"""


def test_html_articles_keep_author_and_date(tmp_path):
    doc = read_document(write(tmp_path / "story.html", ARTICLE_HTML), "story.html")[0]
    assert doc.title == "The Headline"
    assert doc.metadata["author"] == "Jane Doe" and doc.metadata["date"] == "2025-06-01"
    assert "First paragraph of the article" in doc.text and "Second paragraph" in doc.text
    for dropped in ("tracking", "Menu Items", "Copyright footer"):
        assert dropped not in doc.text


def test_pdf_pages_are_kept(tmp_path):
    from tests.pdfmaker import make_pdf

    raw = make_pdf(["Wind tunnels measure lift.", "Page two talks about drag."], title="Aero Notes")
    doc = read_document(write(tmp_path / "aero.pdf", raw), "aero.pdf")[0]
    assert doc.title == "Aero Notes" and doc.id == "aero.pdf"
    starts = doc.metadata["page_starts"]
    assert doc.text[starts[0]:].startswith("Wind tunnels") and doc.text[starts[1]:].startswith("Page two")


def test_jsonl_holds_one_document_a_line(tmp_path):
    lines = [
        {"id": "note-1", "title": "First", "text": "Alpha text.", "source": "feed", "date": "2024-01-02",
         "metadata": {"lang": "en"}},
        {"title": "Second", "text": "Beta text."},
    ]
    path = write(tmp_path / "feed.jsonl", "\n".join(__import__("json").dumps(x) for x in lines) + "\n")
    first, second = read_document(path, "feed.jsonl")
    assert (first.id, first.title, first.source, first.text) == ("note-1", "First", "feed", "Alpha text.")
    # The source is the document's own field; the date is metadata, where date filters read it.
    assert first.metadata == {"lang": "en", "date": "2024-01-02"}
    assert second.id == "feed.jsonl--2" and second.source == "feed.jsonl" and second.path == "feed.jsonl"


@pytest.mark.parametrize("line, fragment", [
    ('{"title": "x"}', "text must be"),
    ('{"text": "t", "id": "../etc"}', "document id"),
    ('{"text": "t", "colour": "red"}', "unknown field"),
    ("[1, 2]", "JSON object"),
    ("{not json", "not valid JSON"),
])
def test_bad_jsonl_lines_make_the_file_unreadable_with_a_reason(tmp_path, line, fragment):
    from kb.errors import UnreadableDocument

    with pytest.raises(UnreadableDocument, match=fragment):
        read_document(write(tmp_path / "bad.jsonl", line + "\n"), "bad.jsonl")
