"""The on-disk index: plain files, atomic replacement, loud failures on mismatches."""

import json

import faiss
import numpy as np
import pytest

from kb.build import build_index
from kb.index import FORMAT_VERSION, IndexCorrupt, IndexMismatch, IndexMissing, IndexStore, IndexUnwritable
from kb.settings import Settings
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


def test_build_writes_plain_files_with_a_manifest(settings):
    build_index(settings, embedder=FakeEmbedder())
    folder = IndexStore(settings.index_dir).current_path()
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["manifest.json", "documents.jsonl", "passages.jsonl", "vectors.npy", "vectors.faiss", "bm25",
         "sentences.npy", "sentence_spans.npy"]
    )
    assert all(p.suffix in (".npy", ".json") for p in (folder / "bm25").iterdir())
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["format_version"] == FORMAT_VERSION
    assert manifest["model"] == "all-MiniLM-L6-v2" and manifest["dimension"] == 8
    assert manifest["config"]["chunk_tokens"] == 16 and manifest["config"]["chunk_overlap"] == 4
    assert set(manifest["documents"]) == {"alpha.txt", "beta.md"}
    assert manifest["passage_count"] == len((folder / "passages.jsonl").read_text().splitlines())
    vectors = np.load(folder / "vectors.npy", allow_pickle=False)
    assert vectors.shape == (manifest["passage_count"], 8)
    assert faiss.read_index(str(folder / "vectors.faiss")).ntotal == manifest["passage_count"]
    spans = np.load(folder / "sentence_spans.npy", allow_pickle=False)
    sentences = np.load(folder / "sentences.npy", allow_pickle=False)
    assert sentences.dtype == np.float16 and sentences.shape == (len(spans), 8)
    assert set(spans[:, 0]) == set(range(manifest["passage_count"])), "every passage has its sentences"


def test_loaded_passages_and_their_sentences_point_at_exact_spans(settings):
    build_index(settings, embedder=FakeEmbedder())
    index = IndexStore(settings.index_dir).load()
    for position, passage in enumerate(index.passages):
        text = index.documents[passage.doc_id].text
        assert text[passage.start : passage.end] == passage.text
        spans, vectors = index.sentences.of(position)
        assert len(spans) == len(vectors) > 0
        for start, end in spans:
            assert passage.start <= start < end <= passage.end
        # The fake embedder gives each sentence the vector of its own text: offsets and rows line up.
        expected = FakeEmbedder()._plain([text[s:e] for s, e in spans])
        assert np.allclose(vectors, expected, atol=1e-2)


@pytest.mark.parametrize("failure", ["faiss", "numpy"])
def test_a_failed_write_leaves_the_previous_index_and_says_so(settings, monkeypatch, failure):
    """A full disk as each writer reports it: FAISS raises RuntimeError, NumPy OSError(ENOSPC)."""
    import errno

    store = IndexStore(settings.index_dir)
    build_index(settings, embedder=FakeEmbedder())
    before = store.current_path()
    (settings.corpus_dir / "gamma.txt").write_text("Gamma\nA third document arrives.", encoding="utf-8")

    def faiss_full(*args, **kwargs):
        raise RuntimeError("Error in faiss::write_index: fwrite failed (No space left on device)")

    def numpy_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    if failure == "faiss":
        monkeypatch.setattr(faiss, "write_index", faiss_full)
    else:
        monkeypatch.setattr(np, "save", numpy_full)
    with pytest.raises(IndexUnwritable, match=r"cannot write the new index.*previous index is unchanged"):
        build_index(settings, embedder=FakeEmbedder())
    assert store.current_path() == before
    assert set(store.load().documents) == {"alpha.txt", "beta.md"}
    assert not list(settings.index_dir.glob(".tmp-*")), "the half-written build should be removed"
    monkeypatch.undo()
    build_index(settings, embedder=FakeEmbedder())
    assert set(store.load().documents) == {"alpha.txt", "beta.md", "gamma.txt"}


def test_old_builds_are_pruned_to_the_current_and_previous(settings):
    for n in range(4):
        (settings.corpus_dir / f"extra{n}.txt").write_text(f"Extra {n}\nMore text {n}.", encoding="utf-8")
        build_index(settings, embedder=FakeEmbedder())
    assert len(list(settings.index_dir.glob("build-*"))) == 2


def test_missing_index_says_to_build(tmp_path):
    with pytest.raises(IndexMissing, match="kb build"):
        IndexStore(tmp_path / "none").load()


def test_manifest_from_another_format_or_model_says_to_rebuild(settings):
    build_index(settings, embedder=FakeEmbedder())
    store = IndexStore(settings.index_dir)
    with pytest.raises(IndexMismatch, match="rebuild"):
        store.load(expected_model="some/other-model")
    manifest_path = store.current_path() / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["format_version"] = 99
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(IndexMismatch, match=r"manifest.json.*format 99.*kb build"):
        store.load()


@pytest.mark.parametrize("name", ["manifest.json", "passages.jsonl", "vectors.npy", "vectors.faiss"])
def test_a_truncated_file_is_named_in_the_error(settings, name):
    build_index(settings, embedder=FakeEmbedder())
    store = IndexStore(settings.index_dir)
    path = store.current_path() / name
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    with pytest.raises((IndexCorrupt, IndexMismatch), match=name.replace(".", r"\.")):
        store.load()


