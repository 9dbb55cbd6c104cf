"""Micro-batching: queries that arrive while the model is busy are embedded together.

There is no batching thread and no timer. A caller adds its text to the queue; whoever
finds the model free takes everything queued (up to ``max_batch``), embeds it in one call
and hands each caller its vector. A lone query therefore waits for nothing, and under load
each forward pass serves every query that arrived during the previous one, which costs far
less per query than one pass each (see benchmarks/serving.py).
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Sequence


class _Slot:
    __slots__ = ("text", "vector", "error", "done")

    def __init__(self, text: Any) -> None:
        self.text = text  # the item (a query's text; for grouped writes, a list of documents)
        self.vector: Any = None  # its result
        self.error: BaseException | None = None
        self.done = False


class MicroBatcher:
    """Calls ``encode_many`` with every item waiting at the moment it is free; each caller gets its own result.

    Queries use it for their vectors; document writes use it too (kb/ingestion/writes.py), to store every
    write waiting at that moment in one transaction.
    """

    def __init__(self, encode_many: Callable[[Sequence[Any]], Sequence[Any]], max_batch: int = 32) -> None:
        self._encode_many = encode_many
        self.max_batch = max_batch
        self._cond = threading.Condition()
        self._queue: list[_Slot] = []
        self._busy = False
        self._worker = False  # a thread is inside run_forever(): callers only queue and wait
        self._stop = False
        self.batches = 0  # forward passes made, and texts embedded by them (for benchmarks)
        self.texts = 0

    @property
    def waiting(self) -> int:
        """Items queued and not yet taken into a batch."""
        return len(self._queue)

    def encode(self, text: Any) -> Any:
        slot = _Slot(text)
        with self._cond:
            self._queue.append(slot)
            self._cond.notify_all()
            while not slot.done:
                if self._busy or self._worker:
                    self._cond.wait()
                    continue
                batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
                self._busy = True
                self._cond.release()
                try:
                    self._run(batch)
                finally:
                    self._cond.acquire()
                    self._busy = False
                    self._cond.notify_all()
        if slot.error is not None:
            raise slot.error
        return slot.vector

    def run_forever(self, should_stop: Callable[[], bool] = lambda: False, poll: float = 0.5) -> None:
        """Embed every queued text on this thread until ``should_stop()`` says so.

        `kb serve` gives the model its main thread this way (the request threads only queue
        and wait): on this machine a single question embedded 9% to 26% more slowly on
        any other thread (benchmarks/experiments/thread_speed.py).
        """
        with self._cond:
            self._worker = True
        try:
            while not should_stop():
                with self._cond:
                    while not self._queue and not should_stop():
                        self._cond.wait(poll)
                    if not self._queue:
                        continue
                    batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
                    self._busy = True
                try:
                    self._run(batch)
                finally:
                    with self._cond:
                        self._busy = False
                        self._cond.notify_all()
        finally:
            with self._cond:
                self._worker = False
                self._cond.notify_all()

    def _run(self, batch: list[_Slot]) -> None:
        try:
            vectors = self._encode_many([slot.text for slot in batch])
        except BaseException as exc:  # every waiting caller gets the error, not a hang
            for slot in batch:
                slot.error, slot.done = exc, True
            return
        self.batches += 1
        self.texts += len(batch)
        for slot, vector in zip(batch, vectors):
            slot.vector, slot.done = vector, True
