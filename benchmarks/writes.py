"""What a write costs, and what searches feel meanwhile, against a real `kb serve` over HTTP.

    .venv/bin/python benchmarks/writes.py [--sizes 1000,10000,100000] [--embedding process,inline] [--writes 30] [--quality]

For each size, a store of that many passages of real text is made: the Cranfield abstracts,
embedded once with the real model, then repeated under new ids (their vectors, terms and
sentences copied, so the store is realistic without hours of embedding). A real server is
started on it, and in one run it measures:
- search latency, idle: distinct questions (a Cranfield query with a number), p50/p95/max;
- write latency of a one-passage document through the API, p50/p95, and delete latency;
- search latency during a stream of writes (one client writing without pause);
- search latency during one large upload (a text file of --upload-mb, 5 MB by default) and how long that
  upload took;
- write throughput with 1 and 4 writing clients (concurrent writes are grouped);
- the server's resident memory before and after the writes, and its peak (with its embedding worker's);
each size is measured once per `KB_WRITE_EMBEDDING` given (a worker process, or inline in the server).
With --quality, it also loads the 1,400 Cranfield documents by 1,400 single-document API
writes into an empty server and compares hybrid nDCG@10 with one `kb build` of the same
documents, in the same run.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
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
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))
from serving import free_port, percentile, status_mb  # noqa: E402

from kb.embedding.embedder import embedder_for, get_embedder  # noqa: E402
from kb.embedding.prepare import build_config, prepare  # noqa: E402
from kb.evaluation.datasets import load_cranfield  # noqa: E402
from kb.ingestion.sync import build_index  # noqa: E402
from kb.settings import Settings  # noqa: E402
from kb.stores.base import PreparedDocument, StoredDocument  # noqa: E402
from kb.stores.faiss.store import FaissStore, open_current  # noqa: E402

CRANFIELD = REPO / "benchmarks" / "data" / "cranfield"
KEY = "bench-key"


def copies(size: int, prepared: list[PreparedDocument],
           passages_of: Callable[[PreparedDocument, int], list] | None = None, batch: int = 500):
    """About ``size`` passages: the prepared Cranfield documents repeated under new ids, ``batch`` documents at a
    time (``passages_of(document, copy)`` may give each copy passages of its own, e.g. moved vectors)."""
    passages, copy, out = 0, 0, []
    while passages < size:
        for item in prepared:
            if passages >= size:
                break
            d = item.document
            out.append(PreparedDocument(StoredDocument(f"c{copy}-{d.id}", d.title, d.source, d.hash, d.text,
                                                       d.passages, d.metadata, ""),
                                        passages_of(item, copy) if passages_of else item.passages))
            passages += len(item.passages)
            if len(out) >= batch:
                yield out
                out = []
        copy += 1
    if out:
        yield out


def make_store(folder: Path, size: int, prepared: list[PreparedDocument],
               passages_of: Callable[[PreparedDocument, int], list] | None = None, batches=None) -> int:
    """A FAISS store of about ``size`` passages (``copies``, or ``batches`` of documents); how many it holds."""
    settings = Settings.from_env(index_dir=folder, corpus_dir=folder / "corpus")
    (folder / "corpus").mkdir(parents=True, exist_ok=True)
    embedder = embedder_for(settings)
    store = FaissStore.create(folder, settings, settings.model, embedder.dimension, build_config(settings))
    passages = 0
    for batch in batches if batches is not None else copies(size, prepared, passages_of):
        store.db.write(batch, [])
        passages += sum(len(item.passages) for item in batch)
    store.close()
    store = FaissStore(store.folder, settings)  # builds the in-memory indexes (HNSW above the threshold)
    store.checkpoint()
    store.make_current()
    store.close()
    return passages


@contextlib.contextmanager
def servers_on(ref: str | None, work: Path):
    """A list to put started server processes in, and (with ``ref``) a git worktree of that commit in
    ``work``/ref; afterwards the servers are stopped, the worktree removed and ``work`` deleted."""
    tree = work / "ref"
    if ref:
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(tree), ref], check=True,
                       capture_output=True)
    processes: list[subprocess.Popen] = []
    try:
        if ref:
            where = subprocess.run([sys.executable, "-c", "import kb; print(list(kb.__path__)[0])"], cwd=tree,
                                   text=True, env={**os.environ, "PYTHONPATH": str(tree)}, capture_output=True,
                                   check=True).stdout
            assert where.startswith(str(tree)), f"the kb at {ref} would not be the one imported: {where}"
        yield processes, tree
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=60)
        if ref:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


def start(folder: Path, extra: dict | None = None, code: Path | None = None) -> tuple[subprocess.Popen, int]:
    """A `kb serve` over ``folder``; with ``code``, the kb of that checkout (a worktree), run from there: on
    PYTHONPATH alone, `python -m` would still import this checkout's kb from the working directory."""
    port = free_port()
    env = {**os.environ, "KB_INDEX_DIR": str(folder), "KB_CORPUS_DIR": str(folder / "corpus"), "KB_PORT": str(port),
           "KB_API_KEY": KEY, "KB_WRITE_RATE_LIMIT": "off", "HF_HUB_OFFLINE": "1", **(extra or {})}
    if code is not None:
        env["PYTHONPATH"] = str(code)
    process = subprocess.Popen([sys.executable, "-m", "kb.cli", "serve"], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, cwd=str(code or REPO))
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request("GET", "/api/health")
            if conn.getresponse().status == 200:
                return process, port
        except OSError:
            pass
        time.sleep(0.1)
    process.kill()
    raise SystemExit("kb serve did not become ready")


