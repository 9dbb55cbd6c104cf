"""Who may read what, as leak tests: a corpus of public, group-A and group-B documents, and a secret word only B's
documents hold. A group-A caller, anonymous, a forged proxy header and a revoked key ask every path that shows text
(search in every mode, with filters and pages 1 to 3, the page, the document view and its neighbours, the listing
and its counts, health, the export, the cache after B asked, MCP and the insights); no answer may hold the secret word or a
B document's id or title. The same suite runs on both stores, each behind a real `kb serve` with the real model,
keys made with the real `kb keys` command.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.parse

import pytest

from kb.settings import Settings
from kb.stores import store_class
from tests.e2e.conftest import start_server
from tests.e2e.test_mcp import over_http

SECRET = "zorblax"
ADMIN = "access-admin-key"
PROXY_HEADER, GROUPS_HEADER = "X-Forwarded-User", "X-Forwarded-Groups"
B_IDS = {"team-b--plan.md", "team-b--budget.md", "ledger-b", "api-b", "uploads--falcon-notes.md"}
B_TITLES = {"Falcon plan", "Falcon budget", "Falcon ledger", "Falcon memo", "Falcon notes"}
PUBLIC_ID = "public.md"
# Questions B's documents answer best. Those with the secret word in them are asked of the JSON API and MCP only,
# whose echo of the question (and of the filters asked) is set aside before a body is searched for the word.
QUESTIONS = ["What does team B plan to spend on hiring next quarter?", "payment ledger of the secret launch",
             "hiring freezes in spring memo"]
SECRET_QUESTIONS = [SECRET, f"What is project {SECRET}?", f"{SECRET} budget"]


def _write_corpus(corpus) -> None:
    (corpus / "team-a").mkdir(parents=True)
    (corpus / "team-b").mkdir()
    (corpus / PUBLIC_ID).write_text("# Airships\n\nThe Graf Zeppelin crossed the Atlantic in 1928. Airships carried "
                                    "mail and passengers between Europe and South America for a decade.\n")
    (corpus / "team-a" / "notes.md").write_text("# Harbour notes\n\nTeam A is rebuilding the harbour crane. The crane "
                                                "budget for next quarter is modest and the plan is on schedule.\n")
    (corpus / "team-b" / "plan.md").write_text(f"# Falcon plan\n\nProject {SECRET} is the secret plan of team B. The "
                                               f"{SECRET} launch moves the budget for next quarter to new markets.\n")
    (corpus / "team-b" / "budget.md").write_text(f"# Falcon budget\n\nThe {SECRET} budget for next quarter is four "
                                                 "million. Team B spends it on the plan and on hiring.\n")
    # A .jsonl line carries its own access; the rules file gives the folders theirs.
    (corpus / "lines.jsonl").write_text(json.dumps({"id": "ledger-b", "title": "Falcon ledger", "access": ["b"],
                                                    "text": f"The {SECRET} ledger lists every payment of team B's "
                                                            "plan for next quarter."}) + "\n")
    (corpus / ".kb-access").write_text("# who reads what\nteam-a: a\nteam-b: b\n")


def _kb(env: dict, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "kb.cli", *args], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


class Served:
    def __init__(self, server, env: dict, keys: dict[str, str]) -> None:
        self.server, self.env, self.keys = server, env, keys
        self.bodies: list[str] = []  # every answer a caller who may not read B got

    def ask(self, method: str, path: str, body=None, key: str | None = None, headers: dict | None = None,
            source: str = "127.0.0.1", collect: bool = True) -> tuple[int, str]:
        """(status, body text) of one request from ``source`` (a loopback address)."""
        url = urllib.parse.urlsplit(self.server.base)
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=120, source_address=(source, 0))
        sent = {"Content-Type": "application/json", **(headers or {})}
        if key:
            sent["Authorization"] = f"Bearer {key}"
        conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=sent)
        response = conn.getresponse()
        text = response.read().decode("utf-8", "replace")
        conn.close()
        if collect:
            self.bodies.append(f"{method} {path} -> {response.status}\n{_without_echo(text)}")
        return response.status, text


@pytest.fixture(scope="module", params=["faiss", "postgres"])
def served(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(f"access-{request.param}")
    _write_corpus(folder / "corpus")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "KB_CORPUS_DIR": str(folder / "corpus"),
           "KB_INDEX_DIR": str(folder / "index"), "KB_API_KEY": ADMIN, "KB_WRITE_RATE_LIMIT": "off",
           "KB_QUERY_LOG": "on", "KB_TRUSTED_USER_HEADER": PROXY_HEADER, "KB_TRUSTED_PROXIES": "127.0.0.2"}
    if request.param == "postgres":
        pg = request.getfixturevalue("pg_cluster")
        env.update(KB_STORE="postgres", KB_PG_DSN=pg.dsn(), KB_PG_SCHEMA=f"access_{os.getpid()}")
        _kb(env, "db", "init")
    _kb(env, "build")
    keys = {}
    printed = _kb(env, "keys", "add", "alice", "--groups", "a")  # the real command once; the others as it does
    keys["alice"] = printed.strip().splitlines()[-1]  # alone on the last line
    settings = Settings.from_env(environ={k: v for k, v in env.items() if k.startswith("KB_")})
    table = store_class(settings).key_table(settings)
    for name, groups, write in (("bob", ["b"], False), ("ann-writer", ["a"], True), ("nobody", [], False)):
        keys[name] = table.add(name, groups, write)
    table.close()
    server = start_server(folder / "index", folder / "server.log", corpus_dir=folder / "corpus", extra_env=env)
    served = Served(server, env, keys)
    status, text = served.ask("POST", "/api/documents", {"id": "api-b", "title": "Falcon memo", "access": ["b"],
                                                           "text": f"Memo: {SECRET} hiring freezes in spring."},
                              key=ADMIN, collect=False)
    assert status == 201, text
    status, text = _upload(served, "falcon-notes.md", f"# Falcon notes\n\nThe {SECRET} rota: team B meets on "
                                                      "Mondays about the hiring plan.\n".encode(), access="b")
    assert status == 201, text
    yield served
    server.stop()
    if request.param == "postgres":
        _kb(env, "db", "reset", "--yes")


def _upload(served: Served, name: str, data: bytes, access: str) -> tuple[int, str]:
    """A file sent as the multipart form of POST /api/documents, with its `access` field, by the admin key."""
    boundary = "kb-access-boundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode() + data + (
            f"\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"access\"\r\n\r\n{access}\r\n"
            f"--{boundary}--\r\n").encode()
    url = urllib.parse.urlsplit(served.server.base)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=120)
    conn.request("POST", "/api/documents", body=body, headers={
        "Content-Type": f"multipart/form-data; boundary={boundary}", "Authorization": f"Bearer {ADMIN}"})
    response = conn.getresponse()
    text = response.read().decode("utf-8", "replace")
    conn.close()
    return response.status, text


def _without_echo(text: str) -> str:
    """A JSON answer without what the caller sent (its question, its filters); any other body as it is."""
    try:
        body = json.loads(text)
    except ValueError:
        return text
    if isinstance(body, dict):
        body.pop("query", None)
        body.pop("filters", None)
    return json.dumps(body, ensure_ascii=False)


def _leaks(text: str) -> list[str]:
    """What of B's shows in a collected answer (its first line, the request asked, set aside)."""
    text = text.partition("\n")[2] if " -> " in text.partition("\n")[0] else text
    found = [SECRET] if SECRET in text.lower() else []
    return found + [name for name in B_IDS | B_TITLES if name in text]


