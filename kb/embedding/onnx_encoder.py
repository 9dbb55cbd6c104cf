"""An exported model run by ONNX Runtime: tokenize (Rust tokenizers), forward, pool and normalize.

Neither torch nor sentence-transformers is imported, which is what lets `kb serve` answer its
first query about a second after it starts (benchmarks/README.md).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any, Sequence

import numpy as np


class OnnxEncoder:
    """Normalized float32 vectors from ``model.onnx`` in an export folder (see kb/embedding/onnx_export.py)."""

    def __init__(self, folder: Path, manifest: dict[str, Any], threads: int | None = None) -> None:
        from tokenizers import Tokenizer

        self.folder = folder
        self.pooling = manifest["pooling"]
        self.inputs = list(manifest["inputs"])
        self.dimension = int(manifest["dimension"])
        self.max_seq_length = int(manifest["max_seq_length"])
        self.lower_case = bool(manifest.get("lower_case", False))
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_length=self.max_seq_length)
        self.tokenizer.enable_padding(pad_id=int(manifest["pad_id"]), pad_token=str(manifest["pad_token"]))
        self._counter = Tokenizer.from_file(str(folder / "tokenizer.json"))  # neither truncated nor padded
        self.threads = threads or os.cpu_count() or 1
        self.session = self._session(self.threads)
        self._narrow: Any = None
        self._narrow_lock = threading.Lock()

    def _session(self, threads: int) -> Any:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # ONNX Runtime's threads spin while a call runs (its default): a query that comes after an idle moment took
        # p50 10.6 ms with spinning against 14.0 ms without (benchmarks/README.md). They stop when the call
        # returns (session.force_spinning_stop): left spinning between calls, back-to-back searches kept both
        # cores busy and starved the write worker (a write took 825 ms instead of 31).
        options.add_session_config_entry("session.force_spinning_stop", "1")
        return ort.InferenceSession(str(self.folder / "model.onnx"), options, providers=["CPUExecutionProvider"])

    def narrow(self) -> Any:
        """A session on one thread (made at its first use), for queries while a write is under way: a query then
        leaves the other cores to the write instead of taking them all (benchmarks/writes_under_load.py)."""
        if self.threads == 1:
            return self.session
        with self._narrow_lock:
            if self._narrow is None:
                self._narrow = self._session(1)
            return self._narrow

    def count_tokens(self, text: str) -> int:
        """Word pieces in ``text``, without the model's special tokens (as the model's own tokenizer counts them)."""
        return len(self._counter.encode(text.lower() if self.lower_case else text, add_special_tokens=False).ids)

    def tokenize(self, texts: Sequence[str]) -> tuple[dict[str, np.ndarray], list[Any]]:
        """The model's inputs for these texts (padded to the longest), and each text's encoding (for offsets)."""
        texts = [t.lower() for t in texts] if self.lower_case else list(texts)
        encodings = self.tokenizer.encode_batch(texts)
        feed = {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
        }
        if "token_type_ids" in self.inputs:
            feed["token_type_ids"] = np.array([e.type_ids for e in encodings], dtype=np.int64)
        return feed, encodings

    def forward(self, texts: Sequence[str], narrow: bool = False) -> tuple[np.ndarray, np.ndarray, list[Any]]:
        """Token embeddings (batch, tokens, dimension), the attention mask, and each text's encoding (``narrow``: on
        one thread)."""
        feed, encodings = self.tokenize(texts)
        hidden = (self.narrow() if narrow else self.session).run(None, feed)[0]
        return hidden.astype(np.float32, copy=False), feed["attention_mask"], encodings

    def pool(self, hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """sentence-transformers' pooling (mean, CLS or max), then unit length."""
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        elif self.pooling == "max":
            pooled = np.where(mask[..., None] > 0, hidden, np.float32(-1e9)).max(axis=1)
        else:
            weights = mask[..., None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.maximum(norms, 1e-12)).astype(np.float32)

    def encode(self, texts: Sequence[str], narrow: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        hidden, mask, _ = self.forward(texts, narrow)
        return self.pool(hidden, mask)
