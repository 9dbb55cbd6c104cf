"""Writes and searches at once, over HTTP: what a write costs while someone searches, and what a search costs
while writes stream in. This checkout against an older commit, side by side in one run.

    .venv/bin/python benchmarks/writes_under_load.py --ref COMMIT [--passages 0] [--writes 20] [--rounds 2]

The index: the seed corpus built by `kb build` (--passages 0), or a store of about --passages passages made
as benchmarks/writes.py makes its stores (Cranfield's abstracts repeated under new ids). Each version runs its
own `kb serve` on its own copy (the older one from a git worktree, on the same virtual environment), the
write worker warmed up. The rounds alternate between the servers; in each round, each server gets:
- writes during back-to-back searches: one client searches without pause (distinct questions, never
  cached) while --writes one-passage documents are written one after another; write p50/p95 and the
  searches per second meanwhile;
- writes during searches paced 0.2 s apart: the same, the searching client pausing 0.2 s after each answer;
- searches, idle: 50 distinct questions back to back, p50/p95;
- searches during a stream of writes: 50 distinct questions while another client writes without pause;
- a search after an idle moment: 20 questions, each after 0.5 s of quiet, p50.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))
from serving import percentile  # noqa: E402
from writes import CRANFIELD, make_store, note, request, searches, servers_on, start  # noqa: E402

from kb.evaluation.datasets import load_cranfield  # noqa: E402


def pct(values: list[float]) -> str:
    return f"{statistics.median(values):.1f} / {percentile(values, 0.95):.1f}" if values else "-"


def writes_while_searching(port: int, questions: list[str], writes: int, pause: float, label: str) -> tuple[list, float]:
    """Write latencies while one client searches (``pause`` s after each answer), and its searches per second."""
    stop = threading.Event()
    found: list[float] = []
    searcher = threading.Thread(target=lambda: found.extend(searches(port, questions, label, stop=stop, pause=pause)))
    searcher.start()
    time.sleep(1.0)
    began = time.perf_counter()
    written = []
    for n in range(writes):
        status, ms = request(port, "POST", "/api/documents", note(n, label))
        assert status == 201, status
        written.append(ms)
    seconds = time.perf_counter() - began
    stop.set()
    searcher.join()
    return written, len(found) / (seconds + 1.0)


def searches_while_writing(port: int, questions: list[str], label: str) -> list[float]:
    stop = threading.Event()

    def stream() -> None:
        n = 0
        while not stop.is_set():
            assert request(port, "POST", "/api/documents", note(n, label))[0] == 201
            n += 1

    writer = threading.Thread(target=stream)
    writer.start()
    time.sleep(0.5)
    try:
        return searches(port, questions, label, limit=50)
    finally:
        stop.set()
        writer.join()


def after_quiet(port: int, questions: list[str], label: str) -> list[float]:
    times = []
    for n in range(20):
        time.sleep(0.5)
        times.extend(searches(port, questions[n:], f"{label}-{n}", limit=1))
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ref", required=True, help="the older commit")
    parser.add_argument("--passages", type=int, default=0, help="0: the seed corpus")
    parser.add_argument("--writes", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="kb-writes-load-"))
    with servers_on(args.ref, work) as (servers, tree):
        here = work / "here"
        if args.passages:
            from kb.embedding.embedder import embedder_for
            from kb.embedding.prepare import prepare
            from kb.settings import Settings

            settings = Settings.from_env()
            prepared = prepare(load_cranfield(CRANFIELD).documents, embedder_for(settings), settings)
            passages = make_store(here, args.passages, prepared)
            corpus = f"{passages:,} passages of Cranfield abstracts"
        else:
            shutil.copytree(REPO / "corpus", here / "corpus")
            subprocess.run([sys.executable, "-m", "kb.cli", "build"], check=True, capture_output=True,
                           env={**os.environ, "KB_INDEX_DIR": str(here), "KB_CORPUS_DIR": str(here / "corpus"),
                                "HF_HUB_OFFLINE": "1"})
            corpus = "the seed corpus"
        shutil.copytree(here, work / "old", symlinks=True)
        versions = {"this checkout": (here, None), f"kb at {args.ref}": (work / "old", tree)}
        ports = {}
        for label, (folder, code) in versions.items():
            process, port = start(folder, code=code)
            servers.append(process)
            assert request(port, "POST", "/api/documents", note(0, "warm"))[0] == 201  # the write worker loads
            ports[label] = port
        questions = list(load_cranfield(CRANFIELD).queries.values())
        results = {label: {"busy": [], "busy_rate": [], "paced": [], "paced_rate": [], "idle": [], "stream": [],
                           "quiet": []} for label in versions}
        for round_ in range(args.rounds):
            for number, (label, port) in enumerate(ports.items()):
                r, tag = results[label], f"r{round_}v{number}"  # a document id: no spaces
                written, rate = writes_while_searching(port, questions, args.writes, 0.0, f"{tag}-busy")
                r["busy"] += written
                r["busy_rate"].append(rate)
                written, rate = writes_while_searching(port, questions, args.writes, 0.2, f"{tag}-paced")
                r["paced"] += written
                r["paced_rate"].append(rate)
                r["idle"] += searches(port, questions, f"{tag}-idle", limit=50)
                r["stream"] += searches_while_writing(port, questions, f"{tag}-stream")
                r["quiet"] += after_quiet(port, questions, f"{tag}-quiet")
        print(f"\n{corpus}, {args.rounds} alternating rounds, {args.writes} one-passage writes per server per round "
              "and kind\n")
        print("| kb | write p50 / p95 ms, one client searching back to back | searches/s meanwhile "
              "| write p50 / p95 ms, searches 0.2 s apart | search p50 / p95 ms, idle "
              "| search p50 / p95 ms, writes streaming | p95 ratio | search after 0.5 s of quiet, p50 ms |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for label, r in results.items():
            ratio = percentile(r["stream"], 0.95) / percentile(r["idle"], 0.95)
            print(f"| {label} | {pct(r['busy'])} | {statistics.mean(r['busy_rate']):.0f} | {pct(r['paced'])} "
                  f"| {pct(r['idle'])} | {pct(r['stream'])} | {ratio:.2f} | {statistics.median(r['quiet']):.1f} |")


if __name__ == "__main__":
    main()
