"""The FAISS store on disk: a manifest, a SQLite record file, checkpoints; loud failures; healing."""

import json
import sqlite3

import faiss
import numpy as np
import pytest

from kb.errors import StoreCorrupt, StoreMismatch, StoreMissing, StoreUnwritable
from kb.ingestion.sync import build_index
from kb.settings import Settings
from kb.stores.faiss.store import FORMAT_VERSION, current_folder, open_current
from tests.conftest import all_documents, all_passages
from tests.fakes import FakeEmbedder


def make_corpus(folder, docs):
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in docs.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


DOCS = {
    "alpha.txt": "Alpha title\nThe first document talks about wind tunnels. It has two sentences.",
    "beta.md": "# Beta\n\nA second document about boundary layers. It also has a few sentences. And one more.",
}


@pytest.fixture()
def settings(tmp_path):
    return Settings.from_env(environ={}, corpus_dir=make_corpus(tmp_path / "corpus", DOCS),
                             index_dir=tmp_path / "index", chunk_tokens=16, chunk_overlap=4)


def test_a_build_is_a_manifest_a_record_file_and_a_checkpoint(settings):
    build_index(settings, embedder=FakeEmbedder())
    folder = current_folder(settings.index_dir)
    assert {"manifest.json", "records.sqlite", "checkpoints"} <= {p.name for p in folder.iterdir()}
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["format_version"] == FORMAT_VERSION
    assert manifest["model"] == "all-MiniLM-L6-v2" and manifest["dimension"] == 8
    assert manifest["config"]["chunk_tokens"] == 16 and manifest["config"]["chunk_overlap"] == 4
    latest = json.loads((folder / "checkpoints" / "latest.json").read_text())["checkpoint"]
    checkpoint = folder / "checkpoints" / latest
    assert faiss.read_index(str(checkpoint / "vectors.faiss")).ntotal == len(all_passages(open_current(settings)))
    assert all(p.suffix in (".npy", ".json") for p in (checkpoint / "bm25").iterdir()), "nothing pickled"
    store = open_current(settings)
    assert set(all_documents(store)) == {"alpha.txt", "beta.md"}


def test_passages_and_their_sentences_point_at_exact_spans(settings):
    build_index(settings, embedder=FakeEmbedder())
    store = open_current(settings)
    documents = all_documents(store)
    for record in all_passages(store):
        text = documents[record.doc_id].text
        assert text[record.start : record.end] == record.text
        assert len(record.sentence_spans) == len(record.sentence_vectors) > 0
        for start, end in record.sentence_spans:
            assert record.start <= start < end <= record.end
        # The fake embedder gives each sentence the vector of its own text: offsets and rows line up.
        expected = FakeEmbedder()._plain([text[s:e] for s, e in record.sentence_spans])
        assert np.allclose(record.sentence_vectors, expected, atol=1e-2)


def test_a_write_that_fails_changes_nothing_and_says_so(settings, monkeypatch):
    import kb.stores.faiss.records

    build_index(settings, embedder=FakeEmbedder())
    before = set(all_documents(open_current(settings)))
    (settings.corpus_dir / "gamma.txt").write_text("Gamma\nA third document arrives.", encoding="utf-8")

    real = kb.stores.faiss.records.RecordDB.write

    def full(self, *args, **kwargs):
        raise kb.stores.faiss.records._problem(self.path, sqlite3.OperationalError("database or disk is full"))

    monkeypatch.setattr(kb.stores.faiss.records.RecordDB, "write", full)
    with pytest.raises(StoreUnwritable, match=r"cannot write.*disk is full"):
        build_index(settings, embedder=FakeEmbedder())
    assert set(all_documents(open_current(settings))) == before
    monkeypatch.setattr(kb.stores.faiss.records.RecordDB, "write", real)
    build_index(settings, embedder=FakeEmbedder())
    assert set(all_documents(open_current(settings))) == before | {"gamma.txt"}


def test_missing_index_says_to_build(tmp_path):
    with pytest.raises(StoreMissing, match="kb build"):
        open_current(Settings.from_env(environ={}, index_dir=tmp_path / "none"))


