"""kb.client.Client against a real `kb serve`: every method, the error codes, the wait while it loads, the contract."""

from __future__ import annotations

import subprocess
import sys

import pytest

from kb.client import Client, ClientError
from kb.schemas import SearchAnswer
from tests.conftest import free_port
from tests.e2e.conftest import server_on_a_copy

KEY = "client-key"
QUESTION = "Has an American president ever visited Kazakhstan?"


@pytest.fixture(scope="module")
def writable(tmp_path_factory):
    """A server on its own copy of the seed corpus, with a write key; started without waiting for it to load."""
    server = server_on_a_copy(tmp_path_factory, "client", {"KB_API_KEY": KEY, "KB_WRITE_RATE_LIMIT": "off"},
                              ready=False)
    yield server
    server.stop()


def test_a_client_waits_while_the_server_loads_then_searches_it(writable):
    answer = Client(writable.base, wait=180).search(QUESTION, k=3)  # the first call may meet 503 loading
    assert isinstance(answer, SearchAnswer) and answer.confident
    best = answer.results[0]
    assert best.doc_id == "astana-times-runde-interview.txt" and best.highlights
    assert best.text[best.highlights[0].start - best.start:best.highlights[0].end - best.start]
    assert Client(writable.base).health().status == "ok"


def test_an_off_topic_question_is_not_confident(writable):
    answer = Client(writable.base, wait=180).search("How do I reset my router password?")
    assert answer.confident is False and answer.results  # the nearest passages, marked as such


def test_documents_are_listed_read_written_and_deleted_with_the_key(writable):
    client, writer = Client(writable.base, wait=180), Client(writable.base, key=KEY, wait=180)
    with pytest.raises(ClientError) as refused:
        client.add("The zeppelin budget for 2027 was approved.", id="zeppelin")
    assert refused.value.status == 401 and refused.value.code and refused.value.message
    added = writer.add("The zeppelin budget for 2027 was approved.", id="zeppelin", title="Zeppelins",
                       metadata={"topic": "aviation"})
    assert added.document.id == "zeppelin" and added.index.added == 1
    assert client.search("zeppelin budget", k=1, metadata={"topic": "aviation"}).results[0].doc_id == "zeppelin"
    assert client.get("zeppelin").text == "The zeppelin budget for 2027 was approved."
    listed = client.list(per_page=100)
    assert {d.id for d in listed.documents} >= {"zeppelin", "astana-times-runde-interview.txt"}
    assert writer.delete("zeppelin").deleted == "zeppelin"
    with pytest.raises(ClientError) as gone:
        client.get("zeppelin")
    assert (gone.value.status, gone.value.code) == (404, "not_found")


def test_each_refusal_raises_with_the_servers_code(writable):
    client = Client(writable.base, wait=180)
    with pytest.raises(ClientError) as bad:
        client.search(QUESTION, k=0)
    assert (bad.value.status, bad.value.code) == (400, "k_out_of_range")
    with pytest.raises(ClientError) as unknown_mode:
        client.search(QUESTION, mode="psychic")
    assert unknown_mode.value.status == 400 and "mode" in unknown_mode.value.message
    with pytest.raises(ClientError) as nobody:
        Client(f"http://127.0.0.1:{free_port()}", wait=0).health()
    assert nobody.value.code == "unreachable" and "unreachable" in nobody.value.message


def test_every_client_call_is_an_operation_of_the_openapi_contract(writable):
    import json
    import urllib.request

    with urllib.request.urlopen(writable.base + "/openapi.json", timeout=30) as response:
        paths = json.loads(response.read())["paths"]
    used = {("post", "/api/search"), ("get", "/api/health"), ("get", "/api/documents"), ("post", "/api/documents"),
            ("get", "/api/documents/{doc_id}"), ("delete", "/api/documents/{doc_id}")}
    for method, path in used:
        assert method in paths.get(path, {}), (method, path)
    schema = paths["/api/search"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/SearchAnswer"}  # the model the client parses answers with


def test_kb_search_url_asks_a_running_server(writable):
    Client(writable.base, wait=180).health()
    done = subprocess.run([sys.executable, "-m", "kb.cli", "search", QUESTION, "-k", "1", "--url", writable.base],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("1. [") and "Trump" in done.stdout
    failed = subprocess.run([sys.executable, "-m", "kb.cli", "search", QUESTION, "--url",
                             f"http://127.0.0.1:{free_port()}"], capture_output=True, text=True, timeout=120)
    assert failed.returncode == 1 and failed.stderr.count("\n") == 1 and "unreachable" in failed.stderr
