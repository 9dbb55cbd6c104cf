"""The document API over a real index: add, update, delete, auth, limits, filters."""

import io
import json

import pytest

import kb
from tests.pdfmaker import make_pdf

KEY = "write-key-123"
AUTH = {"Authorization": f"Bearer {KEY}"}


NOTE = {"id": "zeppelin-note", "title": "Airships", "text": "The Graf Zeppelin crossed the Atlantic in 1928. "
        "It carried passengers and mail between Germany and Brazil.", "date": "2024-05-01",
        "metadata": {"topic": "aviation"}}


def test_a_posted_document_is_searchable_at_once_and_only_it_is_embedded(make_client):
    client, settings = make_client(api_key=KEY)
    response = client.post("/api/documents", json=NOTE, headers=AUTH)
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["document"]["id"] == "zeppelin-note" and body["document"]["passages"] == 1
    assert body["index"]["added"] == 1 and body["index"]["passages_embedded"] == 1
    from kb.stores.faiss.store import open_current

    assert open_current(settings).document("zeppelin-note").text == NOTE["text"], "durable: another reader sees it"
    hits = client.get("/api/search", query_string={"q": "Which airship crossed the Atlantic?"}).get_json()["results"]
    assert hits[0]["doc_id"] == "zeppelin-note"
    assert hits[0]["metadata"] == {"topic": "aviation", "date": "2024-05-01"}


def test_an_update_replaces_the_document_and_a_delete_removes_it(make_client):
    client, settings = make_client(api_key=KEY)
    client.post("/api/documents", json=NOTE, headers=AUTH)
    changed = {**NOTE, "text": "The Hindenburg burned at Lakehurst in 1937."}
    body = client.post("/api/documents", json=changed, headers=AUTH).get_json()
    assert body["index"]["changed"] == 1 and body["index"]["passages_embedded"] == 1
    stored = client.get("/api/documents/zeppelin-note").get_json()
    assert stored["text"] == changed["text"]
    deleted = client.delete("/api/documents/zeppelin-note", headers=AUTH)
    assert deleted.status_code == 200 and deleted.get_json()["index"]["removed"] == 1
    assert client.get("/api/documents/zeppelin-note").status_code == 404
    from kb.stores.faiss.store import open_current

    assert open_current(settings).document("zeppelin-note") is None
    ids = {r["doc_id"] for r in client.get("/api/search", query_string={"q": "Hindenburg"}).get_json()["results"]}
    assert "zeppelin-note" not in ids


def test_writes_need_the_key_and_are_off_without_one(make_client):
    client, _ = make_client(api_key=KEY)
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {KEY}"}):
        response = client.post("/api/documents", json=NOTE, headers=headers)
        assert response.status_code == 401 and response.get_json()["error"]["code"] == "unauthorized"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert client.delete("/api/documents/astana-times-runde-interview.txt").status_code == 401
    assert client.get("/api/documents").status_code == 200, "reads stay open without KB_READ_KEY"

    closed, _ = make_client()
    response = closed.post("/api/documents", json=NOTE, headers=AUTH)
    assert response.status_code == 403
    assert "KB_API_KEY" in response.get_json()["error"]["message"]


def test_a_read_key_closes_reads(make_client):
    client, _ = make_client(api_key=KEY, read_key="read-key")
    assert client.get("/api/search", query_string={"q": "oil"}).status_code == 401
    assert client.get("/api/documents").status_code == 401
    assert client.get("/", query_string={"q": "oil"}).status_code == 401
    ok = {"Authorization": "Bearer read-key"}
    assert client.get("/api/search", query_string={"q": "oil"}, headers=ok).status_code == 200
    assert client.get("/api/search", query_string={"q": "oil"}, headers=AUTH).status_code == 200
    assert client.get("/api/health").status_code == 200


