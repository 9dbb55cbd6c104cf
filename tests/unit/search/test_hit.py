"""A result's and an answer's JSON have exactly the shape kb/schemas.py declares (the API publishes that shape)."""

from kb.schemas import Result, SearchAnswer
from kb.search.hit import Hit
from kb.search.pipeline import Answer
from kb.stores.filters import Filters


def hit() -> Hit:
    return Hit(rank=1, score=1.23456789, passage_id="a:1", doc_id="a", title="A", source="a.txt", text="Alpha beta.",
               start=0, end=11, ordinal=0, doc_passages=1, doc_length=11, heading="H", headings=["H"],
               code=[{"start": 0, "end": 5}], scores={"dense": 0.5, "keyword": 1.0, "fused": 1.23456789},
               ranks={"dense": 1, "keyword": None}, confident=True, highlights=[{"start": 0, "end": 11, "score": 0.5}],
               terms=[{"start": 0, "end": 5, "term": "Alpha"}], metadata={"topic": "x"})


def test_a_hits_json_is_a_result_field_for_field_in_order():
    data = hit().to_dict()
    assert list(data) == list(Result.model_fields)
    assert Result.model_validate(data).model_dump() == data
    assert data["score"] == 1.234568 and data["passage"] == {"ordinal": 0, "of": 1, "doc_length": 11}


def test_an_answers_json_is_a_search_answer_with_and_without_filters():
    for filters in (Filters(), Filters(doc_ids=("a",))):
        answer = Answer("alpha?", "hybrid", [hit()], True, filters, 0, False)
        data = answer.to_json(1, 2.345)
        expected = [*SearchAnswer.model_fields][:-1] + (["filters"] if filters else [])
        assert list(data) == expected
        dumped = SearchAnswer.model_validate(data).model_dump()
        if not filters:
            assert dumped.pop("filters") is None
        assert dumped == data