def request(port: int, method: str, path: str, body: bytes | None = None, content_type: str = "application/json",
            timeout: float = 600) -> tuple[int, float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    began = time.perf_counter()
    conn.request(method, path, body=body, headers={"Authorization": f"Bearer {KEY}", "Content-Type": content_type})
    response = conn.getresponse()
    response.read()
    return response.status, (time.perf_counter() - began) * 1000


def searches(port: int, questions: list[str], label: str, stop: threading.Event | None = None, limit: int = 100,
             pause: float = 0.0, when: list | None = None):
    """Distinct questions one after another, ``pause`` s apart (until ``stop`` when given); latencies in ms
    (and, in ``when``, each search's start on the perf_counter clock with its latency)."""
    times, n = [], 0
    while n < limit if stop is None else not stop.is_set():
        q = f"{questions[n % len(questions)]} ({label} {n})"
        began = time.perf_counter()
        status, ms = request(port, "GET", "/api/search?" + urllib.parse.urlencode({"q": q}))
        assert status == 200, status
        times.append(ms)
        if when is not None:
            when.append((began, ms))
        n += 1
        if pause:
            time.sleep(pause)
    return times


def summary(times: list[float]) -> str:
    if not times:
        return "-"
    return f"{statistics.median(times):.1f} / {percentile(times, 0.95):.1f} / {max(times):.1f}"


def note(n: int, label: str) -> bytes:
    return json.dumps({"id": f"{label}-{n}", "title": f"Note {n}",
                       "text": f"Note {n}: a small wind tunnel test of a delta wing at Mach {n % 7 + 1}."}).encode()


def children_mb(pid: int, field: str) -> float:
    """Memory of a process's children (the embedding worker), MiB."""
    total = 0.0
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            total += status_mb(int(child), field)
    return total


def measure(size: int, prepared: list[PreparedDocument], questions: list[str], writes: int, work: Path,
            embedding: str, upload_mb: float, pause: float) -> dict:
    folder = work / f"store-{size}-{embedding}"
    shutil.rmtree(folder, ignore_errors=True)
    began = time.perf_counter()
    passages = make_store(folder, size, prepared)
    made = time.perf_counter() - began
    process, port = start(folder, {"KB_WRITE_EMBEDDING": embedding})
    try:
        searches(port, questions, "warm", limit=10)
        assert request(port, "POST", "/api/documents", note(0, "warm"))[0] == 201  # the write worker is loaded
        assert request(port, "DELETE", "/api/documents/warm-0")[0] == 200
        rss_before = status_mb(process.pid, "VmRSS")
        idle = searches(port, questions, "idle")
        write_ms, delete_ms = [], []
        for n in range(writes):
            status, ms = request(port, "POST", "/api/documents", note(n, "w"))
            assert status == 201, status
            write_ms.append(ms)
        for n in range(writes):
            status, ms = request(port, "DELETE", f"/api/documents/w-{n}")
            assert status == 200, status
            delete_ms.append(ms)

        stop = threading.Event()
        streamed = []

        def stream():
            n = 0
            while not stop.is_set():
                streamed.append(request(port, "POST", "/api/documents", note(n, "s"))[1])
                n += 1

        writer = threading.Thread(target=stream)
        writer.start()
        during_writes = searches(port, questions, "stream", limit=100)
        stop.set()
        writer.join()

        big = " ".join(f"Paragraph {i} of a long report on boundary layers, wings and heat transfer at high speed."
                       for i in range(int(12000 * upload_mb) + 1)).encode()[: int(upload_mb * 2**20)]
        boundary = "kb-bench"
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.txt\"\r\n"
                f"Content-Type: text/plain\r\n\r\n").encode() + big + f"\r\n--{boundary}--\r\n".encode()
        upload: dict = {}

        def send_big():
            upload["began"] = time.perf_counter()
            upload["status"], upload["ms"] = request(port, "POST", "/api/documents", body,
                                                     f"multipart/form-data; boundary={boundary}", timeout=3600)

        uploader = threading.Thread(target=send_big)
        uploader.start()
        time.sleep(2.0)  # let it reach the embedding
        stop_upload = threading.Event()
        watcher = threading.Thread(target=lambda: (uploader.join(), stop_upload.set()))
        watcher.start()
        moments: list = []
        during_upload = searches(port, questions, "upload", stop=stop_upload, pause=pause, when=moments)
        watcher.join()
        slowest = sorted(moments, key=lambda m: -m[1])[:3]
        print(f"{embedding}: slowest searches during the {upload['ms'] / 1000:.1f} s upload: " + ", ".join(
            f"{ms:.0f} ms at {began - upload['began']:.1f} s" for began, ms in slowest), flush=True)

        def clients(count: int, per_client: int) -> float:
            def one(c: int) -> None:
                for n in range(per_client):
                    assert request(port, "POST", "/api/documents", note(n, f"g{count}-{c}"))[0] == 201

            threads = [threading.Thread(target=one, args=(c,)) for c in range(count)]
            t = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            return count * per_client / (time.perf_counter() - t)

        one_client, four_clients = clients(1, 12), clients(4, 12)
        rss_after, peak = status_mb(process.pid, "VmRSS"), status_mb(process.pid, "VmHWM")
        worker_rss, worker_peak = children_mb(process.pid, "VmRSS"), children_mb(process.pid, "VmHWM")
    finally:
        process.terminate()
        process.wait(timeout=60)
    index_mb = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 2**20
    return {"passages": passages, "embedding": embedding, "worker_rss": worker_rss, "worker_peak": worker_peak,
            "made_s": made, "idle": idle, "write": write_ms, "delete": delete_ms,
            "during_writes": during_writes, "streamed": streamed, "during_upload": during_upload, "upload": upload,
            "writes_per_s_1": one_client, "writes_per_s_4": four_clients, "rss_before": rss_before,
            "rss_after": rss_after, "peak": peak, "index_mb": index_mb}


