"""A server's writes are chunked and embedded in a worker process of lower CPU priority.

Queries and writes then share neither the model's threads nor Python's interpreter lock: the
operating system runs a query's encoding first whenever both want the cores (the worker runs
at ``nice`` +10), and a 5 MB upload's chunking no longer holds the lock the request threads
need. The worker is a plain child process (``python -m kb.embedding.worker``) with its own copy of
the model, fed pickled documents over a pipe; it exits when the pipe closes, and it watches its
parent, so it never outlives the server, however the server ends, even in the middle of a long
write. One worker serves a whole process.
"""

from __future__ import annotations

import logging
import os
import pickle
import signal
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any, Sequence

from kb.documents.document import Document
from kb.embedding.embedder import batch_engine
from kb.errors import WorkerFailed
from kb.settings import Settings
from kb.stores.base import PreparedDocument

log = logging.getLogger(__name__)

NICENESS = 10  # how much lower the worker's priority is than the server's
SMALL_WRITE = 20_000  # characters: a write this small is embedded on one thread (``threads_for``)
_HEADER = struct.Struct("!Q")


def send(stream: IO[bytes], message: Any) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def receive(stream: IO[bytes]) -> Any:
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        raise EOFError("the other end closed the pipe")
    size = _HEADER.unpack(header)[0]
    data = stream.read(size)
    if len(data) < size:
        raise EOFError("the other end closed the pipe mid-message")
    return pickle.loads(data)


class WriteWorker:
    def __init__(self, *embedder: str) -> None:
        self.embedder = embedder  # get_embedder's arguments, as strings on the worker's command line
        self._lock = threading.Lock()  # one write at a time (the library already groups them)
        self._process = self._start()
        self._ready = False

    def _start(self) -> subprocess.Popen:
        self._ready = False
        return subprocess.Popen([sys.executable, "-m", "kb.embedding.worker", *self.embedder],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, env={**os.environ, "HF_HUB_OFFLINE": "1"})

    def _call(self, message: Any) -> Any:
        if not self._ready:  # the worker says once that its model loaded (or why it could not)
            kind, value = receive(self._process.stdout)
            if kind == "error":
                raise value
            self._ready = True
        send(self._process.stdin, message)
        kind, value = receive(self._process.stdout)
        if kind == "error":
            raise value
        return value

    def prepare(self, documents: Sequence[Document], settings: Settings) -> list[PreparedDocument]:
        """Chunked and embedded in the worker; a worker that died is restarted and the write tried once more."""
        with self._lock:
            for _ in (1, 2):
                if self._process.poll() is not None:
                    self._replace()
                try:
                    return self._call(("prepare", list(documents), settings))
                except (EOFError, OSError) as exc:
                    log.warning("the embedding worker stopped (%s); starting a new one", exc)
                    self._replace()
            raise WorkerFailed("the embedding worker stopped twice while embedding this write")

    def _replace(self) -> None:
        self._end(self._process)
        self._process = self._start()

    @staticmethod
    def _end(process: subprocess.Popen, timeout: float = 0) -> None:
        for stream in (process.stdin, process.stdout):
            try:
                stream.close()  # a live worker exits at the end of its input
            except OSError:
                pass
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def close(self) -> None:
        with self._lock:
            self._end(self._process, timeout=30)


_workers: dict[tuple[str, str], WriteWorker] = {}
_workers_lock = threading.Lock()


def get_write_worker(settings: Settings) -> WriteWorker:
    """The process-wide worker for a model (started on first use, shared by every app in the process).

    It only embeds batches of passages, so under KB_ENCODER=auto it runs torch alone (see kb/embedding/embedder.py).
    """
    with _workers_lock:
        encoder = batch_engine(settings.encoder)
        key = (settings.model, settings.precision, encoder, settings.device, str(settings.encoder_folder.resolve()))
        if key not in _workers:
            import atexit

            _workers[key] = WriteWorker(*key)
            atexit.register(_workers[key].close)  # the worker reads the end of its input and exits
        return _workers[key]


def main() -> None:
    """The worker: load the model, then answer ("prepare", documents, settings) until the input ends."""
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything a library prints goes to stderr, never into the reply stream
    requests = sys.stdin.buffer
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C in a terminal reaches the whole group: the server decides
    os.nice(NICENESS)
    threading.Thread(target=_follow, args=(os.getppid(),), name="kb-follow-server", daemon=True).start()
    model, precision, encoder, device, cache = sys.argv[1:6]
    try:
        from kb.embedding.embedder import get_embedder
        from kb.embedding.prepare import prepare

        embedder = get_embedder(model, precision, encoder, device, Path(cache))
    except Exception as exc:
        send(replies, ("error", exc))
        return
    send(replies, ("ready", None))
    while True:
        try:
            _, documents, settings = receive(requests)
        except EOFError:
            return
        try:
            _answer(replies, embedder, prepare, documents, settings)
        except BrokenPipeError:  # the server is gone (killed in the middle of a write): no one to answer
            os._exit(0)  # at once: a buffered reply flushed at exit would fail again, with a message


def _answer(replies: IO[bytes], embedder: Any, prepare: Any, documents: Sequence[Document], settings: Settings) -> None:
    try:
        if not embedder.batches_on_onnx:
            import torch

            torch.set_num_threads(threads_for(documents))
        send(replies, ("done", prepare(documents, embedder, settings)))
    except BrokenPipeError:
        raise
    except Exception as exc:  # a bug or a bad document: the server's request gets it, the worker goes on
        try:
            send(replies, ("error", exc))
        except BrokenPipeError:
            raise
        except Exception:  # an exception that does not pickle
            send(replies, ("error", RuntimeError(f"{type(exc).__name__}: {exc}")))


def threads_for(documents: Sequence[Document]) -> int:
    """torch's threads for embedding a write: one for a small write, every core for a large one.

    torch's threads (OpenMP) meet at a barrier after each operation, so a pass is as slow as its slowest
    thread. At ``nice`` +10, the thread that shares a core with a busy server waits most, and with one client
    searching back to back a one-passage write took a p50 of 127 ms on two threads against 32 ms on one
    (benchmarks/README.md, issue 24). A small write loses little on one thread when the machine is idle;
    a large upload keeps every core, for its throughput."""
    return 1 if sum(len(d.text) for d in documents) <= SMALL_WRITE else (os.cpu_count() or 1)


def _follow(server: int) -> None:
    """Exit as soon as the server is gone, even in the middle of a long write (its pipe closes only after)."""
    while os.getppid() == server:
        time.sleep(0.5)
    os._exit(0)


if __name__ == "__main__":
    main()
