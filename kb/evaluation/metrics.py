"""`kb eval`: retrieval quality of every mode on the same queries, in one run.

Collections (Cranfield, BEIR) are scored with trec_eval's measures through pytrec_eval:
nDCG@10 with graded gains, Recall@10, Recall@100 and MRR@10 over documents (a document
ranks where its best passage ranks). Question sets written from a corpus are scored by
hit@1, hit@3 and MRR@5, judging a hit by the evidence text, and calibrate the
"no good match" threshold on their on- and off-topic questions.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import pytrec_eval

from kb.embedding.embedder import Embedder
from kb.evaluation.datasets import Collection, load_collection
from kb.evaluation.questions import Question, first_hit_rank, load_questions
from kb.ingestion.sync import ProgressFactory, build_index
from kb.search.pipeline import Searcher
from kb.settings import MODES, Settings
from kb.stores import evaluation_settings, open_store
from kb.stores.base import Store

MEASURES = {"ndcg_cut.10": "nDCG@10", "recall.10": "Recall@10", "recall.100": "Recall@100"}


def trec_metrics(qrels: dict[str, dict[str, int]], run: dict[str, list[str]]) -> dict[str, float]:
    """Mean nDCG@10, Recall@10, Recall@100 and MRR@10 over the judged queries of a ranked run."""
    judged = {q: r for q, r in qrels.items() if r}
    scored = {q: {d: float(len(docs) - i) for i, d in enumerate(docs)} for q, docs in run.items() if q in judged}
    for q in judged:
        scored.setdefault(q, {})
    per_query = pytrec_eval.RelevanceEvaluator(judged, set(MEASURES)).evaluate(scored)
    top10 = {q: dict(list(docs.items())[:10]) for q, docs in scored.items()}
    mrr = pytrec_eval.RelevanceEvaluator(judged, {"recip_rank"}).evaluate(top10)
    n = len(judged)
    result = {name: sum(per_query[q][m.replace(".", "_")] for q in judged) / n for m, name in MEASURES.items()}
    result["MRR@10"] = sum(mrr[q]["recip_rank"] for q in judged) / n
    return result


def evaluate_collection(
    collection: Collection, settings: Settings, embedder: Embedder, modes: Sequence[str] = MODES,
    progress: ProgressFactory | None = None,
) -> dict[str, dict[str, float]]:
    """Build (or reuse) an index of the collection and score each mode on its judged queries.

    ``progress`` is the same progress-bar factory `kb build` takes (the embedding can take minutes).
    """
    eval_settings = evaluation_settings(settings, collection.name)
    build_index(eval_settings, embedder=embedder, documents=collection.documents, progress=progress)
    store = open_store(eval_settings, expected_model=settings.model)
    try:
        return score_store(collection, store, embedder, settings, modes)
    finally:
        store.close()


def score_store(collection: Collection, store: Store, embedder: Embedder, settings: Settings,
                modes: Sequence[str] = MODES) -> dict[str, dict[str, float]]:
    """Each mode's measures on the collection's judged queries, over a store that holds its documents."""
    results = {}
    queries = {q: text for q, text in collection.queries.items() if collection.qrels.get(q)}
    searcher = Searcher(store, embedder, settings)
    for mode in modes:
        run: dict[str, list[str]] = {}
        began = time.perf_counter()
        for query_id, text in queries.items():
            hits = searcher.answer(text, k=300, mode=mode, highlights=False).hits
            run[query_id] = list(dict.fromkeys(h.doc_id for h in hits))[:100]
        took = (time.perf_counter() - began) * 1000 / max(1, len(queries))
        results[mode] = {**trec_metrics(collection.qrels, run), "ms/query": took, "queries": len(queries)}
    return results


@dataclass
class Calibration:
    threshold: float
    accuracy: float
    on_topic_min: float
    on_topic_mean: float
    off_topic_max: float
    off_topic_mean: float


def calibrate(on_topic: Sequence[float], off_topic: Sequence[float]) -> Calibration:
    """The threshold on the top passage's cosine that best separates on- from off-topic questions."""
    candidates = sorted(set(on_topic) | set(off_topic))
    cuts = [(a + b) / 2 for a, b in zip(candidates, candidates[1:])] or candidates
    total = len(on_topic) + len(off_topic)

    def accuracy(cut: float) -> float:
        return (sum(s >= cut for s in on_topic) + sum(s < cut for s in off_topic)) / total

    best = max(cuts, key=lambda cut: (accuracy(cut), -abs(cut - 0.5)))
    return Calibration(
        threshold=round(best, 4), accuracy=accuracy(best),
        on_topic_min=min(on_topic), on_topic_mean=sum(on_topic) / len(on_topic),
        off_topic_max=max(off_topic), off_topic_mean=sum(off_topic) / len(off_topic),
    )


