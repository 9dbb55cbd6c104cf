"""Exact BM25 top-k over postings, for both stores: MaxScore, so a query reads the long lists of its common words
only for the passages that can still make the list.

A store hands over, for each query term, its postings as one or more ``Run``s (passage keys ascending,
how often the term occurs in each, each passage's length) with an upper bound of the term's weight in
the run. ``rank`` is MaxScore (Turtle & Flood 1995, as Lucene and PISA run disjunctions): terms are
taken by their highest possible contribution, largest first, and their postings are added up until
the contributions still to come from the rest cannot lift a passage that none of the added terms
matched above the k-th best score so far. Those rest terms (the common words, whose lists are the
longest) are then looked up only for the passages that can still reach the top k. The result is
exact: the same passages and scores as adding up every posting (kb/documents/terms.py's BM25), which
the store contract test checks against a brute-force oracle.

The weights come from the true statistics at query time (live passages, document frequencies, the
average length). A run's bound was worked out with the average length of its day (``reference``);
weights only grow when the average does, by at most the ratio of the two averages (see ``Run.ceiling``),
so a bound stays safe as the corpus changes, only looser.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from kb.documents.terms import K1, B

# Postings whose keys span more than this many times their number are added up through np.unique rather
# than in an array indexed by key (the PostgreSQL store's keys come from a sequence shared by generations).
DENSE_SPAN = 8
SAFETY = 1 + 1e-5  # bounds and thresholds are compared with this much room for rounding (scores add up in float32)
LOOKUP_COST = 8  # a binary search for one passage costs about as much as adding up this many postings


def idf(passages: int, df: int) -> float:
    """Lucene's BM25 idf: ln(1 + (N - df + 0.5) / (df + 0.5))."""
    return math.log(1.0 + (passages - df + 0.5) / (df + 0.5))


def weights(tf: np.ndarray, lengths: np.ndarray, average: float) -> np.ndarray:
    """tf / (tf + k1 (1 - b + b dl / avgdl)), per posting (float64)."""
    tf = np.asarray(tf, dtype=np.float64)
    return tf / (tf + K1 * (1.0 - B + B * np.asarray(lengths, dtype=np.float64) / average))


def bound_of(tf: np.ndarray, lengths: np.ndarray, average: float) -> float:
    """The highest weight among some postings, with a given average length (a run's ``bound``)."""
    return float(weights(tf, lengths, average).max()) if len(tf) else 0.0


@dataclass(frozen=True)
class Run:
    """One term's postings in one part of an index.

    ``lengths`` holds each posting's passage length or, with ``lengths_by_key``, every passage's length
    indexed by key (the FAISS store's slots), so a run costs nothing to hand over.
    """

    keys: np.ndarray  # ascending
    tf: np.ndarray
    lengths: np.ndarray
    bound: float  # the highest weight in the run, with the average length ``reference``
    reference: float
    lengths_by_key: bool = False

    def __len__(self) -> int:
        return len(self.keys)

    def ceiling(self, average: float) -> float:
        """An upper bound of every weight in the run with today's average length.

        With x = b dl, a weight is tf / (tf + k1 (1 - b) + k1 x / avgdl). Going from avgdl R to A multiplies
        the last term by R / A, so the denominator shrinks by at most that factor when A > R: the weight
        grows by at most A / R, and never grows when A <= R.
        """
        return self.bound * max(1.0, average / self.reference) * SAFETY if self.reference > 0 else 1.0

    def lengths_at(self, positions: np.ndarray | slice) -> np.ndarray:
        return self.lengths[self.keys[positions]] if self.lengths_by_key else self.lengths[positions]

    def weights(self, average: float) -> np.ndarray:
        return weights(self.tf, self.lengths_at(slice(None)), average)

    def lookup(self, keys: np.ndarray, average: float) -> np.ndarray:
        """The weight of each of ``keys`` in this run (0 where the run does not hold it)."""
        if not len(self.keys) or not len(keys):
            return np.zeros(len(keys))
        positions = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
        found = self.keys[positions] == keys
        positions = positions[found]
        out = np.zeros(len(keys))
        out[found] = weights(self.tf[positions], self.lengths_at(positions), average)
        return out


