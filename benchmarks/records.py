"""The record at 10,000 documents: export and import throughput, the index derived again from the record, and a
backup taken while a stream of writes goes on.

    .venv/bin/python benchmarks/records.py [--docs 10000] [--work DIR]

The documents: Cranfield's abstracts that have text, copied under new ids up to --docs, written as an export file
(the JSON lines `kb export` writes). In one run, with real `kb` processes and the real model, on the FAISS store:
1. `kb import` of that file into an empty knowledge base, every document embedded: documents/s;
2. `kb export` of the result: documents/s;
3. `kb import` of the same file once more (a resumed import finding everything there): documents/s;
4. `rm -rf index && kb build`: the index derived again from the record alone (every document embedded);
5. a `kb serve` on it: 100 distinct questions with nothing else going on, then distinct questions while one
   client writes one-passage documents back to back and `kb backup` runs: the backup's time, and the search
   p50 / p95 during it against idle.
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
from writes import CRANFIELD, note, request, searches, start  # noqa: E402

from kb.documents.document import content_hash
from kb.evaluation.datasets import load_cranfield  # noqa: E402
from kb.stores.base import StoredDocument  # noqa: E402
from kb.stores.record import export_line  # noqa: E402


def kb(env: dict, *args: str) -> float:
    """Run a `kb` command; its wall time in seconds."""
    began = time.perf_counter()
    subprocess.run([sys.executable, "-m", "kb.cli", *args], env={**os.environ, "HF_HUB_OFFLINE": "1", **env},
                   check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - began


def export_file(path: Path, count: int) -> int:
    """Cranfield's abstracts with text, copied under new ids up to ``count``, as export lines; their bytes."""
    documents = [d for d in load_cranfield(CRANFIELD).documents if d.text.strip()]
    with open(path, "wb") as out:
        for n in range(count):
            d = documents[n % len(documents)]
            doc_id = f"c{n // len(documents)}-{d.id}"
            out.write(export_line(StoredDocument(doc_id, d.title, f"api/{doc_id}", content_hash(d.title, d.text, {}),
                                                 d.text, 0, {})))
    return path.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--docs", type=int, default=10000)
    parser.add_argument("--work", default=None)
    parser.add_argument("--backup-only", action="store_true",
                        help="with --work of an earlier run: only the backup during writes (step 5)")
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="kb-records-"))
    (work / "corpus").mkdir(parents=True, exist_ok=True)
    env = {"KB_CORPUS_DIR": str(work / "corpus"), "KB_INDEX_DIR": str(work / "index")}
    source = work / "source.jsonl"
    if not args.backup_only:
        prepare_and_time(work, env, source, args.docs)
    backup_during_writes(work, env)
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)


def prepare_and_time(work: Path, env: dict, source: Path, docs: int) -> None:
    """Steps 1 to 4: import, export, import again, and the index derived again from the record."""
    size = export_file(source, docs)
    print(f"{docs:,} documents, {size / 2**20:.1f} MiB of export lines", flush=True)
    figures = {}
    figures["import"] = kb(env, "import", str(source))
    print(f"import: {figures['import']:.0f} s ({docs / figures['import']:.1f} documents/s)", flush=True)
    figures["export"] = kb(env, "export", "-o", str(work / "exported.jsonl"))
    print(f"export: {figures['export']:.1f} s ({docs / figures['export']:.0f} documents/s, including the "
          "start-up sync of the record)", flush=True)
    figures["import again"] = kb(env, "import", str(source))
    print(f"import again, nothing new: {figures['import again']:.1f} s "
          f"({docs / figures['import again']:.0f} documents/s)", flush=True)
    shutil.rmtree(work / "index")
    figures["rebuild"] = kb(env, "build")
    print(f"rm -rf index && kb build: {figures['rebuild']:.0f} s ({docs / figures['rebuild']:.1f} documents/s)",
          flush=True)


def backup_during_writes(work: Path, env: dict) -> None:
    """Step 5: idle searches, then searches while one client writes and `kb backup` runs."""
    process, port = start(work, env)  # writes.start, with a write key, on the same folders
    try:
        questions = list(load_cranfield(CRANFIELD).queries.values())
        searches(port, questions, "warm", limit=10)
        assert request(port, "POST", "/api/documents", note(0, "warm"))[0] == 201
        idle = searches(port, questions, "idle", limit=100)
        stop = threading.Event()
        written: list[float] = []

        def stream() -> None:
            n = 0
            while not stop.is_set():
                written.append(request(port, "POST", "/api/documents", note(n, "stream"))[1])
                n += 1

        during: list[float] = []
        backup: dict = {}

        def take_backup() -> None:
            backup["seconds"] = kb(env, "backup", str(work / "backup"))
            stop.set()

        writer = threading.Thread(target=stream)
        backer = threading.Thread(target=take_backup)
        writer.start()
        backer.start()
        during = searches(port, questions, "backup", stop=stop)
        backer.join()
        writer.join()
    finally:
        process.terminate()
        process.wait(timeout=60)
    backed = sum(f.stat().st_size for f in (work / "backup").rglob("*") if f.is_file()) / 2**20
    print(f"\nbackup during a stream of writes: {backup['seconds']:.1f} s, {backed:.0f} MiB; {len(written)} writes "
          f"acknowledged meanwhile (p50 {statistics.median(written):.0f} ms)")
    print("| searches | p50 ms | p95 ms | count |")
    print("| --- | ---: | ---: | ---: |")
    for label, values in (("idle", idle), ("during the backup and the writes", during)):
        print(f"| {label} | {statistics.median(values):.1f} | {percentile(values, 0.95):.1f} | {len(values)} |")
    print(f"p95 during / idle: {percentile(during, 0.95) / percentile(idle, 0.95):.2f}x")


if __name__ == "__main__":
    main()
