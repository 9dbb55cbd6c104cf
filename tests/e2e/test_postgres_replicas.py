"""kb on PostgreSQL with a hot standby: two real `kb serve` processes, a real primary and a real standby.

One server writes to the primary; the other reads from the standby (KB_PG_READ_DSN). The tests
measure how long an acknowledged write takes to become searchable on the reading server, then
stop the primary while both run: the standby-backed server keeps answering, writes get 503 saying
the primary is unreachable, and once the primary is back nothing acknowledged is missing.
"""

import shutil
import statistics
import tempfile
import time
import urllib.parse
from pathlib import Path

import pytest

from kb.ingestion.sync import build_index
from kb.settings import Settings
from kb.stores.postgres.cluster import LocalCluster, wait_for
from tests.conftest import SEED_CORPUS, free_port
from tests.e2e.conftest import call, start_server

KEY = "replica-key"


@pytest.fixture(scope="module")
def replicated(embedder, tmp_path_factory):
    folder = Path(tempfile.mkdtemp(prefix="kb-replica-"))
    folder.chmod(0o755)
    primary = LocalCluster(folder / "primary", free_port()).ensure_running()
    wait_for(primary.dsn())
    settings = Settings.from_env(environ={}, store="postgres", pg_dsn=primary.dsn(), corpus_dir=SEED_CORPUS,
                                 index_dir=tmp_path_factory.mktemp("pg-index"))
    build_index(settings, embedder=embedder)  # creates the schema and loads the seed corpus
    standby = primary.standby(folder / "standby", free_port())
    wait_for(standby.dsn())
    logs = tmp_path_factory.mktemp("replica-logs")
    base_env = {"KB_STORE": "postgres", "KB_PG_DSN": primary.dsn()}
    writer = start_server(settings.index_dir, logs / "writer.log", {**base_env, "KB_API_KEY": KEY,
                                                                   "KB_WRITE_RATE_LIMIT": "off"})
    reader = start_server(settings.index_dir, logs / "reader.log", {**base_env, "KB_PG_READ_DSN": standby.dsn()})
    yield primary, standby, writer, reader
    for server in (writer, reader):
        server.stop()
    for cluster in (standby, primary):
        cluster.stop("immediate")
    shutil.rmtree(folder, ignore_errors=True)


def search(server, query: str, k: int = 3):
    return call(server.base, "GET", "/api/search?" + urllib.parse.urlencode({"q": query, "k": k}))


def wait_searchable(server, doc_id: str, query: str, deadline_s: float = 60) -> float:
    began = time.monotonic()
    while time.monotonic() - began < deadline_s:
        status, body = search(server, query)
        if status == 200 and any(r["doc_id"] == doc_id for r in body["results"]):
            return time.monotonic() - began
        time.sleep(0.01)
    raise AssertionError(f"{doc_id} was not searchable on {server.base} within {deadline_s} s")


def test_a_write_on_the_primary_is_searchable_on_the_standby_server(replicated):
    _, _, writer, reader = replicated
    lags = []
    for n in range(8):
        doc_id, phrase = f"lag-{n}", f"heliograph signal number {n} flashed from the ridge"
        status, body = call(writer.base, "POST", "/api/documents", {"id": doc_id, "text": f"A {phrase}."}, key=KEY)
        assert status == 201, body
        lags.append(wait_searchable(reader, doc_id, phrase))
    status, body = call(reader.base, "GET", "/api/health")
    assert status == 200 and body["documents"] >= 9
    print(f"\nwrite acknowledged on the primary's server -> searchable on the standby's server: "
          f"median {statistics.median(lags) * 1000:.0f} ms, max {max(lags) * 1000:.0f} ms over {len(lags)} writes")


def test_with_the_primary_down_the_standby_answers_and_writes_say_why(replicated):
    primary, _, writer, reader = replicated
    acknowledged = []
    for n in range(3):
        status, _ = call(writer.base, "POST", "/api/documents", {"id": f"before-{n}", "text": f"Kite {n} flew high."},
                         key=KEY)
        assert status == 201
        acknowledged.append(f"before-{n}")
    wait_searchable(reader, "before-2", "Kite 2 flew high")
    primary.stop("fast")
    try:
        for question in ("What did Runde say about investment?", "Kite 1 flew high"):
            status, body = search(reader, question)
            assert status == 200 and body["results"], "the standby-backed server keeps answering"
        status, body = call(writer.base, "POST", "/api/documents", {"id": "during", "text": "Lost in the outage."},
                            key=KEY)
        assert status == 503, body
        assert body["error"]["code"] == "store_unavailable"
        assert "primary" in body["error"]["message"] and "unreachable" in body["error"]["message"]
        status, body = search(writer, "Kite 1 flew high")
        assert status == 503 and body["error"]["code"] == "store_unavailable", "never a 500"
        assert call(writer.base, "GET", "/api/health")[0] == 503
    finally:
        primary.start()
    wait_for(primary.dsn())
    deadline = time.monotonic() + 60
    while True:  # the pool reconnects by itself
        status, body = call(writer.base, "POST", "/api/documents", {"id": "after", "text": "The kite came down."},
                            key=KEY)
        if status == 201 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert status == 201, body
    acknowledged.append("after")
    wait_searchable(reader, "after", "The kite came down")
    for server in (writer, reader):
        for doc_id in acknowledged:
            assert call(server.base, "GET", f"/api/documents/{doc_id}")[0] == 200, (server.base, doc_id)
        assert call(server.base, "GET", "/api/documents/during")[0] == 404
    for name, server in (("writer", writer), ("reader", reader)):
        assert "Traceback" not in server.output(), (name, server.output()[-3000:])