@dataclass
class Term:
    """One distinct query term: its weight in the query (idf times how often the query says it) and its runs."""

    idf: float
    runs: list[Run]

    def ceiling(self, average: float) -> float:
        return self.idf * max((run.ceiling(average) for run in self.runs if len(run)), default=0.0)

    def lookup(self, keys: np.ndarray, average: float) -> np.ndarray:
        total = np.zeros(len(keys))
        for run in self.runs:
            total += run.lookup(keys, average)
        return self.idf * total


@dataclass
class Ranked:
    """The best passages by BM25, best first (ties: the lower key first), and a way to score any others."""

    keys: np.ndarray
    scores: np.ndarray
    terms: list[Term]
    average: float
    postings: int = 0  # postings added up (the rest were looked up only for the passages that could still rank)
    total: int = 0  # postings of the query's terms

    def scores_of(self, keys: Sequence[int] | np.ndarray) -> np.ndarray:
        return scores_of(self.terms, self.average, keys)


def scores_of(terms: list[Term], average: float, keys: Sequence[int] | np.ndarray) -> np.ndarray:
    """The exact BM25 score of each key (0 for a passage without any query term)."""
    keys = np.asarray(keys, dtype=np.int64)
    total = np.zeros(len(keys))
    if average > 0:
        for term in terms:
            total += term.lookup(keys, average)
    return total


def rank(terms: list[Term], average: float, depth: int | None, allowed: np.ndarray | None = None,
         excluded: np.ndarray | None = None, spare: int = 0) -> Ranked:
    """The ``depth`` best passages (all that match, when None) among ``allowed`` keys (all, when None),
    leaving out ``excluded`` ones (both sorted), plus ``spare`` more for a caller that will drop some
    it knows nothing of here (deleted passages whose postings remain)."""
    terms = [t for t in terms if t.idf > 0 and any(len(r) for r in t.runs)]
    total = sum(len(r) for t in terms for r in t.runs)
    empty = Ranked(np.zeros(0, np.int64), np.zeros(0), terms, average, 0, total)
    if not terms or average <= 0:
        return empty
    ceilings = np.array([t.ceiling(average) for t in terms])
    order = np.argsort(-ceilings, kind="stable")
    terms = [terms[i] for i in order]
    ceilings = ceilings[order]
    rest_after = np.append(np.cumsum(ceilings[::-1])[::-1][1:], 0.0)  # ceilings still to come after each term
    added_before = np.cumsum(ceilings)  # the most any passage can have after each term
    wanted = None if depth is None else depth + spare
    accumulator = _Accumulator([r for t in terms for r in t.runs if len(r)], allowed, excluded)
    theta, added, postings = 0.0, len(terms), 0
    for j, term in enumerate(terms):
        for run in term.runs:
            if len(run):
                accumulator.add(run.keys, term.idf * run.weights(average))
                postings += len(run)
        if wanted is None or rest_after[j] == 0:
            continue
        if rest_after[j] * SAFETY >= added_before[j]:  # no passage can have more than the rest yet
            continue
        # A lower bound of the wanted-th best score, from the passages that hold the first or the latest term
        # (each term's runs hold a passage once: counting within one term never counts a passage twice).
        theta = max(theta, accumulator.threshold(wanted, terms[0].runs), accumulator.threshold(wanted, term.runs))
        if rest_after[j] * SAFETY < theta:
            added = j + 1
            break
    keys, partial = accumulator.items()
    # The rest, largest first: each is looked up only for the passages that can still reach the threshold, which
    # rises as their scores fill in. A list shorter than a few lookups' worth is added up instead.
    for j in range(added, len(terms)):
        if len(partial) >= wanted:
            theta = max(theta, float(np.partition(partial, len(partial) - wanted)[len(partial) - wanted]))
        keep = partial + rest_after[j - 1] * SAFETY >= theta / SAFETY
        keys, partial = keys[keep], partial[keep]
        term = terms[j]
        if accumulator.dense and LOOKUP_COST * len(keys) > sum(len(run) for run in term.runs):
            before = accumulator.scores[keys - accumulator.base]
            for run in term.runs:
                accumulator.add(run.keys, term.idf * run.weights(average))
                postings += len(run)
            partial = partial + (accumulator.scores[keys - accumulator.base] - before)
        else:
            partial = partial + term.lookup(keys, average)
    if wanted is not None and len(partial) > wanted:
        cut = np.partition(partial, len(partial) - wanted)[len(partial) - wanted]
        keep = partial >= cut  # the best ``wanted`` and any that tie with the last of them
        keys, partial = keys[keep], partial[keep]
    best = np.lexsort((keys, -partial))
    if wanted is not None:
        best = best[:wanted]
    return Ranked(keys[best], partial[best], terms, average, postings, total)


