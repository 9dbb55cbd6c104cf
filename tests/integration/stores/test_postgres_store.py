"""kb on a real PostgreSQL with pgvector: the same answers as on FAISS, the document API, migrations, two writers.

Every test uses the real model and a real server (the session's throwaway cluster), each in a
PostgreSQL schema of its own.
"""

import json
import threading

import psycopg
import pytest

import kb
from kb.errors import StoreMismatch
from kb.evaluation.questions import load_questions
from kb.ingestion.sync import build_index
from kb.search.live import LiveSearcher
from kb.stores.postgres import schema as pg_schema
from kb.stores.postgres.store import PostgresStore
from tests.conftest import SEED_CORPUS, SEED_QUESTIONS, all_documents
from web.app import create_app

KEY = "pg-key"


@pytest.fixture()
def seed_pg(pg_settings, embedder):
    settings = pg_settings.with_(corpus_dir=SEED_CORPUS)
    report = build_index(settings, embedder=embedder)
    assert report.written and report.passages_embedded == report.passages > 0
    return settings


def test_every_seed_question_gets_the_same_answer_from_both_stores(seed_pg, embedder, live_searcher):
    on_postgres = LiveSearcher(embedder, seed_pg)
    on_faiss = live_searcher.current()
    questions = load_questions(SEED_QUESTIONS, split="test")
    for question in questions:
        for mode in ("hybrid", "dense", "keyword"):
            expected = on_faiss.answer(question.q, 5, mode)
            got = on_postgres.current().answer(question.q, 5, mode)
            assert [h.passage_id for h in got.hits] == [h.passage_id for h in expected.hits], (mode, question.q)
            for mine, theirs in zip(got.hits, expected.hits):
                assert mine.scores["dense"] == pytest.approx(theirs.scores["dense"], abs=1e-5)
                assert mine.scores["keyword"] == pytest.approx(theirs.scores["keyword"], rel=1e-4, abs=1e-5)
                assert mine.highlights == theirs.highlights
            assert got.confident == expected.confident
    documents = all_documents(on_postgres.store)
    for hit in on_postgres.current().answer(questions[0].q, 20).hits:
        assert documents[hit.doc_id].text[hit.start:hit.end] == hit.text
    on_postgres.store.close()


def test_the_document_api_works_the_same_on_postgres(seed_pg, embedder):
    settings = seed_pg.with_(api_key=KEY, write_rate_limit="off")
    base = kb.open(settings, serving=True, embedder=embedder)
    client = create_app(settings, base=base).test_client()
    auth = {"Authorization": f"Bearer {KEY}"}
    note = {"id": "zeppelin-note", "title": "Zeppelin mail", "text": "The zeppelin carried airmail across the "
            "Atlantic in 1930. Its crew sorted letters in flight.", "metadata": {"topic": "aviation", "year": 1930}}
    response = client.post("/api/documents", json=note, headers=auth)
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["index"]["passages_embedded"] == 1
    again = client.post("/api/documents", json=note, headers=auth).get_json()
    assert again["index"]["passages_embedded"] == 0, "an unchanged document embeds nothing"
    found = client.get("/api/search", query_string={"q": "who sorted letters in flight?", "k": 3}).get_json()
    assert found["results"][0]["doc_id"] == "zeppelin-note"
    assert found["results"][0]["text"] == note["text"]
    filtered = client.get("/api/search", query_string={"q": "letters", "filter.year": "1930"}).get_json()
    assert [r["doc_id"] for r in filtered["results"]] == ["zeppelin-note"], "a number in metadata filters as JSON"
    assert client.get("/api/search", query_string={"q": "letters", "filter.topic": "sea"}).get_json()["results"] == []
    listing = client.get("/api/documents").get_json()
    assert listing["total"] == 2 and "zeppelin-note" in {d["id"] for d in listing["documents"]}
    assert client.delete("/api/documents/zeppelin-note", headers=auth).status_code == 200
    assert client.get("/api/documents/zeppelin-note").status_code == 404
    after = client.get("/api/search", query_string={"q": "who sorted letters in flight?", "k": 3}).get_json()
    assert all(r["doc_id"] != "zeppelin-note" for r in after["results"])
    assert client.get("/api/health").get_json()["passages"] == 9
    base.close()


def test_a_schema_behind_the_code_names_the_command_that_brings_it_up(pg_settings, embedder, monkeypatch):
    from kb.cli import main

    build_index(pg_settings.with_(corpus_dir=SEED_CORPUS), embedder=embedder)
    added = []

    def next_version(schema, meta):
        added.append(schema)
        return [f"CREATE INDEX documents_title ON {schema}.documents (title)"]

    now = pg_schema.LATEST
    monkeypatch.setattr(pg_schema, "MIGRATIONS", [*pg_schema.MIGRATIONS, next_version])
    monkeypatch.setattr(pg_schema, "LATEST", now + 1)
    monkeypatch.setattr("kb.stores.postgres.store.LATEST", now + 1)
    with pytest.raises(StoreMismatch, match=f"at version {now}; this kb needs {now + 1}: run `kb db migrate`"):
        PostgresStore(pg_settings)
    env = {"KB_STORE": "postgres", "KB_PG_DSN": pg_settings.pg_dsn, "KB_PG_SCHEMA": pg_settings.pg_schema}
    monkeypatch.setattr("os.environ", {**env})
    assert main(["db", "migrate"]) == 0
    assert main(["db", "migrate"]) == 0, "idempotent"
    assert added == [pg_settings.pg_schema], "the new version ran once"
    store = PostgresStore(pg_settings)
    with store.snapshot() as snapshot:
        assert snapshot.counts() == (1, 9), "nothing lost by the migration"
    store.close()


