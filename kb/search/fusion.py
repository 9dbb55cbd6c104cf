"""How hybrid mode fuses the dense and the keyword list into one ranking (KB_FUSION, KB_HYBRID_WEIGHT).

zscore and minmax: a weighted sum of each list's scores, normalized over the candidates; rrf: reciprocal rank
fusion. Every candidate carries both exact scores (kb/stores/base.py's Candidates), so nothing is guessed.
"""

from __future__ import annotations

import numpy as np

RRF_K = 60  # the constant from Cormack et al. (2009)


def fuse(dense: np.ndarray, keyword: np.ndarray, fusion: str, weight: float) -> np.ndarray:
    """The fused score of each candidate (``weight`` is the dense list's share in zscore and minmax)."""
    if fusion == "rrf":
        return 1.0 / (RRF_K + ranks(dense)) + 1.0 / (RRF_K + ranks(keyword))
    normalize = zscore if fusion == "zscore" else minmax
    return weight * normalize(dense) + (1 - weight) * normalize(keyword)


def ranks(values: np.ndarray) -> np.ndarray:
    """1-based rank of each value, highest first."""
    ranked = np.empty(len(values), dtype=np.int64)
    ranked[np.argsort(-values, kind="stable")] = np.arange(1, len(values) + 1)
    return ranked


def minmax(values: np.ndarray) -> np.ndarray:
    low, high = float(values.min()), float(values.max())
    if high - low < 1e-9:
        return np.ones_like(values)
    return (values - low) / (high - low)


def zscore(values: np.ndarray) -> np.ndarray:
    spread = float(values.std())
    if spread < 1e-9:
        return np.zeros_like(values)
    return (values - float(values.mean())) / spread