def test_group_b_sees_its_documents_so_the_leak_tests_can_fail(served):
    """The positive control: B's key finds B's documents on the paths the leak tests ask (and so the word is there
    to leak). B asks first, so that A's identical questions below come after it in the answer cache."""
    bob = served.keys["bob"]
    for question in QUESTIONS + SECRET_QUESTIONS:
        for mode in ("hybrid", "dense", "keyword"):
            status, text = served.ask("GET", f"/api/search?q={urllib.parse.quote(question)}&mode={mode}&k=5", key=bob,
                                      collect=False)
            assert status == 200
            if mode != "keyword" or SECRET in question:  # what B may read answers each of them
                assert SECRET in _without_echo(text).lower(), (question, mode)
    status, text = served.ask("GET", f"/api/search?q={SECRET}&k=5", key=bob, collect=False)
    assert {hit["doc_id"] for hit in json.loads(text)["results"]} >= {"team-b--plan.md", "ledger-b", "api-b",
                                                                      "uploads--falcon-notes.md"}
    status, text = served.ask("GET", "/api/documents/ledger-b", key=bob, collect=False)
    assert status == 200 and SECRET in text and json.loads(text)["access"] == ["b"]
    status, text = served.ask("GET", "/api/documents?per_page=100", key=bob, collect=False)
    assert json.loads(text)["total"] == 6  # public and its five, none of A's
    status, text = served.ask("GET", f"/api/search?q={SECRET}", key=ADMIN, collect=False)
    assert SECRET in text  # the admin key reads everything
    status, text = served.ask("GET", "/api/export", key=bob, collect=False)
    exported = [json.loads(line) for line in text.splitlines()]
    assert status == 200 and [row["id"] for row in exported] == sorted({PUBLIC_ID} | B_IDS)
    assert next(row for row in exported if row["id"] == "ledger-b")["access"] == ["b"]
    # The admin key's export is `kb export`'s, byte for byte.
    assert served.ask("GET", "/api/export", key=ADMIN, collect=False) == (200, _kb(served.env, "export"))


