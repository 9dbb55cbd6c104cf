"""Section headings and the context line the model reads before each passage."""

from kb.documents.chunking import chunk_text, embedding_text, passage_limit
from kb.documents.document import Document
from kb.documents.structure import structure_of
from kb.settings import Settings
from tests.fakes import FakeEmbedder

ARTICLE = """Big Headline For The Story
A subtitle line that explains more
The first paragraph has a full sentence. Another one follows.
Second Section Heading
More text under the second heading. It continues here.
1) A numbered summary line without a heading role
"""


def titles(structure):
    return [s.title for s in structure.sections]


def test_plain_text_headings_are_short_unpunctuated_lines_after_the_title():
    assert titles(structure_of(ARTICLE, "text")) == ["A subtitle line that explains more", "Second Section Heading"]


def test_markdown_headings_are_hash_lines_only():
    text = "# Title\n\nIntro text\n\n## Part Two ##\nBody line without stop\n"
    structure = structure_of(text, "markdown")
    assert titles(structure) == ["Title", "Part Two"]
    assert [s.level for s in structure.sections] == [1, 2]


def test_each_passage_knows_its_section():
    structure = structure_of(ARTICLE, "text")
    passages = chunk_text("d", ARTICLE, lambda t: len(t.split()), 12, 0, structure)
    second = ARTICLE.index("More text under")
    assert structure.heading_path(second)[-1] == "Second Section Heading"
    assert any(p.heading == "Second Section Heading" and "More text under" in p.text for p in passages)


def test_embedding_text_puts_title_and_heading_before_the_exact_passage():
    passages = chunk_text("d", ARTICLE, lambda t: len(t.split()), 12, 0, structure_of(ARTICLE, "text"))
    target = next(p for p in passages if "More text under" in p.text)
    text = embedding_text("Big Headline For The Story", target)
    assert text == f"Big Headline For The Story \u2014 Second Section Heading\n{target.text}"
    assert ARTICLE[target.start : target.end] == target.text


def test_the_passage_limit_leaves_room_for_the_longest_context_line():
    embedder = FakeEmbedder()
    embedder.max_tokens = 60
    long_title = " ".join(["title"] * 20)
    document = Document("d", long_title, "d.txt", ARTICLE)
    structure = structure_of(ARTICLE, "text")
    limit = passage_limit(document, structure, embedder, Settings.from_env(environ={}, chunk_tokens=256))
    assert limit <= 60 - 20
    for passage in chunk_text("d", ARTICLE, embedder.count_tokens, limit, 0, structure):
        assert embedder.count_tokens(embedding_text(long_title, passage)) <= 60
