"""kb's errors: each has a machine-readable ``code`` and a ``message`` that is one sentence for people.

The library raises these and knows nothing of HTTP: web/errors.py maps every code to a status, and the
command line prints the message as one line and exits 1. docs/api.md lists every code a request can meet,
and a test keeps that table and the code in step, both ways.
"""

from __future__ import annotations


class KbError(Exception):
    code = "kb_error"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class DocumentError(KbError, ValueError):
    """A document kb will not take, or cannot find: the code says which (``invalid_id``, ``id_taken``, ...)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message, code)


class UnreadableDocument(KbError, ValueError):
    """A file that is not a document kb can read (bad encoding, binary, unparsable)."""

    code = "unreadable_document"


class ImportProblem(KbError, ValueError):
    """A line of an import that is not a document `kb export` wrote; the message names the line."""

    code = "invalid_import"


class ModelUnavailable(KbError, RuntimeError):
    """The configured model cannot be loaded (not installed, not on disk, not cached)."""

    code = "model_unavailable"


class NotExportable(KbError):
    """A model that stays on torch; the message says why (logged once)."""

    code = "not_exportable"


class WorkerFailed(KbError, RuntimeError):
    """The embedding worker died twice on one write (out of memory, killed)."""

    code = "embedding_failed"


class StoreProblem(KbError, RuntimeError):
    """Base for store problems; the message says which file or server and what to do."""

    code = "store_problem"


class StoreMissing(StoreProblem):
    code = "no_index"


class StoreMismatch(StoreProblem):
    code = "index_mismatch"


class StoreCorrupt(StoreProblem):
    code = "index_damaged"


class StoreUnwritable(StoreProblem):
    """The store cannot take a write (disk full, read-only, no permission)."""

    code = "storage_unwritable"


class StoreUnavailable(StoreProblem):
    """A database server cannot be reached; reads or writes may work again later."""

    code = "store_unavailable"


class BackupProblem(StoreProblem):
    """A backup that cannot be taken or restored as asked; the message says why and what to do."""

    code = "backup_problem"


class SchemaBehind(StoreProblem):
    """The PostgreSQL schema is older than this kb (or missing) and must be migrated first."""

    code = "schema_behind"


class ClusterError(KbError, RuntimeError):
    """A local PostgreSQL (for development and tests) could not be made or started."""

    code = "cluster_failed"


class KeyProblem(KbError, ValueError):
    """A key that cannot be added or revoked as asked: a name taken, unknown or badly formed (`kb keys`)."""

    code = "key_problem"


class Forbidden(KbError, PermissionError):
    """The caller is known, but what it asks is not theirs to see or do (kb/stores/keys.py)."""

    code = "forbidden"
