"""The FAISS store's keyword index: BM25 (kb/documents/terms.py) in memory, updated one passage at a time.

Postings grow in place as passages arrive; a deleted passage's postings stay until the index is
rebuilt, but its terms leave the document frequencies and its length leaves the average at
once, so the statistics are always exactly those of the live passages (what a full rebuild
would compute).

An FTS5 table in the store was measured first and rejected: its bm25() took 117 ms a query at
20,000 passages against 0.25 ms here (docs/architecture.md).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from kb.documents.terms import K1, B, terms
from kb.stores.faiss.growable import Growable

FOLDER = "bm25"


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

    def scores(self, query_terms: Sequence[str], size: int | None = None) -> np.ndarray:
        """BM25 score of every slot below ``size`` (deleted slots score 0)."""
        size = self.size if size is None else size
        scores = np.zeros(size, dtype=np.float32)
        if not self.live:
            return scores
        average = self.total_length / self.live
        lengths = self.lengths.view()
        df = self.df.view()
        for term in query_terms:  # a repeated query word counts each time, as bm25s counted it
            term_id = self.vocab.get(term)
            if term_id is None or df[term_id] <= 0:
                continue
            slots = self._slots[term_id].view()
            counts = self._counts[term_id].view()
            if len(slots) and slots[-1] >= size:  # slots added after this reader's snapshot
                keep = slots < size
                slots, counts = slots[keep], counts[keep]
            idf = np.log(1.0 + (self.live - df[term_id] + 0.5) / (df[term_id] + 0.5))
            scores[slots] += idf * counts / (K1 * (1.0 - B + B * lengths[slots] / average) + counts)
        scores *= self.alive.view()[:size]
        return scores

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