@pytest.mark.parametrize("name, payload, kind", [
    ("notes.md", b"# Airship Notes\n\nThe Graf Zeppelin crossed the Atlantic in 1928.", "md"),
    ("page.html", b"<html><head><title>Airships</title></head><body><p>The Graf Zeppelin crossed the "
                  b"Atlantic in 1928.</p></body></html>", "html"),
    ("feed.jsonl", (json.dumps(NOTE) + "\n").encode(), "jsonl"),
    ("aero.pdf", make_pdf(["Wind tunnels measure lift.", "The Graf Zeppelin crossed the Atlantic in 1928."],
                          title="Aero"), "pdf"),
    ("plain.txt", b"Airships\nThe Graf Zeppelin crossed the Atlantic in 1928.", "txt"),
])
def test_every_supported_type_can_be_uploaded(make_client, name, payload, kind):
    client, settings = make_client(api_key=KEY)
    response = client.post("/api/documents", data={"file": (io.BytesIO(payload), name)}, headers=AUTH,
                           content_type="multipart/form-data")
    assert response.status_code == 201, response.get_json()
    added = response.get_json()["documents"]
    assert len(added) == 1 and added[0]["passages"] >= 1
    hit = client.get("/api/search", query_string={"q": "Graf Zeppelin Atlantic 1928"}).get_json()["results"][0]
    assert hit["doc_id"] == added[0]["id"]
    if kind == "pdf":
        assert hit["metadata"]["pages"] == [1, 2] or 2 in hit["metadata"]["pages"]


def test_an_upload_carries_the_access_of_its_form_and_a_stray_field_is_refused(make_client):
    """`access` on the upload form: the file's document is read by those groups only; a .jsonl line's own access
    wins over it. A field kb does not know (a misspelt `acess`) is refused, not ignored into a public document."""
    client, settings = make_client(api_key=KEY)
    pdf = make_pdf(["Salary bands for 2027.", "Each band rises three percent."], title="Pay")
    lines = (json.dumps({"id": "own", "text": "A line with access of its own.", "access": ["legal"]}) + "\n"
             + json.dumps({"id": "plain", "text": "A line without access."}) + "\n").encode()
    for name, payload in (("pay.pdf", pdf), ("batch.jsonl", lines)):
        response = client.post("/api/documents", data={"file": (io.BytesIO(payload), name), "access": ["hr", "board"]},
                               headers=AUTH, content_type="multipart/form-data")
        assert response.status_code == 201, response.get_json()
    shown = {d["id"]: d["access"] for d in client.get("/api/documents", headers=AUTH).get_json()["documents"]}
    assert shown == {"astana-times-runde-interview.txt": [], "uploads--pay.pdf": ["board", "hr"], "own": ["legal"],
                     "plain": ["board", "hr"]}
    found = lambda **headers: {hit["doc_id"] for hit in client.get(  # noqa: E731
        "/api/search", query_string={"q": "salary bands", "mode": "keyword"}, headers=headers).get_json()["results"]}
    assert "uploads--pay.pdf" in found(**AUTH) and "uploads--pay.pdf" not in found(), "anonymous reads public only"
    for form, code in (({"acess": "hr"}, "unknown_field"), ({"access": "hr, not a group!"}, "invalid_document")):
        response = client.post("/api/documents", data={"file": (io.BytesIO(b"Secret minutes."), "m.txt"), **form},
                               headers=AUTH, content_type="multipart/form-data")
        assert response.status_code == 400 and response.get_json()["error"]["code"] == code, response.get_json()
        assert list(form)[0] in response.get_json()["error"]["message"]  # the field, or the group, named
    assert "uploads--m.txt" not in {d["id"] for d in client.get("/api/documents", headers=AUTH).get_json()["documents"]}
    # On the FAISS store the same name sent again without access would leave two files with one id: refused with
    # what to do, and done once the document is deleted.
    again = lambda: client.post("/api/documents", data={"file": (io.BytesIO(pdf), "pay.pdf")}, headers=AUTH,  # noqa: E731
                                content_type="multipart/form-data")
    refused = again()
    assert refused.status_code == 409 and "delete document 'uploads--pay.pdf' first" in refused.get_json()["error"]["message"]
    assert client.delete("/api/documents/uploads--pay.pdf", headers=AUTH).status_code == 200
    assert again().status_code == 201 and "uploads--pay.pdf" in found()