def quality(prepared_collection, work: Path) -> None:
    """Cranfield hybrid nDCG@10: 1,400 single-document API writes against one `kb build`, same run."""
    from kb.evaluation.datasets import Collection
    from kb.evaluation.metrics import score_store

    # Two Cranfield records (471, 995) have no text: the API refuses them (400), so both sides leave them out.
    collection = Collection(prepared_collection.name, [d for d in prepared_collection.documents if d.text.strip()],
                            prepared_collection.queries, prepared_collection.qrels)
    embedder = get_embedder()
    built = Settings.from_env(index_dir=work / "q-build", corpus_dir=work / "q-corpus")
    shutil.rmtree(built.index_dir, ignore_errors=True)
    (work / "q-corpus").mkdir(parents=True, exist_ok=True)
    build_index(built, embedder=embedder, documents=collection.documents)
    by_build = score_store(collection, open_current(built), embedder, built, ["hybrid"])["hybrid"]
    api = work / "q-api"
    shutil.rmtree(api, ignore_errors=True)
    (api / "corpus").mkdir(parents=True)
    process, port = start(api)
    try:
        began = time.perf_counter()
        for d in collection.documents:
            body = json.dumps({"id": d.id, "title": d.title, "text": d.text}).encode()
            assert request(port, "POST", "/api/documents", body)[0] == 201
        seconds = time.perf_counter() - began
    finally:
        process.terminate()
        process.wait(timeout=60)
    api_settings = Settings.from_env(index_dir=api, corpus_dir=api / "corpus")
    by_api = score_store(collection, open_current(api_settings), embedder, api_settings, ["hybrid"])["hybrid"]
    print(f"\nCranfield hybrid nDCG@10: {by_build['nDCG@10']:.4f} after one kb build, {by_api['nDCG@10']:.4f} after "
          f"{len(collection.documents)} single-document API writes ({seconds:.0f} s, "
          f"{len(collection.documents) / seconds:.1f} writes/s); difference {by_api['nDCG@10'] - by_build['nDCG@10']:+.4f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1000,10000,100000", help="passages; 'none' for --quality alone")
    parser.add_argument("--embedding", default="process,inline", help="KB_WRITE_EMBEDDING values to compare")
    parser.add_argument("--writes", type=int, default=30)
    parser.add_argument("--upload-mb", type=float, default=5.0, help="size of the large upload")
    parser.add_argument("--pause", type=float, default=0.0,
                        help="seconds between searches during the upload (0: back to back, which starves a "
                             "lower-priority worker of CPU)")
    parser.add_argument("--quality", action="store_true")
    parser.add_argument("--work", default=None)
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="kb-writes-"))
    collection = load_cranfield(CRANFIELD)
    settings = Settings.from_env()
    embedder = embedder_for(settings)
    sizes = [int(size) for size in args.sizes.split(",") if size.strip() and size.strip() != "none"]
    rows = []
    if sizes:
        began = time.perf_counter()
        prepared = prepare(collection.documents, embedder, settings)
        print(f"embedded {sum(len(p.passages) for p in prepared)} Cranfield passages in "
              f"{time.perf_counter() - began:.0f} s")
        questions = list(collection.queries.values())
        rows = [measure(size, prepared, questions, args.writes, work, embedding, args.upload_mb, args.pause)
                for size in sizes for embedding in args.embedding.split(",")]
    print(f"\n(large upload: {args.upload_mb:g} MB; searches during it {args.pause:g} s apart)")
    print("\n| passages | writes embedded | write p50 / p95 ms | delete p50 / p95 ms | search idle p50 / p95 / max ms "
          "| during writes | during the large upload | upload s | writes/s 1 client / 4 clients |")
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['passages']:,} | {r['embedding']} | {statistics.median(r['write']):.0f} / {percentile(r['write'], 0.95):.0f} "
              f"| {statistics.median(r['delete']):.0f} / {percentile(r['delete'], 0.95):.0f} | {summary(r['idle'])} "
              f"| {summary(r['during_writes'])} | {summary(r['during_upload'])} | {r['upload'].get('ms', 0) / 1000:.0f} "
              f"| {r['writes_per_s_1']:.1f} / {r['writes_per_s_4']:.1f} |")
    print("\n| passages | writes embedded | server RSS before writes MiB | after | peak | worker RSS / peak MiB "
          "| store on disk MiB (every file) | set-up s |")
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['passages']:,} | {r['embedding']} | {r['rss_before']:.0f} | {r['rss_after']:.0f} | {r['peak']:.0f} "
              f"| {r['worker_rss']:.0f} / {r['worker_peak']:.0f} "
              f"| {r['index_mb']:.0f} | {r['made_s']:.0f} |")
    if args.quality:
        quality(collection, work)


if __name__ == "__main__":
    main()
