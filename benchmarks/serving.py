"""Serving figures for `kb serve` on loopback: cold start, memory, latency, cache, throughput.

    .venv/bin/python benchmarks/serving.py [--clients 8] [--seconds 20]

Starts a real server on a free loopback port over the index in KB_INDEX_DIR (default index/;
run `kb build` first), then measures, in one run:
- cold start: seconds from process start to /api/health "ok", and to the first answer;
- latency over HTTP, one client, 200 different questions (the Cranfield queries): p50, p95;
- the in-process floor for the same questions: encode the query + FAISS search;
- a repeated question answered from the cache: p50;
- throughput with N concurrent clients for a bounded time: requests/s, p95, errors;
- the server's memory (peak RSS) at the end.
All requests go to 127.0.0.1 only, and every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CRANFIELD = REPO.parent / "shared" / "data" / "cranfield"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(conn: http.client.HTTPConnection, path: str) -> tuple[int, bytes]:
    conn.request("GET", path)
    response = conn.getresponse()
    return response.status, response.read()


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def rss_peak_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    from kb.datasets import load_cranfield

    questions = list(load_cranfield(CRANFIELD).queries.values())[:200]
    port = free_port()
    env = {**os.environ, "KB_HOST": "127.0.0.1", "KB_PORT": str(port), "HF_HUB_OFFLINE": "1"}
    began = time.perf_counter()
    server = subprocess.Popen([sys.executable, "-m", "kb.cli", "serve"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        ready = None
        while time.perf_counter() - began < 300:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                status, body = get(conn, "/api/health")
                if status == 200:
                    ready = time.perf_counter() - began
                    break
            except OSError:
                pass
            time.sleep(0.05)
        if ready is None:
            raise SystemExit("kb serve did not become ready in 300 s")
        status, _ = get(conn, "/api/search?" + urllib.parse.urlencode({"q": "first question", "k": 5}))
        first = time.perf_counter() - began
        print(f"cold start: ready in {ready:.2f} s, first answer at {first:.2f} s")

        http_ms = []
        for question in questions:
            path = "/api/search?" + urllib.parse.urlencode({"q": question, "k": 5})
            t = time.perf_counter()
            status, _ = get(conn, path)
            http_ms.append((time.perf_counter() - t) * 1000)
            assert status == 200, status
        cached_ms = []
        for _ in range(50):
            t = time.perf_counter()
            get(conn, "/api/search?" + urllib.parse.urlencode({"q": questions[0], "k": 5}))
            cached_ms.append((time.perf_counter() - t) * 1000)

        floor_ms = in_process_floor(questions)
        print(f"HTTP, one client, {len(questions)} different questions: p50 {statistics.median(http_ms):.1f} ms, "
              f"p95 {percentile(http_ms, 0.95):.1f} ms")
        print(f"in-process floor (encode + FAISS): p50 {statistics.median(floor_ms):.1f} ms, "
              f"p95 {percentile(floor_ms, 0.95):.1f} ms; ratio of p50s {statistics.median(http_ms) / statistics.median(floor_ms):.2f}")
        print(f"repeated question (cache): p50 {statistics.median(cached_ms):.2f} ms")

        done, errors, latencies = throughput(port, questions, args.clients, args.seconds)
        print(f"{args.clients} clients for {args.seconds:.0f} s: {done / args.seconds:.1f} requests/s, "
              f"p95 {percentile(latencies, 0.95):.1f} ms, errors {errors}")
        print(f"server peak RSS: {rss_peak_mb(server.pid):.0f} MiB")
    finally:
        server.terminate()
        server.wait(timeout=30)


def in_process_floor(questions: list[str]) -> list[float]:
    from kb.embed import Embedder
    from kb.index import IndexStore
    from kb.settings import Settings

    settings = Settings.from_env()
    embedder = Embedder(settings.model)  # its own instance: no query cache shared with anything
    index = IndexStore(settings.index_dir).load()
    embedder.encode(["warm up"])
    times = []
    for question in questions:
        t = time.perf_counter()
        index.search(embedder.encode([question])[0], 5)
        times.append((time.perf_counter() - t) * 1000)
    return times


def throughput(port: int, questions: list[str], clients: int, seconds: float):
    stop_at = time.perf_counter() + seconds
    lock = threading.Lock()
    state = {"done": 0, "errors": 0, "latencies": []}

    def client(offset: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        n = offset
        while time.perf_counter() < stop_at:
            # A fresh question each time (numbered), so the cache does not answer.
            path = "/api/search?" + urllib.parse.urlencode({"q": f"{questions[n % len(questions)]} ({n})", "k": 5})
            t = time.perf_counter()
            try:
                status, _ = get(conn, path)
                ok = status == 200
            except OSError:
                ok = False
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            with lock:
                state["done"] += ok
                state["errors"] += not ok
                state["latencies"].append((time.perf_counter() - t) * 1000)
            n += clients

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return state["done"], state["errors"], state["latencies"]


if __name__ == "__main__":
    main()