def test_bad_uploads_are_refused_with_the_right_status(make_client):
    client, settings = make_client(api_key=KEY, max_upload_mb=1)
    # A hand-made multipart body: the test client would spool a dict upload this big to a temporary file.
    boundary = "kb-test-boundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.txt\"\r\n"
            f"Content-Type: text/plain\r\n\r\n").encode() + b"x" * (1024 * 1024 + 10) + f"\r\n--{boundary}--\r\n".encode()
    response = client.post("/api/documents", data=body, headers=AUTH,
                           content_type=f"multipart/form-data; boundary={boundary}")
    assert response.status_code == 413 and response.get_json()["error"]["code"] == "payload_too_large"
    response = client.post("/api/documents", data={"file": (io.BytesIO(b"MZ"), "tool.exe")}, headers=AUTH,
                           content_type="multipart/form-data")
    assert response.status_code == 415 and response.get_json()["error"]["code"] == "unsupported_type"
    response = client.post("/api/documents", data={"file": (io.BytesIO(b"\x00\x01"), "x.txt")}, headers=AUTH,
                           content_type="multipart/form-data")
    assert response.status_code == 422
    for bad_id in ("../etc/passwd", "a/b", ".hidden", "x" * 300):
        response = client.post("/api/documents", json={**NOTE, "id": bad_id}, headers=AUTH)
        assert response.status_code == 400, bad_id
    assert client.post("/api/documents", data="x", content_type="text/plain", headers=AUTH).status_code == 415
    assert client.post("/api/documents", json={"title": "no text"}, headers=AUTH).status_code == 400
    assert not (settings.corpus_dir / "uploads").exists() or not any((settings.corpus_dir / "uploads").iterdir())


def test_documents_are_listed_with_pages_and_passage_counts(make_client):
    client, _ = make_client(api_key=KEY)
    for n in range(3):
        client.post("/api/documents", json={**NOTE, "id": f"note-{n}", "text": f"Note number {n} about airships."},
                    headers=AUTH)
    first = client.get("/api/documents", query_string={"per_page": 2}).get_json()
    assert first["total"] == 4 and len(first["documents"]) == 2 and first["page"] == 1
    second = client.get("/api/documents", query_string={"per_page": 2, "page": 2}).get_json()
    ids = [d["id"] for d in first["documents"] + second["documents"]]
    assert len(set(ids)) == 4 and all(d["passages"] >= 1 for d in first["documents"])
    assert client.get("/api/documents", query_string={"per_page": 0}).status_code == 400


def test_a_document_read_around_an_offset_comes_with_the_passages_around_it(make_client):
    client, _ = make_client()
    seed = "/api/documents/astana-times-runde-interview.txt"
    whole = client.get(seed).get_json()
    assert "window" not in whole
    hit = client.get("/api/search", query_string={"q": "Jackson-Vanik amendment", "k": 1}).get_json()["results"][0]
    ordinal = hit["passage"]["ordinal"]
    window = client.get(seed, query_string={"around": hit["start"], "window": 2}).get_json()["window"]
    assert [p["ordinal"] for p in window] == list(range(max(0, ordinal - 2), min(whole["passages"], ordinal + 3)))
    assert all(p["text"] == whole["text"][p["start"]:p["end"]] for p in window)
    alone = client.get(seed, query_string={"around": hit["start"], "window": 0}).get_json()["window"]
    assert [(p["start"], p["end"]) for p in alone] == [(hit["start"], hit["end"])]
    for at in (whole["characters"] - 1, whole["characters"] + 10**6):  # the end, and past it: the last passages
        last = client.get(seed, query_string={"around": at}).get_json()["window"]
        assert [p["ordinal"] for p in last] == [whole["passages"] - 2, whole["passages"] - 1]
    for query, code in (({"around": "-1"}, "invalid_around"),
                        ({"around": "abc"}, "invalid_around"), ({"around": 0, "window": 11}, "invalid_window")):
        refused = client.get(seed, query_string=query)
        assert refused.status_code == 400 and refused.get_json()["error"]["code"] == code, query


