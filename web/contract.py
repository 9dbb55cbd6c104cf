"""The published contract: /openapi.json for programs, /docs for people (no key needed for either)."""

from __future__ import annotations

import json

from flask import Blueprint, jsonify, render_template

from web.openapi import spec

contract = Blueprint("contract", __name__)


@contract.get("/openapi.json")
def openapi_json():
    return jsonify(spec())


@contract.get("/docs")
def docs():
    document = spec()
    operations = []
    for path, item in document["paths"].items():
        shared = item.get("parameters", [])
        for method, operation in item.items():
            if method == "parameters":
                continue
            body = operation.get("requestBody", {}).get("content", {})
            operations.append({
                "method": method.upper(), "path": path, "summary": operation.get("summary", ""),
                "description": operation.get("description", ""),
                "parameters": shared + operation.get("parameters", []),
                "bodies": {kind: _schema_text(content.get("schema", {}), document) for kind, content in body.items()},
                "responses": {status: response.get("description", "") for status, response in operation["responses"].items()},
                "needs_key": operation.get("security") == [{"bearer": []}],
            })
    return render_template("docs.html", info=document["info"], operations=operations)


def _schema_text(schema: dict, document: dict) -> str:
    """A request body's schema, references resolved one level, as indented JSON for people."""
    ref = schema.get("$ref", "")
    if ref.startswith("#/components/schemas/"):
        schema = document["components"]["schemas"][ref.rsplit("/", 1)[-1]]
    return json.dumps(schema, indent=2, ensure_ascii=False)
