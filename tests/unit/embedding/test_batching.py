"""Micro-batching of concurrent queries: right vector to each caller, fewer forward passes, errors shared."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from kb.embedding.batching import MicroBatcher


def slow_encoder(calls: list[list[str]], delay: float = 0.05):
    def encode_many(texts):
        calls.append(list(texts))
        time.sleep(delay)  # a forward pass long enough for other callers to queue behind it
        return np.array([[float(len(t)), float(sum(map(ord, t)))] for t in texts], dtype=np.float32)
    return encode_many


def run_concurrently(batcher: MicroBatcher, texts: list[str]) -> dict[str, object]:
    results: dict[str, object] = {}
    start = threading.Barrier(len(texts))

    def worker(text: str) -> None:
        start.wait()
        try:
            results[text] = batcher.encode(text)
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            results[text] = exc

    threads = [threading.Thread(target=worker, args=(t,)) for t in texts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert not any(thread.is_alive() for thread in threads), "a caller hung"
    return results


def test_a_lone_query_is_embedded_alone_and_at_once():
    calls: list[list[str]] = []
    batcher = MicroBatcher(slow_encoder(calls, delay=0))
    assert batcher.encode("abc").tolist() == [3.0, float(sum(map(ord, "abc")))]
    assert calls == [["abc"]]


def test_concurrent_queries_share_forward_passes_and_each_gets_its_own_vector():
    calls: list[list[str]] = []
    batcher = MicroBatcher(slow_encoder(calls))
    texts = [f"question {i} " + "x" * i for i in range(12)]
    results = run_concurrently(batcher, texts)
    for text in texts:
        assert results[text].tolist() == [float(len(text)), float(sum(map(ord, text)))]
    assert sorted(t for call in calls for t in call) == sorted(texts)  # each embedded exactly once
    assert len(calls) < len(texts)  # at least one pass served several callers
    assert batcher.texts == len(texts) and batcher.batches == len(calls)


def test_batches_never_exceed_the_limit():
    calls: list[list[str]] = []
    batcher = MicroBatcher(slow_encoder(calls), max_batch=3)
    run_concurrently(batcher, [f"q{i}" for i in range(10)])
    assert max(len(call) for call in calls) <= 3


def test_an_error_reaches_every_caller_of_that_pass_and_the_batcher_recovers():
    failing = {"on": True}

    def encode_many(texts):
        time.sleep(0.02)
        if failing["on"]:
            raise RuntimeError("model broke")
        return np.ones((len(texts), 2), dtype=np.float32)

    batcher = MicroBatcher(encode_many)
    results = run_concurrently(batcher, [f"q{i}" for i in range(5)])
    assert all(isinstance(r, RuntimeError) for r in results.values())
    failing["on"] = False
    assert batcher.encode("again").tolist() == [1.0, 1.0]
    with pytest.raises(RuntimeError):
        failing["on"] = True
        batcher.encode("once more")


def test_with_a_worker_every_pass_runs_on_the_worker_thread():
    ran_on: list[str] = []

    def encode_many(texts):
        ran_on.append(threading.current_thread().name)
        time.sleep(0.02)
        return np.array([[float(len(t))] for t in texts], dtype=np.float32)

    batcher = MicroBatcher(encode_many)
    stop = threading.Event()
    worker = threading.Thread(target=batcher.run_forever, args=(stop.is_set, 0.05), name="model")
    worker.start()
    try:
        results = run_concurrently(batcher, [f"q{'x' * i}" for i in range(8)])
    finally:
        stop.set()
        worker.join(timeout=5)
    assert not worker.is_alive(), "run_forever returns once told to stop"
    assert {text: vector.tolist() for text, vector in results.items()} == {t: [float(len(t))] for t in results}
    assert set(ran_on) == {"model"} and len(ran_on) < 8
    assert batcher.encode("after").tolist() == [5.0], "without a worker, callers embed for themselves again"
