"""Documents have a home of their own: the record holds every document, and the index can always be derived again.

The real model and FAISS, a real PostgreSQL where the store is PostgreSQL, the app through Flask's test client.
"""

import io
import json
import shutil
import subprocess

import pytest

import kb
from kb.embedding.prepare import prepare
from kb.ingestion.sync import build_index
from kb.ingestion.transfer import import_rows, read_rows
from kb.ingestion.writes import Library
from kb.stores import open_store
from kb.stores.record import export
from tests.conftest import SEED_CORPUS, all_documents
from tests.pdfmaker import make_pdf

KEY = "record-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
NOTE = {"id": "meeting-notes", "title": "Meeting notes", "date": "2026-11-20", "metadata": {"team": "airships"},
        "text": "The zeppelin budget for 2027 was approved by the board on Tuesday."}
PDF = make_pdf(["Wind tunnels measure lift.", "The hangar roof in Friedrichshafen is replaced in spring."], title="Hangar")
CREW_PDF = make_pdf(["Crew rota for the spring flights.", "Night shifts rotate weekly."], title="Crew rota")
CREW_ID = "uploads--crew-rota.pdf"


def fill(client):
    """A JSON document, an uploaded PDF, one uploaded with access, and a batch of JSON lines, through the API."""
    assert client.post("/api/documents", json=NOTE, headers=AUTH).status_code == 201
    assert client.post("/api/documents", data={"file": (io.BytesIO(PDF), "hangar.pdf")}, headers=AUTH,
                       content_type="multipart/form-data").status_code == 201
    assert client.post("/api/documents", data={"file": (io.BytesIO(CREW_PDF), "crew-rota.pdf"), "access": "crew"},
                       headers=AUTH, content_type="multipart/form-data").status_code == 201
    lines = "".join(json.dumps({"id": f"line-{n}", "title": f"Line {n}", "text": f"Airship log entry {n}.",
                                **({"access": ["crew"]} if n else {})}) + "\n" for n in range(2)).encode()
    assert client.post("/api/documents", data={"file": (io.BytesIO(lines), "log.jsonl")}, headers=AUTH,
                       content_type="multipart/form-data").status_code == 201


def documents(settings):
    """doc id -> StoredDocument of every document in the configured store (opened and closed again)."""
    store = open_store(settings)
    try:
        return all_documents(store)
    finally:
        store.close()


def test_api_documents_are_files_in_the_corpus_folder_and_come_back_after_the_index_is_deleted(make_client, embedder):
    client, settings = make_client(api_key=KEY)
    fill(client)
    own = settings.corpus_dir / ".kb"
    assert json.loads((own / "documents" / "meeting-notes.jsonl").read_text())["text"] == NOTE["text"]
    assert (own / "uploads" / "hangar.pdf").read_bytes() == PDF, "an upload is kept as its original bytes"
    # An upload with access is kept as the document read from it, access and all, in one file.
    assert sorted(p.name for p in (own / "documents").iterdir()) == ["line-0.jsonl", "line-1.jsonl",
                                                                    "meeting-notes.jsonl", f"{CREW_ID}.jsonl"]
    crew = json.loads((own / "documents" / f"{CREW_ID}.jsonl").read_text())
    assert crew["access"] == ["crew"] and crew["metadata"]["page_starts"][0] == 0 and crew["title"] == "Crew rota"
    before = documents(settings)
    assert before[CREW_ID].access == ("crew",) and before[CREW_ID].source == "uploads/crew-rota.pdf"
    shutil.rmtree(settings.index_dir)  # what `make clean` does
    report = build_index(settings, embedder=embedder)
    after = documents(settings)
    assert set(after) == set(before) and len(after) == 6 and report.passages_embedded == report.passages
    for doc_id, document in before.items():
        mine = after[doc_id]
        assert (mine.title, mine.text, mine.source, mine.metadata, mine.access, mine.hash, mine.passages) == (
            document.title, document.text, document.source, document.metadata, document.access, document.hash,
            document.passages)


def test_a_refused_write_leaves_nothing_in_the_record(make_client, monkeypatch):
    """The file is written first; when the index transaction then fails, the record goes back to what it was."""
    from tests.fakes import full_disk_at_commit

    client, settings = make_client(api_key=KEY)
    assert client.post("/api/documents", json=NOTE, headers=AUTH).status_code == 201
    path = settings.corpus_dir / ".kb" / "documents" / "meeting-notes.jsonl"
    kept = path.read_bytes()
    library = client.application.extensions["kb"].library
    full_disk_at_commit(monkeypatch, library.store)
    changed = client.post("/api/documents", json={**NOTE, "text": "The budget was cut."}, headers=AUTH)
    new = client.post("/api/documents", json={**NOTE, "id": "other", "text": "Another note."}, headers=AUTH)
    assert (changed.status_code, new.status_code) == (507, 507)
    monkeypatch.undo()
    library.store.db.close()
    assert path.read_bytes() == kept, "the replaced document's file is back"
    assert sorted(p.name for p in path.parent.iterdir()) == ["meeting-notes.jsonl"], "no new file, no leftovers"


