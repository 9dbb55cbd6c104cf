"""The index on disk: a folder of plain files per build, swapped into place atomically.

Layout of ``index/``::

    current -> build-1795806900123456789    (symlink, replaced atomically)
    build-.../manifest.json                  format version, model, dimension, chunk settings, hashes
    build-.../documents.jsonl                one document a line (id, title, source, hash, text)
    build-.../passages.jsonl                 one passage a line (id, doc_id, ordinal, start, end, text)
    build-.../vectors.npy                    float32 [passages, dimension], saved without pickle
    build-.../vectors.faiss                  the FAISS inner-product index over those vectors
    build-.../bm25/                          the BM25 keyword index (NumPy arrays and JSON, via bm25s)
    build-.../sentences.npy                  float16 [sentences, dimension]: late-chunked sentence vectors
    build-.../sentence_spans.npy             int64 [sentences, 3]: passage position, start, end in the document

A build is written to a hidden temporary folder, renamed to its final name, and only then
made current by replacing the ``current`` symlink, so a crash at any point leaves the
previous index whole, and a reader always sees one complete build.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import faiss
import numpy as np

from kb.chunk import Passage
from kb.files import fsync_dir, fsync_file
from kb.keyword import KeywordIndex

log = logging.getLogger(__name__)

FORMAT_VERSION = 3
CURRENT = "current"
MANIFEST = "manifest.json"
KEEP_BUILDS = 2  # the current build and the one before it


class IndexProblem(RuntimeError):
    """Base for index problems; the message says which file and what to do."""


class IndexMissing(IndexProblem):
    pass


class IndexMismatch(IndexProblem):
    pass


class IndexCorrupt(IndexProblem):
    pass


class IndexUnwritable(IndexProblem):
    """The index folder cannot take a new build (disk full, read-only, no permission)."""

    @classmethod
    def from_os_error(cls, root: Path, exc: OSError) -> "IndexUnwritable":
        where = exc.filename or root
        return cls(f"cannot write the new index to {where} ({exc.strerror or exc}): free some space or make "
                   f"{root} writable, then run `kb build` again; the previous index is unchanged")


@dataclass(frozen=True)
class StoredDocument:
    id: str
    title: str
    source: str
    hash: str
    text: str
    passages: int
    metadata: dict[str, Any] = field(default_factory=dict)
    path: str = ""  # the corpus file that holds it


@dataclass
class SentenceTable:
    """Each passage's sentences (absolute spans) and their vectors, rows grouped by passage position."""

    spans: np.ndarray  # int64 [sentences, 3]: passage position, start, end
    vectors: np.ndarray  # float16 [sentences, dimension]

    @classmethod
    def assemble(cls, per_passage: Sequence[tuple[np.ndarray, np.ndarray]], dimension: int) -> "SentenceTable":
        spans = [np.column_stack([np.full(len(s), p, dtype=np.int64), s]) for p, (s, _) in enumerate(per_passage)]
        vectors = [v for _, v in per_passage]
        return cls(
            np.concatenate(spans).astype(np.int64) if spans else np.zeros((0, 3), dtype=np.int64),
            np.concatenate(vectors).astype(np.float16) if vectors else np.zeros((0, dimension), dtype=np.float16),
        )

    def of(self, position: int) -> tuple[np.ndarray, np.ndarray]:
        """(spans [k, 2], vectors [k, dimension]) of one passage."""
        low, high = np.searchsorted(self.spans[:, 0], [position, position + 1])
        return np.asarray(self.spans[low:high, 1:]), np.asarray(self.vectors[low:high], dtype=np.float32)


@dataclass
class Index:
    """A loaded build: documents, passages, their vectors and the FAISS index over them."""

    path: Path
    manifest: dict[str, Any]
    documents: dict[str, StoredDocument]
    passages: list[Passage]
    vectors: np.ndarray
    faiss_index: Any
    keyword: KeywordIndex
    sentences: SentenceTable

    @property
    def model(self) -> str:
        return self.manifest["model"]

    def search(self, query_vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        """(passage position, inner product) of the k nearest passages, best first.

        A quantized index only proposes: its top max(4k, rerank) are re-scored with the
        exact stored vectors, so the scores returned are always true inner products.
        """
        k = min(k, len(self.passages))
        if k <= 0:
            return []
        query = np.asarray(query_vector, dtype=np.float32).reshape(1, -1)
        rerank = int((self.manifest.get("ann") or {}).get("rerank", 0))
        if not rerank:
            scores, ids = self.faiss_index.search(query, k)
            return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]
        _, ids = self.faiss_index.search(query, min(len(self.passages), max(4 * k, rerank)))
        ids = np.sort(ids[0][ids[0] >= 0])  # ascending positions read the memory-mapped vectors in order
        exact = np.asarray(self.vectors[ids], dtype=np.float32) @ query[0]
        best = np.argsort(-exact, kind="stable")[:k]
        return [(int(ids[i]), float(exact[i])) for i in best]


