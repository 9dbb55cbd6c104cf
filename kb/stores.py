"""Which store kb runs on (KB_STORE): open it, ask whether it exists, and keep an evaluation's apart."""

from __future__ import annotations

from kb.settings import Settings
from kb.store import Store, StoreMismatch


def open_store(settings: Settings, expected_model: str | None = None) -> Store:
    """The configured store; StoreProblem when there is none, it is damaged, or it holds another model's vectors."""
    if settings.store == "postgres":
        from kb.pg_store import PostgresStore

        store: Store = PostgresStore(settings)
        if expected_model is not None and store.model != expected_model:
            store.close()
            raise StoreMismatch(f"{store.location} holds vectors of model {store.model!r} but KB_MODEL is "
                                f"{expected_model!r}: run `kb build --force` to embed everything again")
        return store
    from kb.faiss_store import open_current

    return open_current(settings, expected_model=expected_model)


def store_exists(settings: Settings) -> bool:
    """Whether there is a store to open (without loading it)."""
    if settings.store == "postgres":
        import psycopg

        from kb.pg_schema import version

        try:
            with psycopg.connect(settings.pg_dsn, connect_timeout=10) as conn:
                return version(conn, settings.pg_schema) > 0
        except psycopg.OperationalError:
            return True  # there may well be one: opening it will say the server is unreachable
    from kb.faiss_store import current_folder

    return current_folder(settings.index_dir) is not None


def evaluation_settings(settings: Settings, name: str) -> Settings:
    """Settings for a dataset's own store, beside the knowledge base's and never mixed with it."""
    if settings.store == "postgres":
        return settings.with_(pg_schema=f"{settings.pg_schema}_eval_{_plain(name)}"[:51])
    return settings.with_(index_dir=settings.index_dir / "eval" / name)


def _plain(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name.lower())
