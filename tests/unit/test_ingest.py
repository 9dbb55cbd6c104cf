import logging

import pytest

from kb.ingest import content_hash, doc_id_for, read_corpus, read_document


def write(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        path.write_text(data, encoding="utf-8")
    else:
        path.write_bytes(data)
    return path


def test_txt_title_is_first_non_empty_line(tmp_path):
    doc = read_document(write(tmp_path / "a.txt", "\n\n  Headline here  \nBody text.\n"), "a.txt")
    assert doc.title == "Headline here"
    assert doc.text == "\n\n  Headline here  \nBody text.\n"
    assert doc.source == "a.txt"


def test_crlf_is_normalised_so_offsets_match_the_stored_text(tmp_path):
    doc = read_document(write(tmp_path / "a.txt", b"Title\r\nLine one.\r\nLine two."), "a.txt")
    assert doc.text == "Title\nLine one.\nLine two."


def test_markdown_title_is_first_heading(tmp_path):
    doc = read_document(write(tmp_path / "n.md", "Intro line\n\n# The Real Title #\n\nText."), "n.md")
    assert doc.title == "The Real Title"


def test_html_keeps_title_and_main_text_and_drops_scripts_and_navigation(tmp_path):
    page = """<html><head><title>Page &amp; Title</title><style>p{color:red}</style></head>
    <body><nav>Home | About</nav><h1>Heading</h1><p>First paragraph.</p>
    <script>var secret = 1;</script><p>Second <b>bold</b> paragraph.</p><footer>Copyright</footer></body></html>"""
    doc = read_document(write(tmp_path / "p.html", page), "p.html")
    assert doc.title == "Page & Title"
    assert "First paragraph." in doc.text and "Second bold paragraph." in doc.text
    for dropped in ("secret", "Home | About", "Copyright", "color:red"):
        assert dropped not in doc.text


def test_html_without_title_uses_first_heading(tmp_path):
    doc = read_document(write(tmp_path / "p.htm", "<h1>Only heading</h1><p>text</p>"), "p.htm")
    assert doc.title == "Only heading"


def test_unreadable_files_are_skipped_with_a_warning_naming_them(tmp_path, caplog):
    write(tmp_path / "good.txt", "Good\nA readable document.")
    write(tmp_path / "latin1.txt", "caf\xe9 cr\xe8me".encode("latin-1"))
    write(tmp_path / "binary.txt", b"\x89PNG\x00\x00\x01")
    write(tmp_path / "empty.md", "   \n")
    write(tmp_path / "notes.pdf", b"%PDF-1.4")  # not a supported type: ignored, not an error
    skipped = []
    with caplog.at_level(logging.WARNING):
        docs = read_corpus(tmp_path, skipped)
    assert [d.source for d in docs] == ["good.txt"]
    assert sorted(skipped) == ["binary.txt", "empty.md", "latin1.txt"]
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
    assert doc_id_for("news/a b.txt") == "news--a-b.txt"


def test_content_hash_follows_text_and_title():
    assert content_hash("t", "x") == content_hash("t", "x")
    assert content_hash("t", "x") != content_hash("t", "y")
    assert content_hash("t", "x") != content_hash("u", "x")


def test_missing_corpus_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="KB_CORPUS_DIR"):
        read_corpus(tmp_path / "nope")
