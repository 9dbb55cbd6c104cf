"""A Python client for a running `kb serve`: typed answers from the models that define the API (kb/schemas.py).

    from kb.client import Client

    kb = Client("http://127.0.0.1:8000", key="...")  # key: KB_API_KEY for writes (or KB_READ_KEY for reads)
    answer = kb.search("Has an American president ever visited Kazakhstan?", k=3)
    answer.confident, answer.results[0].title, answer.results[0].highlights

Only the standard library speaks HTTP here (urllib), so the client needs nothing kb does not already install, and
it never imports Flask. A server still loading (503 ``loading``) is asked again, up to ``wait`` seconds; every
other refusal raises :class:`ClientError` with the server's code and sentence (docs/api.md, "Errors").
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Callable, Optional, Sequence, TypeVar

from pydantic import BaseModel

from kb.errors import KbError
from kb.schemas import Added, Deleted, DocumentFull, DocumentList, Health, Result, SearchAnswer

Model = TypeVar("Model", bound=BaseModel)
RETRY_SECONDS = 0.5  # between two tries while the server loads


def document_link(base_url: str, doc_id: str) -> str:
    """The link to a document in the server's document view."""
    return f"{base_url.rstrip('/')}/documents/{urllib.parse.quote(doc_id, safe='')}"


def citation(base_url: str, result: Result, query: str = "") -> str:
    """The link to a result's passage in the server's document view (the passage marked, the page scrolled to it)."""
    where = urllib.parse.urlencode({"start": result.start, "end": result.end, **({"q": query} if query else {})})
    return f"{document_link(base_url, result.doc_id)}?{where}#passage"


class ClientError(KbError):
    """A refusal from the server: ``status`` (HTTP), ``code`` (kb's, e.g. ``k_out_of_range``) and its sentence."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message, code)
        self.status = status


Transport = Callable[[str, str, Optional[bytes], dict], tuple[int, bytes]]
"""(method, path with its query, body, headers) -> (status, body): how a request reaches the server."""


class Client:
    def __init__(self, base_url: str, key: str | None = None, timeout: float = 60.0, wait: float = 60.0,
                 transport: Transport | None = None) -> None:
        """``transport``: over HTTP (urllib) when None; web/mcp.py passes one that calls the app in process."""
        self.base_url = base_url.rstrip("/")
        self.key, self.timeout, self.wait = key, timeout, wait
        self.transport = transport or self._urllib

    # ---- reading ---------------------------------------------------------------------------------

    def search(self, query: str, k: int = 5, mode: str | None = None, offset: int = 0,
               doc_id: Sequence[str] = (), source: Sequence[str] = (), date_from: str | None = None,
               date_to: str | None = None, metadata: dict[str, Any] | None = None) -> SearchAnswer:
        """The passages that answer ``query``, best first (``confident`` False: nothing answers it); the filters as
        in docs/api.md."""
        body: dict[str, Any] = {"q": query, "k": k, "offset": offset}
        if mode:
            body["mode"] = mode
        filters = {key: value for key, value in (("doc_id", list(doc_id)), ("source", list(source)),
                                                  ("date_from", date_from), ("date_to", date_to),
                                                  ("metadata", metadata)) if value}
        if filters:
            body["filters"] = filters
        return self._call("POST", "/api/search", SearchAnswer, body)

    def get(self, doc_id: str, around: int | None = None, window: int = 1) -> DocumentFull:
        """A document with its text; with ``around`` (a character offset, e.g. a result's ``start``), also its
        ``window``: the passage holding that offset and ``window`` passages each side."""
        query = "?" + urllib.parse.urlencode({"around": around, "window": window}) if around is not None else ""
        return self._call("GET", f"/api/documents/{urllib.parse.quote(doc_id, safe='')}{query}", DocumentFull)

    def list(self, page: int = 1, per_page: int = 20) -> DocumentList:
        return self._call("GET", "/api/documents?" + urllib.parse.urlencode({"page": page, "per_page": per_page}),
                          DocumentList)

    def health(self) -> Health:
        return self._call("GET", "/api/health", Health)

    # ---- writing (the server's KB_API_KEY) ------------------------------------------------------------

    def add(self, text: str, id: str | None = None, title: str | None = None, source: str | None = None,  # noqa: A002
            metadata: dict[str, Any] | None = None, access: list[str] | None = None) -> Added:
        """Store a document (a new id replaces nothing; the same id replaces that document); ``access``: the groups
        that may read it (docs/access.md)."""
        body = {key: value for key, value in (("id", id), ("title", title), ("source", source),
                                              ("metadata", metadata), ("access", access)) if value is not None}
        return self._call("POST", "/api/documents", Added, {**body, "text": text})

    def delete(self, doc_id: str) -> Deleted:
        return self._call("DELETE", f"/api/documents/{urllib.parse.quote(doc_id, safe='')}", Deleted)

    # ---- the wire ----------------------------------------------------------------------------------------

    def _call(self, method: str, path: str, model: type[Model], body: Any = None) -> Model:
        deadline = time.monotonic() + self.wait
        while True:
            status, payload = self._request(method, path, body)
            if status < 400:
                return model.model_validate(payload)
            error = payload.get("error", {}) if isinstance(payload, dict) else {}
            code = error.get("code") or (payload.get("status") if isinstance(payload, dict) else None) or "http_error"
            message = error.get("message") or (payload.get("message") if isinstance(payload, dict) else None) \
                or f"{method} {path} answered {status}"
            if status == 503 and code == "loading" and time.monotonic() < deadline:
                time.sleep(RETRY_SECONDS)
                continue
            raise ClientError(status, code, message)

    def _request(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        if self.key:
            headers["Authorization"] = f"Bearer {self.key}"
        status, raw = self.transport(method, path, data, headers)
        try:
            return status, json.loads(raw or b"null")
        except ValueError:
            return status, {"error": {"code": "http_error", "message": raw.decode("utf-8", "replace")[:200]
                                      or f"{method} {path} answered {status}"}}

    def _urllib(self, method: str, path: str, data: bytes | None, headers: dict) -> tuple[int, bytes]:
        request = urllib.request.Request(self.base_url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ClientError(0, "unreachable", f"kb at {self.base_url} is unreachable: {reason}") from None
