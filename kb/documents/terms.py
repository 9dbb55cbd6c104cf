"""The words kb indexes and marks: lower-cased, stop words left out, Snowball-stemmed; and BM25's parameters.

Every part that scores or marks words uses these: both stores' BM25 (the FAISS store's in memory, PostgreSQL's
in SQL), a passage's keyword terms when it is prepared, and the query words marked in a result. The scores
match bm25s's "lucene" method, which kb used before: idf = ln(1 + (N - df + 0.5) / (df + 0.5)),
tf / (tf + k1 (1 - b + b dl / avgdl)), k1 1.5, b 0.75.
"""

from __future__ import annotations

import re
import sys
from array import array
from functools import lru_cache

K1, B = 1.5, 0.75
STEMMED_TEXTS = 4096  # passages whose stemmed words are kept for marking query words
_WORD = re.compile(r"(?u)\b\w\w+\b")  # the word pattern kb has always used (bm25s's)


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
    offsets, stems = _stemmed_words(text)
    return [(offsets[2 * i], offsets[2 * i + 1], text[offsets[2 * i]:offsets[2 * i + 1]])
            for i, stem in enumerate(stems) if stem in wanted]


@lru_cache(maxsize=STEMMED_TEXTS)
def _stemmed_words(text: str) -> tuple[array, tuple[str, ...]]:
    """Every indexed word of a text as (start, end) offsets and its stem, worked out once per text.

    The same passages come back query after query, and stemming their words was most of the cost
    of marking query words (0.9 ms of a seed query, benchmarks/README.md). Compact: offsets in one
    array, stems interned (a passage of 150 words costs about 2 KiB).
    """
    stops = _stopwords()
    matches = [m for m in _WORD.finditer(text) if m.group().lower() not in stops]
    stems = _stemmer().stemWords([m.group().lower() for m in matches])  # one call into C, not one per word
    offsets = array("q", [n for m in matches for n in m.span()])
    return offsets, tuple(sys.intern(stem) for stem in stems)
