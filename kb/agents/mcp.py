"""kb as an MCP server for AI agents, built with the official Python SDK (``mcp``; its ``MCPServer``).

Tools: ``search``, ``get_document``, ``list_documents``, and, only for a caller holding the write key,
``add_document`` and ``delete_document``. Resources: ``kb://documents/{doc_id}``, a document's text.

Every tool is a translation of the JSON API through :class:`kb.client.Client`: over HTTP to a running `kb serve`
(`kb mcp --url`), or through the web app in this process (kb serve's ``/mcp`` and `kb mcp` by itself: web/mcp.py
hands the client a transport that calls the app without a socket). So the checks, the keys, the error codes and
their sentences are the API's own, written once; a refusal reaches the agent as a tool error with kb's sentence.

The SDK was chosen over ``fastmcp`` because it is the reference implementation, it has the stdio and streamable
HTTP transports and the client the tests use, and kb needs nothing fastmcp adds (proxies, OpenAPI import).
"""

from __future__ import annotations

from typing import Annotated, Any, Callable, Optional, Union

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ToolError
from mcp_types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, Field

from kb.client import Client, ClientError
from kb.client.http import citation, document_link
from kb.schemas import DocumentBrief, IndexSummary, SearchAnswer, WindowPassage
from kb.search.pipeline import MAX_K
from kb.settings import MODES

INSTRUCTIONS = (
    "kb is a knowledge base of documents. Call `search` with a question in plain words to get the passages that "
    "answer it, best first, each with its document, heading path, the answering sentences and a citation link. "
    "When `confident` is false, nothing in the knowledge base answers the question: say so rather than answer from "
    "the passages. Read more of a document with `get_document` (around a passage's start, or whole).")
NOT_CONFIDENT = ("No passage answers this question confidently: the knowledge base does not seem to cover it. "
                 "The closest passages follow; do not treat them as an answer.")
NOTHING = "Nothing in the knowledge base matches this question."
DESCRIPTIONS = {  # what a model reads about each tool (a docstring would reach it with its indentation)
    "search": "Find the passages of the knowledge base that answer a question, best first. Each comes with its "
              "document, heading path, the sentences that answer (highlights) and a citation link. When "
              "`confident` is false, nothing in the knowledge base answers the question.",
    "get_document": "Read a document: whole, or the passages around one (to see the context of a search result).",
    "list_documents": "List the documents in the knowledge base, by id, a page at a time.",
    "add_document": "Add a document to the knowledge base (or replace the one with the same id). It is searchable "
                    "as soon as this returns.",
    "delete_document": "Delete a document from the knowledge base (a corpus file loses its file).",
}


# ---- what the tools return (their output schemas) -------------------------------------------------------

class Sentence(BaseModel):
    text: str = Field(description="An answering sentence, quoted from the passage.")
    start: int = Field(description="Its character offset in the document.")
    end: int
    score: float = Field(description="Its cosine to the question.")


class Passage(BaseModel):
    rank: int
    doc_id: str
    title: str
    headings: list[str] = Field(description="The heading path above the passage, outermost first.")
    source: str
    text: str
    start: int = Field(description="The passage's character offset in its document (get_document's `around`).")
    end: int
    score: float
    confident: bool = Field(description="Whether this passage clears the confidence threshold.")
    highlights: list[Sentence] = Field(description="The sentences that answer the question (confident passages).")
    citation: Optional[str] = Field(description="A link to the passage in the document view, marked.")


class SearchOutput(BaseModel):
    query: str
    mode: str
    confident: bool = Field(description="False: nothing in the knowledge base answers the question.")
    message: str
    results: list[Passage]
    next_offset: Optional[int] = Field(description="Pass as `offset` for the next passages; null at the end.")


class DocumentOutput(DocumentBrief):
    text: Optional[str] = Field(description="The whole text (when no `around` was given).")
    window: Optional[list[WindowPassage]] = Field(description="With `around`: the passages around that offset.")
    citation: Optional[str] = Field(description="A link to the document view.")


