"""Serving figures for `kb serve` on loopback: cold start, latency against a bare floor, cache, throughput.

    .venv/bin/python benchmarks/serving.py [--ref COMMIT] [--questions 100] [--clients 8] [--seconds 30]
                                           [--rounds 3] [--compare]

Starts real servers on free loopback ports over the index in KB_INDEX_DIR (default index/; run
`kb build` first): this checkout, and with --ref the kb of that commit too (from a git worktree,
over a copy of the same index), so both are measured in one run. Then, in one run:
- cold start: seconds from process start to /api/health "ok" and to the first answer, each
  version started --rounds times, alternating;
- latency over HTTP, one client, --questions different Cranfield questions (never asked
  before, so no cache answers), question by question alternating between the servers and
  the floor: a bare sentence-transformers encode on torch in float32 plus an exact FAISS
  search (IndexFlatIP) over the same vectors, in this process; p50, p95 and the ratio of p50s.
  Each timed call starts after 50 ms of quiet, so no call pays for the threads of the one before
  still spinning (and each pays what a lone user's question pays on an idle machine);
- a repeated question (answered from the cache) and /api/health, 50 times each back to back: p50;
- throughput with --clients concurrent clients on unique questions, in --rounds alternating
  rounds of --seconds/--rounds each: searches/s, p50/p95, errors;
- each server's peak memory (VmHWM).
With --compare it also compares waitress thread counts and micro-batching (this checkout
only), all servers up at once and measured in alternating rounds.
All requests go to 127.0.0.1 only, and every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CRANFIELD = REPO / "benchmarks" / "data" / "cranfield"
IDLE = 0.05  # seconds of quiet before each timed call of the latency comparison


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


def start_server(threads: int = 8, env_extra: dict | None = None, code: Path | None = None
                 ) -> tuple[subprocess.Popen, int, float]:
    """A `kb serve` on a free port (``code``: another checkout's kb); returns it, the port, and seconds to ready."""
    port = free_port()
    env = {**os.environ, "KB_HOST": "127.0.0.1", "KB_PORT": str(port), "HF_HUB_OFFLINE": "1", **(env_extra or {})}
    if code is not None:
        env["PYTHONPATH"] = str(code)
    began = time.perf_counter()
    server = subprocess.Popen([sys.executable, "-m", "kb.cli", "serve", "--threads", str(threads)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=str(code or REPO))
    while time.perf_counter() - began < 300:
        try:
            status, _ = get(http.client.HTTPConnection("127.0.0.1", port, timeout=30), "/api/health")
            if status == 200:
                return server, port, time.perf_counter() - began
        except OSError:
            pass
        time.sleep(0.02)
    server.kill()
    raise SystemExit("kb serve did not become ready in 300 s")


def reference(commit: str) -> tuple[Path, Path]:
    """A worktree of ``commit`` and a copy of the index for it (each server gets its own files)."""
    tree = Path(tempfile.mkdtemp(prefix="kb-ref-")) / "tree"
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(tree), commit], check=True,
                   capture_output=True)
    index = tree.parent / "index"
    shutil.copytree(Path(os.environ.get("KB_INDEX_DIR", REPO / "index")).resolve(), index, symlinks=True,
                    ignore=shutil.ignore_patterns("encoders"))
    return tree, index


def stop(server: subprocess.Popen) -> None:
    server.terminate()
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ref", help="also measure the kb of this commit, in the same run")
    parser.add_argument("--questions", type=int, default=100)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=30.0, help="throughput time per version, over all rounds")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--compare", action="store_true", help="also compare thread counts and micro-batching")
    args = parser.parse_args()
    from kb.evaluation.datasets import load_cranfield

    questions = list(load_cranfield(CRANFIELD).queries.values())
    versions: dict[str, dict] = {"this checkout": {}}
    if args.ref:
        tree, index = reference(args.ref)
        versions[f"kb at {args.ref}"] = {"code": tree, "env": {"KB_INDEX_DIR": str(index)}}
    try:
        measure(versions, questions, args)
    finally:
        if args.ref:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)], capture_output=True)
            shutil.rmtree(tree.parent, ignore_errors=True)
    if args.compare:
        compare(questions, args.clients, args.seconds, args.rounds)


