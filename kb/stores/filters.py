"""Search filters on document fields, applied before ranking so k matches come back when k exist.

What a filter means is written here once, in Python (``Filters.matches``), with its translations for each
store's database beside it (``sqlite_prefilter``, ``postgres_where``); the store contract test holds every
store to the same answers.

Who may read what is one of them (``groups``, the caller's groups; None for a caller who reads everything), so a
document a caller may not read is never ranked, counted, listed or shown: ``visible`` is the rule
(kb/documents/access.py says what it means), and every store applies it below its API.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Sequence

DATE_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"  # also published in the API's OpenAPI description
_DATE = re.compile(DATE_PATTERN)


def check_date(name: str, value: str | None) -> None:
    """ValueError unless ``value`` is None or a date like 2025-06-01."""
    if value is not None and not _DATE.fullmatch(value):
        raise ValueError(f"{name} must be a date like 2025-06-01, got {value[:40]!r}")


@dataclass(frozen=True)
class Filters:
    doc_ids: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    metadata: tuple[tuple[str, str], ...] = ()  # (key, value): the document's metadata[key] must equal value
    date_from: str | None = None  # YYYY-MM-DD, inclusive, against metadata["date"]
    date_to: str | None = None
    groups: tuple[str, ...] | None = None  # the caller's groups, sorted; None: the caller reads every document

    def __post_init__(self) -> None:
        for name in ("date_from", "date_to"):
            check_date(name, getattr(self, name))

    def __bool__(self) -> bool:
        return self.asked or self.groups is not None

    @property
    def asked(self) -> bool:
        """Whether the search asked for any filter (what the answer echoes; the caller's groups are not one)."""
        return bool(self.doc_ids or self.sources or self.metadata or self.date_from or self.date_to)

    def matches(self, doc_id: str, source: str, metadata: dict[str, Any], access: Sequence[str] = ()) -> bool:
        if not visible(access, self.groups):
            return False
        if self.doc_ids and doc_id not in self.doc_ids:
            return False
        if self.sources and source not in self.sources:
            return False
        for key, value in self.metadata:
            if key not in metadata or metadata_text(metadata[key]) != value:
                return False
        if self.date_from or self.date_to:
            date = document_date(metadata)
            if date is None:
                return False
            if self.date_from and date < self.date_from:
                return False
            if self.date_to and date > self.date_to:
                return False
        return True

    def sqlite_prefilter(self) -> tuple[str, list[Any]]:
        """SQLite (the FAISS store's records): a WHERE clause over the documents (alias ``d``) for the ids and sources
        alone; what it keeps, ``matches`` then decides on (metadata and dates are JSON there)."""
        where, parameters = ["1"], []
        for column, values in (("id", self.doc_ids), ("source", self.sources)):
            if values:
                where.append(f"d.{column} IN ({','.join('?' * len(values))})")
                parameters += list(values)
        access, values = sqlite_visible(self.groups)
        return " AND ".join([*where, access]), [*parameters, *values]

    def to_json(self) -> dict[str, Any]:
        return {key: value for key, value in {
            "doc_id": list(self.doc_ids), "source": list(self.sources), "metadata": dict(self.metadata),
            "date_from": self.date_from, "date_to": self.date_to,
        }.items() if value}


def visible(access: Sequence[str], groups: Sequence[str] | None) -> bool:
    """Whether a caller of ``groups`` (None: one who reads everything) may read a document of ``access``."""
    return groups is None or not access or not set(access).isdisjoint(groups)


def sqlite_visible(groups: Sequence[str] | None) -> tuple[str, list[Any]]:
    """``visible`` over SQLite's documents (alias ``d``), whose access column is a JSON list ('[]': public)."""
    if groups is None:
        return "1", []
    if not groups:
        return "d.access = '[]'", []
    marks = ",".join("?" * len(groups))
    return f"(d.access = '[]' OR EXISTS (SELECT 1 FROM json_each(d.access) WHERE value IN ({marks})))", list(groups)


def postgres_visible(groups: Sequence[str] | None) -> tuple[str, list[Any]]:
    """``visible`` over PostgreSQL's documents (alias ``d``), whose access column is a text[] ('{}': public)."""
    if groups is None:
        return "true", []
    if not groups:
        return "d.access = '{}'", []
    # Spelled so that the planner can answer each side from an index: the public documents' partial btree, and the
    # partial GIN index on the restricted ones' access (schema version 5).
    return "(d.access = '{}' OR (d.access <> '{}' AND d.access && %s::text[]))", [list(groups)]


def metadata_text(value: Any) -> str:
    """How a metadata value reads in a filter: a string as itself, anything else as its JSON (5, true, null)."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def document_date(metadata: dict[str, Any]) -> str | None:
    """The YYYY-MM-DD that date filters compare: the start of metadata["date"], when it looks like one."""
    date = str(metadata.get("date") or "")[:10]
    return date if _DATE.match(date) else None


def postgres_where(filters: Filters) -> tuple[str, list[Any]]:
    """PostgreSQL: a WHERE clause over the documents (alias ``d``) that keeps exactly what ``matches`` keeps."""
    from psycopg.types.json import Jsonb

    access, parameters = postgres_visible(filters.groups)
    where = [access]
    if filters.doc_ids:
        where.append("d.id = ANY(%s)")
        parameters.append(list(filters.doc_ids))
    if filters.sources:
        where.append("d.source = ANY(%s)")
        parameters.append(list(filters.sources))
    for key, value in filters.metadata:
        # jsonb containment (the GIN index answers it): the value as a string, or as the JSON scalar it spells.
        options = ["d.metadata @> %s"]
        parameters.append(Jsonb({key: value}))
        scalar = _json_scalar(value)
        if scalar is not None:
            options.append("d.metadata @> %s")
            parameters.append(Jsonb({key: scalar[0]}))
        where.append(f"({' OR '.join(options)})")
    if filters.date_from or filters.date_to:
        where.append("d.date IS NOT NULL")
    if filters.date_from:
        where.append("d.date >= %s")
        parameters.append(filters.date_from)
    if filters.date_to:
        where.append("d.date <= %s")
        parameters.append(filters.date_to)
    return " AND ".join(where), parameters


def _json_scalar(value: str) -> tuple[Any] | None:
    """(x,) when ``value`` is the JSON text of a non-string scalar x (5, 1.5, true, null), as metadata_text writes it."""
    try:
        parsed = json.loads(value)
    except ValueError:
        return None
    if isinstance(parsed, (dict, list, str)) or metadata_text(parsed) != value:
        return None
    return (parsed,)
