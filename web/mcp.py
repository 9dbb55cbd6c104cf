"""MCP for agents (kb/agents/mcp.py): the streamable HTTP transport at kb serve's ``/mcp``, and `kb mcp` over stdio.

kb serve is a WSGI app on waitress; the SDK's transport is an ASGI app. a2wsgi (a maintained ASGI-in-WSGI
adapter) runs it on one event loop in a thread of its own, where the SDK's session managers live. The transport
is stateless and answers in JSON (no session, no stream left open), so a request holds a waitress thread only as
long as a JSON API request would.

``/mcp`` is behind the API's keys: reads need a key when KB_READ_KEY is set, and only a caller who may write
(KB_API_KEY, or a key made with --write) sees (and may call) the write tools. The tools reach the knowledge base
through the JSON API in this process (``in_process``: no socket), as the caller (web/auth.py's ``IN_PROCESS``): the
same checks, the same documents hidden, error codes, rate limits and request log lines.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import contextvars
import sys
import threading
from typing import Any

from flask import Blueprint, Flask, current_app, request

from kb.client import Client, ClientError
from kb.settings import Settings
from kb.stores.keys import READER, Caller
from web.auth import IN_PROCESS, require_read

mcp = Blueprint("mcp", __name__)
_caller: contextvars.ContextVar[dict] = contextvars.ContextVar("kb_mcp_caller", default={})
_bridges_lock = threading.Lock()


@mcp.post("/mcp")  # stateless: no session to end (DELETE), no stream to open (GET)
def endpoint():
    who = require_read()
    role = "writer" if who.write else "reader"  # only a caller who may write sees the write tools
    bridge = _bridge(current_app._get_current_object())  # type: ignore[attr-defined]
    # Read by the tools' API calls (on the bridge's loop, which copies this context when the call starts): who
    # asks, and from where.
    token = _caller.set({"remote_addr": request.remote_addr or "", "links": request.host_url.rstrip("/"), "who": who})
    try:
        return current_app.response_class.force_type(bridge.wsgi[role], request.environ)
    finally:
        _caller.reset(token)


def in_process(app: Flask, who: Caller | None = None) -> Any:
    """A kb.client transport that calls ``app`` in this process as ``who``, else as the caller of the MCP request
    being served (handed over in the WSGI environ, never as a header anyone could send)."""
    from werkzeug.test import EnvironBuilder, run_wsgi_app

    def transport(method: str, path: str, data: bytes | None, headers: dict) -> tuple[int, bytes]:
        headers = {k: v for k, v in headers.items() if k != "Authorization"}
        asking = who or _caller.get().get("who")
        base = {"REMOTE_ADDR": _caller.get().get("remote_addr") or "127.0.0.1"}
        if asking is not None:
            base[IN_PROCESS] = asking
        environ = EnvironBuilder(path=path, method=method, data=data, headers=headers, environ_base=base).get_environ()
        body, status, _ = run_wsgi_app(app.wsgi_app, environ, buffered=True)
        return int(status.split()[0]), b"".join(body)

    return transport


class Bridge:
    """The MCP servers of one app (a reader's, and a writer's when writes are on) on an event loop of their own."""

    def __init__(self, app: Flask) -> None:
        from a2wsgi import ASGIMiddleware
        from mcp.server.transport_security import TransportSecuritySettings

        from kb.agents.mcp import build_server

        client = Client("http://in-process", transport=in_process(app))  # as each MCP request's caller
        self.servers = {role: build_server(lambda: client, writable=role == "writer",
                                           links=lambda: _caller.get().get("links"))
                        for role in ("reader", "writer")}
        # The SDK would check the Host header on a loopback address (DNS rebinding). kb's API does not, and a
        # server behind a reverse proxy that passes its own Host would refuse every call: the keys guard /mcp as
        # they guard /api (docs/agents.md).
        open_hosts = TransportSecuritySettings(enable_dns_rebinding_protection=False)
        asgi = {role: server.streamable_http_app(streamable_http_path="/mcp", stateless_http=True, json_response=True,
                                                 transport_security=open_hosts)
                for role, server in self.servers.items()}
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, name="kb-mcp", daemon=True).start()
        ready = threading.Event()
        self._running = asyncio.run_coroutine_threadsafe(self._run(ready), self.loop)
        ready.wait(30)
        self.wsgi = {role: ASGIMiddleware(app_, loop=self.loop) for role, app_ in asgi.items()}

    async def _run(self, ready: threading.Event) -> None:
        async with contextlib.AsyncExitStack() as stack:
            for server in self.servers.values():  # what the Starlette app's lifespan would do
                await stack.enter_async_context(server.session_manager.run())
            ready.set()
            await asyncio.Event().wait()


def _bridge(app: Flask) -> Bridge:
    with _bridges_lock:
        if "kb_mcp" not in app.extensions:  # made on first use: a server nobody asks over MCP runs no loop for it
            app.extensions["kb_mcp"] = Bridge(app)
        return app.extensions["kb_mcp"]


# ---- `kb mcp`: over stdio, for desktop agents --------------------------------------------------------------

def register(commands: argparse._SubParsersAction) -> None:
    command = commands.add_parser("mcp", help="an MCP server over stdio for AI agents (read-only, or --url)")
    command.add_argument("--url", help="talk to a running kb serve at this address instead of opening the store "
                                       "(its write tools are offered when --key is its write key)")
    command.add_argument("--key", help="the key to act as: sent to --url (a write key offers the write tools), or, "
                                       "without --url, a key of `kb keys` whose documents alone are served")
    command.set_defaults(run=mcp_command)


def mcp_command(args: argparse.Namespace, settings: Settings) -> int:
    import logging

    from kb.agents.mcp import build_server

    if not args.verbose:  # a line per tool call's API request is noise in an agent's log of this server
        logging.getLogger("kb.requests").setLevel(logging.WARNING)

    if args.url:
        remote = Client(args.url, key=args.key, wait=0)
        try:
            remote.health()
        except ClientError as exc:
            print(f"kb: {exc.message}", file=sys.stderr)
            return 1
        server = build_server(lambda: remote, writable=_writes(remote), links=lambda: remote.base_url)
    else:
        import kb
        from web.app import create_app

        base = kb.open(settings)  # no writes are offered, so the store is only read
        who = READER  # whoever may open the store's files reads every document, unless a key narrows it
        if args.key:
            who = base.keys.caller(args.key)
            if who is None:
                print("kb: --key is not a key of `kb keys list` (it may have been revoked)", file=sys.stderr)
                return 1
        app = create_app(settings, base=base)
        threading.Thread(target=base.warm_up, name="kb-warm-up", daemon=True).start()
        local = Client("http://in-process", transport=in_process(app, who))
        server = build_server(lambda: local, writable=False, links=lambda: None)
    server.run(transport="stdio")
    return 0


def _writes(remote: Client) -> bool:
    """Whether the key is the server's write key: deleting a document no id can name tells, and changes nothing."""
    if not remote.key:
        return False
    try:
        remote.delete("no such id!")
    except ClientError as exc:
        return exc.code in ("not_found", "invalid_id")
    return True
