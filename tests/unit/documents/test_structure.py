"""Real documents read right: titles, heading paths, sentences across hard wraps, code kept whole."""

import json

import pytest

from kb.documents.chunking import chunk_text, document_structure
from kb.documents.reading import read_document
from kb.documents.sentences import units
from kb.documents.structure import structure_of
from tests.pdfmaker import make_pdf, with_outline
from tests.real_documents import BOOK_PAGE, HARD_WRAPPED, MARKDOWN


def words(text: str) -> int:
    return len(text.split())


def write(path, data):
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    return path


def test_an_html_page_is_titled_by_its_own_heading_not_its_site_menu_or_a_hidden_dialog(tmp_path):
    doc = read_document(write(tmp_path / "ch08-02-strings.html", BOOK_PAGE), "ch08-02-strings.html")[0]
    assert doc.title == "Storing UTF-8 Encoded Text with Strings"
    assert doc.metadata["site"] == "The Rust Programming Language"
    assert "Keyboard shortcuts" not in doc.text and "Getting Started" not in doc.text


def test_og_title_wins_and_a_title_that_is_only_the_site_name_gives_way_to_the_heading(tmp_path):
    page = BOOK_PAGE.replace("<head>", '<head><meta property="og:title" content="Strings, Explained">'
                                       '<meta property="og:site_name" content="The Book">')
    assert read_document(write(tmp_path / "a.html", page), "a.html")[0].title == "Strings, Explained"
    only_site = BOOK_PAGE.replace("Storing UTF-8 Encoded Text with Strings - The Rust Programming Language",
                                  "The Rust Programming Language")
    doc = read_document(write(tmp_path / "b.html", only_site), "b.html")[0]
    assert doc.title == "Storing UTF-8 Encoded Text with Strings"


def test_html_keeps_headings_lists_tables_and_code_as_written(tmp_path):
    doc = read_document(write(tmp_path / "p.html", BOOK_PAGE), "p.html")[0]
    lines = doc.text.split("\n")
    assert "- Strings are UTF-8 encoded." in lines and "- Strings can grow." in lines
    assert "Type | Owned" in lines and "String | yes" in lines
    (start, end), = doc.metadata["code"]
    assert doc.text[start:end] == 'fn main() {\n    let mut s = String::new();\n    s.push_str("bar");\n}'
    assert [(level, title) for _, level, title in doc.metadata["sections"]] == [
        (1, "Storing UTF-8 Encoded Text with Strings"), (2, "What Is a String?"), (3, "Creating a New String")]
    for offset, _, title in doc.metadata["sections"]:
        assert doc.text[offset:offset + len(title)] == title


def test_every_html_passage_knows_its_heading_path_and_code_is_one_unit(tmp_path):
    doc = read_document(write(tmp_path / "p.html", BOOK_PAGE), "p.html")[0]
    structure = document_structure(doc)
    passages = chunk_text(doc.id, doc.text, words, 40, 0, structure)
    slices = next(p for p in passages if "String slices" in p.text)
    assert slices.headings == ("Storing UTF-8 Encoded Text with Strings", "What Is a String?")
    new = next(p for p in passages if "wrapper around a vector" in p.text)
    assert new.headings == ("Storing UTF-8 Encoded Text with Strings", "What Is a String?", "Creating a New String")
    for passage in passages:  # the author's headings end passages: no passage runs into the next section
        assert not any(passage.start < section.start < passage.end for section in structure.sections)
    code = [u for u in units(doc.text, structure) if u.code]
    assert len(code) == 1 and doc.text[code[0].start:code[0].end].startswith("fn main() {")


def test_sentences_run_across_hard_wraps_and_map_back_to_the_exact_text():
    structure = structure_of(HARD_WRAPPED, "text")
    found = [HARD_WRAPPED[u.start:u.end] for u in units(HARD_WRAPPED, structure)]
    assert ("Rust has only one string type in the core language, which is the string\n"
            "slice str that is usually seen in its borrowed form, &str.") in found
    assert "It is inter-\nnationally minded." in found
    assert [s.title for s in structure.sections] == ["Second part"]
    passages = chunk_text("d", HARD_WRAPPED, words, 30, 0, structure)
    starts = {u.start for u in units(HARD_WRAPPED, structure)}
    for passage in passages:
        assert HARD_WRAPPED[passage.start:passage.end] == passage.text and passage.start in starts
        for a, b in passage.sentences:
            assert HARD_WRAPPED[a:b] in found


def test_one_paragraph_a_line_stays_one_paragraph_a_line():
    text = ("A Title\nThe first paragraph is long enough to be a real paragraph of an article and ends here.\n"
            "Short Heading\nThe next paragraph starts here and goes on for a while as well, then it ends.\n")
    structure = structure_of(text, "text")
    found = [text[u.start:u.end] for u in units(text, structure)]
    assert "Short Heading" in found and [s.title for s in structure.sections] == ["Short Heading"]


