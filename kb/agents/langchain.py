"""``KbRetriever``: kb as a LangChain retriever, over HTTP (a running `kb serve`) or in process (``kb.open()``).

    pip install 'kb[langchain]'
    from kb.agents.langchain import KbRetriever

    retriever = KbRetriever(url="http://127.0.0.1:8000", k=4)         # or KbRetriever(base=kb.open(), k=4)
    for doc in retriever.invoke("Has an American president ever visited Kazakhstan?"):
        doc.page_content, doc.metadata["citation"], doc.metadata["confident"]

Each passage is a ``Document`` whose metadata keeps what makes kb's answers checkable: the document id and title,
its source and heading path, the passage's exact offsets in its document, the answering sentences
(``highlights``, offsets in the document), the scores, a link to the passage in the document view (``citation``,
over HTTP), and ``confident``, False on every passage when nothing answers the question (a "no good match").
It passes langchain-tests' standard retriever suite (tests/e2e/test_langchain.py).
"""

from __future__ import annotations

from typing import Any, Optional

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from kb.client import Client
from kb.client.http import citation
from kb.schemas import SearchAnswer


class KbRetriever(BaseRetriever):
    """The passages of a kb knowledge base that answer a query, best first."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    url: Optional[str] = None  # a running kb serve; or ``base``
    key: Optional[str] = None  # its KB_READ_KEY, when reads need one
    base: Any = None  # an open kb.KnowledgeBase, searched in this process
    k: int = 5
    mode: Optional[str] = None  # hybrid, dense or keyword (the server's KB_SEARCH_MODE when None)

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun,
                                **kwargs: Any) -> list[Document]:
        k = int(kwargs.get("k", self.k))
        if self.base is not None:
            answer = SearchAnswer.model_validate(self.base.search(query, k, kwargs.get("mode", self.mode)).to_json(k, 0))
        elif self.url:
            answer = Client(self.url, key=self.key).search(query, k=k, mode=kwargs.get("mode", self.mode))
        else:
            raise ValueError("KbRetriever needs url= (a running kb serve) or base= (kb.open())")
        return [Document(page_content=hit.text, metadata={
            "doc_id": hit.doc_id, "passage_id": hit.passage_id, "title": hit.title, "source": hit.source,
            "headings": hit.headings, "start": hit.start, "end": hit.end, "rank": hit.rank, "score": hit.score,
            "scores": hit.scores, "highlights": [h.model_dump() for h in hit.highlights],
            "confident": answer.confident and hit.confident, "answer_confident": answer.confident,
            "citation": citation(self.url, hit, query) if self.url else None, "metadata": hit.metadata,
        }) for hit in answer.results]
