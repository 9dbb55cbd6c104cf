"""MCP search latency against the JSON API, on the same questions in the same run.

    .venv/bin/python benchmarks/mcp_latency.py [--questions 100] [--work DIR]

Cranfield's 1,400 abstracts as text files, indexed by `kb build` (FAISS), served by one `kb serve`. Four ways to
ask it, each timed from the caller's side, the whole call (the SDK's client for MCP: ``call_tool("search")``):

- JSON API: ``POST /api/search`` over one keep-alive connection (http.client);
- MCP over HTTP: the SDK's streamable HTTP client at kb serve's ``/mcp``;
- MCP over stdio, `kb mcp --url`: a stdio server that asks kb serve over HTTP;
- MCP over stdio, `kb mcp` by itself: a stdio server with the store opened in its own process.

Each question (k=5, hybrid) goes to all four, in an order that rotates, with a suffix of its own per path so that
no path is answered from what another asked. Printed: p50 / p95 of each, and each p50 over the JSON API's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
from serving import percentile  # noqa: E402
from writes import CRANFIELD, KEY, start  # noqa: E402

from kb.evaluation.datasets import load_cranfield  # noqa: E402


@contextlib.asynccontextmanager
async def http_transport(url: str):
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    async with create_mcp_http_client(headers={"Authorization": f"Bearer {KEY}"}) as http:
        async with streamable_http_client(url, http_client=http) as streams:
            yield streams


async def measure(port: int, env: dict, questions: list[str]) -> dict[str, list[float]]:
    from mcp import Client
    from mcp.client.stdio import StdioServerParameters

    def stdio(*args: str) -> Client:
        return Client(StdioServerParameters(command=sys.executable, args=["-m", "kb.cli", "mcp", *args], env=env,
                                            cwd=str(REPO)), read_timeout_seconds=300)

    base = f"http://127.0.0.1:{port}"
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    async def api(question: str) -> int:
        conn.request("POST", "/api/search", body=json.dumps({"q": question, "k": 5, "mode": "hybrid"}),
                     headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        body = response.read()
        assert response.status == 200, body[:200]
        return len(json.loads(body)["results"])

    async with contextlib.AsyncExitStack() as stack:
        clients = {"MCP over HTTP (/mcp)": await stack.enter_async_context(Client(http_transport(base + "/mcp"))),
                   "MCP over stdio, kb mcp --url": await stack.enter_async_context(stdio("--url", base)),
                   "MCP over stdio, kb mcp by itself": await stack.enter_async_context(stdio())}

        def by_mcp(client):
            async def ask(question: str) -> int:
                result = await client.call_tool("search", {"query": question, "k": 5, "mode": "hybrid"})
                assert not result.is_error, result.content
                return len(result.structured_content["results"])
            return ask

        paths = {"JSON API (POST /api/search)": api, **{name: by_mcp(client) for name, client in clients.items()}}
        for name, ask in paths.items():  # the first call of each pays for loading; not counted
            await ask(f"warm up {name}")
        times: dict[str, list[float]] = {name: [] for name in paths}
        names = list(paths)
        for n, question in enumerate(questions):
            for i in range(len(names)):
                name = names[(n + i) % len(names)]
                began = time.perf_counter()
                assert await paths[name](f"{question} [{i} {n}]") == 5
                times[name].append((time.perf_counter() - began) * 1000)
        return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--questions", type=int, default=100)
    parser.add_argument("--work", default=None)
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="kb-mcp-bench-"))
    corpus = work / "corpus"
    collection = load_cranfield(CRANFIELD)
    if not corpus.exists():
        corpus.mkdir(parents=True)
        for document in collection.documents:
            if document.text.strip():
                (corpus / f"{document.id}.txt").write_text(f"{document.title}\n\n{document.text}\n")
    questions = list(collection.queries.values())[: args.questions]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "KB_CORPUS_DIR": str(corpus), "KB_INDEX_DIR": str(work / "index")}
    subprocess.run([sys.executable, "-m", "kb.cli", "build"], env=env, check=True, capture_output=True)
    files = len(list(corpus.glob("*.txt")))
    server, port = start(work / "index", {"KB_CORPUS_DIR": str(corpus)})
    try:
        times = asyncio.run(measure(port, env, questions))
    finally:
        server.terminate()
        server.wait(timeout=60)
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    floor = statistics.median(times["JSON API (POST /api/search)"])
    print(f"\nCranfield as {files:,} text files, {len(questions)} questions on each path, "
          "k=5, hybrid, one call at a time\n")
    print("| path | p50 ms | p95 ms | p50 / JSON API |")
    print("| --- | ---: | ---: | ---: |")
    for name, spent in times.items():
        print(f"| {name} | {statistics.median(spent):.1f} | {percentile(spent, 0.95):.1f} | "
              f"{statistics.median(spent) / floor:.2f} |")


if __name__ == "__main__":
    main()