def _every_read(served, key=None, headers=None, source="127.0.0.1") -> None:
    """Every path that shows text, asked as one caller; bodies collected for the leak check."""
    ask = lambda method, path, body=None: served.ask(method, path, body, key=key, headers=headers, source=source)  # noqa: E731
    for question in QUESTIONS + SECRET_QUESTIONS:
        quoted = urllib.parse.quote(question)
        for mode in ("hybrid", "dense", "keyword"):
            for offset in (0, 5, 10):  # pages 1 to 3
                ask("GET", f"/api/search?q={quoted}&mode={mode}&k=5&offset={offset}")
            ask("POST", "/api/search", {"q": question, "mode": mode, "k": 10,
                                        "filters": {"doc_id": sorted(B_IDS | {PUBLIC_ID})}})
            ask("POST", "/api/search", {"q": question, "mode": mode, "filters": {"source": ["team-b/plan.md"]}})
        if question in QUESTIONS:  # the page echoes the question in its own markup
            ask("GET", f"/?q={quoted}")
            ask("GET", f"/?q={quoted}&offset=5")
            ask("GET", f"/results?q={quoted}&k=5&offset=10")
    for doc_id in sorted(B_IDS):  # answered exactly as an id that never existed is (the id asked aside)
        for path in ("/api/documents/{}", "/api/documents/{}?around=0&window=3", "/documents/{}?start=0&end=40"):
            hidden = served.ask("GET", path.format(doc_id), key=key, headers=headers, source=source, collect=False)
            missing = served.ask("GET", path.format("no-such-id"), key=key, headers=headers, source=source,
                                 collect=False)
            assert hidden[0] == missing[0] == 404, (path, hidden)
            assert hidden[1].replace(doc_id, "ID") == missing[1].replace("no-such-id", "ID")
    for page in (1, 2):
        ask("GET", f"/api/documents?page={page}&per_page=2")
    ask("GET", "/api/health")
    ask("GET", "/api/export")
    ask("GET", "/api/insights")
    ask("GET", "/insights")
    ask("GET", "/metrics")


def test_a_group_a_caller_never_sees_a_b_document_on_any_path(served):
    served.bodies.clear()
    alice = served.keys["alice"]
    _every_read(served, key=alice)
    leaks = [body for body in served.bodies if _leaks(body)]
    assert not leaks, leaks[0][:3000]
    status, text = served.ask("GET", "/api/documents?per_page=100", key=alice)
    listed = json.loads(text)
    assert {d["id"] for d in listed["documents"]} == {PUBLIC_ID, "team-a--notes.md"} and listed["total"] == 2
    status, text = served.ask("GET", "/api/health", key=alice)
    assert json.loads(text)["documents"] == 2
    status, text = served.ask("GET", "/api/export", key=alice)
    assert [json.loads(line)["id"] for line in text.splitlines()] == [PUBLIC_ID, "team-a--notes.md"]
    # k results still come back when k may be read: filtered before ranking, not after.
    status, text = served.ask("GET", f"/api/search?q={SECRET}&k=2&mode=dense", key=alice)
    assert len(json.loads(text)["results"]) == 2
    assert served.ask("GET", "/api/insights", key=alice)[0] == 403
    assert served.ask("GET", "/metrics", key=alice)[0] == 403
    assert served.ask("GET", "/api/insights", key=ADMIN, collect=False)[0] == 200


