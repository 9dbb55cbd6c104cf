"""A bounded load test of `kb serve` on loopback: many clients for a fixed time, memory watched.

    .venv/bin/python benchmarks/load.py [--clients 8,16,32] [--seconds 60]

Starts a real server over the index in KB_INDEX_DIR (run `kb build` first), then for each
client count runs that many threads for --seconds, each sending, in a fixed cycle: a search
for a new question (a Cranfield query, numbered so no cache answers), the same question
again (the cache), a POST search with a filter, a malformed search (k=abc: an intended
400), the document list, and /api/health. It reports requests, unexpected errors (anything
but the intended 400s, and 429 if a read limit is set), p50/p95/p99 latency, and the
server's resident memory (VmRSS) after warm-up and at the end of each stage. Loopback
only; every loop is bounded in time.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import threading
import time
import urllib.parse

from serving import CRANFIELD, percentile, run_clients, start_server, status_mb, stop


def requests_for(question: str, n: int) -> list[tuple[str, str, bytes | None, int]]:
    """(method, path, body, expected status) for one cycle of a client."""
    fresh = f"{question} ({n})"
    return [
        ("GET", "/api/search?" + urllib.parse.urlencode({"q": fresh, "k": 5}), None, 200),
        ("GET", "/api/search?" + urllib.parse.urlencode({"q": fresh, "k": 5}), None, 200),
        ("POST", "/api/search", json.dumps({"q": fresh, "k": 3, "filters": {"date_from": "1900-01-01"}}).encode(), 200),
        ("GET", "/api/search?" + urllib.parse.urlencode({"q": fresh, "k": "abc"}), None, 400),
        ("GET", "/api/documents?per_page=5", None, 200),
        ("GET", "/api/health", None, 200),
    ]


def stage(port: int, questions: list[str], clients: int, seconds: float) -> dict:
    stop_at = time.perf_counter() + seconds
    lock = threading.Lock()
    state = {"requests": 0, "unexpected": 0, "intended_4xx": 0, "latencies": [], "examples": []}

    def client(offset: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        n = offset
        while time.perf_counter() < stop_at:
            for method, path, body, expected in requests_for(questions[n % len(questions)], n):
                if time.perf_counter() >= stop_at:
                    break
                began = time.perf_counter()
                try:
                    headers = {"Content-Type": "application/json"} if body else {}
                    conn.request(method, path, body=body, headers=headers)
                    response = conn.getresponse()
                    response.read()
                    status = response.status
                except OSError as exc:
                    status = f"{type(exc).__name__}"
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                elapsed = (time.perf_counter() - began) * 1000
                with lock:
                    state["requests"] += 1
                    state["latencies"].append(elapsed)
                    if status == expected:
                        state["intended_4xx"] += expected >= 400
                    else:
                        state["unexpected"] += 1
                        if len(state["examples"]) < 5:
                            state["examples"].append(f"{method} {path[:60]} -> {status}")
            n += clients

    run_clients(client, clients)
    return state


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", default="8,16,32")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--threads", type=int, default=8, help="waitress threads of the server")
    args = parser.parse_args()
    from kb.datasets import load_cranfield

    questions = list(load_cranfield(CRANFIELD).queries.values())
    server, port, ready = start_server(args.threads)
    try:
        stage(port, questions, 4, 5)  # warm up: caches, lazy set-up, allocator
        start_rss = status_mb(server.pid, "VmRSS")
        print(f"server ready in {ready:.1f} s; RSS after warm-up {start_rss:.0f} MiB; waitress threads {args.threads}")
        print("| clients | seconds | requests | req/s | unexpected errors | intended 400s | p50 ms | p95 ms | p99 ms | RSS at end MiB |")
        print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for clients in (int(c) for c in args.clients.split(",")):
            result = stage(port, questions, clients, args.seconds)
            latencies = result["latencies"]
            print(f"| {clients} | {args.seconds:.0f} | {result['requests']:,} | {result['requests'] / args.seconds:.1f} "
                  f"| {result['unexpected']} | {result['intended_4xx']:,} | {statistics.median(latencies):.1f} "
                  f"| {percentile(latencies, 0.95):.1f} | {percentile(latencies, 0.99):.1f} | {status_mb(server.pid, 'VmRSS'):.0f} |",
                  flush=True)
            for example in result["examples"]:
                print(f"  unexpected: {example}")
        end_rss = status_mb(server.pid, "VmRSS")
        print(f"memory: {start_rss:.0f} MiB after warm-up, {end_rss:.0f} MiB at the end "
              f"({(end_rss - start_rss) / start_rss:+.1%})")
    finally:
        stop(server)


if __name__ == "__main__":
    main()