class IndexStore:
    """Reads and atomically replaces the builds under one index folder."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @property
    def current_link(self) -> Path:
        return self.root / CURRENT

    def current_path(self) -> Path | None:
        """The folder of the current build, or None when there is none."""
        try:
            target = os.readlink(self.current_link)
        except OSError:
            return None
        return (self.root / target).resolve()

    def read_manifest(self) -> dict[str, Any] | None:
        path = self.current_path()
        if path is None:
            return None
        try:
            return _read_manifest(path)
        except IndexProblem:
            return None

    def load(self, expected_model: str | None = None) -> Index:
        path = self.current_path()
        if path is None:
            raise IndexMissing(f"no index in {self.root}/: run `kb build` to create it")
        return load_build(path, expected_model)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """An exclusive lock for writers, so two builds never interleave."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            handle = open(self.root / ".lock", "a")
        except OSError as exc:
            raise IndexUnwritable.from_os_error(self.root, exc) from None
        with handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def write(
        self,
        manifest: dict[str, Any],
        documents: Sequence[StoredDocument],
        passages: Sequence[Passage],
        vectors: np.ndarray,
        keyword: KeywordIndex,
        sentences: SentenceTable,
    ) -> Path:
        """Write a complete build and make it current; returns its folder. Call under lock().

        Any failure (a full disk included) removes the half-written folder and leaves
        `current` on the previous build.
        """
        name = f"build-{time.time_ns()}"  # sorts by age; writers hold lock(), so names never collide
        tmp = self.root / f".tmp-{name}"
        try:
            self._remove_temporaries()
            tmp.mkdir()
        except OSError as exc:
            raise IndexUnwritable.from_os_error(self.root, exc) from None
        log.info("writing %s", tmp)
        try:
            _write_files(tmp, manifest, documents, passages, vectors, keyword, sentences)
            final = self.root / name
            os.rename(tmp, final)
            link_tmp = self.root / f".{CURRENT}-{name}"
            os.symlink(name, link_tmp)
            os.replace(link_tmp, self.current_link)
            fsync_dir(self.root)
            log.info("now current: %s", final)
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise IndexUnwritable.from_os_error(self.root, exc) from None
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self._prune()
        return final

    def _remove_temporaries(self) -> None:
        for leftover in self.root.glob(".tmp-build-*"):
            shutil.rmtree(leftover, ignore_errors=True)
        for leftover in self.root.glob(f".{CURRENT}-build-*"):
            leftover.unlink(missing_ok=True)

    def _prune(self) -> None:
        current = self.current_path()
        builds = sorted(p for p in self.root.glob("build-*") if p.is_dir())
        keep = {current} | set(builds[-KEEP_BUILDS:])
        for build in builds:
            if build.resolve() not in {k.resolve() for k in keep if k}:
                shutil.rmtree(build, ignore_errors=True)


def _write_files(
    folder: Path,
    manifest: dict[str, Any],
    documents: Sequence[StoredDocument],
    passages: Sequence[Passage],
    vectors: np.ndarray,
    keyword: KeywordIndex,
    sentences: SentenceTable,
) -> None:
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if vectors.shape[0] != len(passages):
        raise ValueError(f"{len(passages)} passages but {vectors.shape[0]} vectors")
    _write_jsonl(folder / "documents.jsonl", (asdict(d) for d in documents))
    _write_jsonl(folder / "passages.jsonl", (asdict(p) for p in passages))
    for name, array in (("vectors.npy", vectors), ("sentences.npy", sentences.vectors),
                        ("sentence_spans.npy", sentences.spans)):
        with open(folder / name, "wb") as handle:
            np.save(handle, array, allow_pickle=False)
            _flush(handle)
    try:
        faiss.write_index(make_faiss_index(vectors, manifest.get("ann")), str(folder / "vectors.faiss"))
    except RuntimeError as exc:  # FAISS reports a failed write (a full disk, say) as a RuntimeError
        raise OSError(0, f"FAISS could not write the file ({str(exc).strip().splitlines()[-1][:120]})",
                      str(folder / "vectors.faiss")) from None
    fsync_file(folder / "vectors.faiss")
    keyword.save(folder)
    for path in (folder / "bm25").iterdir():
        fsync_file(path)
    # The manifest goes last: a folder without one is never mistaken for a build.
    with open(folder / MANIFEST, "w", encoding="utf-8") as handle:
        json.dump(manifest, handle, indent=2, sort_keys=True)
        _flush(handle)
    fsync_dir(folder)