def test_anonymous_and_a_forged_proxy_header_see_public_documents_only(served):
    served.bodies.clear()
    _every_read(served)  # no key at all: KB_READ_KEY is unset, so anonymous reads the public documents
    forged = {PROXY_HEADER: "mallory", GROUPS_HEADER: "a,b"}
    _every_read(served, headers=forged)  # from 127.0.0.1, which is not in KB_TRUSTED_PROXIES
    leaks = [body for body in served.bodies if _leaks(body)]
    assert not leaks, leaks[0][:3000]
    status, text = served.ask("GET", "/api/documents?per_page=100", headers=forged)
    assert [d["id"] for d in json.loads(text)["documents"]] == [PUBLIC_ID]
    status, text = served.ask("GET", "/api/export", headers=forged)
    assert [json.loads(line)["id"] for line in text.splitlines()] == [PUBLIC_ID]
    # The same header from the trusted proxy's address names the user and their groups.
    status, text = served.ask("GET", f"/api/search?q={SECRET}&k=5", headers=forged, source="127.0.0.2", collect=False)
    assert status == 200 and SECRET in text
    status, text = served.ask("GET", "/", headers=forged, source="127.0.0.2", collect=False)
    assert "Signed in as mallory" in text


def test_a_key_without_groups_reads_public_documents_only(served):
    served.bodies.clear()
    _every_read(served, key=served.keys["nobody"])
    assert not [body for body in served.bodies if _leaks(body)]


def test_mcp_tools_and_resources_answer_as_the_caller(served):
    served.bodies.clear()

    async def check():
        async with over_http(served.server, served.keys["alice"]) as client:
            for question in QUESTIONS + SECRET_QUESTIONS:
                found = await client.call_tool("search", {"query": question, "k": 10})
                assert not found.is_error
                said = json.dumps(found.structured_content) + found.content[0].text
                for echo in (question, urllib.parse.quote_plus(question), urllib.parse.quote(question)):
                    said = said.replace(echo, "")  # the question itself, and in citation links
                served.bodies.append(said)
            async def shown(doc_id: str) -> str:
                """What the tool and the resource say of a document, the id asked set aside."""
                tool = await client.call_tool("get_document", {"doc_id": doc_id})
                try:
                    resource = json.dumps((await client.read_resource(f"kb://documents/{doc_id}")).model_dump(mode="json"))
                except Exception as exc:  # noqa: BLE001 - a refusal is what is wanted; its text is compared
                    resource = str(exc)
                return (json.dumps(tool.model_dump(mode="json")) + resource).replace(doc_id, "ID")

            missing = await shown("no-such-id")
            assert "not_found" in missing
            for doc_id in sorted(B_IDS):  # as an id that never existed
                assert await shown(doc_id) == missing
            listed = await client.call_tool("list_documents", {"per_page": 100})
            served.bodies.append(json.dumps(listed.model_dump(mode="json")))
            assert {d["id"] for d in listed.structured_content["documents"]} == {PUBLIC_ID, "team-a--notes.md"}
            refused = await client.call_tool("add_document", {"text": "A note."})
            assert refused.is_error  # a read key is offered no write tools
        async with over_http(served.server, served.keys["ann-writer"]) as client:  # a group writer's tools
            refused = await client.call_tool("add_document", {"text": "For B.", "doc_id": "mcp-b", "access": ["b"]})
            assert refused.is_error and "forbidden" in refused.content[0].text
            added = await client.call_tool("add_document", {"text": "For A.", "doc_id": "mcp-a", "access": ["a"]})
            assert not added.is_error, added.content
        async with over_http(served.server, served.keys["bob"]) as client:  # the control: B's key finds B's
            found = await client.call_tool("search", {"query": QUESTIONS[0], "k": 5})
            assert SECRET in json.dumps(found.structured_content["results"]).lower()

    asyncio.run(asyncio.wait_for(check(), timeout=240))
    assert not [body for body in served.bodies if _leaks(body)]


def test_a_group_writer_writes_only_within_its_groups(served):
    writer = served.keys["ann-writer"]
    status, text = served.ask("POST", "/api/documents", {"id": "ann-b", "text": "Trying for B.", "access": ["b"]},
                              key=writer)
    assert status == 403 and "forbidden" in text
    status, text = served.ask("POST", "/api/documents", {"id": "api-b", "text": "Overwritten by A."}, key=writer)
    assert status == 403 and "forbidden" in text
    assert served.ask("DELETE", "/api/documents/api-b", key=writer)[0] == 404
    assert served.ask("POST", "/api/documents", {"id": "x", "text": "No."}, key=served.keys["alice"])[0] == 403
    status, text = served.ask("POST", "/api/documents", {"id": "ann-a", "title": "Crane order",
                                                         "text": "Order two crane cables.", "access": ["a"]}, key=writer)
    assert status == 201, text
    assert served.ask("GET", "/api/documents/ann-a", key=served.keys["alice"])[0] == 200
    assert served.ask("GET", "/api/documents/ann-a", key=served.keys["bob"])[0] == 404
    assert served.ask("GET", "/api/documents/api-b", key=served.keys["bob"], collect=False)[0] == 200  # untouched


