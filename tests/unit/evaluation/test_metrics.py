"""The evaluation: collection loaders (with Cranfield's numbering trap), metrics and calibration."""

import json
import math

import pytest

from kb.evaluation.datasets import load_beir, load_collection, load_cranfield
from kb.evaluation.metrics import calibrate, trec_metrics

CRAN_DOCS = """.I 1
.T
first title .
.A
someone
.B
journal
.W
first title .
  text about wings and lift .
.I 2
.T
second title
.W
second title
boundary layers .
"""

# Query numbers in cran.qry skip values; the judgements number queries 1..n in file order.
CRAN_QUERIES = """.I 001
.W
what about wings .
.I 004
.W
what about boundary
layers .
"""

CRAN_QRELS = "1 1 1\n1 2 -1\n2 2 4\n2 1 3\n"


def test_cranfield_queries_are_numbered_in_file_order_and_gains_are_five_minus_relevance(tmp_path):
    (tmp_path / "cran.all.1400").write_text(CRAN_DOCS)
    (tmp_path / "cran.qry").write_text(CRAN_QUERIES)
    (tmp_path / "cranqrel").write_text(CRAN_QRELS)
    collection = load_collection(tmp_path)
    assert collection.queries == {"1": "what about wings.", "2": "what about boundary layers."}
    assert collection.qrels == {"1": {"1": 4}, "2": {"2": 1, "1": 2}}
    first = collection.documents[0]
    assert (first.id, first.title, first.text) == ("1", "first title.", "first title. text about wings and lift.")


def test_the_bundled_cranfield_collection_loads_whole():
    from tests.conftest import REPO

    collection = load_cranfield(REPO / "benchmarks" / "data" / "cranfield")
    assert len(collection.documents) == 1400 and len(collection.queries) == 225
    assert collection.queries["225"].startswith("what design factors can be used to control lift-drag ratios")


def test_beir_layout(tmp_path):
    (tmp_path / "qrels").mkdir()
    (tmp_path / "corpus.jsonl").write_text(json.dumps({"_id": "d1", "title": "T", "text": "body"}) + "\n")
    (tmp_path / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "body?"}) + "\n")
    (tmp_path / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t2\nq1\td9\t0\n")
    collection = load_beir(tmp_path)
    assert collection.qrels == {"q1": {"d1": 2}}
    assert collection.documents[0].title == "T" and collection.queries == {"q1": "body?"}


def test_unknown_layout_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="neither a BEIR folder"):
        load_collection(tmp_path)


def test_metrics_match_a_hand_computation():
    qrels = {"q": {"a": 3, "b": 1}}
    run = {"q": ["x", "a", "y", "b"]}
    metrics = trec_metrics(qrels, run)
    dcg = 3 / math.log2(3) + 1 / math.log2(5)
    ideal = 3 / math.log2(2) + 1 / math.log2(3)
    assert metrics["nDCG@10"] == pytest.approx(dcg / ideal, abs=1e-4)
    assert metrics["Recall@10"] == 1.0 and metrics["MRR@10"] == 0.5


def test_mrr_is_cut_at_ten_and_unanswered_queries_count_as_zero():
    qrels = {"q1": {"a": 1}, "q2": {"b": 1}}
    run = {"q1": [f"x{i}" for i in range(10)] + ["a"]}
    metrics = trec_metrics(qrels, run)
    assert metrics["MRR@10"] == 0.0 and metrics["Recall@100"] == 0.5


def test_calibration_separates_the_two_groups():
    result = calibrate([0.5, 0.6, 0.3], [0.1, 0.2])
    assert 0.2 < result.threshold < 0.3 and result.accuracy == 1.0
    overlapping = calibrate([0.5, 0.15], [0.2, 0.1])
    assert overlapping.accuracy == 0.75


def test_kb_eval_reports_embedding_progress_like_kb_build(tmp_path):
    """`kb eval` embeds a whole collection first: it must show the same progress as `kb build`."""
    from kb.documents.document import Document
    from kb.evaluation.datasets import Collection
    from kb.evaluation.metrics import evaluate_collection
    from kb.settings import Settings
    from tests.fakes import FakeEmbedder

    documents = [Document(str(n), f"Title {n}", f"c/{n}", f"Text number {n} about wings and lift.") for n in range(7)]
    collection = Collection("tiny", documents, {"1": "wings"}, {"1": {"3": 1}})
    totals, done = [], []

    def progress(total):
        totals.append(total)
        return done.append

    settings = Settings.from_env(environ={}, index_dir=tmp_path / "index")
    evaluate_collection(collection, settings, FakeEmbedder(), ["keyword"], progress=progress)
    assert totals == [7] and sum(done) == 7
