"""The FAISS store's keyword index: BM25 (kb/documents/terms.py) in memory, updated one passage at a time.

Postings grow in place as passages arrive; a deleted passage's postings stay until the index is
rebuilt, but its terms leave the document frequencies and its length leaves the average at
once, so the statistics are always exactly those of the live passages (what a full rebuild
would compute). A query hands the postings of its terms to kb/stores/bm25.py, which ranks them
exactly and reads the long lists of common words only for the passages that can still make the list.

An FTS5 table in the store was measured first and rejected: its bm25() took 117 ms a query at
20,000 passages against 0.25 ms here (docs/architecture.md).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from kb.documents.terms import terms
from kb.stores.bm25 import Run, Term, bound_of, idf, rank
from kb.stores.faiss.growable import Growable

FOLDER = "bm25"
REBASE = 0.1  # a term's weight bound is worked out afresh when the average length has moved this much


class KeywordIndex:
    """BM25 over numbered slots (the same numbers the vector index uses)."""

    def __init__(self) -> None:
        self.vocab: dict[str, int] = {}
        self._slots: list[Growable] = []  # per term: the slots that hold it
        self._counts: list[Growable] = []  # per term: how often each of those slots holds it
        self.df = Growable(np.int64)  # per term: live slots that hold it
        self.lengths = Growable(np.float32)  # per slot: terms in it (0 once deleted)
        self.alive = Growable(np.bool_)
        self._slot_terms = Growable(np.int32)  # the term ids of every slot, back to back
        self._slot_offsets = Growable(np.int64, [0])
        self.live = 0
        self.total_length = 0.0
        self._bounds: dict[int, tuple[float, float, int]] = {}  # term id: (bound, reference, postings covered)

    @classmethod
    def build(cls, texts: Sequence[str]) -> "KeywordIndex":
        index = cls()
        for slot, text in enumerate(texts):
            index.add(slot, terms(text))
        return index

    @property
    def size(self) -> int:
        """Slots ever added (live or deleted)."""
        return len(self.lengths)

    def add(self, slot: int, passage_terms: Iterable[str]) -> None:
        if slot != self.size:
            raise ValueError(f"slots are added in order: expected {self.size}, got {slot}")
        counts = Counter(passage_terms)
        ids = []
        for term, count in counts.items():
            term_id = self.vocab.get(term)
            if term_id is None:
                term_id = self.vocab[term] = len(self.vocab)
                self._slots.append(Growable(np.int32))
                self._counts.append(Growable(np.float32))
                self.df.append([0])
            self._slots[term_id].append([slot])
            self._counts[term_id].append([count])
            ids.append(term_id)
        ids_array = np.asarray(ids, dtype=np.int64)
        if len(ids_array):
            self.df.view()[ids_array] += 1
        length = float(sum(counts.values()))
        self.lengths.append([length])
        self.alive.append([True])
        self._slot_terms.append(ids_array.astype(np.int32))
        self._slot_offsets.append([len(self._slot_terms)])
        self.live += 1
        self.total_length += length

    def remove(self, slot: int) -> None:
        if not self.alive.view()[slot]:
            return
        begin, end = self._slot_offsets.view()[slot : slot + 2]
        self.df.view()[self._slot_terms.view()[begin:end]] -= 1
        self.total_length -= float(self.lengths.view()[slot])
        self.alive.view()[slot] = False
        self.live -= 1

    @property
    def average(self) -> float:
        """The live passages' average length (BM25's avgdl)."""
        return self.total_length / self.live if self.live else 0.0

    def query(self, query_terms: Sequence[str], size: int | None = None) -> list[Term]:
        """The query's distinct terms with their idf (times how often the query says each) and their postings
        among the first ``size`` slots (a reader's snapshot), for kb/stores/bm25.py."""
        size = self.size if size is None else size
        found = []
        df = self.df.view()
        for term, repeats in Counter(query_terms).items():  # a repeated query word counts each time
            term_id = self.vocab.get(term)
            if term_id is None or df[term_id] <= 0:
                continue
            slots = self._slots[term_id].view()
            counts = self._counts[term_id].view()
            if len(slots) and slots[-1] >= size:  # slots added after this reader's snapshot
                cut = int(np.searchsorted(slots, size))
                slots, counts = slots[:cut], counts[:cut]
            bound, reference = self._bound(term_id, len(slots))
            found.append(Term(repeats * idf(self.live, int(df[term_id])),
                              [Run(slots, counts, self.lengths.view(), bound, reference, lengths_by_key=True)]))
        return found

    def scores(self, query_terms: Sequence[str], size: int | None = None) -> np.ndarray:
        """BM25 score of every slot below ``size``, all postings added up (deleted slots score 0)."""
        size = self.size if size is None else size
        dead = np.flatnonzero(~self.alive.view()[:size])
        ranked = rank(self.query(query_terms, size), self.average, None, excluded=dead)
        scores = np.zeros(size, dtype=np.float32)
        scores[ranked.keys] = ranked.scores
        return scores

    def _bound(self, term_id: int, postings: int) -> tuple[float, float]:
        """The highest weight among a term's first ``postings`` postings, with a reference average length.

        Worked out when a query first needs it and kept; later postings only widen it (max with theirs), and it is
        worked out afresh once the average length has moved by a tenth (a stale bound is safe but looser).
        """
        average = self.average
        bound, reference, covered = self._bounds.get(term_id, (0.0, average, 0))
        if covered > postings or abs(average / reference - 1.0) > REBASE:
            bound, reference, covered = 0.0, average, 0
        if covered < postings:
            slots = self._slots[term_id].view()[covered:postings]
            counts = self._counts[term_id].view()[covered:postings]
            bound = max(bound, bound_of(counts, self.lengths.view()[slots], reference))
            self._bounds[term_id] = (bound, reference, postings)
        return bound, reference

    # ---- checkpoints: NumPy arrays and one JSON file, nothing pickled -----------------------

    def save(self, folder: Path) -> None:
        target = Path(folder) / FOLDER
        target.mkdir(parents=True, exist_ok=True)
        postings = [g.view() for g in self._slots]
        counts = [g.view() for g in self._counts]
        indptr = np.cumsum([0] + [len(p) for p in postings], dtype=np.int64)
        arrays = {
            "indptr": indptr,
            "slots": np.concatenate(postings).astype(np.int32) if postings else np.zeros(0, np.int32),
            "counts": np.concatenate(counts).astype(np.float32) if counts else np.zeros(0, np.float32),
            "df": self.df.view(), "lengths": self.lengths.view(), "alive": self.alive.view(),
            "slot_terms": self._slot_terms.view(), "slot_offsets": self._slot_offsets.view(),
        }
        for name, values in arrays.items():
            np.save(target / f"{name}.npy", values, allow_pickle=False)
        vocab = sorted(self.vocab, key=self.vocab.__getitem__)
        (target / "vocab.json").write_text(json.dumps({"terms": vocab, "live": self.live,
                                                       "total_length": self.total_length}), encoding="utf-8")

    @classmethod
    def load(cls, folder: Path) -> "KeywordIndex":
        source = Path(folder) / FOLDER
        meta = json.loads((source / "vocab.json").read_text(encoding="utf-8"))
        arrays = {name: np.load(source / f"{name}.npy", allow_pickle=False) for name in
                  ("indptr", "slots", "counts", "df", "lengths", "alive", "slot_terms", "slot_offsets")}
        index = cls()
        index.vocab = {term: number for number, term in enumerate(meta["terms"])}
        indptr = arrays["indptr"]
        if len(indptr) != len(index.vocab) + 1 or len(arrays["df"]) != len(index.vocab):
            raise ValueError("the keyword checkpoint's vocabulary and postings disagree")
        for begin, end in zip(indptr[:-1], indptr[1:]):
            index._slots.append(Growable(np.int32, arrays["slots"][begin:end]))
            index._counts.append(Growable(np.float32, arrays["counts"][begin:end]))
        index.df = Growable(np.int64, arrays["df"])
        index.lengths = Growable(np.float32, arrays["lengths"])
        index.alive = Growable(np.bool_, arrays["alive"])
        index._slot_terms = Growable(np.int32, arrays["slot_terms"])
        index._slot_offsets = Growable(np.int64, arrays["slot_offsets"])
        index.live, index.total_length = int(meta["live"]), float(meta["total_length"])
        if not (len(index.lengths) == len(index.alive) == len(index._slot_offsets) - 1) \
                or int(index.alive.view().sum()) != index.live:
            raise ValueError("the keyword checkpoint's slot arrays disagree")
        return index
