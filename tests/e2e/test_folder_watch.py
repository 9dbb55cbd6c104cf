"""`kb serve` keeps its index in step with its corpus folder: real files, the real model, a real server.

After each case the served index must equal what a fresh `kb build` of the same folder gives: the same
documents, content hashes, paths and passages (kb/ingestion/watch.py).
"""

from __future__ import annotations

import os
import re
import shutil
import threading
import time
import urllib.parse

import pytest

from kb.ingestion.sync import build_index
from kb.settings import Settings
from kb.stores import open_store
from tests.conftest import SEED_CORPUS
from tests.e2e.conftest import call, start_server

KEY = "watch-key"
SEED_FILE = "astana-times-runde-interview.txt"


def paths(state: dict) -> set[str]:
    return {path for _, path, _ in state.values()}


def index_state(index_dir, corpus) -> dict:
    """doc id -> (content hash, path, passage offsets) of the store in ``index_dir``."""
    store = open_store(Settings.from_env(index_dir=index_dir, corpus_dir=corpus))
    try:
        return {doc_id: (digest, path, tuple(store.passage_spans(doc_id)))
                for doc_id, (digest, path) in store.fingerprints().items()}
    finally:
        store.close()


class Folder:
    """A corpus folder watched by a real `kb serve`, and fresh builds of it to compare with."""

    def __init__(self, tmp_path, embedder, extra_env=None) -> None:
        self.tmp, self.embedder, self.builds = tmp_path, embedder, 0
        self.corpus = tmp_path / "corpus"
        self.corpus.mkdir()
        shutil.copy(SEED_CORPUS / SEED_FILE, self.corpus / SEED_FILE)
        self.index = tmp_path / "index"
        env = {"KB_API_KEY": KEY, "KB_WRITE_RATE_LIMIT": "off", **(extra_env or {})}
        self.server = start_server(self.index, tmp_path / "server.log", extra_env=env, corpus_dir=self.corpus)

    def fresh(self) -> dict:
        self.builds += 1
        index = self.tmp / f"fresh-{self.builds}"
        build_index(Settings.from_env(index_dir=index, corpus_dir=self.corpus), embedder=self.embedder)
        return index_state(index, self.corpus)

    def in_step(self, timeout: float = 60) -> dict:
        """Waits until the served index equals a fresh build of the folder as it is now; that state."""
        expected = self.fresh()
        deadline = time.monotonic() + timeout
        while True:
            state = index_state(self.index, self.corpus)
            if state == expected:
                return state
            if time.monotonic() > deadline:
                assert state == expected, self.server.output()[-3000:]
            time.sleep(0.1)

    def found(self, words: str) -> list[str]:
        status, body = call(self.server.base, "GET", "/api/search?" + urllib.parse.urlencode({"q": words, "k": 3}))
        assert status == 200, body
        return [hit["doc_id"] for hit in body["results"] if words.split()[0].lower() in hit["text"].lower()]

    def health(self) -> dict:
        return self.server.get_json("/api/health")[1]["sync"]

    def watch_lines(self) -> list[str]:
        return [line for line in self.server.output().splitlines() if "kb.ingestion.watch" in line]

    def updates_since(self, before: int) -> list[str]:
        """The watch's write lines after the first ``before`` lines, once one is there (and a moment for more)."""
        deadline = time.monotonic() + 10
        while not [line for line in self.watch_lines()[before:] if " added, " in line] and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)
        return [line for line in self.watch_lines()[before:] if " added, " in line]

    def stop(self) -> None:
        self.server.stop()


@pytest.fixture()
def folder(tmp_path, embedder):
    watched = Folder(tmp_path, embedder)
    yield watched
    watched.stop()