def test_a_revoked_key_is_refused_at_once(served):
    bob = served.keys["bob"]
    assert served.ask("GET", "/api/search?q=plan", key=bob, collect=False)[0] == 200
    _kb(served.env, "keys", "revoke", "bob")
    status, text = served.ask("GET", "/api/search?q=plan", key=bob, collect=False)
    assert status == 401 and SECRET not in text
    listed = json.loads(_kb(served.env, "keys", "list", "--json"))
    assert "bob" not in {row["name"] for row in listed} and all("hash" not in row for row in listed)


def test_timing_of_a_hidden_match_is_reported(served):
    """Whether a hidden document matched must not show in the time a search takes: reported, not asserted."""
    alice = served.keys["alice"]
    times = {"hidden word": [], "no such word": []}
    for round_ in range(40):
        for label, word in (("hidden word", SECRET), ("no such word", "qwxyzzyv")):
            began = time.perf_counter()
            served.ask("GET", f"/api/search?q={word}+{round_}&mode=keyword", key=alice, collect=False)
            times[label].append((time.perf_counter() - began) * 1000)
    p50 = {label: statistics.median(values) for label, values in times.items()}
    print(f"\ntiming ({served.env.get('KB_STORE', 'faiss')}): keyword search p50 {p50['hidden word']:.2f} ms for a "
          f"word only hidden documents hold, {p50['no such word']:.2f} ms for a word none holds "
          f"(difference {p50['hidden word'] - p50['no such word']:+.2f} ms)")


@pytest.mark.browser
def test_the_page_signs_in_with_a_key_and_shows_what_it_may_read(served):
    """In a real browser: anonymous sees public documents only; signing in with B's key (the form, its CSRF token, the
    HttpOnly session cookie) shows B's; signing out forgets it. The sign-in page passes axe-core."""
    from playwright.sync_api import sync_playwright

    from tests.e2e.conftest import CHROMIUM, FLAGS, Page

    if served.env.get("KB_STORE") == "postgres":
        pytest.skip("the page is the same on both stores; checked once, on FAISS")
    key = _kb(served.env, "keys", "add", "bea", "--groups", "b").strip().splitlines()[-1]
    # A browser of its own, closed at the end: the module's other tests run asyncio loops of their own (MCP).
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = Page(browser)
            _sign_in_and_out(served, page, key)
            assert not page.errors, page.errors
        finally:
            browser.close()


def _sign_in_and_out(served, page, key: str) -> None:
    from tests.e2e.conftest import accessible

    tab = page.tab
    question = urllib.parse.quote(QUESTIONS[0])
    tab.goto(f"{served.server.base}/?q={question}")
    assert SECRET not in tab.content().lower() and tab.get_by_role("link", name="Sign in").is_visible()
    # Each click that navigates is awaited: axe-core or content() read during a navigation see no document.
    with tab.expect_navigation():
        tab.get_by_role("link", name="Sign in").click()
    accessible(tab, "sign-in")
    tab.get_by_label("Key").fill(key + "x")
    with tab.expect_navigation():
        tab.get_by_role("button", name="Sign in").click()
    assert "not one kb knows" in tab.content()  # a wrong key: said, and not kept
    tab.get_by_label("Key").fill(key)
    tab.get_by_role("button", name="Sign in").click()
    tab.wait_for_url(f"{served.server.base}/")
    assert "Signed in as bea" in tab.content()
    cookie = next(c for c in page.context.cookies() if c["name"] == "kb_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    tab.goto(f"{served.server.base}/?q={question}")
    assert SECRET in tab.locator("#answer").inner_text().lower()
    tab.get_by_role("button", name="Sign out").click()
    tab.wait_for_url(f"{served.server.base}/")
    tab.goto(f"{served.server.base}/?q={question}")
    assert SECRET not in tab.content().lower() and "kb_session" not in {c["name"] for c in page.context.cookies()}
    # A sign-in form posted without the page's token (another site's form) is refused.
    refused = served.ask("POST", "/sign-in", collect=False,
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert refused[0] == 403
