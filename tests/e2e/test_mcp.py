"""MCP through the SDK's own client: `kb mcp` over stdio (by itself, and with --url), and kb serve's /mcp over
streamable HTTP behind the keys. A real server, the real model, the seed corpus."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request

import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from kb.agents.mcp import NOT_CONFIDENT
from tests.conftest import free_port
from tests.e2e.conftest import server_on_a_copy

READ_KEY, WRITE_KEY = "mcp-read-key", "mcp-write-key"
QUESTION = "Has an American president ever visited Kazakhstan?"
ANSWER = "no US president has ever visited Kazakhstan"
OFF_TOPIC = "How do I reset my router password?"
SEED_ID = "astana-times-runde-interview.txt"
READING = {"search", "get_document", "list_documents"}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    server = server_on_a_copy(tmp_path_factory, "mcp", {"KB_API_KEY": WRITE_KEY, "KB_READ_KEY": READ_KEY,
                                                        "KB_WRITE_RATE_LIMIT": "off"})
    yield server
    server.stop()


@contextlib.asynccontextmanager
async def http_transport(url: str, key: str | None):
    """The SDK's streamable HTTP transport with the key in its headers (a client passed in is the caller's to close)."""
    async with create_mcp_http_client(headers={"Authorization": f"Bearer {key}"} if key else {}) as http:
        async with streamable_http_client(url, http_client=http) as streams:
            yield streams


def over_http(server, key: str | None) -> Client:
    return Client(http_transport(server.base + "/mcp", key))


def over_stdio(server, *args: str) -> Client:
    """`kb mcp` with ``args``; by itself, on the server's store (named by the documented flags), read-only."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "KB_CORPUS_DIR": str(server.folder / "corpus"),
           "KB_READ_KEY": READ_KEY}
    if not args:
        args = ("--index-dir", str(server.folder / "index"), "--model", "all-MiniLM-L6-v2", "-v")
    return Client(StdioServerParameters(command=sys.executable, args=["-m", "kb.cli", "mcp", *args], env=env,
                                        cwd=str(server.folder)))


def run(check) -> None:
    asyncio.run(asyncio.wait_for(check(), timeout=240))


async def tools_of(client: Client) -> set[str]:
    tools = (await client.list_tools()).tools
    for tool in tools:  # written for a model to read: a description, no docstring indentation, a schema each way
        assert tool.description and "\n" not in tool.description and tool.input_schema and tool.output_schema
    return {tool.name for tool in tools}


async def the_reading_tools_answer(client: Client) -> None:
    """What every form of the server must do with the reading tools, over whatever transport ``client`` uses."""
    found = await client.call_tool("search", {"query": QUESTION, "k": 3})
    assert not found.is_error, found.content
    answer = found.structured_content
    best = answer["results"][0]
    assert answer["confident"] is True and best["doc_id"] == SEED_ID and ANSWER in best["text"]
    assert best["highlights"] and all(h["text"] and h["text"] in best["text"] for h in best["highlights"])
    assert best["title"] in found.content[0].text and "Answering: " in found.content[0].text

    nothing = await client.call_tool("search", {"query": OFF_TOPIC})
    assert not nothing.is_error and nothing.structured_content["confident"] is False
    assert nothing.content[0].text.startswith(NOT_CONFIDENT)

    window = await client.call_tool("get_document", {"doc_id": SEED_ID, "around": best["start"], "window": 1})
    passages = window.structured_content["window"]
    assert not window.is_error and window.structured_content["text"] is None
    assert best["start"] in [p["start"] for p in passages] and 2 <= len(passages) <= 3
    assert [p["ordinal"] for p in passages] == list(range(passages[0]["ordinal"], passages[0]["ordinal"] + len(passages)))
    whole = await client.call_tool("get_document", {"doc_id": SEED_ID})
    assert len(whole.structured_content["text"]) == whole.structured_content["characters"]
    assert best["text"] in whole.structured_content["text"]
    listed = await client.call_tool("list_documents", {"per_page": 100})
    assert SEED_ID in {d["id"] for d in listed.structured_content["documents"]}
    resource = await client.read_resource(f"kb://documents/{SEED_ID}")
    assert resource.contents[0].text == whole.structured_content["text"]

    # Bad arguments are tool errors with kb's own sentence and code, never a traceback.
    for arguments, says in (({"query": QUESTION, "k": 0}, "k must be between 1 and 50, got 0 (k_out_of_range)"),
                            ({"query": QUESTION, "mode": "psychic"}, "mode must be one of hybrid, dense, keyword"),
                            ({"query": "   "}, "blank_query"),
                            ({"query": QUESTION, "filters": {"date_from": "June"}}, "invalid_date")):
        refused = await client.call_tool("search", arguments)
        assert refused.is_error and says in refused.content[0].text and "Traceback" not in refused.content[0].text
    missing = await client.call_tool("get_document", {"doc_id": "no-such-document"})
    assert missing.is_error and "no document with id 'no-such-document' (not_found)" in missing.content[0].text
    outside = await client.call_tool("get_document", {"doc_id": SEED_ID, "around": -5})
    assert outside.is_error and "invalid_around" in outside.content[0].text