def test_kbs_own_files_never_show_in_git_status(make_client):
    client, settings = make_client(api_key=KEY)
    git = ["git", "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], cwd=settings.corpus_dir, check=True)
    subprocess.run([*git, "add", "."], cwd=settings.corpus_dir, check=True)
    subprocess.run([*git, "commit", "-qm", "seed"], cwd=settings.corpus_dir, check=True)
    fill(client)
    status = subprocess.run(["git", "status", "--porcelain"], cwd=settings.corpus_dir, capture_output=True, text=True)
    assert status.returncode == 0 and status.stdout == "", status.stdout


def test_export_import_export_gives_the_same_bytes_and_the_same_answers(make_client, tmp_path_factory, embedder):
    client, settings = make_client(api_key=KEY)
    fill(client)
    first = io.BytesIO()
    assert export(open_store(settings), first) == 6
    lines = first.getvalue().splitlines()
    assert [json.loads(line)["id"] for line in lines] == sorted(json.loads(line)["id"] for line in lines)
    assert [json.loads(line)["file"] is not None for line in lines].count(True) == 1, "the upload carries its bytes"
    access = {json.loads(line)["id"]: json.loads(line)["access"] for line in lines}
    assert access["line-1"] == access[CREW_ID] == ["crew"]
    other = tmp_path_factory.mktemp("imported")
    settings2 = settings.with_(corpus_dir=other / "corpus", index_dir=other / "index")
    settings2.corpus_dir.mkdir()
    build_index(settings2, embedder=embedder)
    library = Library(settings2, embedder, store=lambda: store2, preparer=lambda d, s: prepare(d, embedder, s))
    store2 = open_store(settings2)
    report = import_rows(read_rows(io.BytesIO(first.getvalue())), library, 20 * 2**20)
    assert (report.documents, report.added) == (6, 6)
    second = io.BytesIO()
    export(open_store(settings2), second)
    assert second.getvalue() == first.getvalue()
    again = import_rows(read_rows(io.BytesIO(first.getvalue())), library, 20 * 2**20)
    assert (again.unchanged, again.passages_embedded) == (6, 0), "a second import (a resumed one) embeds nothing"


def test_pointing_kb_at_another_folder_switches_and_pointing_back_gives_everything_back(make_client, tmp_path, embedder,
                                                                                       caplog):
    client, settings = make_client(api_key=KEY)
    assert client.post("/api/documents", json=NOTE, headers=AUTH).status_code == 201
    seed = set(documents(settings))
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "wheat.md").write_text("# Wheat\n\nKazakhstan exports wheat to forty countries.\n")
    report = build_index(settings.with_(corpus_dir=notes), embedder=embedder)
    assert "switching the index from" in caplog.text and str(notes) in caplog.text
    assert set(documents(settings)) == {"wheat.md"} and "corpus folder changed" in report.reason
    assert (settings.corpus_dir / ".kb" / "documents" / "meeting-notes.jsonl").exists(), "the record is untouched"
    back = build_index(settings, embedder=embedder)
    assert set(documents(settings)) == seed and sorted(back.added) == sorted(seed)


@pytest.fixture()
def pg_client(pg_settings, embedder):
    from web.app import create_app

    settings = pg_settings.with_(corpus_dir=SEED_CORPUS, api_key=KEY, write_rate_limit="off")
    build_index(settings, embedder=embedder)
    base = kb.open(settings, serving=True, embedder=embedder)
    yield create_app(settings, base=base).test_client(), settings
    base.close()


def test_on_postgres_a_re_index_keeps_every_document_and_switches_whole(pg_client, embedder):
    """A change of chunking builds the next generation beside the live one from the documents table."""
    import psycopg

    client, settings = pg_client
    fill(client)
    before = {doc_id: (d.title, d.text, d.metadata, d.hash) for doc_id, d in documents(settings).items()}
    store = open_store(settings)
    assert store.original("uploads--hangar.pdf") == PDF, "PostgreSQL keeps an upload's bytes in its record"
    store.close()
    changed = settings.with_(chunk_tokens=128)
    report = build_index(changed, embedder=embedder)
    assert "settings changed" in report.reason and report.passages_embedded == report.passages > 0
    store = open_store(changed)
    assert store.generation == 2 and store.config["chunk_tokens"] == 128
    after = {doc_id: (d.title, d.text, d.metadata, d.hash) for doc_id, d in all_documents(store).items()}
    assert after == before and store.original("uploads--hangar.pdf") == PDF
    with psycopg.connect(settings.pg_dsn) as conn:
        tables = {row[0] for row in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s",
                                                 (settings.pg_schema,))}
    assert not any(t.startswith("g1_") for t in tables), "the old generation is dropped once the new one is live"
    store.close()


def test_from_faiss_to_postgres_by_export_and_import_with_the_same_answers(make_client, pg_settings, embedder, tmp_path):
    from kb.evaluation.questions import load_questions
    from kb.search.live import LiveSearcher
    from tests.conftest import SEED_QUESTIONS

    client, settings = make_client(api_key=KEY)
    fill(client)
    exported = io.BytesIO()
    export(open_store(settings), exported)
    target = pg_settings.with_(corpus_dir=tmp_path / "empty")
    target.corpus_dir.mkdir()
    build_index(target, embedder=embedder)
    pg = open_store(target)
    library = Library(target, embedder, store=lambda: pg, preparer=lambda d, s: prepare(d, embedder, s))
    import_rows(read_rows(io.BytesIO(exported.getvalue())), library, 20 * 2**20)
    again = io.BytesIO()
    export(pg, again)
    assert again.getvalue() == exported.getvalue(), "the same export from either store"
    on_faiss = LiveSearcher(embedder, settings).current()
    on_postgres = LiveSearcher(embedder, target).current()
    for question in [q.q for q in load_questions(SEED_QUESTIONS, split="test")] + ["zeppelin budget", "hangar roof"]:
        expected = on_faiss.answer(question, 5)
        got = on_postgres.answer(question, 5)
        assert [h.passage_id for h in got.hits] == [h.passage_id for h in expected.hits], question
    pg.close()
    on_postgres.store.close()

