"""kb/stores/bm25.py: MaxScore gives exactly what adding up every posting gives, and reads less."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from kb.stores.bm25 import Run, Term, bound_of, rank, weights


def brute_force(terms: list[Term], average: float) -> dict[int, float]:
    scores: dict[int, float] = {}
    for term in terms:
        for run in term.runs:
            for key, tf, length in zip(run.keys.tolist(), run.tf.tolist(), run.lengths_at(slice(None)).tolist()):
                scores[key] = scores.get(key, 0.0) + term.idf * tf / (tf + 1.5 * (1 - 0.75 + 0.75 * length / average))
    return scores


def make_terms(rng: np.random.Generator, passages: int, count: int, runs: int, spread: int, reference: float) -> list[Term]:
    """Random postings: ``count`` terms, each split into ``runs`` runs over disjoint keys (as segments are)."""
    keys = np.sort(rng.choice(passages * spread, size=passages, replace=False)).astype(np.int64)
    lengths = rng.integers(1, 60, size=passages).astype(np.float32)
    parts = rng.integers(0, runs, size=passages)
    terms = []
    for _ in range(count):
        holds = rng.random(passages) < rng.uniform(0.02, 0.9)  # rare and common terms
        tf = rng.integers(1, 6, size=passages).astype(np.float32)
        term_runs = []
        for part in range(runs):
            mine = holds & (parts == part)
            term_runs.append(Run(keys[mine], tf[mine], lengths[mine], bound_of(tf[mine], lengths[mine], reference),
                                 reference))
        terms.append(Term(float(rng.uniform(0.1, 6.0)), term_runs))
    return terms


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), passages=st.integers(1, 300), count=st.integers(1, 8),
       runs=st.integers(1, 4), spread=st.sampled_from([1, 3, 1000]), depth=st.integers(1, 40),
       drift=st.sampled_from([0.5, 0.9, 1.0, 1.1, 2.0]), filtered=st.booleans(), spare=st.integers(0, 3))
def test_the_best_passages_and_their_scores_are_exactly_those_of_every_posting_added_up(
        seed, passages, count, runs, spread, depth, drift, filtered, spare):
    rng = np.random.default_rng(seed)
    average = 20.0
    terms = make_terms(rng, passages, count, runs, spread, reference=average * drift)  # bounds from another day
    expected = brute_force(terms, average)
    allowed = excluded = None
    if filtered:
        keys = np.array(sorted(expected), dtype=np.int64)
        allowed = np.sort(rng.choice(keys, size=len(keys) // 2, replace=False)) if len(keys) else keys
        excluded = np.sort(rng.choice(keys, size=len(keys) // 5, replace=False)) if len(keys) else keys
        expected = {k: v for k, v in expected.items() if k in set(allowed.tolist()) - set(excluded.tolist())}
    ranked = rank(terms, average, depth, allowed, excluded, spare)
    best = sorted(expected.items(), key=lambda item: (-item[1], item[0]))[: depth + spare]
    assert np.allclose(ranked.scores, [score for _, score in best], rtol=1e-5)  # (added up in float32)
    # Equal scores may come in either order among themselves; the keys must be the same otherwise.
    cut = best[-1][1] if best else 0.0
    assert {k for k, s in best if s > cut * (1 + 1e-5)} <= set(ranked.keys.tolist())
    probe = np.array(list(expected)[:10] + [-5], dtype=np.int64)
    assert np.allclose(ranked.scores_of(probe), [expected.get(k, 0.0) for k in probe.tolist()], rtol=1e-9)


def test_common_words_are_only_looked_up_not_added_up():
    """Two rare words decide the top ten; the common word's long list is read only for the passages that can rank."""
    rng = np.random.default_rng(3)
    n = 20_000
    keys = np.arange(n, dtype=np.int64)
    lengths = rng.integers(10, 40, size=n).astype(np.float32)

    def term(idf: float, share: float) -> Term:
        holds = rng.random(n) < share
        tf = rng.integers(1, 4, size=n).astype(np.float32)[holds]
        return Term(idf, [Run(keys[holds], tf, lengths[holds], bound_of(tf, lengths[holds], 25.0), 25.0)])

    terms = [term(7.0, 0.002), term(6.5, 0.003), term(0.4, 0.6), term(0.3, 0.7)]
    ranked = rank(terms, 25.0, 10)
    assert ranked.postings < ranked.total / 4  # the two common lists (about 26,000 postings) were not added up
    expected = brute_force(terms, 25.0)
    best = sorted(expected.values(), reverse=True)[:10]
    assert np.allclose(ranked.scores, best)


def test_a_bound_from_a_smaller_average_still_holds_when_passages_grow_longer():
    tf = np.array([1.0, 3.0, 2.0])
    lengths = np.array([5.0, 50.0, 12.0])
    bound = bound_of(tf, lengths, 10.0)
    run = Run(np.arange(3), tf, lengths, bound, 10.0)
    for average in (2.0, 10.0, 15.0, 40.0, 400.0):
        assert weights(tf, lengths, average).max() <= run.ceiling(average)


def test_no_terms_or_no_postings_rank_nothing():
    assert len(rank([], 10.0, 5).keys) == 0
    empty = Run(np.zeros(0, np.int64), np.zeros(0), np.zeros(0), 0.0, 10.0)
    ranked = rank([Term(2.0, [empty])], 10.0, 5)
    assert len(ranked.keys) == 0 and ranked.scores_of([1, 2]).tolist() == [0.0, 0.0]