def evaluate_questions(
    questions: Sequence[Question], store: Store, embedder: Embedder, settings: Settings, modes: Sequence[str] = MODES
) -> tuple[dict[str, dict[str, float]], Calibration]:
    searcher = Searcher(store, embedder, settings)
    answerable = [q for q in questions if q.evidence]
    results = {}
    for mode in modes:
        ranks = []
        began = time.perf_counter()
        for question in answerable:
            ranks.append(first_hit_rank(searcher.answer(question.q, 5, mode, highlights=False).hits, question.evidence))
        took = (time.perf_counter() - began) * 1000 / max(1, len(answerable))
        n = len(ranks) or 1
        results[mode] = {
            "hit@1": sum(r == 1 for r in ranks if r) / n,
            "hit@3": sum(r <= 3 for r in ranks if r) / n,
            "MRR@5": sum(1 / r for r in ranks if r) / n,
            "ms/query": took,
            "queries": len(ranks),
        }
    top = {q.q: searcher.answer(q.q, 1, "dense", highlights=False).hits[0].scores["dense"] for q in questions}
    calibration = calibrate([top[q.q] for q in answerable], [top[q.q] for q in questions if not q.evidence])
    return results, calibration


def table(title: str, results: dict[str, dict[str, float]]) -> str:
    columns = [c for c in next(iter(results.values())) if c != "queries"]
    lines = [f"{title} ({next(iter(results.values()))['queries']} queries)",
             "| mode | " + " | ".join(columns) + " |", "| --- |" + " ---: |" * len(columns)]
    for mode, row in results.items():
        cells = [f"{row[c]:.1f}" if c == "ms/query" else f"{row[c]:.3f}" for c in columns]
        lines.append(f"| {mode} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def evaluate(path: Path, settings: Settings, modes: Sequence[str], progress: ProgressFactory | None = None
             ) -> tuple[dict, str]:
    """`kb eval`: a question set (.jsonl, scored against the current index) or a collection (its own index);
    (the figures as JSON, the same as a table for people)."""
    from kb.embedding.embedder import embedder_for

    path = Path(path)
    if path.suffix == ".jsonl":
        store = open_store(settings, expected_model=settings.model)  # before the model: a missing index is quick
        try:
            results, c = evaluate_questions(load_questions(path), store, embedder_for(settings), settings, modes)
        finally:
            store.close()
        text = (f"{table(f'{path.name} against {settings.index_dir}', results)}\n\n"
                f"no-good-match threshold on the top passage's cosine: {c.threshold:.3f} (accuracy {c.accuracy:.1%}; "
                f"on-topic min {c.on_topic_min:.3f} mean {c.on_topic_mean:.3f}; off-topic max {c.off_topic_max:.3f} "
                f"mean {c.off_topic_mean:.3f}; KB_CONFIDENCE_THRESHOLD is {settings.confidence_threshold})")
        return {"dataset": str(path), "results": results, "calibration": vars(c)}, text
    collection = load_collection(path)
    results = evaluate_collection(collection, settings, embedder_for(settings), modes, progress=progress)
    return {"dataset": collection.name, "results": results}, table(collection.name, results)
