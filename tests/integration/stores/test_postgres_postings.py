"""The PostgreSQL store's keyword postings (kb/stores/postgres/postings.py) on a real PostgreSQL: segments merge as
writes pile up, deletes are cleaned up, a schema of version 2 gets its postings, and BM25 stays exact throughout."""

from __future__ import annotations

import numpy as np
import pytest

from kb.embedding.prepare import build_config
from kb.stores.postgres.postings import MERGE_FACTOR
from tests.integration.stores.test_store_contract import DIMENSION, WORDS, Oracle, make_document


@pytest.fixture()
def store(pg_settings):
    from kb.stores.postgres.store import PostgresStore

    made = PostgresStore.create(pg_settings, "fake", DIMENSION, build_config(pg_settings))
    yield made
    made.close()


def segments(store) -> list[tuple[int, int]]:
    """(id, passages) of the live generation's segments, in key order."""
    return [(int(i), int(n)) for i, n in store._read(
        lambda q: f"SELECT id, passages FROM {store.schema}.g{store.generation}_segments ORDER BY lo")]


def settle(store) -> None:
    if store._merging is not None:
        store._merging.join()


def assert_exact(store, oracle: Oracle, rng: np.random.Generator, depth: int = 5) -> None:
    for _ in range(10):
        terms = list(rng.choice(WORDS, size=4))
        with store.snapshot() as snapshot:
            found = snapshot.candidates(np.zeros(DIMENSION, np.float32), terms, depth, False, True)
            records = snapshot.records(found.keys.tolist())
        expected = oracle.keyword(terms)
        best = sorted(expected.values(), reverse=True)[:depth]
        assert sorted(found.keyword.tolist(), reverse=True) == pytest.approx(best, rel=1e-4, abs=1e-5)
        for record, score in zip(records, found.keyword.tolist()):
            assert expected[record.passage_id] == pytest.approx(score, rel=1e-4, abs=1e-5)


def test_segments_merge_as_writes_pile_up_and_deleted_passages_are_cleaned_up(store):
    rng = np.random.default_rng(5)
    oracle = Oracle()
    for n in range(3 * MERGE_FACTOR * MERGE_FACTOR // 2):  # 150 one-document writes, 1 to 3 passages each
        document = make_document(rng, f"doc{n}", int(rng.integers(1, 4)), "green")
        store.add([document])
        oracle.documents[document.document.id] = document
        if n % 37 == 0:
            assert_exact(store, oracle, rng)
    settle(store)
    made = segments(store)
    assert len(made) < 2 * MERGE_FACTOR, "one segment a write would be 150"
    assert max(n for _, n in made) >= MERGE_FACTOR * 10, "segments of a hundred passages and more were merged"
    assert sum(n for _, n in made) == sum(len(d.passages) for d in oracle.documents.values())
    assert_exact(store, oracle, rng)

    gone = [doc_id for doc_id in sorted(oracle.documents) if int(doc_id[3:]) % 10 < 6]
    for begin in range(0, len(gone), 10):
        store.delete(gone[begin:begin + 10])
        for doc_id in gone[begin:begin + 10]:
            del oracle.documents[doc_id]
        assert_exact(store, oracle, rng)  # deleted passages' postings remain for a while, and never show
    settle(store)
    live = sum(len(d.passages) for d in oracle.documents.values())
    covered = sum(n for _, n in segments(store))
    assert covered - live < 0.5 * covered, "segments that lost most of their passages were rebuilt"
    assert_exact(store, oracle, rng, depth=50)


def test_a_schema_of_version_2_gets_its_postings_from_kb_db_migrate(store, pg_settings, monkeypatch):
    """Version 2 had no postings tables and a GIN index on the tsvectors; `kb db migrate` builds one segment of
    every passage, drops the GIN index, and searches answer as before."""
    import psycopg

    from kb.cli import main
    from kb.stores.postgres.store import PostgresStore

    rng = np.random.default_rng(8)
    oracle = Oracle()
    for n in range(12):
        document = make_document(rng, f"doc{n}", 2, "blue")
        store.add([document])
        oracle.documents[document.document.id] = document
    settle(store)
    s, g = store.schema, f"{store.schema}.g{store.generation}_"
    with psycopg.connect(pg_settings.pg_dsn, autocommit=True) as conn:  # back to what version 2 left
        conn.execute(f"DROP TABLE {g}postings, {g}segments")
        conn.execute(f"CREATE INDEX g{store.generation}_passages_terms_idx ON {g}passages USING gin (terms)")
        conn.execute(f"DROP TABLE {s}.queries, {s}.clicks, {s}.keys, {s}.access_sets")  # and what came after it
        conn.execute(f"ALTER TABLE {s}.documents DROP COLUMN access")
        conn.execute(f"DELETE FROM {s}.schema_version WHERE version >= 3")
    store.close()
    monkeypatch.setattr("os.environ", {"KB_STORE": "postgres", "KB_PG_DSN": pg_settings.pg_dsn,
                                       "KB_PG_SCHEMA": pg_settings.pg_schema})
    assert main(["db", "migrate"]) == 0
    again = PostgresStore(pg_settings)
    try:
        assert len(segments(again)) == 1 and sum(n for _, n in segments(again)) == 24
        with psycopg.connect(pg_settings.pg_dsn) as conn:
            gin = conn.execute("SELECT count(*) FROM pg_indexes WHERE schemaname = %s AND indexdef LIKE "
                               "'%%USING gin (terms)%%'", (s,)).fetchone()[0]
        assert gin == 0
        assert_exact(again, oracle, rng)
    finally:
        again.close()


def test_when_the_best_postings_are_of_deleted_passages_the_next_live_ones_are_found(store, monkeypatch):
    """Twenty of thirty passages with a word are deleted, the twenty that held it most: their postings stay (no
    merge here), outrank every live passage, and the search still returns the five best live ones."""
    from kb.stores.base import PreparedDocument, PreparedPassage, StoredDocument

    monkeypatch.setattr(store, "_maybe_merge", lambda: None)
    rng = np.random.default_rng(2)
    oracle = Oracle()
    documents = []
    for n in range(30):
        words = ["zeppelin"] * (30 - n) + list(rng.choice(WORDS, size=5))
        text = " ".join(words)
        vector = rng.normal(size=DIMENSION).astype(np.float32)
        vector /= np.linalg.norm(vector)
        passage = PreparedPassage(f"z{n}:0", 0, 0, len(text), text, "", vector, words, np.array([[0, len(text)]]),
                                  vector[None, :].astype(np.float16))
        documents.append(PreparedDocument(StoredDocument(f"z{n}", f"Z{n}", "src/z", f"h{n}", text, 1, {}, ""),
                                          [passage]))
    store.add(documents)
    oracle.documents.update({d.document.id: d for d in documents})
    store.delete([f"z{n}" for n in range(20)])
    for n in range(20):
        del oracle.documents[f"z{n}"]
    with store.snapshot() as snapshot:
        found = snapshot.candidates(np.zeros(DIMENSION, np.float32), ["zeppelin"], 5, False, True)
        records = snapshot.records(found.keys.tolist())
    assert [r.doc_id for r in records] == [f"z{n}" for n in range(20, 25)]
    expected = oracle.keyword(["zeppelin"])
    assert found.keyword.tolist() == pytest.approx([expected[f"z{n}:0"] for n in range(20, 25)], rel=1e-4)