IVFPQ_MIN_PASSAGES = 10_000  # fewer than this cannot train product quantizers well: flat instead


def ann_spec(passages: int, index_type: str, threshold: int, m: int, ef_search: int, nprobe: int = 32) -> dict[str, Any]:
    """Which FAISS index a build of this size gets; recorded in the manifest as "ann"."""
    if index_type == "ivfpq":
        if passages < IVFPQ_MIN_PASSAGES:
            return {"type": "flat"}
        # About 4 * sqrt(n) lists, a power of two, each list with at least 39 training points.
        lists = 1 << max(4, int(np.log2(4 * np.sqrt(passages))))
        return {"type": "ivfpq", "nlist": min(lists, passages // 39), "nprobe": nprobe, "rerank": RERANK_DEPTH}
    if index_type == "hnsw" or (index_type == "auto" and passages > threshold):
        # efConstruction 200: at 1M passages 80 capped recall@10 at 0.92 whatever efSearch (benchmarks/scale.py)
        return {"type": "hnsw", "M": m, "efConstruction": 200, "efSearch": ef_search}
    return {"type": "flat"}


RERANK_DEPTH = 100  # a quantized index proposes at least this many passages; exact vectors order them


def _pq_subvectors(dimension: int) -> int:
    """Sub-vectors of 8 dimensions or more: 48 bytes a vector for 384 dimensions."""
    for m in range(dimension // 8, 0, -1):
        if dimension % m == 0:
            return m
    return 1


def make_faiss_index(vectors: np.ndarray, spec: dict[str, Any] | None = None) -> Any:
    spec = spec or {"type": "flat"}
    dimension = int(vectors.shape[1])
    if spec["type"] == "hnsw":
        index = faiss.IndexHNSWFlat(dimension, int(spec["M"]), faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = int(spec["efConstruction"])
        index.hnsw.efSearch = int(spec["efSearch"])
    elif spec["type"] == "ivfpq":
        quantizer = faiss.IndexFlatIP(dimension)
        index = faiss.IndexIVFPQ(quantizer, dimension, int(spec["nlist"]), _pq_subvectors(dimension), 8,
                                 faiss.METRIC_INNER_PRODUCT)
        index.own_fields = True
        quantizer.this.disown()
        sample = vectors[np.random.default_rng(0).permutation(len(vectors))[: 64 * int(spec["nlist"])]]
        index.train(np.ascontiguousarray(sample, dtype=np.float32))
        index.nprobe = int(spec["nprobe"])
    else:
        index = faiss.IndexFlatIP(dimension)
    if len(vectors):
        index.add(vectors)
    return index


def read_faiss_index(path: Path) -> Any:
    """Read a FAISS file, memory-mapping its vectors where FAISS allows (flat and HNSW storage).

    A mapped index starts in milliseconds and shares pages with the OS cache; measured on
    200,000 vectors, 0.009 s against 0.28 s for a full read (see the README).
    """
    try:
        return faiss.read_index(str(path), faiss.IO_FLAG_MMAP_IFC)
    except Exception:  # an index type FAISS cannot map: read it whole
        return faiss.read_index(str(path))


def _write_jsonl(path: Path, rows: Any) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False))
            handle.write("\n")
        _flush(handle)


def _flush(handle: Any) -> None:
    handle.flush()
    os.fsync(handle.fileno())


def _read_manifest(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise IndexMissing(f"{path} is missing: run `kb build` to rebuild the index") from None
    except (ValueError, UnicodeDecodeError):
        raise IndexCorrupt(f"{path} is not valid JSON: run `kb build` to rebuild the index") from None
    if not isinstance(manifest, dict) or manifest.get("format_version") != FORMAT_VERSION:
        found = manifest.get("format_version") if isinstance(manifest, dict) else None
        raise IndexMismatch(
            f"{path} has index format {found!r}, this kb reads format {FORMAT_VERSION}: "
            "run `kb build` to rebuild the index"
        )
    ann = manifest.get("ann", {"type": "flat"})
    if not isinstance(ann, dict) or ann.get("type") not in ("flat", "hnsw", "ivfpq") \
            or not all(isinstance(v, (int, str)) for v in ann.values()):
        raise IndexCorrupt(f"{path} describes no known FAISS index (ann: {str(ann)[:80]}): run `kb build` to rebuild the index")
    return manifest


def load_build(folder: Path, expected_model: str | None = None) -> Index:
    """Load one build folder, checking every file against the manifest.

    Every way a build can be damaged surfaces as an IndexProblem that names the folder and the
    fix, never as another exception: callers (`kb search`, a live server) handle only those.
    """
    try:
        return _load_build(folder, expected_model)
    except IndexProblem:
        raise
    except Exception as exc:  # noqa: BLE001 - damage we did not foresee is still damage
        raise IndexCorrupt(f"{folder} cannot be read ({type(exc).__name__}: {str(exc)[:160]}): "
                           "run `kb build` to rebuild the index") from None


def _load_build(folder: Path, expected_model: str | None = None) -> Index:
    manifest = _read_manifest(folder)
    if expected_model is not None and manifest.get("model") != expected_model:
        raise IndexMismatch(
            f"{folder / MANIFEST} was built with model {manifest.get('model')!r} but KB_MODEL is "
            f"{expected_model!r}: run `kb build` to rebuild the index"
        )
    try:
        documents = {d["id"]: StoredDocument(**d) for d in _read_jsonl(folder / "documents.jsonl")}
        passages = [Passage(**p) for p in _read_jsonl(folder / "passages.jsonl")]
    except (TypeError, KeyError) as exc:
        raise IndexCorrupt(f"{folder} has malformed records ({exc}): run `kb build` to rebuild the index") from None
    vectors = _load_array(folder / "vectors.npy", np.float32)
    sentences = SentenceTable(
        _load_array(folder / "sentence_spans.npy", np.int64), _load_array(folder / "sentences.npy", np.float16)
    )
    faiss_path = folder / "vectors.faiss"
    try:
        faiss_index = read_faiss_index(faiss_path)
    except Exception:
        raise IndexCorrupt(f"{faiss_path} cannot be read: run `kb build` to rebuild the index") from None
    if hasattr(faiss_index, "hnsw"):
        faiss_index.hnsw.efSearch = int((manifest.get("ann") or {}).get("efSearch", 64))
    if hasattr(faiss_index, "nprobe"):
        faiss_index.nprobe = int((manifest.get("ann") or {}).get("nprobe", 32))
    try:
        keyword = KeywordIndex.load(folder)
    except Exception:
        raise IndexCorrupt(f"{folder / 'bm25'} cannot be read: run `kb build` to rebuild the index") from None
    expected = (manifest.get("passage_count"), manifest.get("dimension"))
    if vectors.shape != (len(passages), manifest.get("dimension")) or faiss_index.ntotal != len(passages) \
            or len(passages) != expected[0] or faiss_index.d != expected[1] or keyword.size != len(passages) \
            or sentences.vectors.shape[1:] != (expected[1],) or len(sentences.spans) != len(sentences.vectors):
        raise IndexCorrupt(
            f"{folder} does not match its manifest ({len(passages)} passages, vectors {vectors.shape}, "
            f"FAISS {faiss_index.ntotal}x{faiss_index.d}, manifest {expected[0]}x{expected[1]}): "
            "run `kb build` to rebuild the index"
        )
    return Index(folder, manifest, documents, passages, vectors, faiss_index, keyword, sentences)


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows, number = [], 0
    try:
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if line.strip():
                    rows.append(json.loads(line))
    except FileNotFoundError:
        raise IndexCorrupt(f"{path} is missing: run `kb build` to rebuild the index") from None
    except UnicodeDecodeError:  # raised while reading the next line, before the loop counts it
        raise IndexCorrupt(f"{path} line {number + 1} is not valid UTF-8: run `kb build` to rebuild the index") from None
    except ValueError:
        raise IndexCorrupt(f"{path} line {number} is not valid JSON: run `kb build` to rebuild the index") from None
    return rows


def _load_array(path: Path, dtype: type) -> np.ndarray:
    try:
        vectors = np.load(path, allow_pickle=False, mmap_mode="r")
    except FileNotFoundError:
        raise IndexCorrupt(f"{path} is missing: run `kb build` to rebuild the index") from None
    except (ValueError, OSError, EOFError):
        raise IndexCorrupt(f"{path} is truncated or not a NumPy array: run `kb build` to rebuild the index") from None
    if vectors.dtype != dtype or vectors.ndim != 2:
        raise IndexCorrupt(f"{path} holds {vectors.dtype} {vectors.ndim}-d data, not {np.dtype(dtype)} rows: run `kb build` to rebuild the index")
    return vectors