def test_two_servers_writing_at_once_lose_nothing_and_keep_the_statistics_exact(pg_settings, embedder):
    from kb.documents.document import Document
    from kb.embedding.prepare import prepare

    first = PostgresStore.create(pg_settings, pg_settings.model, embedder.dimension,
                                 __import__("kb.embedding.prepare", fromlist=["build_config"]).build_config(pg_settings))
    second = PostgresStore(pg_settings)  # another server's pool on the same database
    topics = ["wings", "engines", "rockets", "balloons"]
    prepared = {t: prepare([Document(f"{t}-{n}", f"{t} {n}", f"api/{t}", f"Notes on {t}, part {n}. The {t} of "
                                     f"model {n} were tested twice.", {}, "") for n in range(6)], embedder, pg_settings)
                for t in topics}
    shared = prepare([Document("shared", "Shared", "api/shared", f"Version {v} of the shared note.", {}, "")
                      for v in range(1)], embedder, pg_settings)
    errors = []

    def writer(store, names):
        try:
            for name in names:
                for one in prepared[name]:
                    store.add([one])
                    store.add(shared)
                store.delete([f"{name}-0"])
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(first, topics[:2])),
               threading.Thread(target=writer, args=(second, topics[2:]))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    expected = {f"{t}-{n}" for t in topics for n in range(1, 6)} | {"shared"}
    assert set(first.fingerprints()) == expected
    with psycopg.connect(pg_settings.pg_dsn) as conn:
        s, g = pg_settings.pg_schema, f"{pg_settings.pg_schema}.g{first.generation}_"
        stats = conn.execute(f"SELECT documents, passages, total_length FROM {s}.stats WHERE generation = %s",
                             (first.generation,)).fetchone()
        actual = conn.execute(f"SELECT (SELECT count(*) FROM {s}.documents), count(*), sum(length) "
                              f"FROM {g}passages").fetchone()
        assert tuple(map(float, stats)) == tuple(map(float, actual))
        drift = conn.execute(f"""SELECT count(*) FROM (SELECT u.lexeme, count(*) AS df FROM {g}passages p,
                                 unnest(p.terms) u GROUP BY 1) real FULL JOIN (SELECT * FROM {g}terms WHERE df > 0)
                                 kept ON kept.term = real.lexeme WHERE kept.df IS DISTINCT FROM real.df""").fetchone()
        assert drift[0] == 0, "document frequencies equal a recount of the live passages"
    first.close()
    second.close()


def test_documents_with_every_kind_of_metadata_round_trip(pg_settings, embedder):
    from kb.documents.document import Document
    from kb.embedding.prepare import build_config, prepare

    store = PostgresStore.create(pg_settings, pg_settings.model, embedder.dimension, build_config(pg_settings))
    metadata = {"date": "2024-05-01", "tags": ["a", "b"], "nested": {"x": 1}, "flag": True, "none": None,
                "quote": "it's \\ \"odd\"", "unicode": "Қазақстан"}
    text = "Line one with a tab\there.\nLine two: Қазақстан and 😀 emoji. Backslash \\ and quote ' kept."
    store.add(prepare([Document("odd", "Odd ' title", "api/odd", text, metadata, "")], embedder, pg_settings))
    document = store.document("odd")
    assert (document.text, document.metadata, document.title) == (text, json.loads(json.dumps(metadata)),
                                                                  "Odd ' title")
    with store.snapshot() as snapshot:
        found = snapshot.candidates(embedder.encode_query("emoji"), ["emoji", "backslash"], 5, True, True)
        record = snapshot.records(found.keys.tolist())[0]
    assert text[record.start:record.end] == record.text and found.keyword[0] > 0
    store.close()


def test_a_search_right_after_the_servers_connections_were_lost_still_answers(seed_pg, embedder, pg_cluster):
    store = PostgresStore.open(seed_pg)
    searcher = LiveSearcher(embedder, seed_pg)
    question = load_questions(SEED_QUESTIONS, split="test")[0].q
    expected = [h.passage_id for h in searcher.current().answer(question, 5).hits]
    with store.snapshot() as snapshot:  # two connections in the pool, both returned just now (no check on lending)
        with store.snapshot() as other:
            assert snapshot.counts() == other.counts()
    with psycopg.connect(pg_cluster.dsn(), autocommit=True) as admin:  # what a restart of the server does to them
        ended = admin.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                              "WHERE pid <> pg_backend_pid() AND datname = current_database() "
                              "AND backend_type = 'client backend'").fetchone()[0]
    assert ended >= 2
    with store.snapshot() as snapshot:  # the first lent is dead: the pool is checked and the search goes on
        assert snapshot.counts()[1] > 0
    assert [h.passage_id for h in searcher.current().answer(question + "?", 5).hits] == expected
    store.close()
    searcher.store.close()