def test_markdown_heading_paths_code_and_wrapped_paragraphs(tmp_path):
    doc = read_document(write(tmp_path / "guide.md", MARKDOWN), "guide.md")[0]
    assert doc.metadata["code"] == [[MARKDOWN.index("```sh"), MARKDOWN.index("```\n\n###") + 3]]
    structure = document_structure(doc)
    assert [(s.level, s.title) for s in structure.sections] == [(1, "Guide"), (2, "Install"), (3, "Check")]
    assert structure.heading_path(MARKDOWN.index("first item")) == ("Guide", "Install", "Check")
    found = [MARKDOWN[u.start:u.end] for u in units(MARKDOWN, structure)]
    assert "Intro paragraph that is\nwrapped by its author." in found
    assert "```sh\n./install --prefix /opt/kb\necho done\n```" in found
    assert "- first item" in found and "| a    | 1     |" in found


def test_a_code_block_longer_than_a_passage_is_cut_at_line_ends_and_never_marked_in_part():
    code = "\n".join(f"    value_{n} = compute({n}, factor)" for n in range(40))
    text = f"Intro\n\nThe listing follows.\n\n```\n{code}\n```\n\nAfter the listing, a sentence.\n"
    structure = structure_of(text, "text")
    passages = chunk_text("d", text, words, 20, 0, structure)
    inside = [p for p in passages if "value_" in p.text]
    assert len(inside) > 3
    for passage in inside:
        assert passage.start == 0 or text[passage.start - 1] in "\n "  # starts at a line (after its indentation)
        assert text[passage.end] == "\n"
        assert not any("value_" in text[a:b] for a, b in passage.sentences), "a piece of code is never highlighted"
    small = structure_of("Intro\n\n```\nx = 1\n```\n", "text")
    whole = chunk_text("d", "Intro\n\n```\nx = 1\n```\n", words, 20, 0, small)
    assert any("```\nx = 1\n```" == "Intro\n\n```\nx = 1\n```\n"[a:b] for p in whole for a, b in p.sentences)


def test_pdf_title_and_sections_come_from_its_metadata_and_outline(tmp_path):
    pages = ["1 Introduction\nThe protocol is used for inter-\nnational exchanges of data between\nsystems. It is simple.",
             "2 Encoding\nValues are encoded as octets.\n2.1 Octets\nAn octet is eight bits."]
    outline = [("1 Introduction", 0, 1), ("2 Encoding", 1, 1), ("2.1 Octets", 1, 2)]

    def title(raw, name):
        return read_document(write(tmp_path / name, raw), name)[0].title

    assert title(with_outline(make_pdf(pages), outline, title="The Octet Protocol"), "a.pdf") == "The Octet Protocol"
    assert title(with_outline(make_pdf(pages), [("Octet Encoding Rules", 0, 1)]), "b.pdf") == "Octet Encoding Rules"
    # A generic first entry ("1 Introduction") would title many manuals alike: the first line, when short, instead
    assert title(with_outline(make_pdf(["Octets Explained\n" + pages[0]]), outline[:1]), "c.pdf") == "Octets Explained"
    assert title(make_pdf(["x" * 150 + "\n" + pages[0]]), "plain-spec.pdf") == "plain-spec", "else the file name"
    doc = read_document(write(tmp_path / "spec.pdf", with_outline(make_pdf(pages), outline)), "spec.pdf")[0]
    structure = document_structure(doc)
    assert structure.heading_path(doc.text.index("An octet")) == ("2 Encoding", "2.1 Octets")
    found = [doc.text[u.start:u.end] for u in units(doc.text, structure)]
    assert any(s.startswith("The protocol is used for inter-\nnational exchanges") and s.endswith("systems.")
               for s in found), found


@pytest.mark.parametrize("metadata, problem", [
    ({"sections": [[0, 7, "Too deep"]]}, "metadata.sections"),
    ({"sections": [[5, 1, "B"], [0, 1, "A"]]}, "metadata.sections"),
    ({"sections": [[0, 1, "two\nlines"]]}, "metadata.sections"),
    ({"code": [[4, 2]]}, "metadata.code"),
    ({"code": [[0, 999]]}, "metadata.code"),
])
def test_structure_sent_with_a_document_is_checked(tmp_path, metadata, problem):
    from kb.errors import UnreadableDocument

    row = {"id": "d", "title": "T", "text": "Some text here.", "metadata": metadata}
    with pytest.raises(UnreadableDocument, match=problem):
        read_document(write(tmp_path / "rows.jsonl", json.dumps(row)), "rows.jsonl")


def test_structure_sent_with_a_document_is_used(tmp_path):
    text = "Alpha part. More alpha.\nBeta part. More beta."
    row = {"id": "d", "title": "T", "text": text, "metadata": {"sections": [[0, 1, "Alpha"], [24, 2, "Beta"]]}}
    doc = read_document(write(tmp_path / "rows.jsonl", json.dumps(row)), "rows.jsonl")[0]
    passages = chunk_text(doc.id, doc.text, words, 4, 0, document_structure(doc))
    assert next(p for p in passages if "beta" in p.text).headings == ("Alpha", "Beta")
