"""A fake embedder for fast unit tests of pure logic (the real model is tested in integration/)."""

from __future__ import annotations

import hashlib

import numpy as np


class FakeEmbedder:
    """Deterministic unit vectors from a text hash; counts calls so tests can see what was embedded."""

    def __init__(self, name: str = "all-MiniLM-L6-v2", dimension: int = 8) -> None:
        self.name = name
        self.dimension = dimension
        self.max_tokens = 254
        self.embedded: list[str] = []

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def encode(self, texts, batch_size=32, progress=None):
        self.embedded.extend(texts)
        rows = []
        for text in texts:
            seed = int.from_bytes(hashlib.sha1(text.encode()).digest()[:4], "little")
            vector = np.random.default_rng(seed).normal(size=self.dimension).astype(np.float32)
            rows.append(vector / np.linalg.norm(vector))
        if progress and texts:
            progress(len(texts))
        return np.array(rows, dtype=np.float32).reshape(len(texts), self.dimension)

    def encode_passages(self, texts, spans, batch_size=32, progress=None, slice_size=None):
        """Passage vectors as encode(); each span's vector is the fake vector of the span's text."""
        vectors = self.encode(texts, batch_size, progress)
        span_vectors = [self._plain([text[a:b] for a, b in text_spans]) for text, text_spans in zip(texts, spans)]
        return vectors, span_vectors

    def _plain(self, texts):
        seen = len(self.embedded)
        rows = self.encode(texts)
        del self.embedded[seen:]
        return rows

    def encode_query(self, query: str):
        return self.encode([query])[0]


def full_disk_at_commit(monkeypatch, store) -> None:
    """From now on (until ``monkeypatch.undo()``, then close ``store.db`` again), SQLite reports a full disk
    at every COMMIT of the FAISS store ``store``, as it does when the disk fills during a write."""
    import sqlite3

    import kb.stores.faiss.records

    class FullDisk(sqlite3.Connection):
        def execute(self, sql, *args):
            if sql.strip().upper() == "COMMIT":
                raise sqlite3.OperationalError("database or disk is full")
            return super().execute(sql, *args)

    real_connect = sqlite3.connect
    monkeypatch.setattr(kb.stores.faiss.records.sqlite3, "connect", lambda *a, **k: real_connect(*a, **{**k, "factory": FullDisk}))
    store.db.close()  # this thread's connection is made again, now failing at commit