def test_hnsw_is_chosen_above_the_threshold_and_recorded(settings):
    from kb.index import ann_spec

    assert ann_spec(100, "auto", 20000, 32, 64) == {"type": "flat"}
    assert ann_spec(20001, "auto", 20000, 32, 64)["type"] == "hnsw"
    assert ann_spec(5, "hnsw", 20000, 16, 40) == {"type": "hnsw", "M": 16, "efConstruction": 200, "efSearch": 40}
    build_index(settings, embedder=FakeEmbedder())
    flat = IndexStore(settings.index_dir).load()
    assert flat.manifest["ann"] == {"type": "flat"}
    report = build_index(settings.with_(index_type="hnsw"), embedder=FakeEmbedder())
    assert report.written and report.passages_embedded == 0, "only the FAISS index is rebuilt"
    hnsw = IndexStore(settings.index_dir).load()
    assert hnsw.manifest["ann"]["type"] == "hnsw" and hasattr(hnsw.faiss_index, "hnsw")
    assert (hnsw.vectors == flat.vectors).all()
    for row in range(len(hnsw.passages)):
        # On a handful of passages HNSW is exact: each passage finds itself first.
        assert hnsw.search(hnsw.vectors[row], 1)[0][0] == flat.search(flat.vectors[row], 1)[0][0]


def test_ivfpq_proposes_and_exact_vectors_decide(tmp_path):
    from kb.index import IVFPQ_MIN_PASSAGES, Index, ann_spec, make_faiss_index, read_faiss_index

    assert ann_spec(IVFPQ_MIN_PASSAGES - 1, "ivfpq", 20000, 16, 64) == {"type": "flat"}
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(400, 64)).astype(np.float32)
    vectors = centres[rng.integers(0, 400, 12000)] + rng.normal(0, 0.3, (12000, 64)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    spec = ann_spec(len(vectors), "ivfpq", 20000, 16, 64, nprobe=32)
    assert spec["type"] == "ivfpq" and spec["rerank"] >= 10
    faiss.write_index(make_faiss_index(vectors, spec), str(tmp_path / "vectors.faiss"))
    np.save(tmp_path / "vectors.npy", vectors)
    index = Index(tmp_path, {"ann": spec}, {}, [None] * len(vectors), np.load(tmp_path / "vectors.npy", mmap_mode="r"),
                  read_faiss_index(tmp_path / "vectors.faiss"), None, None)
    recalls = []
    for query in vectors[:20]:
        hits = index.search(query, 10)
        exact = np.argsort(-(vectors @ query))[:10]
        assert [s for _, s in hits] == sorted((s for _, s in hits), reverse=True)
        for position, score in hits:
            assert score == pytest.approx(float(vectors[position] @ query), abs=1e-5), "scores are exact inner products"
        recalls.append(len({p for p, _ in hits} & set(exact.tolist())) / 10)
    assert hits and np.mean(recalls) >= 0.9


BAD_UTF8 = b'{"id": "caf\xe9"}\n'


@pytest.mark.parametrize("name, damage", [
    ("passages.jsonl", lambda p: p.write_bytes(BAD_UTF8)),
    ("documents.jsonl", lambda p: p.write_bytes(p.read_bytes() + BAD_UTF8)),
    ("passages.jsonl", lambda p: p.write_text("[1, 2]\n")),
    ("documents.jsonl", lambda p: p.write_text('"just a string"\n')),
    ("manifest.json", lambda p: p.write_text(json.dumps({**json.loads(p.read_text()), "ann": [1]}))),
    ("sentence_spans.npy", lambda p: np.save(p, np.zeros(3, dtype=np.int64))),
    ("bm25", lambda p: [f.write_bytes(b"\xff\xfe") for f in p.iterdir()]),
])
def test_every_damaged_file_is_an_index_problem_that_names_the_build(settings, name, damage):
    """Never another exception: a live server handles IndexProblem and keeps serving the last good build."""
    from kb.index import IndexProblem

    build_index(settings, embedder=FakeEmbedder())
    store = IndexStore(settings.index_dir)
    damage(store.current_path() / name)
    with pytest.raises(IndexProblem, match="kb build") as caught:
        store.load()
    assert str(store.current_path()) in str(caught.value)


def test_a_live_searcher_keeps_the_last_good_build_whatever_is_wrong_with_the_new_one(settings):
    from kb.live import LiveSearcher

    build_index(settings, embedder=FakeEmbedder())
    store = IndexStore(settings.index_dir)
    live = LiveSearcher(store, FakeEmbedder(), settings)
    good = live.current().index.path
    (settings.corpus_dir / "gamma.txt").write_text("Gamma\nA third document arrives.", encoding="utf-8")
    build_index(settings, embedder=FakeEmbedder())
    (store.current_path() / "passages.jsonl").write_bytes(BAD_UTF8)
    live.refresh()
    assert live.current().index.path == good and live.current().search("wind tunnels", 2)
