"""Semantic highlights: the sentences of a passage that best answer the query, and the query words in it.

Sentence vectors come from the index (late-chunked at build time from the passage's own
token embeddings), so highlighting costs a few dot products, not a model call.
"""

from __future__ import annotations

import numpy as np

from kb.documents.terms import term_spans
from kb.search.hit import Hit
from kb.stores.base import PassageRecord

NEAR_BEST = 0.05  # a second sentence is marked when its similarity is this close to the best one
MAX_MARKED = 2


def annotate(hits: list[Hit], records: list[PassageRecord], query_vector: np.ndarray, query_terms: set[str]) -> None:
    """Fill each hit's ``highlights`` (absolute sentence spans) and ``terms`` (absolute word spans).

    Only a confident hit gets answering sentences marked: a passage that does not answer the
    question should not look as if part of it does.
    """
    for hit, record in zip(hits, records):
        spans, vectors = record.sentence_spans, record.sentence_vectors
        if len(spans) and hit.confident:
            similarity = vectors @ query_vector
            best = float(similarity.max())
            chosen = [i for i in np.argsort(-similarity)[:MAX_MARKED] if similarity[i] >= best - NEAR_BEST]
            hit.highlights = [
                {"start": int(spans[i][0]), "end": int(spans[i][1]), "score": round(float(similarity[i]), 4)}
                for i in sorted(chosen)
            ]
        hit.terms = [
            {"start": hit.start + s, "end": hit.start + e, "term": word} for s, e, word in term_spans(hit.text, query_terms)
        ]
