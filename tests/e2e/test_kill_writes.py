"""SIGKILL a server in the middle of API writes and checkpoints: nothing acknowledged is lost.

KB_CHECKPOINT_EVERY=2 makes the server save its in-memory indexes after every second write, so
kills land in writes, in checkpoints and between them (three kills). After each kill a new server must start,
hold every acknowledged document (each one whole) and take more writes. The worker process that embeds
the writes must end with its server.
"""

import http.client
import os
import random
import shutil
import threading
import time

from kb.settings import Settings
from tests.conftest import SEED_CORPUS
from tests.e2e.conftest import call, start_server
from tests.e2e.test_living_corpus import _check_whole

KEY = "kill-key"


def test_no_acknowledged_write_is_lost_when_the_server_is_killed(tmp_path):
    shutil.copytree(SEED_CORPUS, tmp_path / "corpus")
    settings = Settings.from_env(environ={}, corpus_dir=tmp_path / "corpus", index_dir=tmp_path / "index")
    env = {"KB_API_KEY": KEY, "KB_CHECKPOINT_EVERY": "2", "KB_WRITE_RATE_LIMIT": "off"}
    acknowledged: list[str] = []
    rng = random.Random(7)
    for round_ in range(3):
        server = start_server(settings.index_dir, tmp_path / f"serve-{round_}.log", env, corpus_dir=settings.corpus_dir)
        for doc_id in acknowledged:  # everything acknowledged before the last kill is there
            status, body = call(server.base, "GET", f"/api/documents/{doc_id}", key=KEY)
            assert status == 200, (round_, doc_id, body)
        stop = threading.Event()

        def write():
            n = 0
            while not stop.is_set():
                doc_id = f"note-{round_}-{n}"
                text = " ".join(f"Note {n} of round {round_}: the airship number {n} carried mail." for _ in range(3))
                try:
                    status, _ = call(server.base, "POST", "/api/documents", {"id": doc_id, "text": text}, key=KEY,
                                     timeout=30)
                except (OSError, http.client.HTTPException):  # e.g. IncompleteRead: headers came, the body never did
                    return  # the server died mid-request: that write was never acknowledged
                if status == 201:
                    acknowledged.append(doc_id)
                n += 1

        writer = threading.Thread(target=write, daemon=True)  # a failed assertion must not leave it writing
        writer.start()
        deadline = time.monotonic() + 120
        while not any(d.startswith(f"note-{round_}-") for d in acknowledged) and time.monotonic() < deadline:
            time.sleep(0.05)  # the first write waits for the embedding worker's model to load
        time.sleep(rng.uniform(1.0, 3.0))
        workers = _children(server.process.pid)
        assert workers, "writes are embedded by a worker process of the server"
        server.process.kill()  # SIGKILL, wherever it is
        server.process.wait()
        stop.set()
        writer.join(timeout=60)
        server.stop()
        assert "Traceback" not in server.output(), server.output()[-3000:]
        _wait_gone(workers)
    held = _check_whole(settings)  # loads, every document whole
    assert set(acknowledged) <= held, sorted(set(acknowledged) - held)[:5]
    assert len(acknowledged) >= 8, "the writers should have written throughout"
    print(f"\n{len(acknowledged)} acknowledged writes across 3 kills, all kept")


def _children(pid: int) -> list[int]:
    found = []
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/children") as handle:
                found += [int(child) for child in handle.read().split()]
        except FileNotFoundError:  # a thread that ended meanwhile
            pass
    return found


def _wait_gone(pids: list[int]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        alive = [pid for pid in pids if os.path.exists(f"/proc/{pid}") and "Z" not in _state(pid)]
        if not alive:
            return
        time.sleep(0.1)
    raise AssertionError(f"the embedding worker {alive} outlived its killed server")


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"