def test_kb_mcp_over_stdio_by_itself_reads_the_store_and_offers_no_writes(served):
    async def check():
        async with over_stdio(served) as client:
            assert await tools_of(client) == READING
            await the_reading_tools_answer(client)
            found = await client.call_tool("search", {"query": QUESTION, "k": 1})
            assert found.structured_content["results"][0]["citation"] is None  # no server to link to
            refused = await client.call_tool("add_document", {"text": "A note."})
            assert refused.is_error and "add_document" in refused.content[0].text

    run(check)


def test_kb_serves_mcp_over_http_behind_its_keys(served):
    async def check():
        async with over_http(served, READ_KEY) as reader:
            assert await tools_of(reader) == READING
            await the_reading_tools_answer(reader)
            found = await reader.call_tool("search", {"query": QUESTION, "k": 1})
            link = found.structured_content["results"][0]["citation"]
            assert link.startswith(f"{served.base}/documents/{SEED_ID}?start=")
            view = urllib.request.Request(link, headers={"Authorization": f"Bearer {READ_KEY}"})
            with urllib.request.urlopen(view, timeout=30) as page:  # the citation opens the passage, marked
                assert page.status == 200 and "no US president" in page.read().decode("utf-8")
            refused = await reader.call_tool("add_document", {"text": "The heron stood still.", "doc_id": "heron"})
            assert refused.is_error
        async with over_http(served, WRITE_KEY) as writer:
            assert await tools_of(writer) == READING | {"add_document", "delete_document"}
            added = await writer.call_tool("add_document", {"text": "The grey heron stood still in the reeds.",
                                                            "title": "Herons", "doc_id": "heron"})
            assert not added.is_error and added.structured_content["index"]["added"] == 1
            found = await writer.call_tool("search", {"query": "Where did the grey heron stand?", "k": 1})
            assert found.structured_content["results"][0]["doc_id"] == "heron"
            deleted = await writer.call_tool("delete_document", {"doc_id": "heron"})
            assert not deleted.is_error and deleted.structured_content["deleted"] is True
            gone = await writer.call_tool("get_document", {"doc_id": "heron"})
            assert gone.is_error and "not_found" in gone.content[0].text

    run(check)
    # Without a key, /mcp refuses as the API does: 401 with kb's JSON error.
    request = urllib.request.Request(served.base + "/mcp", method="POST", data=b"{}",
                                     headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    with refused.value:
        assert refused.value.code == 401 and json.loads(refused.value.read())["error"]["code"] == "unauthorized"


def test_kb_mcp_with_url_offers_writes_only_with_the_write_key(served):
    async def check():
        async with over_stdio(served, "--url", served.base, "--key", READ_KEY) as reader:
            assert await tools_of(reader) == READING
            found = await reader.call_tool("search", {"query": QUESTION, "k": 1})
            assert found.structured_content["results"][0]["citation"].startswith(served.base + "/documents/")
        async with over_stdio(served, "--url", served.base, "--key", WRITE_KEY) as writer:
            assert await tools_of(writer) == READING | {"add_document", "delete_document"}
            added = await writer.call_tool("add_document", {"text": "Storks nest on chimneys in spring.",
                                                            "doc_id": "storks"})
            assert not added.is_error
            assert (await writer.call_tool("get_document", {"doc_id": "storks"})).structured_content["text"] == \
                "Storks nest on chimneys in spring."
            assert not (await writer.call_tool("delete_document", {"doc_id": "storks"})).is_error

    run(check)


def test_kb_mcp_with_an_unreachable_url_says_so_in_one_sentence(served):
    ran = subprocess.run([sys.executable, "-m", "kb.cli", "mcp", "--url", f"http://127.0.0.1:{free_port()}"],
                         capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert ran.returncode == 1 and ran.stdout == ""
    assert ran.stderr.startswith("kb: kb at http://127.0.0.1:") and "unreachable" in ran.stderr
    assert len(ran.stderr.strip().splitlines()) == 1
