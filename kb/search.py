"""The query pipeline: embed the question, find the nearest passages, return Hits."""

from __future__ import annotations

from kb.embed import Embedder
from kb.hit import Hit
from kb.index import Index

MAX_QUERY_CHARS = 1000
MAX_K = 50
DEFAULT_K = 5


class Searcher:
    def __init__(self, index: Index, embedder: Embedder) -> None:
        if index.model != embedder.name:
            raise ValueError(f"index built with {index.model!r}, embedder is {embedder.name!r}")
        self.index = index
        self.embedder = embedder

    def search(self, query: str, k: int = DEFAULT_K) -> list[Hit]:
        query_vector = self.embedder.encode_query(query)
        return [self._hit(rank, position, score) for rank, (position, score) in enumerate(self.index.search(query_vector, k), 1)]

    def _hit(self, rank: int, position: int, score: float) -> Hit:
        passage = self.index.passages[position]
        document = self.index.documents[passage.doc_id]
        return Hit(
            rank=rank,
            score=score,
            passage_id=passage.id,
            doc_id=passage.doc_id,
            title=document.title,
            source=document.source,
            text=passage.text,
            start=passage.start,
            end=passage.end,
            ordinal=passage.ordinal,
            doc_passages=document.passages,
            doc_length=len(document.text),
            scores={"dense": score},
        )
