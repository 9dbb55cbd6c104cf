"""Sweep the hybrid fusion settings on Cranfield and the seed question set; prints one table.

    .venv/bin/python benchmarks/fusion_sweep.py [--chunk-tokens N] [--cranfield PATH]

The defaults in kb/settings.py (KB_FUSION, KB_HYBRID_WEIGHT) were picked from this table.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from kb.embedding.embedder import get_embedder
from kb.evaluation.datasets import load_collection
from kb.evaluation.metrics import evaluate_collection, evaluate_questions
from kb.evaluation.questions import load_questions
from kb.ingestion.sync import build_index
from kb.settings import Settings
from kb.stores.faiss.store import open_current

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cranfield", default=str(REPO / "benchmarks" / "data" / "cranfield"))
    parser.add_argument("--chunk-tokens", type=int, default=None)
    parser.add_argument("--chunk-overlap", type=int, default=None)
    parser.add_argument("--weights", default="0.5,0.6,0.7")
    parser.add_argument("--feedback", default="0,3,5")
    parser.add_argument("--feedback-weights", default="1.0,2.0")
    args = parser.parse_args()
    embedder = get_embedder()
    work = Path(tempfile.mkdtemp(prefix="kb-sweep-"))
    base = Settings.from_env(index_dir=work, chunk_tokens=args.chunk_tokens, chunk_overlap=args.chunk_overlap)
    cranfield = load_collection(Path(args.cranfield))
    build_index(base.with_(index_dir=work / "seed"), embedder=embedder)
    seed_index = open_current(base.with_(index_dir=work / "seed"))
    questions = load_questions(REPO / "benchmarks" / "data" / "seed_questions.jsonl", split="tune")  # never the held-out half

    variants = [("rrf", 0.5, 0, 0.0)]
    for fusion in ("minmax", "zscore"):
        for w in args.weights.split(","):
            for n in args.feedback.split(","):
                for beta in (args.feedback_weights.split(",") if int(n) else ["0"]):
                    variants.append((fusion, float(w), int(n), float(beta)))
    print(f"chunk_tokens={base.chunk_tokens} chunk_overlap={base.chunk_overlap}")
    print("| fusion | dense weight | feedback | weight | Cranfield nDCG@10 | R@100 | MRR@10 | seed hit@1 | hit@3 | MRR@5 |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for fusion, weight, feedback, beta in variants:
        settings = base.with_(fusion=fusion, hybrid_weight=weight, feedback=feedback, feedback_weight=beta)
        c = evaluate_collection(cranfield, settings, embedder, ["hybrid"])["hybrid"]
        s, _ = evaluate_questions(questions, seed_index, embedder, settings, ["hybrid"])
        s = s["hybrid"]
        print(f"| {fusion} | {weight if fusion != 'rrf' else '-'} | {feedback} | {beta} | {c['nDCG@10']:.3f} | {c['Recall@100']:.3f} "
              f"| {c['MRR@10']:.3f} | {s['hit@1']:.3f} | {s['hit@3']:.3f} | {s['MRR@5']:.3f} |", flush=True)


if __name__ == "__main__":
    main()