def test_filters_apply_before_ranking(make_client):
    client, _ = make_client(api_key=KEY)
    for n, (topic, date) in enumerate([("aviation", "2024-01-10"), ("aviation", "2024-03-05"),
                                        ("shipping", "2024-02-01"), ("aviation", "2023-12-31")]):
        client.post("/api/documents", json={"id": f"n{n}", "title": f"Note {n}", "text": f"Note {n}: unrelated text.",
                                            "date": date, "metadata": {"topic": topic}}, headers=AUTH)
    question = "Has an American president ever visited Kazakhstan?"
    got = client.get("/api/search", query_string={"q": question, "k": 3, "filter.topic": "aviation"}).get_json()
    assert sorted(r["doc_id"] for r in got["results"]) == ["n0", "n1", "n3"], "k matches exist, so k come back"
    dated = client.get("/api/search", query_string={"q": question, "k": 5, "date_from": "2024-01-01",
                                                     "date_to": "2024-02-28"}).get_json()
    assert sorted(r["doc_id"] for r in dated["results"]) == ["n0", "n2"]
    one = client.get("/api/search", query_string={"q": question, "doc_id": "n2"}).get_json()
    assert [r["doc_id"] for r in one["results"]] == ["n2"]
    posted = client.post("/api/search", json={"q": question, "k": 2, "filters": {"metadata": {"topic": "shipping"}}})
    assert [r["doc_id"] for r in posted.get_json()["results"]] == ["n2"]
    bad = client.get("/api/search", query_string={"q": question, "date_from": "yesterday"})
    assert bad.status_code == 400 and bad.get_json()["error"]["code"] == "invalid_date"


def test_a_full_disk_is_a_507_and_nothing_is_acknowledged(make_client, monkeypatch):
    """SQLite reports a full disk at commit; the transaction rolls back and the write is refused whole."""
    from kb.stores.faiss.store import open_current
    from tests.fakes import full_disk_at_commit

    client, settings = make_client(api_key=KEY)
    before = client.get("/api/search", query_string={"q": "Has a US president visited Kazakhstan?"}).get_json()
    library = client.application.extensions["kb"].library
    full_disk_at_commit(monkeypatch, library._store())
    response = client.post("/api/documents", json=NOTE, headers=AUTH)
    assert response.status_code == 507 and response.get_json()["error"]["code"] == "storage_unwritable"
    assert "disk is full" in response.get_json()["error"]["message"]
    monkeypatch.undo()
    library._store().db.close()
    assert open_current(settings).document(NOTE["id"]) is None, "nothing half-written"
    after = client.get("/api/search", query_string={"q": "Has a US president visited Kazakhstan?"}).get_json()
    assert [r["passage_id"] for r in after["results"]] == [r["passage_id"] for r in before["results"]]
    assert client.post("/api/documents", json=NOTE, headers=AUTH).status_code == 201, "a write after it succeeds"


def _multipart(disposition: str, payload: bytes) -> tuple[bytes, str]:
    boundary = "kb-name-boundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; {disposition}\r\n"
            f"Content-Type: text/plain\r\n\r\n").encode() + payload + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


@pytest.mark.parametrize("disposition, code", [
    ("filename*=UTF-8''a%00b.txt", "invalid_name"),
    ("filename*=UTF-8''a%0Ab.txt", "invalid_name"),
    ("filename=\"" + "n" * 252 + ".txt\"", "name_too_long"),
    ("filename*=UTF-8''" + "%E6%8A%A5" * 80 + ".txt", "name_too_long"),  # 244 bytes: under the limit, stored
    ("filename*=UTF-8''" + "%E6%8A%A5" * 90 + ".txt", "name_too_long"),  # 274 bytes
])
def test_upload_names_kb_cannot_store_are_a_400_that_says_why(make_client, disposition, code):
    client, settings = make_client(api_key=KEY)
    body, content_type = _multipart(disposition, b"Airships\nThe Graf Zeppelin crossed the Atlantic in 1928.")
    response = client.post("/api/documents", data=body, headers=AUTH, content_type=content_type)
    if "%E6%8A%A5" * 81 not in disposition and "%E6%8A%A5" in disposition:  # under 255 bytes: stored
        assert response.status_code == 201, response.get_json()
        return
    assert response.status_code == 400, response.get_json()
    error = response.get_json()["error"]
    assert error["code"] == code and "file name" in error["message"]
    assert not (settings.corpus_dir / "uploads").exists() or not any((settings.corpus_dir / "uploads").iterdir())


