"""The document API for scripts: add (JSON or file upload), list, read, export and delete documents."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, request

from kb.documents.access import parse_groups
from kb.documents.structure import STRUCTURE_KEYS
from kb.errors import UnreadableDocument
from web.auth import require_read, require_write
from web.errors import ApiError
from web.loading import knowledge_base
from web.params import json_body, refuse_encoded_body
from web.schemas import DocumentBody, DocumentPage, DocumentView, validated

documents = Blueprint("documents", __name__)


@documents.post("/documents")
def add_document():
    who = require_write()
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    if request.content_length is not None and request.content_length > limit:
        # Refused before a byte of the body is parsed (or spooled to a temporary file).
        raise ApiError("payload_too_large",
                       f"the request body is over the {limit // (1024 * 1024)} MiB limit (KB_MAX_UPLOAD_MB)")
    if request.mimetype == "application/json":
        body = json_body()
        if not isinstance(body, dict):
            raise ApiError("invalid_document", f"the body must be a JSON object with text, got {type(body).__name__}")
        record = validated(DocumentBody, body, json=True).model_dump(exclude_none=True)
        document, report = knowledge_base().add(record, who)
        return jsonify({"document": document, "index": _summary(report)}), 201
    if request.mimetype == "multipart/form-data":
        refuse_encoded_body()
        upload = request.files.get("file")
        if upload is None or not upload.filename:
            raise ApiError("missing_file", "send the document as a multipart form field named 'file'")
        unknown = sorted((set(request.files) - {"file"}) | (set(request.form) - {"access"}))
        if unknown:  # an access field misspelled must not leave a document public unnoticed
            raise ApiError("unknown_field", f"the upload form has a field kb does not know: {unknown[0][:60]!r} "
                           "(send 'file', and 'access' with the groups that may read it)")
        try:
            access = parse_groups(",".join(request.form.getlist("access")), "the upload form")
        except UnreadableDocument as exc:
            raise ApiError("invalid_document", exc.message) from None
        added, report = knowledge_base().add_file(upload.filename, upload.read(), who, access)
        return jsonify({"documents": added, "index": _summary(report)}), 201
    raise ApiError("unsupported_media_type",
                   f"send application/json or multipart/form-data, not {request.mimetype or 'no content type'}")


@documents.get("/documents")
def list_documents():
    who = require_read()
    paging = validated(DocumentPage, {key: request.args.get(key) for key in ("page", "per_page")})
    page, per_page = paging.page, paging.per_page
    total, chosen = knowledge_base().list((page - 1) * per_page, per_page, who)
    return jsonify({"page": page, "per_page": per_page, "total": total, "documents": [_brief(d) for d in chosen]})


@documents.get("/documents/<doc_id>")
def get_document(doc_id: str):
    who = require_read()
    view = validated(DocumentView, {key: request.args.get(key) for key in ("around", "window")})
    base = knowledge_base()
    document = base.get(doc_id, who)
    if document is None:
        raise ApiError("not_found", f"no document with id {doc_id!r}")
    body = {**_brief(document), "text": document.text}
    if view.around is not None:  # past the end: the last passages
        body["window"] = [{"ordinal": ordinal, "start": start, "end": end, "text": document.text[start:end]}
                          for ordinal, start, end in base.around(doc_id, view.around, view.window, who)]
    return jsonify(body)


@documents.get("/export")
def export_documents():
    """`kb export`'s JSON lines of the documents the caller may read, streamed from one consistent state."""
    who = require_read()
    lines = knowledge_base().export_lines(who)
    first = next(lines, b"")  # the store is opened here: a failure to is an error answer, not a cut-off 200

    def body():
        yield first
        yield from lines

    return Response(body(), mimetype="application/x-ndjson",
                    headers={"Content-Disposition": 'attachment; filename="kb-export.jsonl"'})


@documents.delete("/documents/<doc_id>")
def delete_document(doc_id: str):
    who = require_write()
    report = knowledge_base().delete(doc_id, who)
    return jsonify({"deleted": doc_id, "index": _summary(report)})


def _brief(document) -> dict:
    return {"id": document.id, "title": document.title, "source": document.source, "passages": document.passages,
            "characters": document.length,
            "metadata": {k: v for k, v in document.metadata.items() if k not in STRUCTURE_KEYS},
            "access": list(document.access)}


def _summary(report) -> dict:
    data = report.to_json()
    return {key: data[key] for key in ("added", "changed", "removed", "unchanged", "passages_embedded", "passages")}