def write(path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def test_creates_edits_deletes_renames_moves_and_whole_folders_reach_the_index(folder):
    c = folder.corpus
    assert folder.health()["mode"] == "on"
    write(c / "notes" / "zeppelin.md", "# Zeppelins\n\nThe zeppelin budget for 2027 was approved.\n")
    write(c / "kites.txt", "Kites flew over the steppe in spring.\n")
    folder.in_step()
    assert folder.found("zeppelin budget") == ["notes--zeppelin.md"]  # a path's id: "/" becomes "--"

    write(c / "notes" / "zeppelin.md", "# Zeppelins\n\nThe zeppelin budget for 2028 was cut in half.\n")  # edit
    folder.in_step()
    os.remove(c / "kites.txt")  # delete
    folder.in_step()
    assert folder.found("kites steppe") == []

    os.rename(c / "notes" / "zeppelin.md", c / "notes" / "airships.md")  # rename
    (c / "archive").mkdir()
    os.rename(c / "notes" / "airships.md", c / "archive" / "airships.md")  # move across folders
    state = folder.in_step()
    assert "archive/airships.md" in paths(state) and "notes/zeppelin.md" not in paths(state)

    shutil.copytree(c / "archive", folder.tmp / "drop")
    write(folder.tmp / "drop" / "deep" / "balloons.md", "# Balloons\n\nNine balloons rose at dawn.\n")
    shutil.move(str(folder.tmp / "drop"), str(c / "dropped"))  # a folder added whole
    assert "dropped/deep/balloons.md" in paths(folder.in_step())
    shutil.rmtree(c / "dropped")  # and removed whole
    assert not any(path.startswith("dropped/") for path in paths(folder.in_step()))

    os.remove(c / "archive" / "airships.md")  # a file replaced by a folder of the same name
    write(c / "archive" / "airships.md" / "inside.md", "# Inside\n\nA folder where a file was.\n")
    assert "archive/airships.md/inside.md" in paths(folder.in_step())

    (c / "linked.txt").symlink_to(c / SEED_FILE)  # a symlink is read as the file it points to
    state = folder.in_step()
    assert state["linked.txt"][0] == state[SEED_FILE][0]


def _save_atomically(path, text: str, style: str) -> None:
    if style == "vim":  # backupcopy=no: the old file renamed to a backup, the new one written, the backup deleted
        os.rename(path, path.with_name(path.name + "~"))
        path.write_text(text, encoding="utf-8")
        os.remove(path.with_name(path.name + "~"))
    elif style == "vscode":  # a temporary file beside it, renamed over the old one
        temporary = path.with_name("." + path.name + ".tmp")
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, path)
    elif style == "jetbrains":  # "safe write": ___jb_tmp___ written, the old one moved aside, the new one in place
        temporary, old = path.with_name(path.name + "___jb_tmp___"), path.with_name(path.name + "___jb_old___")
        temporary.write_text(text, encoding="utf-8")
        os.rename(path, old)
        os.rename(temporary, path)
        os.remove(old)
    else:  # sed -i: a temporary file without a suffix in the same folder, renamed over
        temporary = path.parent / "sedAb12Cd"
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, path)


@pytest.mark.parametrize("style", ["vim", "vscode", "jetbrains", "sed"])
def test_an_editors_atomic_save_is_one_update_and_the_document_never_leaves_the_results(folder, style):
    note = folder.corpus / "meeting.md"
    write(note, "# Meeting\n\nThe quokka committee met on Monday.\n")
    folder.in_step()
    before = len(folder.watch_lines())
    missing, stop = [], threading.Event()

    def search() -> None:
        while not stop.is_set():
            if folder.found("quokka committee") != ["meeting.md"]:
                missing.append(time.monotonic())
            time.sleep(0.01)

    searcher = threading.Thread(target=search)
    searcher.start()
    try:
        _save_atomically(note, "# Meeting\n\nThe quokka committee met on Tuesday instead.\n", style)
        folder.in_step()
        time.sleep(0.3)
    finally:
        stop.set()
        searcher.join()
    assert folder.found("quokka Tuesday") == ["meeting.md"]
    assert missing == [], f"the document left the results {len(missing)} times during the save"
    updates = folder.updates_since(before)
    assert len(updates) == 1 and "0 added, 1 changed, 0 removed" in updates[0], updates


def test_a_file_still_being_copied_is_read_once_whole(folder):
    chunks = [f"Paragraph {n}: the slow copy carried walrus number {n} across the tundra.\n\n" for n in range(12)]
    target = folder.corpus / "slow.txt"
    before = len(folder.watch_lines())
    with open(target, "w", encoding="utf-8") as handle:
        for chunk in chunks:  # a chunk every 0.2 s: never quiet for the settle time (0.5 s) until it is done
            handle.write(chunk)
            handle.flush()
            time.sleep(0.2)
    state = folder.in_step()
    assert "slow.txt" in state
    updates = folder.updates_since(before)
    assert len(updates) == 1 and "1 added, 0 changed" in updates[0], updates  # once, never half then whole


