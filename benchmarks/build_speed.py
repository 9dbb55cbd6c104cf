"""Embedding throughput of `kb build` against a bare SentenceTransformer.encode, same passages, one run.

    .venv/bin/python benchmarks/build_speed.py [--limit 1000] [--rounds 2]

Passages: the Cranfield abstracts chunked as kb chunks them (title and heading context
included). kb's path is Embedder.encode_passages (length-sorted batches, one forward pass
giving passage vectors and late-chunked sentence vectors); the baseline is
SentenceTransformer.encode(texts) with its default settings. Rounds alternate so machine
noise hits both alike; the best round of each is reported, with the ratio.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from kb.documents.chunking import chunk_text, document_structure, embedding_text, passage_limit
from kb.embedding.embedder import embedder_for
from kb.evaluation.datasets import load_cranfield
from kb.settings import Settings

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cranfield", default=str(REPO / "benchmarks" / "data" / "cranfield"))
    parser.add_argument("--limit", type=int, default=1000, help="passages to embed")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=None, help="kb's batch size (default KB_BATCH_SIZE)")
    args = parser.parse_args()
    settings = Settings.from_env()
    embedder = embedder_for(settings)
    batch = args.batch_size or settings.batch_size
    texts, spans = [], []
    for document in load_cranfield(Path(args.cranfield)).documents:
        structure = document_structure(document)
        limit = passage_limit(document, structure, embedder, settings)
        for passage in chunk_text(document.id, document.text, embedder.count_tokens, limit,
                                  settings.chunk_overlap, structure):
            text = embedding_text(document.title, passage)
            base = len(text) - len(passage.text)
            texts.append(text)
            spans.append([(base + a - passage.start, base + b - passage.start) for a, b in passage.sentences])
        if len(texts) >= args.limit:
            break
    texts, spans = texts[: args.limit], spans[: args.limit]
    embedder.encode(texts[:8])  # warm up
    best = {"kb": float("inf"), "bare": float("inf")}
    for _ in range(args.rounds):
        began = time.perf_counter()
        embedder.encode_passages(texts, spans, batch_size=batch)
        best["kb"] = min(best["kb"], time.perf_counter() - began)
        began = time.perf_counter()
        embedder.model.encode(texts)
        best["bare"] = min(best["bare"], time.perf_counter() - began)
    kb_rate, bare_rate = len(texts) / best["kb"], len(texts) / best["bare"]
    print(f"{len(texts)} passages, kb batch size {batch}, best of {args.rounds} rounds")
    print(f"kb build embedding (passages + sentence vectors): {kb_rate:.1f} passages/s")
    print(f"bare SentenceTransformer.encode (defaults):        {bare_rate:.1f} passages/s")
    print(f"ratio kb / bare: {kb_rate / bare_rate:.2f}")


if __name__ == "__main__":
    main()
