"""Where a query's milliseconds go: each stage of /api/search timed inside the app, as `kb serve` runs it.

    .venv/bin/python benchmarks/query_profile.py [--questions 100] [--rounds 3]

The app is made as `kb serve` makes it (create_app over KB_INDEX_DIR, default index/; run
`kb build` first; with torch, the micro-batcher on a thread of its own as `kb serve` runs it on
its main thread; with ONNX Runtime, each request embeds its own query), and asked --questions different Cranfield questions (never asked before) through
Flask's test client, --rounds times with fresh question texts. Each stage is timed by wrapping the
function that does it, so the figures are the stages' own wall time per query:
- encode, engine: ONNX Runtime (or torch) on the query text (tokenize, forward, pool);
- encode, hand-off: the rest of Embedder.encode_query (the micro-batcher's queue, the cache);
- candidates: the dense search and BM25 over all passages (the store's snapshot.candidates);
- fusion and feedback: Searcher._rank (z-score fusion, pseudo-relevance feedback re-scoring);
- records: fetching the top passages' text and metadata;
- highlights: annotate (answering sentences and query words);
- the rest of Searcher.answer (hits, snapshot, the answer cache);
- to JSON: Answer.json_text (the response body);
- Flask: the rest of the request (routing, validation, the test client).
What waitress and the socket add is the HTTP p50 of benchmarks/serving.py minus this total.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
import urllib.parse
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

spent: dict[str, float] = defaultdict(float)


def timed(owner, name: str, stage: str) -> None:
    original = getattr(owner, name)

    def wrapper(*args, **kwargs):
        began = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            spent[stage] += time.perf_counter() - began

    setattr(owner, name, wrapper)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--questions", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    import kb
    import kb.search.pipeline
    from kb.embedding.embedder import Embedder
    from kb.embedding.onnx_encoder import OnnxEncoder
    from kb.evaluation.datasets import load_cranfield
    from kb.settings import Settings
    from kb.stores.faiss.store import FaissSnapshot
    from web.app import create_app

    settings = Settings.from_env()
    for owner, name, stage in [
        (OnnxEncoder, "encode", "encode, engine"), (Embedder, "_torch_encode", "encode, engine"),
        (Embedder, "encode_query", "encode, all"), (FaissSnapshot, "candidates", "candidates (dense + BM25)"),
        (kb.search.pipeline.Searcher, "_rank", "fusion and feedback"), (FaissSnapshot, "records", "records"),
        (kb.search.pipeline, "annotate", "highlights"), (kb.search.pipeline.Searcher, "answer", "answer, all"),
        (kb.search.pipeline.Answer, "json_text", "to JSON"),
    ]:
        timed(owner, name, stage)
    app = create_app(settings, base=kb.open(settings, serving=True))  # the front door, as kb serve opens it
    embedder = app.extensions["kb"].embedder
    stop = threading.Event()
    if embedder.wants_model_thread:  # as kb serve: torch embeds on a thread of its own, ONNX Runtime on the request's
        threading.Thread(target=embedder.batcher.run_forever, kwargs={"should_stop": stop.is_set, "poll": 0.05},
                         daemon=True).start()
    client = app.test_client()
    questions = list(load_cranfield(REPO / "benchmarks" / "data" / "cranfield").queries.values())[: args.questions]
    rounds: list[dict[str, float]] = []
    for r in range(args.rounds):
        spent.clear()
        totals = []
        for question in questions:
            began = time.perf_counter()
            response = client.get("/api/search?" + urllib.parse.urlencode({"q": f"{question} [{os.getpid()}.{r}]", "k": 5}))
            totals.append(time.perf_counter() - began)
            assert response.status_code == 200, response.status_code
        n = len(questions)
        stages = {stage: seconds / n * 1000 for stage, seconds in spent.items()}
        stages["request, all"] = sum(totals) / n * 1000
        stages["request p50"] = statistics.median(totals) * 1000
        rounds.append(stages)
    stop.set()
    best = min(rounds, key=lambda stages: stages["request, all"])
    rows = [
        ("encode, engine", best["encode, engine"]),
        ("encode, the rest: micro-batcher and query cache", best["encode, all"] - best["encode, engine"]),
        ("candidates: dense + BM25 over all passages", best["candidates (dense + BM25)"]),
        ("fusion and feedback", best["fusion and feedback"]),
        ("records", best["records"]),
        ("highlights", best["highlights"]),
        ("rest of the search (hits, snapshot, answer cache)", best["answer, all"] - best["encode, all"]
         - best["candidates (dense + BM25)"] - best["fusion and feedback"] - best["records"] - best["highlights"]),
        ("to JSON (Answer.json_text)", best["to JSON"]),
        ("Flask (routing, validation, test client)", best["request, all"] - best["answer, all"] - best["to JSON"]),
    ]
    print(f"engine: {'ONNX Runtime' if embedder.onnx is not None else 'torch'}; "
          f"{len(questions)} questions, best of {args.rounds} rounds; mean ms per query\n")
    print("| stage | ms | share |")
    print("| --- | ---: | ---: |")
    for stage, ms in rows:
        print(f"| {stage} | {ms:.2f} | {ms / best['request, all']:.0%} |")
    print(f"| **request, in the app (mean)** | **{best['request, all']:.2f}** | 100% |")
    print(f"\nrequest p50 in the app: {best['request p50']:.2f} ms")


if __name__ == "__main__":
    main()
