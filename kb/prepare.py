"""Documents in, passages ready to store out: chunked, embedded, with keyword terms and sentence vectors.

Only the documents given are read, chunked and embedded: the cost of a write is its own size.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from kb.chunk import Passage, chunk_text
from kb.ingest import Document
from kb.keyword import terms
from kb.settings import Settings
from kb.store import PreparedDocument, PreparedPassage, StoredDocument
from kb.structure import Structure, fmt_of, structure_of

# Bump when chunking or the text given to the embedder changes, so old vectors are not reused.
CHUNKER_VERSION = 5
CONTEXT_CHARS = 160  # the longest title or heading given to the model as context


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


def embedding_text(title: str, passage: Any) -> str:
    """What the model (and BM25) read for a passage: its context line, then its text.

    Only the embedding sees the context; the passage's text, start and end stay the exact span.
    """
    context = context_of(title, passage.heading)
    return f"{context}\n{passage.text}" if context else passage.text


def passage_limit(document: Document, structure: Structure, embedder: Any, settings: Settings) -> int:
    """Tokens left for passage text once the longest context line of this document is added."""
    contexts = [context_of(document.title, h) for h in ["", *{s.title for s in structure.sections}]]
    reserve = max(embedder.count_tokens(c) for c in contexts) + 1 if contexts else 0
    return max(16, min(settings.chunk_tokens, embedder.max_tokens - reserve))


def document_format(document: Document) -> str:
    """A document's format: its file's type, or, for a document kept as a JSON line (sent through the API, a line
    of a .jsonl file), its source's (an uploaded Markdown file's text stays Markdown wherever it is kept)."""
    held = document.path if document.path and not document.path.lower().endswith(".jsonl") else document.source
    return fmt_of(held)


def document_structure(document: Document) -> Structure:
    return structure_of(document.text, document_format(document), document.metadata)


def chunk_document(document: Document, embedder: Any, settings: Settings) -> list[Passage]:
    structure = document_structure(document)
    limit = passage_limit(document, structure, embedder, settings)
    return chunk_text(document.id, document.text, embedder.count_tokens, limit, settings.chunk_overlap, structure)


Chunked = list[tuple[Document, list[Passage]]]


def chunk_all(documents: Sequence[Document], embedder: Any, settings: Settings) -> Chunked:
    return [(document, chunk_document(document, embedder, settings)) for document in documents]


def prepare(documents: Sequence[Document], embedder: Any, settings: Settings,
            progress: Callable[[int], None] | None = None, slice_size: int | None = None) -> list[PreparedDocument]:
    """Chunk and embed ``documents``: passage vectors and late-chunked sentence vectors from one pass.

    ``slice_size`` embeds a few passages per hold of the model, so queries can pass between
    slices (a server's writes use it; `kb build` runs whole batches).
    """
    return embed_chunked(chunk_all(documents, embedder, settings), embedder, settings, progress, slice_size)


def embed_chunked(chunked: Chunked, embedder: Any, settings: Settings, progress: Callable[[int], None] | None = None,
                  slice_size: int | None = None) -> list[PreparedDocument]:
    texts, spans = [], []
    for document, passages in chunked:
        for passage in passages:
            text = embedding_text(document.title, passage)
            base = len(text) - len(passage.text)  # the passage text closes the embedding text
            texts.append(text)
            spans.append([(base + a - passage.start, base + b - passage.start) for a, b in passage.sentences])
    vectors, sentence_vectors = embedder.encode_passages(texts, spans, settings.batch_size, progress,
                                                         slice_size=slice_size)
    prepared, row = [], 0
    for document, passages in chunked:
        items = []
        for passage in passages:
            text = texts[row]
            shift = passage.start - (len(text) - len(passage.text))
            absolute = np.asarray(spans[row], dtype=np.int64).reshape(-1, 2) + shift
            items.append(PreparedPassage(
                passage.id, passage.ordinal, passage.start, passage.end, passage.text, passage.headings,
                vectors[row], terms(text), absolute, np.asarray(sentence_vectors[row], dtype=np.float16)))
            row += 1
        stored = StoredDocument(document.id, document.title, document.source, document.content_hash, document.text,
                                len(passages), dict(document.metadata), document.path, updated=document.updated)
        prepared.append(PreparedDocument(stored, items))
    return prepared
