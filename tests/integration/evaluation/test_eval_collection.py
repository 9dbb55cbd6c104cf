"""`kb eval` on a retrieval collection, end to end with the real model (a Cranfield slice, BEIR layout)."""

import json
import os
import subprocess
import sys

import pytest

from kb.evaluation.datasets import load_cranfield
from tests.conftest import REPO

CRANFIELD = REPO / "benchmarks" / "data" / "cranfield"


@pytest.fixture(scope="module")
def beir_slice(tmp_path_factory):
    """The first 80 Cranfield documents and the queries judged against them, written as BEIR."""
    collection = load_cranfield(CRANFIELD)
    keep = {d.id for d in collection.documents[:80]}
    folder = tmp_path_factory.mktemp("cran-beir")
    (folder / "qrels").mkdir()
    with open(folder / "corpus.jsonl", "w") as handle:
        for d in collection.documents[:80]:
            handle.write(json.dumps({"_id": d.id, "title": d.title, "text": d.text}) + "\n")
    queries = {q: rel for q, rel in collection.qrels.items() if set(rel) & keep}
    with open(folder / "queries.jsonl", "w") as handle:
        for q in queries:
            handle.write(json.dumps({"_id": q, "text": collection.queries[q]}) + "\n")
    with open(folder / "qrels" / "test.tsv", "w") as handle:
        handle.write("query-id\tcorpus-id\tscore\n")
        for q, rel in queries.items():
            for d, gain in rel.items():
                if d in keep:
                    handle.write(f"{q}\t{d}\t{gain}\n")
    return folder, len(queries)


def test_kb_eval_scores_every_mode_on_the_same_queries(beir_slice, tmp_path):
    folder, n_queries = beir_slice
    env = {**os.environ, "KB_INDEX_DIR": str(tmp_path / "index"), "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-m", "kb.cli", "eval", str(folder), "--json"],
                            capture_output=True, text=True, timeout=900, env=env)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    print("\n" + json.dumps(report, indent=1))
    assert set(report["results"]) == {"hybrid", "dense", "keyword"}
    for mode, row in report["results"].items():
        assert row["queries"] == n_queries
        for metric in ("nDCG@10", "Recall@10", "Recall@100", "MRR@10"):
            assert 0.0 < row[metric] <= 1.0, (mode, metric)
        assert row["Recall@100"] >= row["Recall@10"]
    # A second run reuses the built index: nothing is embedded again.
    again = subprocess.run([sys.executable, "-m", "kb.cli", "eval", str(folder), "--json", "--modes", "keyword"],
                           capture_output=True, text=True, timeout=900, env=env)
    second = json.loads(again.stdout.strip().splitlines()[-1])["results"]["keyword"]
    assert {k: v for k, v in second.items() if k != "ms/query"} == {
        k: v for k, v in report["results"]["keyword"].items() if k != "ms/query"
    }