def test_a_thousand_files_dropped_at_once_are_batched_with_progress_and_match_a_fresh_build(folder):
    staging = folder.tmp / "staging"
    staging.mkdir()
    for n in range(1000):
        text = " ".join(f"Note {n}, entry {e}: the expedition counted {n + e} narwhals at station {n % 37}."
                        for e in range(3))  # about 240 characters: several transactions
        (staging / f"note-{n:04d}.txt").write_text(text, encoding="utf-8")
    seen = []
    stop = threading.Event()

    def watch_health() -> None:
        while not stop.is_set():
            seen.append(folder.health())
            time.sleep(0.05)

    poller = threading.Thread(target=watch_health)
    poller.start()
    try:
        for path in staging.iterdir():
            os.rename(path, folder.corpus / path.name)
        state = folder.in_step(timeout=240)
    finally:
        stop.set()
        poller.join()
    assert sum(doc.startswith("note-") for doc in state) == 1000
    assert any(s["syncing"] and s["total"] >= 100 for s in seen), "health showed the sync and its size"
    assert any(0 < s["done"] < s["total"] for s in seen), "and its progress"
    assert any(s["pending"] >= 100 for s in seen), "and the files waiting"
    assert [line for line in folder.watch_lines() if re.search(r" \d+ of \d+ written", line)], "progress on the console"
    syncs = [line for line in folder.watch_lines() if re.search(r"watch: [1-9]\d* added", line)]
    assert 1 <= len(syncs) <= 5, syncs  # coalesced: a few syncs for a thousand files, not one each


def test_files_kb_skips_are_logged_with_a_reason_and_change_nothing(folder):
    before = folder.in_step()
    write(folder.corpus / "report.docx", "not a format kb reads")
    write(folder.corpus / "draft.md~", "an editor's backup")
    write(folder.corpus / ".hidden.md", "# Hidden\n\nNot for the index.\n")
    time.sleep(1.5)
    assert folder.in_step() == before
    lines = "\n".join(folder.watch_lines())
    assert "skipped report.docx: kb does not read .docx" in lines
    assert "skipped draft.md~: kb does not read .md~" in lines
    assert "skipped .hidden.md: hidden" in lines
    assert folder.health()["last_error"] is None


def test_kbs_own_writes_come_back_as_events_and_are_not_written_again(folder):
    folder.in_step()
    status, body = call(folder.server.base, "POST", "/api/documents",
                        {"id": "meeting-notes", "text": "The zeppelin budget for 2027 was approved."}, key=KEY)
    assert status == 201, body
    syncs = folder.health()["syncs"]
    deadline = time.monotonic() + 10
    while folder.health()["syncs"] == syncs and time.monotonic() < deadline:  # the write's own events arrive
        time.sleep(0.05)
    assert folder.health()["syncs"] > syncs, "the record's file was seen"
    assert not [line for line in folder.watch_lines() if " added, " in line], "and nothing was written again"
    assert "meeting-notes" in folder.in_step()


def test_a_second_server_on_the_same_index_leaves_the_watching_to_the_first(folder, tmp_path):
    other = start_server(folder.index, tmp_path / "second.log", corpus_dir=folder.corpus)
    try:
        assert other.get_json("/api/health")[1]["sync"]["mode"] == "elsewhere"
        assert folder.health()["mode"] == "on"
    finally:
        other.stop()


def test_polling_mode_keeps_the_index_in_step_too(tmp_path, embedder):
    watched = Folder(tmp_path, embedder, {"KB_WATCH": "poll", "KB_WATCH_POLL_SECONDS": "0.3"})
    try:
        assert watched.health()["mode"] == "poll"
        write(watched.corpus / "polled.md", "# Polled\n\nThe ibis was seen by polling.\n")
        assert "polled.md" in watched.in_step()
        write(watched.corpus / "polled.md", "# Polled\n\nThe ibis was seen again, edited.\n")
        watched.in_step()
        os.remove(watched.corpus / "polled.md")
        assert "polled.md" not in watched.in_step()
    finally:
        watched.stop()
