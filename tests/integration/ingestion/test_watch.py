"""The folder watch's safety net and its lock: lost events repaired by the rescan, one watcher per store."""

from __future__ import annotations

import threading
import time

from kb.ingestion.sync import build_index
from kb.ingestion.watch import FolderWatch
from kb.settings import Settings
from kb.stores import open_store, store_class
from kb.stores.postgres.store import PostgresStore


def lost_events(stop: threading.Event):
    """An event source whose events were all lost (an overflowing inotify queue): only timeouts arrive."""
    while not stop.is_set():
        time.sleep(0.05)
        yield set()


def state(settings: Settings) -> dict:
    store = open_store(settings)
    try:
        return {doc_id: (digest, path, tuple(store.passage_spans(doc_id)))
                for doc_id, (digest, path) in store.fingerprints().items()}
    finally:
        store.close()


def test_changes_whose_events_were_lost_are_repaired_by_the_rescan(tmp_path, embedder):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "first.md").write_text("# First\n\nThe heron stood still.\n", encoding="utf-8")
    settings = Settings.from_env(index_dir=tmp_path / "index", corpus_dir=corpus, watch_rescan_seconds=1.0,
                                 watch_settle_seconds=0.2)
    build_index(settings, embedder=embedder)
    watch = FolderWatch(settings, lambda **options: build_index(settings, embedder=embedder, **options),
                        claim=lambda: store_class(settings).watch_claim(settings), events=lost_events)
    assert watch.start()
    try:
        deadline = time.monotonic() + 20
        while (watch.state.syncs < 1 or watch.state.syncing) and time.monotonic() < deadline:
            time.sleep(0.05)  # the first sync, at start, is done and finds nothing
        syncs = watch.state.syncs
        assert syncs >= 1
        (corpus / "second.md").write_text("# Second\n\nThe egret flew off.\n", encoding="utf-8")
        (corpus / "first.md").unlink()
        fresh = tmp_path / "fresh"
        build_index(Settings.from_env(index_dir=fresh, corpus_dir=corpus), embedder=embedder)
        expected = state(Settings.from_env(index_dir=fresh, corpus_dir=corpus))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not (
                state(settings) == expected and watch.state.syncs > syncs and not watch.state.syncing):
            time.sleep(0.1)  # a sync's writes land before it counts itself done
        assert state(settings) == expected
        assert set(expected) == {"second.md"}
        assert watch.state.syncs > syncs and watch.state.pending == 0
    finally:
        watch.stop()


def test_one_process_watches_a_faiss_store_until_it_lets_go(tmp_path):
    settings = Settings.from_env(index_dir=tmp_path / "index", corpus_dir=tmp_path)
    release = store_class(settings).watch_claim(settings)
    assert release is not None
    assert store_class(settings).watch_claim(settings) is None  # another holder (a second server) is told no
    release()
    again = store_class(settings).watch_claim(settings)
    assert again is not None
    again()


def test_one_process_watches_a_postgres_schema_until_it_lets_go(pg_settings):
    release = PostgresStore.watch_claim(pg_settings)
    assert release is not None
    assert PostgresStore.watch_claim(pg_settings) is None
    other_schema = pg_settings.with_(pg_schema=pg_settings.pg_schema + "_b")
    release_other = PostgresStore.watch_claim(other_schema)
    assert release_other is not None  # per schema: another knowledge base on the same server is watched apart
    release_other()
    release()
    again = PostgresStore.watch_claim(pg_settings)
    assert again is not None
    again()
