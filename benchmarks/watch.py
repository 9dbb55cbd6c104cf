"""The folder watch of `kb serve`: save to searchable, a drop of a thousand files, searches meanwhile, idle cost.

    .venv/bin/python benchmarks/watch.py [--edits 50] [--drop 1000] [--large 10000] [--idle 60]

Every figure is over HTTP from a real `kb serve` on a loopback port, the real model, real files:
- save to searchable: --edits saves of real documents (Cranfield abstracts as `.txt`, each saved with a new
  word in it), one at a time; the time from the file's write until a search for the new word finds it.
  On the seed corpus in event mode, then in poll mode (KB_WATCH_POLL_SECONDS=1); with --large, again on a
  folder of that many documents (Cranfield's abstracts copied under new names) in event mode.
- a drop: --drop Cranfield abstracts as `.txt` moved into the watched seed folder at once; the time until
  the last is searchable, against `kb build` of the same files into a fresh index in the same run;
  meanwhile one client searches back to back: its p50 / p95 against the same client on the idle server.
- idle cost: with --large, a fresh server watching that folder, its CPU seconds and resident memory over --idle
  seconds of nothing, against a fresh server with KB_WATCH=off (--skip-seed: only this and the saves there).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))
from serving import percentile, status_mb  # noqa: E402
from writes import start as start_server  # noqa: E402

from kb.evaluation.datasets import load_cranfield  # noqa: E402

CRANFIELD = REPO / "benchmarks" / "data" / "cranfield"


def start(corpus: Path, index: Path, extra: dict | None = None) -> tuple[subprocess.Popen, str]:
    """A `kb serve` of ``corpus`` (writes.start: this checkout, ready), and where it listens."""
    process, port = start_server(index, {"KB_CORPUS_DIR": str(corpus), **(extra or {})})
    return process, f"http://127.0.0.1:{port}"


def health(base: str) -> dict:
    with urllib.request.urlopen(base + "/api/health", timeout=30) as response:
        return json.loads(response.read())


def hits(base: str, words: str, k: int = 1) -> list[dict]:
    url = base + "/api/search?" + urllib.parse.urlencode({"q": words, "k": k, "mode": "keyword"})
    with urllib.request.urlopen(url, timeout=60) as response:
        return json.loads(response.read())["results"]


def search_ms(base: str, question: str) -> float:
    began = time.perf_counter()
    with urllib.request.urlopen(base + "/api/search?" + urllib.parse.urlencode({"q": question}), timeout=60) as r:
        r.read()
    return (time.perf_counter() - began) * 1000


def abstracts() -> list[tuple[str, str]]:
    return [(d.id, f"{d.title}\n\n{d.text}\n") for d in load_cranfield(CRANFIELD).documents]


def save_to_searchable(base: str, corpus: Path, edits: int, tag: str) -> list[float]:
    """Seconds from each save until a search finds its new word."""
    times = []
    docs = abstracts()
    for n in range(edits):
        doc_id, text = docs[n]
        word = f"zq{tag}{n}marker"
        path = corpus / f"edit-{doc_id}.txt"
        began = time.perf_counter()
        path.write_text(f"{text}The {word} was added in this save.\n", encoding="utf-8")
        while not any(word in hit["text"] for hit in hits(base, word)):
            if time.perf_counter() - began > 120:
                raise SystemExit(f"{word} not searchable after 120 s")
            time.sleep(0.01)
        times.append(time.perf_counter() - began)
        time.sleep(0.3)
    return times


def write_abstracts(folder: Path, count: int, prefix: str) -> None:
    docs = abstracts()
    folder.mkdir(parents=True, exist_ok=True)
    for n in range(count):
        doc_id, text = docs[n % len(docs)]
        (folder / f"{prefix}{n:05d}-{doc_id}.txt").write_text(text, encoding="utf-8")


def secs(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} / {percentile(values, 0.95):.2f}"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--edits", type=int, default=50)
    parser.add_argument("--drop", type=int, default=1000)
    parser.add_argument("--large", type=int, default=0, help="documents in the large folder (0: skip it)")
    parser.add_argument("--idle", type=float, default=60.0)
    parser.add_argument("--skip-seed", action="store_true", help="only the large folder")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="kb-watch-bench-"))
    questions = list(load_cranfield(CRANFIELD).queries.values())
    processes: list[subprocess.Popen] = []
    try:
        if not args.skip_seed:
            print("\n| folder | mode | save to searchable p50 / p95 s | saves |\n| --- | --- | ---: | ---: |", flush=True)
            for mode in ("on", "poll"):
                corpus = work / f"seed-{mode}"
                shutil.copytree(REPO / "corpus", corpus)
                process, base = start(corpus, work / f"seed-{mode}-index", {"KB_WATCH": mode, "KB_WATCH_POLL_SECONDS": "1"})
                processes.append(process)
                times = save_to_searchable(base, corpus, args.edits, mode)
                print(f"| the seed corpus | {mode} | {secs(times)} | {len(times)} |", flush=True)
                if mode == "on":
                    drop_base, drop_corpus = base, corpus
                else:
                    process.terminate()
            # A drop into the event-mode server, searched meanwhile.
            idle = [search_ms(drop_base, f"{q} (idle {n})") for n, q in enumerate(questions[:60])]
            staging = work / "staging"
            write_abstracts(staging, args.drop, "drop-")
            during: list[float] = []
            stop = threading.Event()

            def searching() -> None:
                n = 0
                while not stop.is_set():
                    during.append(search_ms(drop_base, f"{questions[n % len(questions)]} (drop {n})"))
                    n += 1

            searcher = threading.Thread(target=searching)
            searcher.start()
            time.sleep(1.0)
            began = time.perf_counter()
            for path in sorted(staging.iterdir()):
                os.rename(path, drop_corpus / path.name)
            expected = health(drop_base)["documents"] + args.drop
            while health(drop_base)["documents"] < expected or health(drop_base)["sync"]["pending"]:
                time.sleep(0.05)
            dropped = time.perf_counter() - began
            stop.set()
            searcher.join()
            build_corpus = work / "build-corpus"
            shutil.copytree(drop_corpus, build_corpus, ignore=shutil.ignore_patterns(".kb"))
            began = time.perf_counter()
            subprocess.run([sys.executable, "-m", "kb.cli", "build"], check=True, capture_output=True, cwd=REPO,
                           env={**os.environ, "KB_INDEX_DIR": str(work / "build-index"), "KB_CORPUS_DIR": str(build_corpus),
                                "HF_HUB_OFFLINE": "1"})
            built = time.perf_counter() - began
            print(f"\na drop of {args.drop} Cranfield abstracts as .txt into the watched seed folder: all searchable in "
                  f"{dropped:.1f} s; `kb build` of the same folder (seed included) into a fresh index: {built:.1f} s")
            print(f"searches meanwhile, one client back to back: p50 / p95 {statistics.median(during):.1f} / "
                  f"{percentile(during, 0.95):.1f} ms ({len(during)} searches); idle: {statistics.median(idle):.1f} / "
                  f"{percentile(idle, 0.95):.1f} ms; p95 ratio {percentile(during, 0.95) / percentile(idle, 0.95):.2f}",
                  flush=True)
        if args.large:
            corpus = work / "large"
            write_abstracts(corpus, args.large, "doc-")
            index = work / "large-index"
            subprocess.run([sys.executable, "-m", "kb.cli", "build"], check=True, capture_output=True, cwd=REPO,
                           env={**os.environ, "KB_INDEX_DIR": str(index), "KB_CORPUS_DIR": str(corpus),
                                "HF_HUB_OFFLINE": "1"})
            for mode in ("on", "off"):  # each server fresh, as it is after a start
                process, base = start(corpus, index, {"KB_WATCH": mode})
                processes.append(process)
                time.sleep(5)  # the first sync (a stat of every file) is over
                cpu, began = cpu_seconds(process.pid), time.monotonic()
                time.sleep(args.idle)
                used, spent = cpu_seconds(process.pid) - cpu, time.monotonic() - began
                print(f"idle, KB_WATCH={mode}, {args.large:,} files, a fresh server: {used:.2f} CPU s in {spent:.0f} s "
                      f"({100 * used / spent:.2f}% of a core), RSS {status_mb(process.pid, 'VmRSS'):.0f} MiB", flush=True)
                process.terminate()
                process.wait()
            process, base = start(corpus, index)
            processes.append(process)
            times = save_to_searchable(base, corpus, args.edits, "large")
            print(f"\n| {args.large:,} documents | on | {secs(times)} | {len(times)} |", flush=True)
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
                process.wait(timeout=60)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