class DocumentsOutput(BaseModel):
    page: int
    per_page: int
    total: int
    documents: list[DocumentBrief]


class WriteOutput(BaseModel):
    id: str
    deleted: bool
    index: IndexSummary = Field(description="What the index update did.")


class Filters(BaseModel):
    doc_id: Optional[list[str]] = Field(None, description="Only these documents (ids).")
    source: Optional[list[str]] = Field(None, description="Only documents from these sources.")
    date_from: Optional[str] = Field(None, description="Only documents dated on or after, YYYY-MM-DD.")
    date_to: Optional[str] = Field(None, description="Only documents dated on or before, YYYY-MM-DD.")
    metadata: Optional[dict[str, Union[str, int, float, bool]]] = Field(
        None, description="Only documents whose metadata has these values.")


# ---- the server ---------------------------------------------------------------------------------------------

def build_server(client: Callable[[], Client], *, writable: bool, links: Callable[[], str | None]) -> MCPServer:
    """The MCP server over the knowledge base ``client()`` reaches; write tools only when ``writable``.

    ``links()``: the server address citation links point at, for the call being served (None: no links).
    """
    server = MCPServer(name="kb", instructions=INSTRUCTIONS, log_level="WARNING")
    reading = ToolAnnotations(read_only_hint=True, open_world_hint=False)

    @server.tool(annotations=reading, description=DESCRIPTIONS["search"])
    def search(
        query: Annotated[str, Field(description="The question, in plain words.")],
        k: Annotated[int, Field(description=f"How many passages to return, 1 to {MAX_K}.")] = 5,
        mode: Annotated[Optional[str], Field(  # checked by the API, whose sentence names the choices
            description="hybrid (meaning and words; the default), dense (meaning) or keyword (words).",
            json_schema_extra={"enum": [*MODES, None]})] = None,
        filters: Annotated[Optional[Filters], Field(description="Search only some documents.")] = None,
        offset: Annotated[int, Field(description="Passages to skip: a previous answer's next_offset.")] = 0,
    ) -> Annotated[CallToolResult, SearchOutput]:
        chosen = filters.model_dump(exclude_none=True) if filters else {}
        answer = _asked(lambda: client().search(query, k=k, mode=mode, offset=offset, **chosen))
        output = _search_output(answer, links())
        return CallToolResult(content=[TextContent(type="text", text=_search_text(output))],
                              structured_content=output.model_dump(mode="json"))

    @server.tool(annotations=reading, description=DESCRIPTIONS["get_document"])
    def get_document(
        doc_id: Annotated[str, Field(description="The document's id (a search result's doc_id).")],
        around: Annotated[Optional[int], Field(description=(
            "A character offset in the document, such as a search result's start: return only the passage "
            "holding it and `window` passages each side, not the whole text."))] = None,
        window: Annotated[int, Field(description="Passages each side of the one holding `around`, 0 to 10.")] = 1,
    ) -> Annotated[CallToolResult, DocumentOutput]:
        document = _asked(lambda: client().get(doc_id, around=around, window=window))
        base = links()
        output = DocumentOutput(**document.model_dump(exclude={"text", "window"}),
                                text=None if around is not None else document.text, window=document.window,
                                citation=document_link(base, doc_id) if base else None)
        body = "\n\n".join(p.text for p in output.window) if output.window is not None else output.text
        return CallToolResult(content=[TextContent(type="text", text=f"# {output.title} ({output.id})\n\n{body}")],
                              structured_content=output.model_dump(mode="json"))

    @server.tool(annotations=reading, description=DESCRIPTIONS["list_documents"])
    def list_documents(
        page: Annotated[int, Field(description="Which page, from 1.")] = 1,
        per_page: Annotated[int, Field(description="Documents a page, 1 to 100.")] = 20,
    ) -> DocumentsOutput:
        listed = _asked(lambda: client().list(page=page, per_page=per_page))
        return DocumentsOutput(**listed.model_dump())

    if writable:
        @server.tool(annotations=ToolAnnotations(destructive_hint=False, idempotent_hint=True, open_world_hint=False),
                     description=DESCRIPTIONS["add_document"])
        def add_document(
            text: Annotated[str, Field(description="The document's text: plain text or Markdown.")],
            title: Annotated[Optional[str], Field(description="Its title (else its first line).")] = None,
            doc_id: Annotated[Optional[str], Field(description=(
                "Its id: letters, digits, '.', '_' and '-'. The same id replaces that document; "
                "made from the title when left out."))] = None,
            source: Annotated[Optional[str], Field(description="Where it comes from, e.g. a URL.")] = None,
            metadata: Annotated[Optional[dict[str, Any]], Field(description="Any fields to filter by.")] = None,
            access: Annotated[Optional[list[str]], Field(description=(
                "The groups that may read it; left out: everyone who may read the knowledge base."))] = None,
        ) -> WriteOutput:
            added = _asked(lambda: client().add(text, id=doc_id, title=title, source=source, metadata=metadata,
                                                access=access))
            return WriteOutput(id=added.document.id if added.document else "", deleted=False, index=added.index)

        @server.tool(annotations=ToolAnnotations(destructive_hint=True, idempotent_hint=True, open_world_hint=False),
                     description=DESCRIPTIONS["delete_document"])
        def delete_document(
            doc_id: Annotated[str, Field(description="The id of the document to delete.")],
        ) -> WriteOutput:
            deleted = _asked(lambda: client().delete(doc_id))
            return WriteOutput(id=deleted.deleted, deleted=True, index=deleted.index)

    @server.resource("kb://documents/{doc_id}", name="document", mime_type="text/plain",
                     description="A document of the knowledge base, its whole text.")
    def document(doc_id: str) -> str:
        try:
            return client().get(doc_id).text
        except ClientError as exc:
            raise ResourceError(exc.message) from None

    return server


