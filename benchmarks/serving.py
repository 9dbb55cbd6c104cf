"""Serving figures for `kb serve` on loopback: cold start, memory, latency, cache, throughput.

    .venv/bin/python benchmarks/serving.py [--clients 8] [--seconds 20] [--compare]

Starts a real server on a free loopback port over the index in KB_INDEX_DIR (default index/;
run `kb build` first), then measures, in one run:
- cold start: seconds from process start to /api/health "ok", and to the first answer;
- latency over HTTP, one client, 200 different questions (the Cranfield queries), p50 and
  p95, interleaved question by question with the in-process floor (this process encodes
  the query and searches FAISS itself), so machine noise hits both alike;
- a repeated question answered from the cache: p50;
- throughput with N concurrent clients for a bounded time: requests/s, p95, errors;
- the server's memory (peak RSS) at the end.
With --compare it then starts one server per configuration (waitress threads 1, 2, 4, 8, 16
with micro-batching, and 8 threads without it: KB_QUERY_BATCH=1) and measures throughput
alone. All requests go to 127.0.0.1 only, and every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import http.client
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
CRANFIELD = REPO / "benchmarks" / "data" / "cranfield"


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


def status_mb(pid: int, field: str = "VmHWM") -> float:
    """A memory figure of a process from /proc, in MiB: VmHWM is peak RSS, VmRSS the current one."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start_server(threads: int = 8, env_extra: dict | None = None) -> tuple[subprocess.Popen, int, float]:
    """A `kb serve` on a free port; returns it, the port, and seconds until /api/health said ok."""
    port = free_port()
    env = {**os.environ, "KB_HOST": "127.0.0.1", "KB_PORT": str(port), "HF_HUB_OFFLINE": "1", **(env_extra or {})}
    began = time.perf_counter()
    server = subprocess.Popen([sys.executable, "-m", "kb.cli", "serve", "--threads", str(threads)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while time.perf_counter() - began < 300:
        try:
            status, _ = get(http.client.HTTPConnection("127.0.0.1", port, timeout=30), "/api/health")
            if status == 200:
                return server, port, time.perf_counter() - began
        except OSError:
            pass
        time.sleep(0.05)
    server.kill()
    raise SystemExit("kb serve did not become ready in 300 s")


def stop(server: subprocess.Popen) -> None:
    server.terminate()
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--compare", action="store_true", help="also compare thread counts and micro-batching")
    args = parser.parse_args()
    from kb.datasets import load_cranfield

    questions = list(load_cranfield(CRANFIELD).queries.values())[:200]
    began = time.perf_counter()
    server, port, ready = start_server()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        status, _ = get(conn, "/api/search?" + urllib.parse.urlencode({"q": "first question", "k": 5}))
        first = time.perf_counter() - began
        print(f"cold start: ready in {ready:.2f} s, first answer at {first:.2f} s")

        floor = in_process_floor()
        http_ms, floor_ms = [], []
        for n, question in enumerate(questions * 2):
            tag = f" ({n})"  # every question text is new to both, so no cache answers
            path = "/api/search?" + urllib.parse.urlencode({"q": question + tag, "k": 5})
            t = time.perf_counter()
            status, _ = get(conn, path)
            http_ms.append((time.perf_counter() - t) * 1000)
            assert status == 200, status
            floor_ms.append(floor(question + tag + " "))
        cached_ms = []
        for _ in range(50):
            t = time.perf_counter()
            get(conn, "/api/search?" + urllib.parse.urlencode({"q": questions[0], "k": 5}))
            cached_ms.append((time.perf_counter() - t) * 1000)

        print(f"HTTP, one client, {len(http_ms)} different questions: p50 {statistics.median(http_ms):.1f} ms, "
              f"p95 {percentile(http_ms, 0.95):.1f} ms")
        print(f"in-process floor (encode + FAISS), interleaved: p50 {statistics.median(floor_ms):.1f} ms, "
              f"p95 {percentile(floor_ms, 0.95):.1f} ms; ratio of p50s {statistics.median(http_ms) / statistics.median(floor_ms):.2f}")
        print(f"repeated question (cache): p50 {statistics.median(cached_ms):.2f} ms")

        done, errors, latencies = throughput(port, questions, args.clients, args.seconds)
        print(f"{args.clients} clients for {args.seconds:.0f} s: {done / args.seconds:.1f} requests/s, "
              f"p95 {percentile(latencies, 0.95):.1f} ms, errors {errors}")
        print(f"server peak RSS: {status_mb(server.pid):.0f} MiB")
    finally:
        stop(server)
    if args.compare:
        compare(questions, args.clients, args.seconds)


def compare(questions: list[str], clients: int, seconds: float) -> None:
    print(f"\n| waitress threads | micro-batching | requests/s ({clients} clients, {seconds:.0f} s) | p50 ms | p95 ms | errors |")
    print("| ---: | --- | ---: | ---: | ---: | ---: |")
    for threads, batch in ((1, 32), (2, 32), (4, 32), (8, 32), (16, 32), (8, 1)):
        server, port, _ = start_server(threads, {"KB_QUERY_BATCH": str(batch)})
        try:
            done, errors, latencies = throughput(port, questions, clients, seconds)
        finally:
            stop(server)
        print(f"| {threads} | {'on' if batch > 1 else 'off'} | {done / seconds:.1f} | {statistics.median(latencies):.0f} "
              f"| {percentile(latencies, 0.95):.0f} | {errors} |", flush=True)


def in_process_floor():
    """A function timing, in this process, what no server can avoid: encode the query, search FAISS."""
    from kb.embed import Embedder
    from kb.faiss_store import open_current
    from kb.settings import Settings

    settings = Settings.from_env()
    embedder = Embedder(settings.model, settings.precision)  # its own instance: no cache shared with anything
    vectors = open_current(settings).memory.vectors
    embedder.encode(["warm up"])

    def floor(question: str) -> float:
        t = time.perf_counter()
        vectors.search(embedder.encode([question])[0], 5)
        return (time.perf_counter() - t) * 1000

    return floor


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

    run_clients(client, clients)
    return state["done"], state["errors"], state["latencies"]


def run_clients(client, clients: int) -> None:
    """Run ``client(i)`` on ``clients`` threads at once and wait for all of them."""
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


if __name__ == "__main__":
    main()
