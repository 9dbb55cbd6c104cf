"""The OpenAPI 3.1 description of kb's HTTP interface, generated from web/schemas.py.

Served at /openapi.json, and as a page for people at /docs (rendered on the server from the
same dictionary: no script, no CDN). Parameters and bodies come from the request models the
handlers validate with; responses from the response models.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from pydantic.json_schema import models_json_schema

from web import schemas

REF = "#/components/schemas/{model}"


def _ref(model: type) -> dict[str, str]:
    return {"$ref": REF.format(model=model.__name__)}


def _json(model: type, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(model)}}}


def _errors(*statuses: int) -> dict[str, Any]:
    reasons = {
        400: "Malformed input: the error names the parameter and the problem.",
        401: "A key is needed and was missing or wrong.",
        403: "Writes are disabled (no KB_API_KEY on the server).",
        404: "No such document.",
        409: "The id belongs to a document from another file.",
        413: "The body is over KB_MAX_UPLOAD_MB.",
        415: "Unsupported content type or file type.",
        422: "The file could not be read.",
        429: "Too many requests from this address; see Retry-After.",
        503: "The server is still loading, or failed to load its index.",
        507: "The disk is full or read-only: nothing was acknowledged (the message says what was kept).",
    }
    return {str(status): _json(schemas.Error, reasons[status]) for status in statuses}


def _query_parameters(model: type) -> list[dict[str, Any]]:
    """One query parameter per field of a GET model, with the field's own JSON Schema."""
    schema = model.model_json_schema(ref_template=REF)
    required = set(schema.get("required", []))
    parameters = []
    for name, field in schema["properties"].items():
        field = dict(field)
        description = field.pop("description", "")
        field.pop("title", None)
        if "anyOf" in field:  # Optional[X] is X or null; a query string cannot carry a null
            options = [option for option in field.pop("anyOf") if option.get("type") != "null"]
            field.update(options[0] if len(options) == 1 else {"anyOf": options})
            field.pop("default", None)
        parameter = {"name": name, "in": "query", "required": name in required, "schema": field}
        if description:
            parameter["description"] = description
        if field.get("type") == "array":
            parameter.update(style="form", explode=True)
        parameters.append(parameter)
    return parameters


@lru_cache(maxsize=1)
def spec() -> dict[str, Any]:
    models = [(m, "validation") for m in schemas.REQUEST_MODELS] + [(m, "serialization") for m in schemas.RESPONSE_MODELS]
    _, definitions = models_json_schema(models, ref_template=REF)
    components = definitions.get("$defs", {})
    read_security = [{}, {"bearer": []}]  # open unless KB_READ_KEY is set
    write_security = [{"bearer": []}]
    doc_id = {"name": "doc_id", "in": "path", "required": True, "schema": {"type": "string", "minLength": 1},
              "description": "A document id, as search results and the document list give it."}
    paths = {
        "/api/search": {
            "get": {
                "summary": "Search: the passages that best answer a question",
                "description": "Metadata filters are further parameters named filter.KEY=VALUE.",
                "parameters": _query_parameters(schemas.SearchQuery),
                "security": read_security,
                "responses": {"200": _json(schemas.SearchAnswer, "The answer, best passage first."),
                              **_errors(400, 401, 429, 503)},
            },
            "post": {
                "summary": "Search with a JSON body (filters as an object)",
                "requestBody": {"required": True, "content": {"application/json": {"schema": _ref(schemas.SearchBody)}}},
                "security": read_security,
                "responses": {"200": _json(schemas.SearchAnswer, "The answer, best passage first."),
                              **_errors(400, 401, 413, 415, 429, 503)},
            },
        },
        "/api/health": {
            "get": {
                "summary": "Whether the server is ready, and what it serves",
                "responses": {"200": _json(schemas.Health, "Ready."),
                              "503": _json(schemas.Health, "Loading, or failed to load (message says why).")},
            },
        },
        "/api/documents": {
            "get": {
                "summary": "List the documents, a page at a time, by id",
                "parameters": _query_parameters(schemas.DocumentPage),
                "security": read_security,
                "responses": {"200": _json(schemas.DocumentList, "One page of documents."), **_errors(400, 401, 429, 503)},
            },
            "post": {
                "summary": "Add or replace a document (JSON), or upload a file (multipart)",
                "description": "Acknowledged only once the document is stored durably and the index that holds it is live.",
                "requestBody": {"required": True, "content": {
                    "application/json": {"schema": _ref(schemas.DocumentBody)},
                    "multipart/form-data": {"schema": {
                        "type": "object", "required": ["file"],
                        "properties": {"file": {"type": "string", "format": "binary",
                                                "description": ".txt, .md, .html, .pdf or .jsonl"},
                                       "access": {"type": "string", "description": "the groups that may read it, "
                                                  "comma-separated (none: public; a .jsonl line's own access wins)"}},
                        "additionalProperties": False,
                    }},
                }},
                "security": write_security,
                "responses": {"201": _json(schemas.Added, "Stored and indexed."),
                              **_errors(400, 401, 403, 409, 413, 415, 422, 429, 503, 507)},
            },
        },
        "/api/documents/{doc_id}": {
            "parameters": [doc_id],
            "get": {
                "summary": "One document with its full text (and, with around, the passages around an offset)",
                "parameters": _query_parameters(schemas.DocumentView),
                "security": read_security,
                "responses": {"200": _json(schemas.DocumentFull, "The document."), **_errors(400, 401, 404, 429, 503)},
            },
            "delete": {
                "summary": "Delete a document",
                "security": write_security,
                "responses": {"200": _json(schemas.Deleted, "Deleted and re-indexed."),
                              **_errors(400, 401, 403, 404, 409, 429, 503, 507)},
            },
        },
        "/api/export": {
            "get": {
                "summary": "Every document the caller may read, as `kb export`'s JSON lines",
                "description": "One document a line, by id, from one consistent state (docs/formats.md, \"Export lines\"); "
                               "`kb import` reads it back.",
                "security": read_security,
                "responses": {"200": {"description": "The documents, one JSON object a line.",
                                      "content": {"application/x-ndjson": {"schema": {"type": "string"}}}},
                              **_errors(401, 429, 503)},
            },
        },
        "/api/insights": {
            "get": {
                "summary": "Insights: top questions, the ones kb could not answer, clicks, citations, per day",
                "description": "From the query log (KB_QUERY_LOG); docs/operations.md, \"Insights and metrics\".",
                "parameters": _query_parameters(schemas.InsightsWindow),
                "security": read_security,
                "responses": {"200": _json(schemas.Insights, "The report."), **_errors(400, 401, 429, 503)},
            },
        },
        "/api/events": {
            "post": {
                "summary": "The search page's beacon: a question settled, or a result was opened",
                "requestBody": {"required": True, "content": {"application/json": {"schema": _ref(schemas.EventBody)}}},
                "security": read_security,
                "responses": {"202": _json(schemas.EventKept, "Taken."), **_errors(400, 401, 413, 415, 429, 503)},
            },
        },
        "/openapi.json": {"get": {"summary": "This description", "responses": {"200": {
            "description": "OpenAPI 3.1", "content": {"application/json": {"schema": {"type": "object"}}}}}}},
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "kb", "version": "1.0",
                 "description": "Ask a knowledge base questions in plain words; add and remove its documents."},
        "paths": paths,
        "components": {"schemas": components,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                                      "description": "KB_API_KEY for writes; KB_READ_KEY for reads when set."}}},
    }
