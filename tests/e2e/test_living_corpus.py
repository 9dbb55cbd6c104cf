"""A living corpus against real processes: searches during writes, and `kb build` killed midway."""

import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

from kb.evaluation.datasets import load_cranfield
from kb.evaluation.questions import load_questions
from kb.ingestion.sync import build_index
from kb.settings import Settings
from kb.stores.faiss.store import open_current
from tests.conftest import REPO, SEED_CORPUS, SEED_QUESTIONS, all_documents, all_passages
from tests.e2e.conftest import call, start_server

KEY = "concurrency-key"


def request(base, method, path, body=None):
    return call(base, method, path, body, key=KEY, timeout=60)


def test_searches_never_fail_while_documents_come_and_go(tmp_path, embedder):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    seed_text = (SEED_CORPUS / "astana-times-runde-interview.txt").read_text()
    (corpus / "seed.txt").write_text(seed_text)
    settings = Settings.from_env(environ={}, corpus_dir=corpus, index_dir=tmp_path / "index")
    build_index(settings, embedder=embedder)
    # A write that was stored but never indexed (as if the server died in between): the next start indexes it.
    pending = {"id": "pending", "title": "Pending", "text": "A balloon called Pending drifted over Astana."}
    (corpus / "api").mkdir()
    (corpus / "api" / "pending.jsonl").write_text(json.dumps(pending) + "\n")
    server = start_server(settings.index_dir, tmp_path / "server.log", {"KB_API_KEY": KEY}, corpus_dir=corpus)
    status, body = request(server.base, "GET", "/api/documents/pending")
    assert status == 200 and body["text"] == pending["text"]
    notes = {f"note-{n}": f"Note {n}: the Graf Zeppelin number {n} crossed the Atlantic with mail." for n in range(6)}
    known = {"seed.txt": seed_text, "pending": pending["text"], **notes}
    failures, answers, stop = [], [], threading.Event()
    # Distinct questions every time: a repeated one is answered from the cache and could not wait on a write.
    questions = [q.q for q in load_questions(SEED_QUESTIONS)] + ["Which airship crossed the Atlantic?"]
    asked = itertools.count()

    def searcher():
        while not stop.is_set():
            n = next(asked)
            query = urllib.parse.urlencode({"q": f"{questions[n % len(questions)]} ({n})", "k": 5})
            try:
                with urllib.request.urlopen(f"{server.base}/api/search?{query}", timeout=60) as response:
                    body = json.loads(response.read())
            except Exception as exc:  # any failure at all is what this test looks for
                failures.append(repr(exc))
                continue
            answers.append(body)
            for result in body["results"]:
                text = known.get(result["doc_id"])
                if text is None or text[result["start"] : result["end"]] != result["text"]:
                    failures.append(f"inconsistent result {result['doc_id']} {result['start']}:{result['end']}")
            scores = [r["score"] for r in body["results"]]
            if scores != sorted(scores, reverse=True) or [r["rank"] for r in body["results"]] != list(
                range(1, len(scores) + 1)
            ):
                failures.append("results out of order")
            time.sleep(0.1)  # four people searching, not four loops: the writes' worker runs at lower priority

    threads = [threading.Thread(target=searcher) for _ in range(4)]
    try:
        for thread in threads:
            thread.start()
        for doc_id, text in notes.items():
            status, body = request(server.base, "POST", "/api/documents", {"id": doc_id, "title": doc_id, "text": text})
            assert status == 201, body
        for doc_id in list(notes)[:3]:
            status, body = request(server.base, "DELETE", f"/api/documents/{doc_id}")
            assert status == 200, body
        time.sleep(0.5)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
        server.stop()
    assert not failures, failures[:5]
    assert len(answers) >= 20, "the searchers should have run throughout the writes"
    assert len({a["query"] for a in answers}) == len(answers), "every search was a new question"
    final = {r["doc_id"] for r in answers[-1]["results"]}
    assert not final & {"note-0", "note-1", "note-2"}


def _write_corpus(folder, documents):
    folder.mkdir(parents=True, exist_ok=True)
    for document in documents:
        (folder / f"cran-{document.id}.txt").write_text(f"{document.title}\n{document.text}")


def _check_whole(settings):
    """The store loads, and every document in it has exactly its passages, each an exact span."""
    store = open_current(settings)
    documents = all_documents(store)
    passages = all_passages(store)
    per_document = {}
    for passage in passages:
        per_document[passage.doc_id] = per_document.get(passage.doc_id, 0) + 1
        assert documents[passage.doc_id].text[passage.start : passage.end] == passage.text
    assert per_document == {doc_id: d.passages for doc_id, d in documents.items() if d.passages}
    hits = store.snapshot().candidates(store.memory.vectors.vectors([0])[0], ["wing"], 10, True, True)
    assert len(hits.keys) > 0
    store.close()
    return set(documents)


def test_a_killed_build_keeps_what_it_committed_and_the_next_build_finishes(tmp_path, embedder):
    """kb build writes in transactions of a few dozen passages (KB_BATCH_SIZE=2 here): killed at any moment,
    the store loads, holds every old document and some new ones, each whole; the next build completes."""
    documents = load_cranfield(REPO / "benchmarks" / "data" / "cranfield").documents
    corpus = tmp_path / "corpus"
    _write_corpus(corpus, documents[:40])
    settings = Settings.from_env(environ={}, corpus_dir=corpus, index_dir=tmp_path / "index", batch_size=2)
    build_index(settings, embedder=embedder)
    old_ids = _check_whole(settings)
    _write_corpus(corpus, documents[40:120])
    new_ids = old_ids | {f"cran-{d.id}.txt" for d in documents[40:120]}
    env = {**os.environ, "KB_CORPUS_DIR": str(corpus), "KB_INDEX_DIR": str(settings.index_dir), "HF_HUB_OFFLINE": "1",
           "KB_BATCH_SIZE": "2"}

    def run_and_kill(delay):
        """Killed ``delay`` seconds after it starts embedding (None: at start-up, before it embeds)."""
        process = subprocess.Popen([sys.executable, "-m", "kb.cli", "build", "-v"], env=env,
                                   stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
        if delay is None:
            time.sleep(1.0)
        else:
            seen = b""
            while b"embedding" not in seen and process.poll() is None:
                seen += process.stderr.read1(4096)
            time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        process.wait()
        process.stderr.close()

    counts = []
    for delay in (None, 3.0, 4.5):  # a transaction of 32 passages takes about 2 s to embed here
        run_and_kill(delay)
        ids = _check_whole(settings)  # must always load, every document whole
        assert old_ids <= ids <= new_ids, "the old documents stay; only corpus documents arrive"
        counts.append(len(ids))
    result = subprocess.run([sys.executable, "-m", "kb.cli", "build", "--json"], env=env, capture_output=True,
                            text=True, timeout=900)
    assert result.returncode == 0, result.stderr
    assert _check_whole(settings) == new_ids
    print(f"\ndocuments after each kill: {counts} (of {len(new_ids)})")
