"""Documents in, passages ready to store out: chunked, embedded, with keyword terms and sentence vectors.

Only the documents given are read, chunked and embedded: the cost of a write is its own size.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from kb.documents.chunking import CHUNKER_VERSION, Chunked, chunk_all, embedding_text
from kb.documents.document import Document
from kb.documents.terms import terms
from kb.settings import Settings
from kb.stores.base import PreparedDocument, PreparedPassage, StoredDocument


def build_config(settings: Settings) -> dict[str, Any]:
    """What the vectors depend on besides the text; a change re-embeds everything."""
    return {
        "model": settings.model,
        "chunk_tokens": settings.chunk_tokens,
        "chunk_overlap": settings.chunk_overlap,
        "chunker_version": CHUNKER_VERSION,
    }


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
                                len(passages), dict(document.metadata), document.path, updated=document.updated,
                                access=document.access)
        prepared.append(PreparedDocument(stored, items))
    return prepared
