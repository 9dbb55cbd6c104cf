"""Build the index from the corpus, re-embedding only documents whose content changed."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np

from kb.chunk import Passage, chunk_text, headings, sentence_spans
from kb.embed import Embedder, get_embedder
from kb.index import FORMAT_VERSION, IndexProblem, IndexStore, SentenceTable, StoredDocument, ann_spec
from kb.keyword import KeywordIndex
from kb.ingest import Document, read_corpus
from kb.settings import Settings

log = logging.getLogger(__name__)

# Bump when chunking or the text given to the embedder changes, so old vectors are not reused.
CHUNKER_VERSION = 4
CONTEXT_CHARS = 160  # the longest title or heading given to the model as context

ProgressFactory = Callable[[int], Callable[[int], None]]


@dataclass
class BuildReport:
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped_files: list[str] = field(default_factory=list)
    passages_embedded: int = 0
    passages: int = 0
    documents: int = 0
    seconds: float = 0.0
    written: bool = False
    reason: str = ""
    index_path: str = ""

    def to_json(self, ids: bool = False) -> dict[str, Any]:
        """Counts under the plain keys; with ``ids``, the document ids of each kind under ``ids``
        (left out by default: they grow with the corpus, 70 KB for 5,000 documents)."""
        data = asdict(self)
        listed = {key: data.pop(key) for key in ("added", "changed", "removed", "unchanged", "skipped_files")}
        counts = {**{key: len(value) for key, value in listed.items()}, **data}
        return {**counts, "ids": listed} if ids else counts

    def summary(self) -> str:
        if not self.written:
            return f"index up to date: {self.documents} documents, {self.passages} passages ({self.reason})"
        return (
            f"index built in {self.seconds:.1f}s: {len(self.added)} added, {len(self.changed)} changed, "
            f"{len(self.removed)} removed, {len(self.unchanged)} unchanged documents; "
            f"{self.passages_embedded} of {self.passages} passages embedded ({self.reason})"
        )


def build_config(settings: Settings) -> dict[str, Any]:
    """What the vectors depend on besides the text; a change re-embeds everything."""
    return {
        "model": settings.model,
        "chunk_tokens": settings.chunk_tokens,
        "chunk_overlap": settings.chunk_overlap,
        "chunker_version": CHUNKER_VERSION,
    }


def context_of(title: str, heading: str) -> str:
    """The document title and section heading, as the line that precedes a passage for the model."""
    parts = [title[:CONTEXT_CHARS].strip()]
    if heading and heading != title:
        parts.append(heading[:CONTEXT_CHARS].strip())
    return " — ".join(p for p in parts if p)


def embedding_text(title: str, passage: Passage) -> str:
    """What the model (and BM25) read for a passage: its context line, then its text.

    Only the embedding sees the context; the passage's text, start and end stay the exact span.
    """
    context = context_of(title, passage.heading)
    return f"{context}\n{passage.text}" if context else passage.text


def passage_limit(document: Document, sections: list[tuple[int, str]], embedder: Embedder, settings: Settings) -> int:
    """Tokens left for passage text once the longest context line of this document is added."""
    contexts = [context_of(document.title, h) for h in ["", *(h for _, h in sections)]]
    reserve = max(embedder.count_tokens(c) for c in contexts) + 1 if contexts else 0
    return max(16, min(settings.chunk_tokens, embedder.max_tokens - reserve))


def build_index(
    settings: Settings,
    force: bool = False,
    embedder: Embedder | None = None,
    progress: ProgressFactory | None = None,
    documents: list[Document] | None = None,
) -> BuildReport:
    """Bring the index in line with the corpus (or the given documents); writes a new build only when something changed."""
    began = time.perf_counter()
    store = IndexStore(settings.index_dir)
    report = BuildReport()
    with store.lock():
        if documents is None:
            documents = read_corpus(settings.corpus_dir, report.skipped_files, settings.max_document_mb * 2**20)
        config = build_config(settings)
        old = None
        reason = "no previous index"
        if store.current_path() is not None:
            try:
                old = store.load()
            except IndexProblem as exc:
                reason = f"previous index unreadable, rebuilding everything: {exc}"
                log.warning(reason)
        if old is not None and old.manifest.get("config") != config:
            reason = f"settings changed ({_config_change(old.manifest.get('config'), config)}), re-embedding everything"
            log.warning(reason)
            old = None
        elif old is not None and force:
            reason, old = "forced full rebuild", None
        elif old is not None:
            reason = "documents changed"

        old_docs = old.documents if old else {}
        new_ids = {d.id for d in documents}
        for document in documents:
            previous = old_docs.get(document.id)
            if previous is None:
                report.added.append(document.id)
            elif previous.hash != document.content_hash:
                report.changed.append(document.id)
            else:
                report.unchanged.append(document.id)
        report.removed = sorted(set(old_docs) - new_ids)
        report.documents = len(documents)

        expected_passages = len(old.passages) if old is not None else 0
        same_ann = old is not None and old.manifest.get("ann") == _ann(settings, expected_passages)
        if old is not None and not same_ann and not (report.added or report.changed or report.removed):
            reason = "index type changed, re-indexing the stored vectors (nothing re-embedded)"
        if old is not None and same_ann and not (report.added or report.changed or report.removed):
            report.passages = len(old.passages)
            report.reason = "nothing changed"
            report.index_path = str(old.path)
            report.seconds = time.perf_counter() - began
            return report

        embedder = embedder or get_embedder(settings.model, settings.precision)
        unchanged = set(report.unchanged)
        old_rows = _rows_by_doc(old.passages) if old else {}

        passages: list[Passage] = []
        reused: list[tuple[int, int]] = []  # (new position, position in the old build)
        to_embed: list[tuple[int, str]] = []  # (new position, document title)
        stored: list[StoredDocument] = []
        for document in documents:
            if document.id in unchanged and old is not None:
                positions = old_rows.get(document.id, [])
                doc_passages = [old.passages[i] for i in positions]
                reused.extend((len(passages) + n, i) for n, i in enumerate(positions))
                passages.extend(doc_passages)
            else:
                sections = headings(document.text, markdown=document.source.lower().endswith(".md"))
                limit = passage_limit(document, sections, embedder, settings)
                doc_passages = chunk_text(
                    document.id, document.text, embedder.count_tokens, limit, settings.chunk_overlap, sections
                )
                to_embed.extend((len(passages) + n, document.title) for n in range(len(doc_passages)))
                passages.extend(doc_passages)
            stored.append(
                StoredDocument(
                    document.id, document.title, document.source, document.content_hash,
                    document.text, len(doc_passages), dict(document.metadata), document.path,
                )
            )

        log.info("embedding %d of %d passages", len(to_embed), len(passages))
        tick = progress(len(to_embed)) if progress else None
        vectors, sentences = _embed(embedder, settings, passages, to_embed, reused, old, tick)
        log.info("building the keyword index")
        titles = {d.id: d.title for d in stored}
        keyword = KeywordIndex.build([embedding_text(titles[p.doc_id], p) for p in passages])

        manifest = {
            "format_version": FORMAT_VERSION,
            "model": settings.model,
            "dimension": embedder.dimension,
            "config": config,
            "chunk": {"max_tokens": min(settings.chunk_tokens, embedder.max_tokens),
                      "overlap_tokens": settings.chunk_overlap, "context": "title and section heading"},
            "keyword": {"method": "bm25 (lucene)", "stemmer": "snowball english", "stopwords": "english (bm25s STOPWORDS_EN_PLUS)"},
            "ann": _ann(settings, len(passages)),
            "passage_count": len(passages),
            "document_count": len(stored),
            "documents": {
                d.id: {"hash": d.hash, "passages": d.passages, "source": d.source, "path": d.path, "title": d.title}
                for d in stored
            },
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        path = store.write(manifest, stored, passages, vectors, keyword, sentences)
        report.passages_embedded = len(to_embed)
        report.passages = len(passages)
        report.written = True
        report.reason = reason
        report.index_path = str(path)
        report.seconds = time.perf_counter() - began
        return report


def _ann(settings: Settings, passages: int) -> dict[str, Any]:
    return ann_spec(passages, settings.index_type, settings.hnsw_threshold, settings.hnsw_m, settings.hnsw_ef_search,
                    settings.ivf_nprobe)


def _embed(
    embedder: Embedder,
    settings: Settings,
    passages: list[Passage],
    to_embed: list[tuple[int, str]],
    reused: list[tuple[int, int]],
    old: Any,
    tick: Callable[[int], None] | None,
) -> tuple[np.ndarray, SentenceTable]:
    """Vectors for every passage (new ones embedded, unchanged ones copied) and their sentences' vectors."""
    texts, spans = [], []
    for position, title in to_embed:
        passage = passages[position]
        text = embedding_text(title, passage)
        base = len(text) - len(passage.text)  # the passage text closes the embedding text
        texts.append(text)
        spans.append([(base + a, base + b) for a, b in sentence_spans(passage.text)])
    fresh, fresh_sentences = embedder.encode_passages(texts, spans, settings.batch_size, tick)
    vectors = np.zeros((len(passages), embedder.dimension), dtype=np.float32)
    per_passage: list[tuple[np.ndarray, np.ndarray]] = [None] * len(passages)  # type: ignore[list-item]
    for (position, _), vector, sentence_vectors, text, text_spans in zip(to_embed, fresh, fresh_sentences, texts, spans):
        vectors[position] = vector
        shift = passages[position].start - (len(text) - len(passages[position].text))
        absolute = np.asarray(text_spans, dtype=np.int64).reshape(-1, 2) + shift
        per_passage[position] = (absolute, sentence_vectors)
    for position, old_position in reused:
        vectors[position] = old.vectors[old_position]
        per_passage[position] = old.sentences.of(old_position)
    return vectors, SentenceTable.assemble(per_passage, embedder.dimension)


def _rows_by_doc(passages: list[Passage]) -> dict[str, list[int]]:
    rows: dict[str, list[int]] = {}
    for position, passage in enumerate(passages):
        rows.setdefault(passage.doc_id, []).append(position)
    return rows


def _config_change(old: Any, new: dict[str, Any]) -> str:
    if not isinstance(old, dict):
        return "no recorded settings"
    return ", ".join(f"{key}: {old.get(key)!r} -> {value!r}" for key, value in new.items() if old.get(key) != value)
