"""Sentence vectors stored as float16 or int8 (KB_SENTENCE_VECTORS), and stores that hold both."""

import numpy as np
import pytest

from kb.ingestion.sync import build_index
from kb.settings import Settings
from kb.stores.faiss.store import open_current
from kb.stores.sentence_vectors import MAGIC, pack, unpack
from tests.conftest import all_passages
from tests.fakes import FakeEmbedder


def unit_rows(n: int, dimension: int = 384, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, dimension)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("kind, size_per_row, tolerance", [("float16", 384 * 2, 1e-3), ("int8", 384 + 4, 1e-2)])
def test_each_format_round_trips_within_its_precision(kind, size_per_row, tolerance):
    vectors = unit_rows(5)
    blob = pack(vectors, kind)
    assert len(blob) == 5 * size_per_row + (len(MAGIC) if kind == "int8" else 0)
    back = unpack(blob, 5)
    assert back.dtype == np.float32 and back.shape == (5, 384)
    assert np.abs(back - vectors).max() < tolerance
    assert np.sum(back * vectors, axis=1).min() > 0.999


def test_a_zero_vector_and_no_sentences_are_kept_as_they_are():
    vectors = np.zeros((2, 8), dtype=np.float32)
    assert np.array_equal(unpack(pack(vectors, "int8"), 2), vectors)
    assert unpack(pack(np.zeros((0, 8)), "int8"), 0).shape[0] == 0


def test_a_float16_blob_is_never_read_as_int8():
    # Unit vectors' components are within [-1, 1]; MAGIC would read as a first component of about 3.15.
    assert abs(float(np.frombuffer(MAGIC[:2], dtype="<f2")[0])) > 1.5


def test_changing_the_format_needs_no_rebuild_and_both_read_back(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text("Wind tunnels test wings. They measure lift and drag.", encoding="utf-8")
    first = Settings.from_env(environ={}, corpus_dir=corpus, index_dir=tmp_path / "index")
    build_index(first, embedder=FakeEmbedder())
    (corpus / "b.txt").write_text("Boundary layers grow along a plate. Heat moves across them.", encoding="utf-8")
    report = build_index(first.with_(sentence_vectors="int8"), embedder=FakeEmbedder())
    assert report.added == ["b.txt"] and report.passages_embedded == 1  # one new document, nothing re-embedded
    store = open_current(first)
    blobs = dict(store.db.connection().execute("SELECT doc_id, sentence_vectors FROM passages").fetchall())
    assert not blobs["a.txt"].startswith(MAGIC) and blobs["b.txt"].startswith(MAGIC)
    for record in all_passages(store):
        expected = FakeEmbedder()._plain([record.text[s - record.start:e - record.start] for s, e in record.sentence_spans])
        assert np.allclose(record.sentence_vectors, expected, atol=2e-2)