def measure(versions: dict[str, dict], questions: list[str], args: argparse.Namespace) -> None:
    starts: dict[str, list[tuple[float, float]]] = {name: [] for name in versions}
    for _ in range(args.rounds):
        for name, how in versions.items():
            began = time.perf_counter()
            server, port, ready = start_server(env_extra=how.get("env"), code=how.get("code"))
            get(http.client.HTTPConnection("127.0.0.1", port, timeout=60), "/api/search?q=first+question&k=5")
            starts[name].append((ready, time.perf_counter() - began))
            stop(server)
    servers = {name: start_server(env_extra=how.get("env"), code=how.get("code")) for name, how in versions.items()}
    try:
        conns = {name: http.client.HTTPConnection("127.0.0.1", port, timeout=60) for name, (_, port, _) in servers.items()}
        for conn in conns.values():
            get(conn, "/api/search?q=warm+up&k=5")
        floor = in_process_floor()
        tag = f" [{os.getpid()}]"  # questions never asked before, by anyone
        ms: dict[str, list[float]] = {name: [] for name in [*versions, "floor"]}
        for n, question in enumerate(questions[: args.questions]):
            order = [*versions, "floor"]
            for name in order[n % len(order):] + order[: n % len(order)]:  # who goes first rotates
                # Every call starts from the same quiet machine: the threads of the call before (ONNX Runtime's,
                # torch's OpenMP) spin for a while after it, and would slow whichever call came next.
                time.sleep(IDLE)
                if name == "floor":
                    ms[name].append(floor(question + tag))
                    continue
                t = time.perf_counter()
                status, _ = get(conns[name], "/api/search?" + urllib.parse.urlencode({"q": question + tag, "k": 5}))
                ms[name].append((time.perf_counter() - t) * 1000)
                assert status == 200, (name, status)
        # A repeated question, and /api/health (the least any request costs), each 50 times back to back,
        # in alternating blocks: on this machine any request after an idle moment costs about 1.3 ms more.
        cached = {name: [] for name in versions}
        health = {name: [] for name in versions}
        for _ in range(args.rounds):
            for name, conn in conns.items():
                for path, into in (("/api/search?" + urllib.parse.urlencode({"q": questions[0] + tag, "k": 5}), cached),
                                   ("/api/health", health)):
                    for _ in range(50):
                        t = time.perf_counter()
                        get(conn, path)
                        into[name].append((time.perf_counter() - t) * 1000)
        load: dict[str, list] = {name: [0, 0, []] for name in versions}
        for r in range(args.rounds):
            for name, (_, port, _) in servers.items():
                done, errors, latencies = throughput(port, questions, args.clients, args.seconds / args.rounds,
                                                     f"{tag}{r}")
                load[name][0] += done
                load[name][1] += errors
                load[name][2] += latencies
        floor_p50 = statistics.median(ms["floor"])
        print(f"\n{args.questions} different questions, one client, interleaved with the floor "
              f"(bare sentence-transformers torch float32 encode + exact FAISS): floor p50 {floor_p50:.2f} ms, "
              f"p95 {percentile(ms['floor'], 0.95):.2f} ms\n")
        print(f"| kb | ready s | first answer s | HTTP p50 ms | p95 ms | p50 / floor p50 | repeated p50 ms | health p50 ms "
              f"| {args.clients} clients: searches/s | p50 ms | p95 ms | errors | peak RSS MiB |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for name, (server, _, _) in servers.items():
            done, errors, latencies = load[name]
            ready = statistics.median(r for r, _ in starts[name])
            first = statistics.median(f for _, f in starts[name])
            p50 = statistics.median(ms[name])
            print(f"| {name} | {ready:.2f} | {first:.2f} | {p50:.2f} | {percentile(ms[name], 0.95):.2f} "
                  f"| {p50 / floor_p50:.2f} | {statistics.median(cached[name]):.2f} | {statistics.median(health[name]):.2f} "
                  f"| {done / args.seconds:.1f} "
                  f"| {statistics.median(latencies):.1f} | {percentile(latencies, 0.95):.1f} | {errors} "
                  f"| {status_mb(server.pid):.0f} |", flush=True)
    finally:
        for server, _, _ in servers.values():
            stop(server)


def compare(questions: list[str], clients: int, seconds: float, rounds: int) -> None:
    configs = [(1, 32), (2, 32), (4, 32), (8, 32), (16, 32), (8, 1)]
    servers = {config: start_server(config[0], {"KB_QUERY_BATCH": str(config[1])}) for config in configs}
    results: dict[tuple, list] = {config: [0, 0, []] for config in configs}
    try:
        for r in range(rounds):
            for config, (_, port, _) in servers.items():
                done, errors, latencies = throughput(port, questions, clients, seconds / rounds, f" [c{r}]")
                results[config][0] += done
                results[config][1] += errors
                results[config][2] += latencies
    finally:
        for server, _, _ in servers.values():
            stop(server)
    print(f"\n| waitress threads | micro-batching | searches/s ({clients} clients, {rounds} alternating rounds, "
          f"{seconds:.0f} s in all) | p50 ms | p95 ms | errors |")
    print("| ---: | --- | ---: | ---: | ---: | ---: |")
    for (threads, batch), (done, errors, latencies) in results.items():
        print(f"| {threads} | {'on' if batch > 1 else 'off'} | {done / seconds:.1f} | {statistics.median(latencies):.0f} "
              f"| {percentile(latencies, 0.95):.0f} | {errors} |", flush=True)


def in_process_floor():
    """Time, in this process, what no server can avoid: a bare sentence-transformers encode (torch, float32)
    and an exact FAISS search over the index's own vectors."""
    import faiss
    import numpy as np
    from sentence_transformers import SentenceTransformer

    from kb.embedding.embedder import resolve_model
    from kb.settings import Settings
    from kb.stores.faiss.store import open_current

    settings = Settings.from_env()
    memory = open_current(settings).memory
    vectors = memory.vectors.vectors(np.arange(memory.vectors.size))
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    model = SentenceTransformer(resolve_model(settings.model), device="cpu")
    model.encode(["warm up"], normalize_embeddings=True)

    def floor(question: str) -> float:
        t = time.perf_counter()
        index.search(model.encode([question], normalize_embeddings=True, convert_to_numpy=True), 5)
        return (time.perf_counter() - t) * 1000

    return floor


def throughput(port: int, questions: list[str], clients: int, seconds: float, tag: str = ""):
    stop_at = time.perf_counter() + seconds
    lock = threading.Lock()
    state = {"done": 0, "errors": 0, "latencies": []}

    def client(offset: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        n = offset
        while time.perf_counter() < stop_at:
            # A fresh question each time (numbered), so the cache does not answer.
            path = "/api/search?" + urllib.parse.urlencode({"q": f"{questions[n % len(questions)]} ({n}{tag})", "k": 5})
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
