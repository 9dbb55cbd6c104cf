"""Incremental builds: only changed documents are embedded again (counted with a fake embedder)."""

import numpy as np

from kb.ingestion.sync import build_index
from kb.settings import Settings
from kb.stores.faiss.store import current_folder, open_current
from tests.conftest import all_documents, all_passages
from tests.fakes import FakeEmbedder


def corpus(tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "a.txt").write_text("A\nApples grow on trees. They are red or green.", encoding="utf-8")
    (folder / "b.txt").write_text("B\nBoats float on water. Some have sails.", encoding="utf-8")
    (folder / "c.txt").write_text("C\nCats sleep a lot. They purr.", encoding="utf-8")
    return folder


def settings_for(tmp_path, **changes):
    values = {"chunk_tokens": 20, "chunk_overlap": 0, **changes}
    return Settings.from_env(environ={}, corpus_dir=tmp_path / "corpus", index_dir=tmp_path / "index", **values)


def test_unchanged_rebuild_embeds_nothing_and_writes_nothing(tmp_path):
    corpus(tmp_path)
    settings = settings_for(tmp_path)
    first = build_index(settings, embedder=FakeEmbedder())
    assert first.written and first.passages_embedded == first.passages == 3
    path = current_folder(settings.index_dir)
    embedder = FakeEmbedder()
    again = build_index(settings, embedder=embedder)
    assert not again.written and again.passages_embedded == 0 and embedder.embedded == []
    assert again.to_json()["unchanged"] == 3
    assert current_folder(settings.index_dir) == path


def test_only_the_changed_document_is_embedded_again(tmp_path):
    folder = corpus(tmp_path)
    settings = settings_for(tmp_path)
    build_index(settings, embedder=FakeEmbedder())
    before = all_passages(open_current(settings))
    (folder / "b.txt").write_text("B\nBoats float on lakes now.", encoding="utf-8")
    (folder / "c.txt").unlink()
    (folder / "d.txt").write_text("D\nDogs bark.", encoding="utf-8")
    embedder = FakeEmbedder()
    report = build_index(settings, embedder=embedder)
    summary = report.to_json(ids=True)
    assert "ids" not in report.to_json(), "ids only when asked for: they grow with the corpus"
    assert (summary["added"], summary["changed"], summary["removed"], summary["unchanged"]) == (1, 1, 1, 1)
    assert summary["ids"]["removed"] == ["c.txt"]
    # The model reads each passage after its document's title (here the title is also the first line).
    assert embedder.embedded == ["B\nB\nBoats float on lakes now.", "D\nD\nDogs bark."]
    assert report.passages_embedded == 2
    store = open_current(settings)
    after = all_passages(store)
    assert set(all_documents(store)) == {"a.txt", "b.txt", "d.txt"}
    # The unchanged document keeps its very passages (same keys), vectors and sentences.
    old = [p for p in before if p.doc_id == "a.txt"]
    new = [p for p in after if p.doc_id == "a.txt"]
    assert [(p.key, p.passage_id, p.start, p.end) for p in old] == [(p.key, p.passage_id, p.start, p.end) for p in new]
    for a, b in zip(old, new):
        assert np.array_equal(a.sentence_spans, b.sentence_spans) and np.array_equal(a.sentence_vectors, b.sentence_vectors)


def test_changing_chunk_settings_or_model_re_embeds_everything(tmp_path):
    corpus(tmp_path)
    build_index(settings_for(tmp_path), embedder=FakeEmbedder())
    report = build_index(settings_for(tmp_path, chunk_overlap=5), embedder=FakeEmbedder())
    assert report.passages_embedded == report.passages and "settings changed" in report.reason
    other = FakeEmbedder(name="other-model", dimension=12)
    report = build_index(settings_for(tmp_path, chunk_overlap=5, model="other-model"), embedder=other)
    assert report.passages_embedded == report.passages
    store = open_current(settings_for(tmp_path, model="other-model"), expected_model="other-model")
    assert store.dimension == 12 and store.memory.vectors.index.d == 12 and store.memory.live == report.passages


def test_force_re_embeds_everything(tmp_path):
    corpus(tmp_path)
    settings = settings_for(tmp_path)
    build_index(settings, embedder=FakeEmbedder())
    report = build_index(settings, force=True, embedder=FakeEmbedder())
    assert report.written and report.passages_embedded == 3


def test_the_folder_access_rules_give_documents_their_groups_and_a_change_re_reads_them(tmp_path):
    """corpus/.kb-access: the most specific folder wins, '*' makes a folder public again; changing the rules
    writes again exactly the documents whose access changed, and a rules file kb cannot read stops the sync."""
    import pytest

    from kb.errors import UnreadableDocument

    folder = corpus(tmp_path)
    (folder / "hr" / "handbook").mkdir(parents=True)
    (folder / "hr" / "pay.txt").write_text("Pay\nSalaries rise in May.", encoding="utf-8")
    (folder / "hr" / "handbook" / "leave.txt").write_text("Leave\nTake leave in summer.", encoding="utf-8")
    (folder / "lines.jsonl").write_text('{"id": "own", "text": "Its own access.", "access": ["legal"]}\n'
                                        '{"id": "ruled", "text": "The root rule applies."}\n', encoding="utf-8")
    (folder / ".kb-access").write_text("# rules\nhr: hr, people\nhr/handbook: *\n", encoding="utf-8")
    settings = settings_for(tmp_path)
    build_index(settings, embedder=FakeEmbedder())
    access = {doc_id: d.access for doc_id, d in all_documents(open_current(settings)).items()}
    assert access == {"a.txt": (), "b.txt": (), "c.txt": (), "hr--pay.txt": ("hr", "people"),
                      "hr--handbook--leave.txt": (), "own": ("legal",), "ruled": ()}

    (folder / ".kb-access").write_text("hr: hr\n", encoding="utf-8")
    embedder = FakeEmbedder()
    report = build_index(settings, embedder=embedder)
    assert sorted(report.changed) == ["hr--handbook--leave.txt", "hr--pay.txt"] and not report.added
    access = {doc_id: d.access for doc_id, d in all_documents(open_current(settings)).items()}
    assert access["hr--pay.txt"] == ("hr",) and access["hr--handbook--leave.txt"] == ("hr",)

    (folder / ".kb-access").write_text("hr: Human Resources!\n", encoding="utf-8")
    with pytest.raises(UnreadableDocument, match="line 1"):
        build_index(settings, embedder=FakeEmbedder())
    assert all_documents(open_current(settings))["hr--pay.txt"].access == ("hr",), "nothing became public"
    (folder / ".kb-access").unlink()
    build_index(settings, embedder=FakeEmbedder())
    assert all_documents(open_current(settings))["hr--pay.txt"].access == ()
