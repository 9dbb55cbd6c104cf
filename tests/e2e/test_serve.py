"""`kb serve` as a subprocess on a loopback port, queried over real HTTP."""

import json
import urllib.error
import urllib.parse
import urllib.request

from kb.evaluation.questions import first_hit_rank, load_questions
from tests.conftest import SEED_QUESTIONS

QUESTION = load_questions(SEED_QUESTIONS)[0]


def test_health_and_search_over_http(server):
    status, health = server.get_json("/api/health")
    assert status == 200 and health["status"] == "ok" and health["documents"] == 1
    status, body = server.get_json("/api/search?" + urllib.parse.urlencode({"q": QUESTION.q, "k": 3}))
    assert status == 200 and len(body["results"]) == 3
    assert QUESTION.evidence in body["results"][0]["text"]


def test_post_over_http_and_errors_are_json(server):
    request = urllib.request.Request(
        server.base + "/api/search", data=json.dumps({"q": QUESTION.q, "k": 2}).encode(),
        headers={"Content-Type": "application/json"}, method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        body = json.loads(response.read())
    assert first_hit_rank_from_json(body) == 1
    try:
        urllib.request.urlopen(server.base + "/api/search?q=", timeout=30)
        raise AssertionError("a blank query should be refused")
    except urllib.error.HTTPError as exc:
        assert exc.code == 400
        assert json.loads(exc.read())["error"]["code"] == "blank_query"


def first_hit_rank_from_json(body):
    from kb.search.hit import Hit

    hits = [Hit(**{k: r[k] for k in ("rank", "score", "passage_id", "doc_id", "title", "source", "text", "start", "end")},
                ordinal=0, doc_passages=0, doc_length=0) for r in body["results"]]
    return first_hit_rank(hits, QUESTION.evidence)


def test_a_megabyte_query_over_real_http_gets_the_json_error(server):
    try:
        urllib.request.urlopen(server.base + "/api/search?q=" + "a" * (1024 * 1024), timeout=60)
        raise AssertionError("a 1 MB query should be refused")
    except urllib.error.HTTPError as exc:
        assert exc.code == 400
        assert json.loads(exc.read())["error"]["code"] == "query_too_long"


def test_kb_serve_listens_before_it_brings_the_index_in_line(tmp_path):
    """503 "loading" is answered while the first build is still running (no index exists yet)."""
    import os
    import shutil
    import subprocess
    import sys
    import time

    from tests.conftest import SEED_CORPUS, free_port

    shutil.copytree(SEED_CORPUS, tmp_path / "corpus")
    port = free_port()
    env = {**os.environ, "KB_INDEX_DIR": str(tmp_path / "index"), "KB_CORPUS_DIR": str(tmp_path / "corpus"),
           "KB_PORT": str(port), "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen([sys.executable, "-m", "kb.cli", "serve"], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    seen = []
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and (not seen or seen[-1][0] != 200):
            built = (tmp_path / "index" / "current").exists()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=10) as response:
                    seen.append((response.status, json.loads(response.read())["status"], built))
            except urllib.error.HTTPError as exc:
                seen.append((exc.code, json.loads(exc.read())["status"], built))
            except OSError:
                pass
            time.sleep(0.05)
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert seen and seen[-1][:2] == (200, "ok"), seen[-5:]
    assert (503, "loading", False) in seen, "it should answer before the index exists"


def test_kb_serve_with_every_documented_flag_logs_one_json_object_a_line(server):
    """The session's server runs with --host --port --threads --log-json -v --index-dir --model (conftest)."""
    server.get_json("/api/health")
    lines = [line for line in server.output().splitlines() if line.startswith("{")]
    requests = [json.loads(line) for line in lines if '"kb.requests"' in line]
    assert requests and all({"method", "path", "status", "latency_ms"} <= set(r) for r in requests)
    assert not any("q=" in line for line in lines), "query strings are never logged"
