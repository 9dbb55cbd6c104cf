"""The key table (SQLite, the FAISS store's): keys kept hashed, callers found by key, revoked at once."""

import sqlite3

import pytest

from kb.errors import KeyProblem
from kb.stores.filters import visible
from kb.stores.keys import SqliteKeyTable


def test_a_key_is_shown_once_kept_hashed_and_refused_once_revoked(tmp_path):
    table = SqliteKeyTable(tmp_path / "keys.sqlite")
    key = table.add("alice", ["legal", "hr", "hr"], write=False)
    writer = table.add("hr-bot", ["hr"], write=True)
    assert key.startswith("kb_") and len(key) > 40 and key != writer
    with sqlite3.connect(tmp_path / "keys.sqlite") as conn:
        stored = conn.execute("SELECT * FROM keys").fetchall()
    assert not any(key in str(value) or writer in str(value) for row in stored for value in row)
    alice = table.caller(key)
    assert (alice.name, alice.groups, alice.write) == ("alice", ("hr", "legal"), False)
    assert table.caller(writer).write and table.caller(key + "x") is None
    assert [info.name for info, _ in table.keys()] == ["alice", "hr-bot"]
    with pytest.raises(KeyProblem, match="already"):
        table.add("alice", [], write=False)
    with pytest.raises(KeyProblem):
        table.add("bad name!", [], write=False)
    other = SqliteKeyTable(tmp_path / "keys.sqlite")  # another process's view of the same table
    assert other.caller(key) is not None
    assert table.revoke("alice") and not table.revoke("alice")
    assert other.caller(key) is None


@pytest.mark.parametrize(("access", "groups", "seen"), [
    ((), None, True), (("hr",), None, True),  # a caller of no groups limit reads everything
    ((), (), True), (("hr",), (), False),  # anonymous: public documents only
    (("hr", "legal"), ("legal",), True), (("hr",), ("legal", "sales"), False),
])
def test_who_may_read_what(access, groups, seen):
    assert visible(access, groups) is seen


def test_beside_the_faiss_record_the_key_table_and_the_query_log_keep_out_of_git(tmp_path):
    """The first of kb's own files in a corpus folder that no build has touched makes corpus/.kb/ with its .gitignore."""
    from kb.settings import Settings
    from kb.stores.faiss.store import FaissStore

    for name, made in (("keys", lambda s: FaissStore.key_table(s).add("alice", [], write=False)),
                       ("log", lambda s: FaissStore.query_log(s).append([], []))):
        settings = Settings.from_env(environ={}, corpus_dir=tmp_path / name / "corpus", index_dir=tmp_path / name / "index")
        made(settings)
        assert (settings.corpus_dir / ".kb" / ".gitignore").read_text().splitlines()[-1] == "*", name


def test_a_damaged_or_vanished_key_table_is_a_store_problem_that_names_it(tmp_path):
    """Never an unexplained failure (a 500 over HTTP): a sentence naming the file, and the table works again once the
    file is back."""
    import shutil

    from kb.errors import StoreProblem

    folder = tmp_path / "corpus" / ".kb"
    table = SqliteKeyTable(folder / "keys.sqlite", lambda: folder.mkdir(exist_ok=True))  # as the FAISS store's: no parents
    folder.mkdir(parents=True)
    key = table.add("alice", [], write=False)
    shutil.rmtree(tmp_path / "corpus")  # the corpus folder removed under a running server
    table.close()  # as a thread of its that has not connected yet
    with pytest.raises(StoreProblem, match="keys.sqlite cannot be used"):
        table.caller(key)
    folder.mkdir(parents=True)
    (folder / "keys.sqlite").write_bytes(b"not a database at all" * 100)
    with pytest.raises(StoreProblem, match="keys.sqlite cannot be used"):
        table.caller(key)
    (folder / "keys.sqlite").unlink()
    assert table.caller(key) is None and table.add("alice", [], write=False)  # a table made again


def test_an_unreachable_postgresql_key_table_is_store_unavailable_naming_where(tmp_path):
    """A request with a key on PostgreSQL, the primary down: a 503 that says where, never a 500 (no server is
    listening on the port asked)."""
    import socket

    from kb.errors import StoreUnavailable
    from kb.settings import Settings
    from kb.stores.postgres.keys import PostgresKeyTable

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # free once closed: nothing listens there
    settings = Settings.from_env(environ={"KB_STORE": "postgres", "KB_PG_DSN": f"postgresql://kb@127.0.0.1:{port}/kb"},
                                 corpus_dir=tmp_path / "corpus", index_dir=tmp_path / "index")
    table = PostgresKeyTable(settings)
    with pytest.raises(StoreUnavailable, match=f"127.0.0.1:{port}/kb is unreachable"):
        table.caller("kb_not-a-key")
    table.close()
