"""The default store: the corpus folder as its record, FAISS and BM25 derived from it in one index folder.

- ``store``: the store and its lifecycle (open, derive a new index beside the live one, switch, follow, back up);
- ``records``: records.sqlite, the index's durable half (documents, passages, vectors, a change log);
- ``memory``, ``vectors``, ``keyword``: the in-memory FAISS and BM25 indexes and their checkpoints;
- ``growable``, ``rwlock``: the arrays that grow in place and the lock searches share.
"""

from kb.stores.faiss.store import FaissStore

__all__ = ["FaissStore"]