def test_a_store_of_another_format_or_model_says_to_rebuild(settings):
    build_index(settings, embedder=FakeEmbedder())
    with pytest.raises(StoreMismatch, match="rebuild"):
        open_current(settings, expected_model="some/other-model")
    manifest = current_folder(settings.index_dir) / "manifest.json"
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "format_version": 99}))
    with pytest.raises(StoreMismatch, match=r"manifest.json.*format 99.*kb build"):
        open_current(settings)


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_a_damaged_record_file_is_named_in_the_error(settings, damage):
    build_index(settings, embedder=FakeEmbedder())
    path = current_folder(settings.index_dir) / "records.sqlite"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3] if damage == "truncate" else b"\xff" * len(data))
    for leftover in path.parent.glob("records.sqlite-*"):
        leftover.unlink()
    with pytest.raises(StoreCorrupt, match=r"records\.sqlite.*kb build"):
        open_current(settings).snapshot().counts()


@pytest.mark.parametrize("name", ["vectors.faiss", "slot_pids.npy", "bm25/vocab.json", "meta.json"])
def test_a_damaged_checkpoint_is_rebuilt_from_the_records(settings, name, caplog):
    build_index(settings, embedder=FakeEmbedder())
    folder = current_folder(settings.index_dir) / "checkpoints"
    target = folder / json.loads((folder / "latest.json").read_text())["checkpoint"] / name
    target.write_bytes(target.read_bytes()[: max(1, target.stat().st_size // 2)])
    store = open_current(settings)
    assert "rebuilding the in-memory index" in caplog.text
    hits = store.snapshot().candidates(FakeEmbedder().encode(["wind tunnels"])[0], ["wind", "tunnel"], 5, True, True)
    assert len(hits.keys) == len(all_passages(store))


def test_hnsw_is_chosen_above_the_threshold_and_query_knobs_rebuild_nothing(settings):
    from kb.stores.faiss.vectors import ann_spec

    assert ann_spec(100, "auto", 20000, 32) == {"type": "flat"}
    assert ann_spec(20001, "auto", 20000, 32)["type"] == "hnsw"
    build_index(settings, embedder=FakeEmbedder())
    assert open_current(settings).memory.spec == {"type": "flat"}
    embedder = FakeEmbedder()
    report = build_index(settings.with_(hnsw_ef_search=7, ivf_nprobe=3), embedder=embedder)
    assert not report.written and embedder.embedded == [], "a query-time knob changes nothing on disk"
    hnsw = open_current(settings.with_(index_type="hnsw"))
    hnsw.refresh(force=True)
    if hnsw._maintenance:
        hnsw._maintenance.join()
    assert hnsw.memory.spec["type"] == "hnsw", "the in-memory index is rebuilt for the new type, nothing re-embedded"
    flat = open_current(settings)
    query = FakeEmbedder().encode(["boundary layers"])[0]
    assert hnsw.snapshot().candidates(query, [], 3, True, False).keys.tolist() == \
        flat.snapshot().candidates(query, [], 3, True, False).keys.tolist()


def test_ivfpq_proposes_and_exact_vectors_decide():
    from kb.stores.faiss.vectors import IVFPQ_MIN_PASSAGES, VectorIndex, ann_spec

    assert ann_spec(IVFPQ_MIN_PASSAGES - 1, "ivfpq", 20000, 16) == {"type": "flat"}
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(400, 64)).astype(np.float32)
    vectors = centres[rng.integers(0, 400, 12000)] + rng.normal(0, 0.3, (12000, 64)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    spec = ann_spec(len(vectors), "ivfpq", 20000, 16)
    assert spec["type"] == "ivfpq" and spec["rerank"] >= 10
    index = VectorIndex(64, spec, training=vectors)
    index.add(vectors)
    recalls = []
    for query in vectors[:20]:
        hits = index.search(query, 10, nprobe=32)
        exact = np.argsort(-(vectors @ query))[:10]
        assert [s for _, s in hits] == sorted((s for _, s in hits), reverse=True)
        for slot, score in hits:
            assert score == pytest.approx(float(vectors[slot] @ query), abs=1e-5), "scores are exact inner products"
        recalls.append(len({p for p, _ in hits} & set(exact.tolist())) / 10)
    assert hits and np.mean(recalls) >= 0.9


def test_a_live_searcher_keeps_the_last_good_store_when_current_moves_to_a_broken_one(settings):
    import os

    from kb.search.live import LiveSearcher

    build_index(settings, embedder=FakeEmbedder())
    live = LiveSearcher(FakeEmbedder(), settings)
    good = live.store.folder
    broken = good.parent / "store-9999999999999999999"
    broken.mkdir()
    (broken / "manifest.json").write_text("{not json")
    os.symlink(broken.name, good.parent / "current.new")
    os.replace(good.parent / "current.new", good.parent / "current")
    live.refresh()
    assert live.store.folder == good and live.current().search("wind tunnels", 2)
