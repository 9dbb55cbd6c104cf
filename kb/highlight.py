"""Semantic highlights: the sentences of a passage that best answer the query, and the query words in it.

Sentences are embedded at query time with the same model (one batch for all shown hits)
and cached by text, so a sentence is embedded once per process however often it is shown.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np

from kb.chunk import sentence_spans
from kb.embed import Embedder
from kb.hit import Hit
from kb.keyword import term_spans

MAX_HIGHLIGHTED_HITS = 10  # sentences of lower hits are not embedded: they are rarely read
NEAR_BEST = 0.05  # a second sentence is marked when its similarity is this close to the best one


class Highlighter:
    def __init__(self, embedder: Embedder, cache_size: int = 20_000) -> None:
        self.embedder = embedder
        self.cache_size = cache_size
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def annotate(self, hits: list[Hit], query_vector: np.ndarray, query_terms: set[str]) -> None:
        """Fill each hit's ``highlights`` (absolute sentence spans) and ``terms`` (absolute word spans)."""
        shown = hits[:MAX_HIGHLIGHTED_HITS]
        per_hit = [[(hit.start + s, hit.start + e, hit.text[s:e]) for s, e in sentence_spans(hit.text)] for hit in shown]
        vectors = self._vectors([text for spans in per_hit for _, _, text in spans])
        for hit, spans in zip(shown, per_hit):
            if not spans:
                continue
            similarity = np.array([float(vectors[text] @ query_vector) for _, _, text in spans])
            best = float(similarity.max())
            chosen = [i for i in np.argsort(-similarity)[:2] if similarity[i] >= best - NEAR_BEST]
            hit.highlights = [
                {"start": spans[i][0], "end": spans[i][1], "score": round(float(similarity[i]), 4)} for i in sorted(chosen)
            ]
        for hit in hits:
            hit.terms = [
                {"start": hit.start + s, "end": hit.start + e, "term": word} for s, e, word in term_spans(hit.text, query_terms)
            ]

    def _vectors(self, texts: list[str]) -> dict[str, np.ndarray]:
        with self._lock:
            found = {t: self._cache[t] for t in texts if t in self._cache}
            for t in found:
                self._cache.move_to_end(t)
        missing = list(dict.fromkeys(t for t in texts if t not in found))
        if missing:
            fresh = self.embedder.encode(missing, batch_size=64)
            with self._lock:
                for text, vector in zip(missing, fresh):
                    self._cache[text] = found[text] = vector
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        return found
