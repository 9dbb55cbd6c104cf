"""Overlapping passages of one document are trimmed on screen so no sentence shows twice (web/results.py)."""

from kb.search.hit import Hit
from web.render import marked_passage
from web.results import read_marks, shown_results

DOCUMENT = " ".join(f"Sentence {n} says something." for n in range(1, 13))  # 12 sentences, 26 characters each


def sentence(n: int) -> tuple[int, int]:
    start = DOCUMENT.index(f"Sentence {n} ")
    return start, start + len(f"Sentence {n} says something.")


def hit(rank: int, first: int, last: int, doc_id: str = "d", answer: int | None = None) -> Hit:
    """A hit on sentences first..last of the document, with sentence ``answer`` marked as answering."""
    start, end = sentence(first)[0], sentence(last)[1]
    marks = [dict(zip(("start", "end"), sentence(answer)), score=1.0)] if answer else []
    return Hit(rank=rank, score=1.0, passage_id=f"{doc_id}:{first}", doc_id=doc_id, title="t", source="s",
               text=DOCUMENT[start:end], start=start, end=end, ordinal=first, doc_passages=12,
               doc_length=len(DOCUMENT), highlights=marks)


def test_passages_that_do_not_overlap_are_shown_whole():
    shown = shown_results([hit(1, 1, 3), hit(2, 4, 6), hit(3, 1, 3, doc_id="other")])
    assert [s.view.text for s in shown] == [s.hit.text for s in shown]
    assert not any(s.cut_before or s.cut_after or s.shown_by for s in shown)


def test_a_passage_overlapping_a_better_one_shows_only_its_new_sentences():
    first, second = shown_results([hit(1, 3, 5, answer=5), hit(2, 5, 7, answer=5)])
    assert first.view.text == first.hit.text
    assert second.cut_before and not second.cut_after
    assert second.view.text == DOCUMENT[sentence(6)[0]:sentence(7)[1]], "starts at the next sentence, no white space"
    assert "Sentence 5" not in str(marked_passage(second.view)), "the marked sentence shown above is not drawn again"
    assert (second.hit.start, second.hit.end) == (sentence(5)[0], sentence(7)[1]), "the link cites the whole passage"


def test_a_passage_between_two_shown_ones_keeps_its_longest_new_piece():
    shown = shown_results([hit(1, 1, 3), hit(2, 8, 9), hit(3, 2, 10)])
    assert shown[2].view.text == DOCUMENT[sentence(4)[0]:sentence(7)[1]]
    assert shown[2].cut_before and shown[2].cut_after


def test_a_passage_with_nothing_new_points_at_the_result_that_showed_it():
    shown = shown_results([hit(1, 1, 4), hit(2, 5, 8), hit(3, 3, 6)])
    assert shown[2].shown_by == 1 and shown[2].view.text == shown[2].hit.text


def test_earlier_pages_count_as_shown():
    (shown,) = shown_results([hit(6, 2, 4)], above=[hit(1, 1, 3)])
    assert shown.cut_before and shown.view.text == DOCUMENT[sentence(4)[0]:sentence(4)[1]]
    (shown,) = shown_results([hit(6, 2, 4, doc_id="other")], above=[hit(1, 1, 3)])
    assert not shown.cut_before, "another document's passages never trim"


def test_a_results_marks_travel_in_the_document_link_and_come_back_the_same():
    (shown,) = shown_results([hit(1, 2, 4, answer=3)])
    start, end = sentence(3)
    assert shown.marks == f"{start}-{end}"
    assert read_marks(shown.marks, shown.hit.start, shown.hit.end) == [{"start": start, "end": end}]
    assert read_marks(f"{shown.marks},0-99999,x-y,7,-3-5", shown.hit.start, shown.hit.end) == [{"start": start, "end": end}]
    assert read_marks(None, 0, 10) == []
