"""Keyword search: BM25 (bm25s) over Snowball-stemmed words, saved beside the vectors.

bm25s keeps its scores as sparse matrices saved with NumPy (no pickle) and a JSON vocabulary,
so a build folder stays a folder of plain files.
"""

from __future__ import annotations

import json
import logging
import re
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np

FOLDER = "bm25"
_WORD = re.compile(r"(?u)\b\w\w+\b")  # the same word pattern bm25s uses



def _bm25s():
    import bm25s

    logging.getLogger("bm25s").setLevel(logging.WARNING)  # bm25s sets DEBUG on its logger when imported
    return bm25s


@lru_cache(maxsize=1)
def _stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")


@lru_cache(maxsize=1)
def _stopwords() -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_EN_PLUS

    return frozenset(STOPWORDS_EN_PLUS)


def terms(text: str) -> list[str]:
    """Lower-cased, stemmed, stop-word-free terms, as indexed."""
    words = [w for w in _WORD.findall(text.lower()) if w not in _stopwords()]
    return _stemmer().stemWords(words)


def term_spans(text: str, wanted: set[str]) -> list[tuple[int, int, str]]:
    """(start, end, word) of each word in text whose stem is in ``wanted``."""
    if not wanted:
        return []
    stops = _stopwords()
    matches = [m for m in _WORD.finditer(text) if m.group().lower() not in stops]
    stems = _stemmer().stemWords([m.group().lower() for m in matches])  # one call into C, not one per word
    return [(m.start(), m.end(), m.group()) for m, stem in zip(matches, stems) if stem in wanted]


NO_TERMS = "no_terms.json"  # written instead of bm25s's files when no passage has a single term


class KeywordIndex:
    """BM25 over passages; ``retriever`` is None when there is nothing to score (no passages, or
    only stop words), a normal state that bm25s itself cannot index."""

    def __init__(self, retriever, passages: int = 0) -> None:
        self.retriever = retriever
        self._passages = passages

    @classmethod
    def build(cls, texts: Sequence[str]) -> "KeywordIndex":
        # Tokenised with our own terms() so indexing and querying can never disagree.
        corpus = [terms(t) for t in texts]
        vocab: dict[str, int] = {}
        ids = [[vocab.setdefault(term, len(vocab)) for term in doc] for doc in corpus]
        if not vocab:
            return cls(None, len(texts))
        bm25s = _bm25s()
        retriever = bm25s.BM25(method="lucene")
        retriever.index(bm25s.tokenization.Tokenized(ids=ids, vocab=vocab), show_progress=False)
        return cls(retriever)

    def save(self, folder: Path) -> None:
        target = Path(folder) / FOLDER
        if self.retriever is None:
            target.mkdir(parents=True, exist_ok=True)
            (target / NO_TERMS).write_text(json.dumps({"num_docs": self._passages}), encoding="utf-8")
            return
        self.retriever.save(str(target), show_progress=False)

    @classmethod
    def load(cls, folder: Path) -> "KeywordIndex":
        marker = Path(folder) / FOLDER / NO_TERMS
        if marker.exists():
            passages = json.loads(marker.read_text(encoding="utf-8"))["num_docs"]
            if not isinstance(passages, int) or passages < 0:
                raise ValueError(f"{marker} holds no passage count")
            return cls(None, passages)
        return cls(_bm25s().BM25.load(str(Path(folder) / FOLDER), mmap=False))

    @property
    def size(self) -> int:
        if self.retriever is None:
            return self._passages
        return int(self.retriever.scores["num_docs"])

    def scores(self, query_terms: Sequence[str]) -> np.ndarray:
        """BM25 score of every passage for the query terms (zeros when none is indexed)."""
        if self.retriever is None:
            return np.zeros(self.size, dtype=np.float32)
        ids = self.retriever.get_tokens_ids(list(query_terms))
        if not ids:
            return np.zeros(self.size, dtype=np.float32)
        return np.asarray(self.retriever.get_scores_from_ids(ids), dtype=np.float32)
