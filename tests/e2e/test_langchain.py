"""KbRetriever against a real `kb serve` (the real model): langchain-tests' standard retriever suite, unmodified,
then what kb adds: citations, highlights and the "no good match" signal."""

from __future__ import annotations

import pytest
from langchain_tests.integration_tests import RetrieversIntegrationTests

from kb.agents.langchain import KbRetriever

SERVER: dict = {}


@pytest.fixture(autouse=True, scope="module")
def _served(server):
    SERVER["base"] = server.base  # the session's kb serve over the seed index (tests/e2e/conftest.py)
    yield


class TestKbRetrieverStandard(RetrieversIntegrationTests):
    @property
    def retriever_constructor(self) -> type[KbRetriever]:
        return KbRetriever

    @property
    def retriever_constructor_params(self) -> dict:
        return {"url": SERVER["base"]}

    @property
    def retriever_query_example(self) -> str:
        return "Has an American president ever visited Kazakhstan?"


def test_documents_carry_the_citation_the_highlights_and_confidence(server):
    docs = KbRetriever(url=server.base, k=3).invoke("Has an American president ever visited Kazakhstan?")
    best = docs[0].metadata
    assert best["doc_id"] == "astana-times-runde-interview.txt" and best["confident"] is True
    assert best["highlights"] and best["start"] < best["highlights"][0]["start"] < best["end"]
    assert best["citation"].startswith(server.base + "/documents/astana-times-runde-interview.txt?start=")
    assert best["citation"].endswith("#passage")
    off_topic = KbRetriever(url=server.base).invoke("How do I reset my router password?")
    assert off_topic and not any(doc.metadata["confident"] for doc in off_topic)


def test_in_process_it_gives_the_same_passages_as_over_http(server, seed_settings, embedder):
    import kb

    with kb.open(seed_settings, embedder=embedder) as base:
        local = KbRetriever(base=base, k=4).invoke("oil prices and investment")
    remote = KbRetriever(url=server.base, k=4).invoke("oil prices and investment")
    assert [d.metadata["passage_id"] for d in local] == [d.metadata["passage_id"] for d in remote]
