"""Retrieval test collections as Documents, queries and graded judgements.

Two layouts: BEIR (corpus.jsonl, queries.jsonl, qrels/test.tsv) and the Cranfield files
(cran.all.1400, cran.qry, cranqrel), whose query numbers in cran.qry are NOT the ids the
judgements use: queries are numbered 1..225 in file order.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from pathlib import Path

from kb.documents.document import Document


@dataclass
class Collection:
    name: str
    documents: list[Document]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]  # query id -> document id -> gain (> 0 is relevant)


def load_collection(path: Path) -> Collection:
    path = Path(path)
    if (path / "cran.all.1400").exists():
        return load_cranfield(path)
    if (path / "corpus.jsonl").exists():
        return load_beir(path)
    raise FileNotFoundError(
        f"{path} is neither a BEIR folder (corpus.jsonl, queries.jsonl, qrels/test.tsv) "
        "nor a Cranfield folder (cran.all.1400, cran.qry, cranqrel)"
    )


def _fields(text: str) -> list[dict[str, str]]:
    """Records of the SMART format: '.I n' starts a record, '.X' lines start fields."""
    records: list[dict[str, str]] = []
    field = None
    for line in text.splitlines():
        match = re.match(r"^\.([A-Z])(?:\s+(.*))?$", line)
        if match:
            field = match.group(1)
            if field == "I":
                records.append({"I": (match.group(2) or "").strip()})
            else:
                records[-1].setdefault(field, "")
            continue
        if field and records:
            records[-1][field] = (records[-1].get(field, "") + " " + line.strip()).strip()
    return records


def _tidy(text: str) -> str:
    # Cranfield is hard-wrapped and spaces out its punctuation ("wing .", "speed ,").
    return re.sub(r"\s+([.,;:)])", r"\1", " ".join(text.split()))


def load_cranfield(path: Path) -> Collection:
    documents = []
    for record in _fields((path / "cran.all.1400").read_text(encoding="utf-8", errors="replace")):
        doc_id = str(int(record["I"]))
        title = _tidy(record.get("T", ""))
        text = _tidy(record.get("W", "")) or title
        documents.append(Document(id=doc_id, title=title or doc_id, source=f"cranfield/{doc_id}", text=text))
    queries = {
        str(number): _tidy(record.get("W", ""))
        for number, record in enumerate(_fields((path / "cran.qry").read_text(encoding="utf-8", errors="replace")), 1)
    }
    qrels: dict[str, dict[str, int]] = {}
    for line in (path / "cranqrel").read_text().splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        query_id, doc_id, relevance = parts[0], str(int(parts[1])), int(parts[2])
        if 1 <= relevance <= 4:  # -1 marks background material, not a relevant document
            qrels.setdefault(query_id, {})[doc_id] = 5 - relevance
    return Collection("cranfield", documents, queries, qrels)


def load_beir(path: Path) -> Collection:
    documents = []
    with open(path / "corpus.jsonl", encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                row = json.loads(line)
                doc_id = str(row["_id"])
                documents.append(Document(id=doc_id, title=row.get("title") or doc_id, source=f"{path.name}/{doc_id}",
                                          text=row.get("text") or row.get("title") or ""))
    queries = {}
    with open(path / "queries.jsonl", encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                row = json.loads(line)
                queries[str(row["_id"])] = row["text"]
    qrels: dict[str, dict[str, int]] = {}
    with open(path / "qrels" / "test.tsv", encoding="utf-8") as handle:
        reader = csv.reader(handle, delimiter="\t")
        for row in reader:
            if len(row) < 3 or not row[2].lstrip("-").isdigit():
                continue  # the header line
            if int(row[2]) > 0:
                qrels.setdefault(row[0], {})[row[1]] = int(row[2])
    return Collection(path.name, documents, queries, qrels)