def _asked(call: Callable[[], Any]) -> Any:
    """The API's answer, or a tool error with its sentence (a refusal is never a traceback)."""
    try:
        return call()
    except ClientError as exc:
        raise ToolError(f"{exc.message} ({exc.code})") from None


def _search_output(answer: SearchAnswer, links: str | None) -> SearchOutput:
    passages = [Passage(
        rank=hit.rank, doc_id=hit.doc_id, title=hit.title, headings=hit.headings, source=hit.source, text=hit.text,
        start=hit.start, end=hit.end, score=hit.score, confident=hit.confident,
        highlights=[Sentence(text=hit.quote(h), start=h.start, end=h.end,
                             score=h.score) for h in hit.highlights],
        citation=citation(links, hit, answer.query) if links else None) for hit in answer.results]
    message = ("" if answer.confident else NOT_CONFIDENT) if passages else NOTHING
    return SearchOutput(query=answer.query, mode=answer.mode, confident=answer.confident and bool(passages),
                        message=message, results=passages, next_offset=answer.next_offset)


def _search_text(output: SearchOutput) -> str:
    """The answer as a model reads it: the verdict first, then each passage with where it comes from."""
    lines = [output.message] if output.message else []
    for hit in output.results:
        where = " › ".join([hit.title, *hit.headings[-1:]]) if hit.headings else hit.title
        lines.append(f"[{hit.rank}] {where} (doc_id {hit.doc_id}, characters {hit.start}-{hit.end}, "
                     f"score {hit.score:.3f})\n{hit.text}")
        if hit.highlights:
            lines.append("Answering: " + " ".join(f"“{sentence.text}”" for sentence in hit.highlights))
        if hit.citation:
            lines.append(f"Cite: {hit.citation}")
    return "\n\n".join(lines)
