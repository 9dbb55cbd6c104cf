"""Nothing a user wrote is ever lost: real `kb` processes, killed with SIGKILL at many points.

An upgrade from a real index of the previous format, the issue's reproduction, a damaged index file,
a re-index for other settings (on FAISS and on PostgreSQL), an import and a backup, each killed
midway: after every kill the store opens with every acknowledged document, whole, and the next run
finishes the job.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from kb.evaluation.datasets import load_cranfield
from kb.ingestion.sync import build_index
from kb.settings import Settings
from kb.stores import open_store
from kb.stores.keys import SqliteKeyTable
from tests.conftest import REPO, SEED_CORPUS, all_documents
from tests.e2e.conftest import call, start_server
from tests.e2e.test_living_corpus import _check_whole, _write_corpus

KEY = "home-key"
FIXTURE = REPO / "tests" / "fixtures" / "format-4"
NOTE = {"id": "meeting-notes", "title": "Meeting notes",
        "text": "The zeppelin budget for 2027 was approved by the board on Tuesday."}


def kb(*args: str, env: dict, timeout: float = 600, stdin=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kb.cli", *args], env={**os.environ, "HF_HUB_OFFLINE": "1", **env},
                          capture_output=True, timeout=timeout, stdin=stdin)


def found(env: dict, question: str) -> list[str]:
    result = kb("search", question, "-k", "3", "--json", env=env)
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    return [r["doc_id"] for r in json.loads(result.stdout)["results"]]


def folders(tmp_path: Path) -> tuple[dict, Settings]:
    shutil.copytree(SEED_CORPUS, tmp_path / "corpus")
    env = {"KB_CORPUS_DIR": str(tmp_path / "corpus"), "KB_INDEX_DIR": str(tmp_path / "index")}
    return env, Settings.from_env(environ={}, corpus_dir=tmp_path / "corpus", index_dir=tmp_path / "index")


def seed_with_a_note(tmp_path, embedder) -> tuple[dict, Settings]:
    """The seed built, then a real `kb serve` given NOTE through the API and stopped."""
    env, settings = folders(tmp_path)
    build_index(settings, embedder=embedder)
    server = start_server(settings.index_dir, tmp_path / "serve-note.log", {"KB_API_KEY": KEY},
                          corpus_dir=settings.corpus_dir)
    try:
        assert call(server.base, "POST", "/api/documents", NOTE, key=KEY)[0] == 201
    finally:
        server.stop()
    return env, settings


def test_the_issues_reproduction_an_older_format_keeps_the_api_document(tmp_path, embedder):
    """Build the seed, POST a document, stop, mark the index as the previous format, build: it is still found."""
    env, settings = seed_with_a_note(tmp_path, embedder)
    manifest = (settings.index_dir / "current").resolve() / "manifest.json"
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "format_version": 4}))
    built = kb("build", env=env)
    assert built.returncode == 0 and "index format 4 is derived again" in built.stderr.decode(), built.stderr
    assert found(env, "zeppelin budget")[0] == "meeting-notes"


def test_a_real_index_of_format_4_is_upgraded_with_every_document(tmp_path):
    """kb 88ed1ac kept documents sent through the API only in records.sqlite (tests/fixtures/format-4)."""
    env, settings = folders(tmp_path)
    shutil.copytree(FIXTURE / "index", settings.index_dir, symlinks=True)
    server = start_server(settings.index_dir, tmp_path / "serve.log", corpus_dir=settings.corpus_dir)
    try:
        status, listed = call(server.base, "GET", "/api/documents")
        status, hangar = call(server.base, "GET", "/api/search?q=Which+hangar+hinges+need+replacing&k=1")
    finally:
        server.stop()
    assert status == 200 and {d["id"] for d in listed["documents"]} == {
        "astana-times-runde-interview.txt", "meeting-notes", "uploads--hangar.md"}
    assert hangar["results"][0]["doc_id"] == "uploads--hangar.md"
    assert hangar["results"][0]["headings"] == ["Hangar inspection"], "an uploaded Markdown file is read as Markdown"
    assert found(env, "zeppelin budget")[0] == "meeting-notes"
    own = settings.corpus_dir / ".kb" / "documents"
    assert sorted(p.name for p in own.iterdir()) == ["meeting-notes.jsonl", "uploads--hangar.md.jsonl"]
    assert "index format 4 is derived again" in server.output() and "2 documents sent through the API" in \
        server.output()


def test_a_damaged_index_file_ends_in_a_rebuild_that_keeps_every_document(tmp_path, embedder):
    env, settings = seed_with_a_note(tmp_path, embedder)
    records = (settings.index_dir / "current").resolve() / "records.sqlite"
    records.write_bytes(b"\xff" * records.stat().st_size)
    for leftover in records.parent.glob("records.sqlite-*"):
        leftover.unlink()
    server = start_server(settings.index_dir, tmp_path / "serve2.log", corpus_dir=settings.corpus_dir)
    server.stop()
    assert "rebuilding it from" in server.output()
    assert found(env, "zeppelin budget")[0] == "meeting-notes"
    assert _check_whole(settings) == {"astana-times-runde-interview.txt", "meeting-notes"}


def _kill_when(process: subprocess.Popen, ready, delay: float) -> None:
    """SIGKILL ``process`` ``delay`` s after ``ready()`` first holds (or when it ends by itself)."""
    deadline = time.monotonic() + 300
    while not ready() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(delay)
    process.send_signal(signal.SIGKILL)
    process.wait()


def _corpus_with_api_documents(tmp_path, settings, embedder, count: int = 40) -> set[str]:
    """Cranfield abstracts as files, and five documents written through the library (the API's path)."""
    from kb.documents.readers import Parsed
    from kb.embedding.prepare import prepare
    from kb.ingestion.writes import Library

    _write_corpus(settings.corpus_dir, load_cranfield(REPO / "benchmarks" / "data" / "cranfield").documents[:count])
    build_index(settings, embedder=embedder)
    store = open_store(settings)
    library = Library(settings, embedder, store=lambda: store, preparer=lambda d, s: prepare(d, embedder, s))
    for n in range(5):
        library.write([store.record.json_document(Parsed(f"Note {n}", f"Airship note {n}: the mail was late.", {},
                                                         f"note-{n}"), f"note-{n}")])
    ids = set(all_documents(store))
    store.close()
    return ids


def _pg_documents(settings) -> tuple[set[str], int]:
    store = open_store(settings)
    try:
        return set(all_documents(store)), store.generation
    finally:
        store.close()


def _building(kind: str, settings: Settings):
    """How many documents the index being derived beside the live one holds so far (0 while there is none)."""
    import sqlite3

    def faiss() -> int:
        current = (settings.index_dir / "current").resolve()
        for folder in settings.index_dir.glob("store-*"):
            if folder.resolve() != current and (folder / "records.sqlite").exists():
                try:
                    with sqlite3.connect(folder / "records.sqlite", timeout=30) as conn:
                        return conn.execute("SELECT count(*) FROM documents").fetchone()[0]
                except sqlite3.OperationalError:  # made a moment ago: its tables come next
                    return 0
        return 0

    def postgres() -> int:
        import psycopg

        s = settings.pg_schema
        with psycopg.connect(settings.pg_dsn) as conn:
            row = conn.execute(f"SELECT number FROM {s}.generations WHERE state = 'building'").fetchone()
            return conn.execute(f"SELECT count(*) FROM {s}.g{row[0]}_indexed").fetchone()[0] if row else 0

    return faiss if kind == "faiss" else postgres


@pytest.mark.parametrize("kind", ["faiss", "postgres"])
def test_a_re_index_for_other_settings_killed_anywhere_loses_nothing_and_resumes(kind, tmp_path, embedder, request):
    corpus = tmp_path / "corpus"
    settings = Settings.from_env(environ={}, corpus_dir=corpus, index_dir=tmp_path / "index", batch_size=2)
    env = {"KB_CORPUS_DIR": str(corpus), "KB_INDEX_DIR": str(settings.index_dir), "KB_BATCH_SIZE": "2"}
    if kind == "postgres":
        pg = request.getfixturevalue("pg_settings")
        settings = pg.with_(corpus_dir=corpus, batch_size=2)
        env.update(KB_STORE="postgres", KB_PG_DSN=pg.pg_dsn, KB_PG_SCHEMA=pg.pg_schema)
    everything = _corpus_with_api_documents(tmp_path, settings, embedder)
    env["KB_CHUNK_TOKENS"] = "128"  # other settings: every passage is derived again
    rng = random.Random(22)
    built = _building(kind, settings)
    for round_ in range(3):
        process = subprocess.Popen([sys.executable, "-m", "kb.cli", "build", "-v"], env={**os.environ, **env},
                                   stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
        seen = bytearray()

        def read(stream=process.stderr, into=seen) -> None:
            with stream:
                while chunk := stream.read1(4096):
                    into.extend(chunk)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        before = built()
        if round_ == 0:  # as it starts to embed; then after it has committed more than the killed ones did
            _kill_when(process, lambda: b"embedding" in seen, 0.0)
        else:
            _kill_when(process, lambda: built() > before, rng.uniform(0.0, 0.5))
        reader.join()
        assert process.returncode == -signal.SIGKILL, "killed while it worked, not after it was done"
        if kind == "faiss":
            assert _check_whole(settings) == everything, f"after kill {round_ + 1}"
        else:
            held, generation = _pg_documents(settings)
            assert held == everything and generation == 1, f"after kill {round_ + 1}: the old index still serves"
    result = kb("build", "--json", env=env)
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    report = json.loads(result.stdout.decode().strip().splitlines()[-1])
    passages = report["passages"]
    assert report["passages_embedded"] < passages, "the last build carried on from what the killed ones embedded"
    if kind == "faiss":
        assert _check_whole(settings.with_(chunk_tokens=128)) == everything
    else:
        held, generation = _pg_documents(settings)
        assert held == everything and generation == 2
    print(f"\n{kind}: the last build embedded {report['passages_embedded']} of {passages} passages")


def test_an_import_killed_anywhere_resumes_and_ends_with_the_same_export(tmp_path, embedder):
    source = Settings.from_env(environ={}, corpus_dir=tmp_path / "a" / "corpus", index_dir=tmp_path / "a" / "index")
    everything = _corpus_with_api_documents(tmp_path / "a", source, embedder, count=60)
    env_a = {"KB_CORPUS_DIR": str(source.corpus_dir), "KB_INDEX_DIR": str(source.index_dir)}
    exported = tmp_path / "export.jsonl"
    assert kb("export", "-o", str(exported), env=env_a).returncode == 0
    (tmp_path / "b" / "corpus").mkdir(parents=True)
    target = Settings.from_env(environ={}, corpus_dir=tmp_path / "b" / "corpus", index_dir=tmp_path / "b" / "index")
    env_b = {"KB_CORPUS_DIR": str(target.corpus_dir), "KB_INDEX_DIR": str(target.index_dir), "KB_BATCH_SIZE": "4"}
    own = target.corpus_dir / ".kb" / "documents"
    rng = random.Random(7)
    for round_ in range(3):
        process = subprocess.Popen([sys.executable, "-m", "kb.cli", "import", str(exported)],
                                   env={**os.environ, "HF_HUB_OFFLINE": "1", **env_b},
                                   stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        before = len(list(own.iterdir())) if own.is_dir() else 0
        _kill_when(process, lambda: own.is_dir() and len(list(own.iterdir())) > before, rng.uniform(0.0, 2.0))
        held = _check_whole(target)  # opens, every document whole
        assert held <= everything
    result = kb("import", str(exported), env=env_b)
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    assert _check_whole(target) == everything
    again = tmp_path / "again.jsonl"
    assert kb("export", "-o", str(again), env=env_b).returncode == 0
    assert again.read_bytes() == exported.read_bytes()


def test_a_backup_killed_anywhere_harms_nothing_and_a_whole_one_restores(tmp_path, embedder):
    settings = Settings.from_env(environ={}, corpus_dir=tmp_path / "corpus", index_dir=tmp_path / "index")
    everything = _corpus_with_api_documents(tmp_path, settings, embedder, count=60)
    env = {"KB_CORPUS_DIR": str(settings.corpus_dir), "KB_INDEX_DIR": str(settings.index_dir)}
    rng = random.Random(3)
    for round_ in range(3):
        target = tmp_path / f"partial-{round_}"
        process = subprocess.Popen([sys.executable, "-m", "kb.cli", "backup", str(target)],
                                   env={**os.environ, **env}, stderr=subprocess.DEVNULL)
        _kill_when(process, lambda: target.exists(), rng.uniform(0.0, 0.3))
        assert _check_whole(settings) == everything
        if not (target / "backup.json").exists():
            refused = kb("restore", str(target), env={"KB_CORPUS_DIR": str(tmp_path / "r"),
                                                      "KB_INDEX_DIR": str(tmp_path / "ri")})
            assert refused.returncode == 1 and "not a complete kb backup" in refused.stderr.decode()
    (settings.corpus_dir / ".kb-access").write_text("private: staff\n")  # who reads what is the record's too
    key = kb("keys", "add", "alice", "--groups", "staff", env=env).stdout.decode().strip().splitlines()[-1]
    assert kb("build", env=env).returncode == 0
    whole = tmp_path / "whole"
    assert kb("backup", str(whole), env=env).returncode == 0
    assert key not in (whole / "keys.jsonl").read_text(), "hashes, never keys"
    restored = {"KB_CORPUS_DIR": str(tmp_path / "restored" / "corpus"), "KB_INDEX_DIR": str(tmp_path / "restored" / "index")}
    result = kb("restore", str(whole), env=restored)
    assert result.returncode == 0, result.stderr.decode()
    built = json.loads(kb("build", "--json", env=restored).stdout.decode().strip().splitlines()[-1])
    assert built["passages_embedded"] == 0, "a restore embeds nothing"
    assert (tmp_path / "restored" / "corpus" / ".kb-access").read_text() == "private: staff\n"
    assert SqliteKeyTable(tmp_path / "restored" / "corpus" / ".kb" / "keys.sqlite").caller(key).groups == ("staff",)
    one, two = tmp_path / "one.jsonl", tmp_path / "two.jsonl"
    assert kb("export", "-o", str(one), env=env).returncode == 0
    assert kb("export", "-o", str(two), env=restored).returncode == 0
    assert one.read_bytes() == two.read_bytes()
    for question in ("airship mail", "boundary layer on a flat plate"):
        assert found(restored, question) == found(env, question)


def test_a_backup_taken_during_a_stream_of_writes_holds_everything_acknowledged_before_it(tmp_path, embedder):
    settings = Settings.from_env(environ={}, corpus_dir=tmp_path / "corpus", index_dir=tmp_path / "index")
    shutil.copytree(SEED_CORPUS, settings.corpus_dir)
    build_index(settings, embedder=embedder)
    server = start_server(settings.index_dir, tmp_path / "serve.log", {"KB_API_KEY": KEY, "KB_WRITE_RATE_LIMIT": "off"},
                          corpus_dir=settings.corpus_dir)
    acknowledged: list[str] = []
    stop = threading.Event()

    def write() -> None:
        n = 0
        while not stop.is_set():
            note = {"id": f"stream-{n}", "text": f"Stream note {n}: a balloon crossed the steppe."}
            if call(server.base, "POST", "/api/documents", note, key=KEY)[0] == 201:
                acknowledged.append(note["id"])
            n += 1

    writer = threading.Thread(target=write)
    writer.start()
    try:
        while len(acknowledged) < 5:
            time.sleep(0.05)
        before = set(acknowledged)
        env = {"KB_CORPUS_DIR": str(settings.corpus_dir), "KB_INDEX_DIR": str(settings.index_dir)}
        result = kb("backup", str(tmp_path / "backup"), env=env)
        assert result.returncode == 0, result.stderr.decode()
    finally:
        stop.set()
        writer.join()
        server.stop()
    restored = Settings.from_env(environ={}, corpus_dir=tmp_path / "r" / "corpus", index_dir=tmp_path / "r" / "index")
    result = kb("restore", str(tmp_path / "backup"), env={"KB_CORPUS_DIR": str(restored.corpus_dir),
                                                         "KB_INDEX_DIR": str(restored.index_dir)})
    assert result.returncode == 0, result.stderr.decode()
    build_index(restored, embedder=embedder)  # what the restored server's start does: the record wins
    held = _check_whole(restored)
    assert before <= held, sorted(before - held)[:5]
    assert len(acknowledged) > len(before), "writes went on during the backup"
