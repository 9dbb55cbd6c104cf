"""The in-memory half of the FAISS store: vectors (FAISS) and keywords (BM25) over numbered slots.

Everything here is derived from the SQLite record file (kb/stores/faiss/records.py) and can be rebuilt
from it. A write appends slots and marks deleted ones; both indexes change in place, under a
readers-writer lock, in small batches, so a search waits for at most one batch. A checkpoint
saves both indexes with the sequence number they reflect; opening a store loads the newest
checkpoint and replays the change log after it, so start-up costs what changed since, not the
corpus. Deleted slots are dropped when the index is rebuilt (kb/stores/faiss/store.py decides when).

Each slot also knows its document's access (an id into ``access_sets``, 0 for public), so that what a caller may
read is a mask over the slots, not a query of the record (kb/stores/filters.py says who reads what).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

import faiss
import numpy as np

from kb.documents.folder import fsync_dir, fsync_file
from kb.stores.faiss.growable import Growable
from kb.stores.faiss.keyword import KeywordIndex
from kb.stores.faiss.rwlock import ReadWriteLock
from kb.stores.faiss.vectors import VectorIndex
from kb.stores.filters import visible

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = 2  # 2: each slot's access
APPLY_BATCH = 256  # passages applied per exclusive hold of the lock
LATEST = "latest.json"


class MemoryIndex:
    def __init__(self, dimension: int, spec: dict[str, Any], vectors: VectorIndex | None = None,
                 keyword: KeywordIndex | None = None, slot_pids: np.ndarray | None = None, seq: int = 0,
                 slot_access: np.ndarray | None = None, access_sets: Sequence[str] = ("[]",)) -> None:
        self.dimension = dimension
        self.vectors = vectors or VectorIndex(dimension, spec)
        self.keyword = keyword or KeywordIndex()
        self.slot_pids = Growable(np.int64, slot_pids)
        # Access lists as JSON ('[]' first: public), and each slot's, as an index into them.
        self.access_sets = list(access_sets)
        self._access_ids = {text: number for number, text in enumerate(self.access_sets)}
        self._access_lists = [json.loads(text) for text in self.access_sets]  # parsed once, asked every search
        self.slot_access = Growable(np.int32, slot_access if slot_access is not None else np.zeros(len(self.slot_pids)))
        self.pid_slots = {int(pid): slot for slot, pid in enumerate(self.slot_pids.view())}
        for slot in np.flatnonzero(~self.keyword.alive.view()):
            self.pid_slots.pop(int(self.slot_pids.view()[slot]), None)
        self.seq = seq  # the last write sequence number applied
        self.lock = ReadWriteLock()  # searches share it; apply() holds it alone, one batch at a time
        # Held by apply() throughout, and by a checkpoint while it writes: the indexes cannot change under
        # a checkpoint, yet searches (readers of both) never wait for one.
        self.changing = threading.Lock()

    @property
    def spec(self) -> dict[str, Any]:
        return self.vectors.spec

    @property
    def live(self) -> int:
        return self.keyword.live

    @property
    def size(self) -> int:
        return len(self.slot_pids)

    def visible_slots(self, groups: Sequence[str] | None) -> np.ndarray | None:
        """The live slots a caller of ``groups`` may read, in order; None when that is every one of them."""
        if groups is None:
            return None
        readable = np.array([visible(access, groups) for access in self._access_lists], dtype=bool)
        if readable.all():
            return None
        size = self.size
        return np.flatnonzero(readable[self.slot_access.view()[:size]] & self.keyword.alive.view()[:size])

    def _access_id(self, text: str) -> int:
        number = self._access_ids.get(text)
        if number is None:
            number = self._access_ids[text] = len(self.access_sets)
            self._access_lists.append(json.loads(text))  # before the list that names it: a reader never lacks one
            self.access_sets.append(text)
        return number

    def apply(self, changes: Sequence[tuple[int, int, int]], payloads: dict[int, tuple[bytes, str, str]]) -> None:
        """Apply logged changes (seq, pid, op) in order; ``payloads`` holds added passages' vectors, terms and access.

        A passage added and deleted again before it was applied has no payload and is skipped.
        """
        with self.changing:
            self._apply(changes, payloads)

    def _apply(self, changes: Sequence[tuple[int, int, int]], payloads: dict[int, tuple[bytes, str, str]]) -> None:
        for begin in range(0, len(changes), APPLY_BATCH):
            batch = changes[begin : begin + APPLY_BATCH]
            with self.lock.write():
                added_vectors, added = [], []
                for seq, pid, op in batch:
                    if op:  # added
                        payload = payloads.get(pid)
                        if payload is None or pid in self.pid_slots:
                            continue
                        added.append((pid, payload[1].split(), self._access_id(payload[2])))
                        added_vectors.append(np.frombuffer(payload[0], dtype=np.float32))
                    else:
                        self._flush(added, added_vectors)
                        added, added_vectors = [], []
                        slot = self.pid_slots.pop(pid, None)
                        if slot is not None:
                            self.vectors.remove(slot)
                            self.keyword.remove(slot)
                self._flush(added, added_vectors)
                self.seq = max(self.seq, batch[-1][0])

    def _flush(self, added: list[tuple[int, list[str], int]], vectors: list[np.ndarray]) -> None:
        if not added:
            return
        first = self.size
        self.vectors.add(np.vstack(vectors))
        for offset, (pid, passage_terms, _) in enumerate(added):
            self.keyword.add(first + offset, passage_terms)
            self.pid_slots[pid] = first + offset
        self.slot_access.append([access for _, _, access in added])  # before the slots: a reader's size never outruns it
        self.slot_pids.append([pid for pid, _, _ in added])

    @classmethod
    def build(cls, dimension: int, spec: dict[str, Any], batches: Iterable[list[tuple[int, bytes, str, str]]],
              seq: int) -> "MemoryIndex":
        """A fresh index of every passage (pid, vector bytes, terms, access); IVF-PQ is trained on them first."""
        rows = [row for batch in batches for row in batch]
        vectors = np.frombuffer(b"".join(row[1] for row in rows), dtype=np.float32).reshape(-1, dimension) \
            if rows else np.zeros((0, dimension), np.float32)
        index = cls(dimension, spec, vectors=VectorIndex(dimension, spec, training=vectors if len(vectors) else None),
                    seq=seq)
        for begin in range(0, len(rows), 4096):
            index.vectors.add(vectors[begin : begin + 4096])
        for slot, row in enumerate(rows):
            index.keyword.add(slot, row[2].split())
            index.pid_slots[row[0]] = slot
        index.slot_access.append([index._access_id(row[3]) for row in rows])
        index.slot_pids.append([row[0] for row in rows])
        return index

    # ---- checkpoints ----------------------------------------------------------------------

    def save(self, root: Path) -> Path:
        """Write a checkpoint folder under ``root`` and point ``latest.json`` at it; atomic and durable.

        Holds ``changing``: updates wait until the files are written; searches go on (writing an
        index only reads it, as a search does).
        """
        root.mkdir(parents=True, exist_ok=True)
        with self.changing:
            name = f"seq-{self.seq:012d}-{time.time_ns()}"
            tmp = root / f".tmp-{name}"
            try:
                tmp.mkdir()
                self.vectors.save(tmp / "vectors.faiss")
                np.save(tmp / "slot_pids.npy", self.slot_pids.view(), allow_pickle=False)
                np.save(tmp / "slot_access.npy", self.slot_access.view()[: self.size], allow_pickle=False)
                np.save(tmp / "vector_alive.npy", self.vectors.alive.view(), allow_pickle=False)
                self.keyword.save(tmp)
                meta = {"format": CHECKPOINT_FORMAT, "seq": self.seq, "spec": self.spec, "dimension": self.dimension,
                        "size": self.size, "live": self.live, "access_sets": self.access_sets}
                (tmp / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
                for path in tmp.rglob("*"):
                    if path.is_file():
                        fsync_file(path)
                os.rename(tmp, root / name)
                pointer = root / f".{LATEST}.tmp"
                pointer.write_text(json.dumps({"checkpoint": name}), encoding="utf-8")
                fsync_file(pointer)
                os.replace(pointer, root / LATEST)
                fsync_dir(root)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            for old in root.iterdir():  # keep the newest; leftovers of a killed checkpoint go too (under the lock)
                if old.name not in (name, LATEST) and (old.name.startswith("seq-") or old.name.startswith(".tmp-")):
                    shutil.rmtree(old, ignore_errors=True)
        return root / name

    @classmethod
    def load(cls, root: Path, dimension: int) -> "MemoryIndex":
        """The newest checkpoint; raises (anything) when it is missing or damaged: the caller rebuilds."""
        name = json.loads((root / LATEST).read_text(encoding="utf-8"))["checkpoint"]
        folder = root / name
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        if meta.get("format") != CHECKPOINT_FORMAT or meta.get("dimension") != dimension:
            raise ValueError(f"{folder} is a checkpoint of another format or dimension")
        spec = meta["spec"]
        if spec["type"] == "ivfpq":
            raise ValueError("IVF-PQ checkpoints are rebuilt from the store (they keep no exact vectors)")
        faiss_index = faiss.read_index(str(folder / "vectors.faiss"))
        vectors = VectorIndex(dimension, spec, faiss_index=faiss_index)
        alive = np.load(folder / "vector_alive.npy", allow_pickle=False)
        if len(alive) != faiss_index.ntotal or faiss_index.d != dimension:
            raise ValueError(f"{folder / 'vectors.faiss'} does not match its checkpoint")
        vectors.alive = Growable(np.bool_, alive)
        vectors.deleted = int((~alive).sum())
        keyword = KeywordIndex.load(folder)
        slot_pids = np.load(folder / "slot_pids.npy", allow_pickle=False)
        slot_access = np.load(folder / "slot_access.npy", allow_pickle=False)
        access_sets = meta["access_sets"]
        if not (len(slot_pids) == len(slot_access) == keyword.size == faiss_index.ntotal == meta["size"]):
            raise ValueError(f"{folder} holds indexes of different sizes")
        if len(slot_access) and not 0 <= int(slot_access.max()) < len(access_sets):
            raise ValueError(f"{folder} names access lists it does not hold")
        return cls(dimension, spec, vectors=vectors, keyword=keyword, slot_pids=slot_pids, seq=int(meta["seq"]),
                   slot_access=slot_access, access_sets=access_sets)
