"""What storing sentence vectors as int8 instead of float16 changes: bytes, and which sentences get marked.

    .venv/bin/python benchmarks/sentence_vectors.py [--work /tmp/kb-query-scale]

Cranfield's abstracts are prepared by kb (chunked and embedded by the real model, as in
benchmarks/query_scale.py, whose scratch copy in --work is reused). For each of the 225
Cranfield questions and each passage of a document judged relevant to it, the sentences kb
would mark (kb/search/highlights.py's rule: the best, and a second within 0.05 of it) are chosen twice:
from the float16 vectors kb stores by default, and from the same vectors stored as int8
(kb/stores/sentence_vectors.py). Reported: bytes per sentence, how often the marked sentences are the
same, how often the best sentence is, and the largest change of a similarity.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from query_scale import prepared_cranfield  # noqa: E402

from kb.embedding.embedder import embedder_for  # noqa: E402
from kb.evaluation.datasets import load_cranfield  # noqa: E402
from kb.search.highlights import MAX_MARKED, NEAR_BEST  # noqa: E402
from kb.settings import Settings  # noqa: E402
from kb.stores.sentence_vectors import pack, unpack  # noqa: E402


def marked(vectors: np.ndarray, query: np.ndarray) -> tuple[int, ...]:
    similarity = vectors @ query
    best = float(similarity.max())
    return tuple(sorted(int(i) for i in np.argsort(-similarity)[:MAX_MARKED] if similarity[i] >= best - NEAR_BEST))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--work", default="/tmp/kb-query-scale")
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    settings = Settings.from_env(index_dir=work / "prep", corpus_dir=work / "corpus")
    prepared = {item.document.id: item for item in prepared_cranfield(work, settings)}
    collection = load_cranfield(REPO / "benchmarks" / "data" / "cranfield")
    ids = list(collection.queries)
    queries = embedder_for(settings).encode([collection.queries[i] for i in ids])
    pairs = same_set = same_best = 0
    worst = 0.0
    sizes = {"float16": 0, "int8": 0}
    sentences = 0
    for query_id, query in zip(ids, queries):
        for doc_id, gain in collection.qrels.get(query_id, {}).items():
            if gain <= 0 or doc_id not in prepared:
                continue
            for passage in prepared[doc_id].passages:
                if not len(passage.sentence_spans):
                    continue
                half = unpack(pack(passage.sentence_vectors, "float16"), len(passage.sentence_spans))
                byte = unpack(pack(passage.sentence_vectors, "int8"), len(passage.sentence_spans))
                a, b = marked(half, query), marked(byte, query)
                pairs += 1
                same_set += a == b
                same_best += int(np.argmax(half @ query)) == int(np.argmax(byte @ query))
                worst = max(worst, float(np.abs(half @ query - byte @ query).max()))
    for item in prepared.values():
        for passage in item.passages:
            sentences += len(passage.sentence_spans)
            for kind in sizes:
                sizes[kind] += len(pack(passage.sentence_vectors, kind))
    print(f"{pairs:,} (question, relevant passage) pairs; {sentences:,} sentences in {len(prepared):,} documents")
    print("| stored as | bytes per sentence | marked sentences the same as float16 | best sentence the same "
          "| largest change of a similarity |")
    print("| --- | ---: | ---: | ---: | ---: |")
    print(f"| float16 | {sizes['float16'] / sentences:.0f} | - | - | - |")
    print(f"| int8 | {sizes['int8'] / sentences:.1f} | {same_set / pairs:.2%} | {same_best / pairs:.2%} | {worst:.4f} |")


if __name__ == "__main__":
    main()
