"""The worker process that embeds a server's writes: same passages as in the server, lower priority, restarts."""

import os
import signal
import time

import numpy as np
import pytest

from kb.documents.document import Document
from kb.embedding.prepare import prepare
from kb.embedding.worker import NICENESS, WriteWorker
from kb.errors import ModelUnavailable
from kb.settings import Settings

TEXT = ("Boundary layers thicken along a flat plate. Heat transfer rises near the leading edge.\n\n"
        "## Shock waves\n\nA shock wave forms ahead of a blunt body at Mach 3. The pressure behind it is high.")


@pytest.fixture(scope="module")
def worker(tmp_path_factory):
    settings = Settings.from_env(environ={})
    started = WriteWorker(settings.model, settings.precision, "torch", "auto", str(tmp_path_factory.mktemp("encoders")))
    yield started
    started.close()


def test_the_worker_prepares_what_the_server_would_and_runs_at_lower_priority(worker, embedder):
    settings = Settings.from_env(environ={}, chunk_tokens=24, chunk_overlap=4)
    documents = [Document("shock", "Shock notes", "api/shock", TEXT, {"site": "lab"}, ""),
                 Document("short", "A note", "api/short", "One sentence only.", {}, "")]
    here = prepare(documents, embedder, settings)
    there = worker.prepare(documents, settings)
    assert [p.document for p in there] == [p.document for p in here]
    assert len(there[0].passages) > 1  # the chunk settings travelled with the documents
    for mine, theirs in zip(here, there):
        for a, b in zip(mine.passages, theirs.passages, strict=True):
            assert (a.passage_id, a.start, a.end, a.text, a.heading, a.terms) == \
                (b.passage_id, b.start, b.end, b.text, b.heading, b.terms)
            assert theirs.document.text[b.start:b.end] == b.text
            np.testing.assert_allclose(a.vector, b.vector, atol=1e-5)
            np.testing.assert_array_equal(a.sentence_spans, b.sentence_spans)
            np.testing.assert_allclose(a.sentence_vectors.astype(np.float32), b.sentence_vectors.astype(np.float32),
                                       atol=2e-3)
    assert os.getpriority(os.PRIO_PROCESS, worker._process.pid) == os.getpriority(os.PRIO_PROCESS, 0) + NICENESS


def test_a_worker_that_died_is_restarted_and_the_write_goes_through(worker):
    settings = Settings.from_env(environ={})
    first = worker._process.pid
    os.kill(first, signal.SIGKILL)
    worker._process.wait()
    prepared = worker.prepare([Document("again", "Again", "api/again", "Wings stall at high angles of attack.", {}, "")],
                              settings)
    assert prepared[0].passages[0].text == "Wings stall at high angles of attack."
    assert worker._process.pid != first


def test_a_worker_whose_model_cannot_load_says_so_and_exits(tmp_path):
    broken = WriteWorker(str(tmp_path / "no-such-model"), "float32", "torch", "auto", str(tmp_path))
    with pytest.raises(ModelUnavailable, match="no-such-model"):
        broken.prepare([Document("x", "X", "api/x", "Text.", {}, "")], Settings.from_env(environ={}))
    pid = broken._process.pid
    deadline = time.monotonic() + 30
    while broken._process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert broken._process.poll() is not None, f"worker {pid} still runs after failing to load its model"
    broken.close()