@pytest.mark.parametrize("pair", [("报告.txt", "总结.txt"), ("report (1).txt", "report [1].txt")])
def test_uploads_with_distinct_names_never_collide(make_client, pair):
    client, _ = make_client(api_key=KEY)
    ids = []
    for number, name in enumerate(pair):
        response = client.post("/api/documents", data={"file": (io.BytesIO(f"Note {number}\nText {number}.".encode()), name)},
                               headers=AUTH, content_type="multipart/form-data")
        assert response.status_code == 201, response.get_json()
        ids.append(response.get_json()["documents"][0]["id"])
    assert len(set(ids)) == 2
    listed = {d["id"] for d in client.get("/api/documents").get_json()["documents"]}
    assert set(ids) <= listed


@pytest.mark.parametrize("page_starts", ["abc", [5, 0], [0, 1.5], [0, -1], [0, 10**9], [], [True]])
def test_page_starts_that_are_not_ascending_offsets_are_refused_at_the_door(make_client, page_starts):
    client, settings = make_client(api_key=KEY)
    bad = {**NOTE, "metadata": {"page_starts": page_starts}}
    response = client.post("/api/documents", json=bad, headers=AUTH)
    assert response.status_code == 400 and "page_starts" in response.get_json()["error"]["message"]
    upload = client.post("/api/documents", data={"file": (io.BytesIO((json.dumps(bad) + "\n").encode()), "feed.jsonl")},
                         headers=AUTH, content_type="multipart/form-data")
    assert upload.status_code == 422 and "page_starts" in upload.get_json()["error"]["message"]
    good = client.post("/api/documents", json={**NOTE, "metadata": {"page_starts": [0, 20]}}, headers=AUTH)
    assert good.status_code == 201
    hit = client.get("/api/search", query_string={"q": "Graf Zeppelin", "doc_id": NOTE["id"]}).get_json()["results"][0]
    assert hit["metadata"]["pages"] in ([1], [1, 2])


def test_a_bad_stored_page_starts_never_breaks_a_search(tmp_path, embedder):
    """An index written before the check (or by hand) holds a bad value: searches still answer."""
    from kb.documents.document import Document
    from kb.ingestion.sync import build_index
    from kb.settings import Settings
    from web.app import create_app

    settings = Settings.from_env(environ={}, corpus_dir=tmp_path / "corpus", index_dir=tmp_path / "index")
    documents = [Document("odd", "Odd", "odd.pdf", "The Graf Zeppelin crossed the Atlantic in 1928.",
                          {"page_starts": value}) for value in ["abc"]]
    build_index(settings, embedder=embedder, documents=documents)
    client = create_app(settings, base=kb.open(settings, serving=True, embedder=embedder)).test_client()
    response = client.get("/api/search", query_string={"q": "Graf Zeppelin"})
    assert response.status_code == 200 and response.get_json()["results"][0]["doc_id"] == "odd"
    assert "pages" not in response.get_json()["results"][0]["metadata"]


def test_a_date_kb_cannot_filter_on_is_refused(make_client):
    client, _ = make_client(api_key=KEY)
    response = client.post("/api/documents", json={**NOTE, "date": "last spring"}, headers=AUTH)
    assert response.status_code == 400 and "date" in response.get_json()["error"]["message"]


def test_concurrent_writes_are_grouped_and_a_race_on_one_id_leaves_one_whole(make_client):
    """Eight writers at once: fewer store updates than writes, and two versions of one id never mix."""
    import threading

    client, settings = make_client(api_key=KEY)
    app = client.application
    library = app.extensions["kb"].library
    versions = {n: " ".join(f"Version {n} sentence {i} about airships and wind tunnels." for i in range(40))
                for n in range(4)}
    statuses = []

    def write(n):
        response = app.test_client().post("/api/documents", json={"id": "raced", "title": "Raced",
                                                                  "text": versions[n % 4]}, headers=AUTH)
        statuses.append(response.status_code)

    before = (library.groups, library.writes)
    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [201] * 8
    groups, writes = library.groups - before[0], library.writes - before[1]
    assert writes == 8 and groups < writes, (groups, writes)
    stored = client.get("/api/documents/raced").get_json()
    assert stored["text"] in versions.values(), "one version, whole"
    hits = client.get("/api/search", query_string={"q": "airships wind tunnels", "doc_id": "raced", "k": 50}).get_json()
    assert hits["results"] and all(stored["text"][h["start"]:h["end"]] == h["text"] for h in hits["results"])
    assert len(hits["results"]) == stored["passages"], "exactly that version's passages, none of another"