class _Accumulator:
    """Scores added up by key: in a float32 array indexed by key when the keys are dense enough (passages that may
    not rank hold -inf there), else through np.unique."""

    def __init__(self, runs: list[Run], allowed: np.ndarray | None, excluded: np.ndarray | None) -> None:
        self.allowed, self.excluded = allowed, excluded
        self.base = min(int(r.keys[0]) for r in runs)
        span = max(int(r.keys[-1]) for r in runs) - self.base + 1
        self.dense = span <= max(DENSE_SPAN * sum(len(r) for r in runs), 1 << 16)
        if self.dense:
            self.scores = np.zeros(span, np.float32) if allowed is None else np.full(span, -np.inf, np.float32)
            if allowed is not None:
                inside = allowed[(allowed >= self.base) & (allowed < self.base + span)]
                self.scores[inside - self.base] = 0.0
            if excluded is not None:
                inside = excluded[(excluded >= self.base) & (excluded < self.base + span)]
                self.scores[inside - self.base] = -np.inf
        else:
            self.parts: list[tuple[np.ndarray, np.ndarray]] = []

    def add(self, keys: np.ndarray, values: np.ndarray) -> None:
        if self.dense:
            self.scores[keys - self.base] += values  # a run holds each key once
        else:
            self.parts.append((np.asarray(keys, dtype=np.int64), values))

    def items(self) -> tuple[np.ndarray, np.ndarray]:
        """The keys that may rank and have a score so far, ascending, with their scores."""
        if self.dense:
            offsets = np.flatnonzero(self.scores > 0)
            return offsets + self.base, self.scores[offsets]
        if not self.parts:
            return np.zeros(0, np.int64), np.zeros(0)
        keys, inverse = np.unique(np.concatenate([k for k, _ in self.parts]), return_inverse=True)
        values = np.bincount(inverse, np.concatenate([v for _, v in self.parts]), len(keys))
        keep = np.ones(len(keys), dtype=bool)
        if self.allowed is not None:
            keep &= _member(keys, self.allowed)
        if self.excluded is not None and len(self.excluded):
            keep &= ~_member(keys, self.excluded)
        return keys[keep], values[keep]

    def threshold(self, wanted: int, runs: list[Run]) -> float:
        """The ``wanted``-th best score so far among the passages ``runs`` hold (0 when fewer have one): a lower
        bound of the ``wanted``-th best of all."""
        if self.dense:
            values = np.concatenate([self.scores[run.keys - self.base] for run in runs if len(run)])
            values = values[values > 0]
        else:
            keys, values = self.items()
            values = values[_member(keys, np.unique(np.concatenate([run.keys for run in runs])))]
        if len(values) < wanted:
            return 0.0
        return float(np.partition(values, len(values) - wanted)[len(values) - wanted])


def _member(keys: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    if not len(sorted_set):
        return np.zeros(len(keys), dtype=bool)
    positions = np.minimum(np.searchsorted(sorted_set, keys), len(sorted_set) - 1)
    return sorted_set[positions] == keys
