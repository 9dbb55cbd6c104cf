"""Question sets written from a corpus: a hit is a returned passage that contains the evidence text.

Judging by evidence text rather than passage ids keeps a question set valid when chunking changes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from kb.search.hit import Hit


@dataclass(frozen=True)
class Question:
    q: str
    evidence: str | None  # None for an off-topic question that nothing should answer
    kind: str = "paraphrase"
    split: str = "tune"  # "tune": settings may be chosen on it; "test": held out, only measured


def load_questions(path: Path, split: str | None = None) -> list[Question]:
    """The questions of a set, or only those of one split ("tune" or "test")."""
    questions = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            questions.append(Question(row["q"], row.get("evidence"), row.get("kind", "paraphrase"),
                                      row.get("split", "tune")))
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path} line {number}: expected {{\"q\": ..., \"evidence\": ...}} ({exc})") from None
    return [q for q in questions if split is None or q.split == split]


def _normal(text: str) -> str:
    return " ".join(text.split()).casefold()


def first_hit_rank(hits: Sequence[Hit], evidence: str) -> int | None:
    """1-based rank of the first hit whose passage contains the evidence text, or None."""
    needle = _normal(evidence)
    for position, hit in enumerate(hits, 1):
        if needle in _normal(hit.text):
            return position
    return None


def hit_rates(
    search: Callable[[str, int], Sequence[Hit]], questions: Sequence[Question], depth: int = 5
) -> dict[str, float]:
    """hit@1, hit@3 and MRR@depth over the answerable questions."""
    ranks = [first_hit_rank(search(q.q, depth), q.evidence) for q in questions if q.evidence]
    n = len(ranks) or 1
    return {
        "questions": len(ranks),
        "hit@1": sum(r == 1 for r in ranks if r) / n,
        "hit@3": sum(r <= 3 for r in ranks if r) / n,
        f"mrr@{depth}": sum(1 / r for r in ranks if r) / n,
    }
