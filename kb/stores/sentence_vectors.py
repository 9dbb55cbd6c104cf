"""How a passage's sentence vectors are stored: float16 (the default) or int8 (half the bytes).

They are the largest part of a store (47% of a 100,000-passage FAISS store, benchmarks/README.md, "Size on
disk"), and they only choose which sentences to mark, so `KB_SENTENCE_VECTORS=int8` keeps each
sentence's vector as int8 components times one float32 scale (its largest component / 127).
A blob says what it holds: int8 ones begin with MAGIC, which no float16 blob can (its first
component would read as 3.15, and the vectors are unit length), so a store can hold both and
changing the setting needs no rebuild: new writes use the new format.
"""

from __future__ import annotations

import numpy as np

MAGIC = b"KBQ8"


def pack(vectors: np.ndarray, kind: str = "float16") -> bytes:
    vectors = np.asarray(vectors, dtype=np.float32)
    if kind == "float16":
        return vectors.astype("<f2").tobytes()
    scales = np.abs(vectors).max(axis=1, initial=0.0) / 127.0
    scales[scales == 0] = 1.0
    values = np.clip(np.rint(vectors / scales[:, None]), -127, 127).astype(np.int8)
    return MAGIC + scales.astype("<f4").tobytes() + values.tobytes()


def unpack(blob: bytes, sentences: int) -> np.ndarray:
    """float32 [sentences, dimension] from either format."""
    if sentences == 0:
        return np.zeros((0, 0), dtype=np.float32)
    if blob[: len(MAGIC)] == MAGIC:
        body = memoryview(blob)[len(MAGIC):]
        scales = np.frombuffer(body[: 4 * sentences], dtype="<f4")
        values = np.frombuffer(body[4 * sentences:], dtype=np.int8).reshape(sentences, -1)
        return values.astype(np.float32) * scales[:, None]
    return np.frombuffer(blob, dtype="<f2").reshape(sentences, -1).astype(np.float32)
