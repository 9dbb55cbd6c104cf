"""Faults real processes must survive: broken index files, a missing model, a full or read-only
disk, and a bad new build appearing under a live server. Each refusal is one sentence that
names the file and the fix, never a traceback, and the last good index is never lost."""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse

import pytest

from kb.ingestion.sync import build_index
from kb.settings import Settings
from kb.stores.faiss.store import current_folder, open_current
from tests.conftest import SEED_CORPUS, free_port
from tests.e2e.conftest import start_server
from tests.fakes import FakeEmbedder


def kb(*args: str, env: dict, timeout: float = 300, preexec_fn=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kb.cli", *args], env={**os.environ, "HF_HUB_OFFLINE": "1", **env},
                          capture_output=True, text=True, timeout=timeout, preexec_fn=preexec_fn)


def last_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr[-2000:]
    lines = [line for line in stderr.strip().splitlines() if line.startswith("kb: ")]
    assert lines, stderr[-2000:]
    return lines[-1]


@pytest.fixture()
def copied(tmp_path, seed_settings, seed_index):
    """A private copy of the real seed index and corpus, safe to damage."""
    shutil.copytree(seed_settings.index_dir, tmp_path / "index", symlinks=True)
    shutil.copytree(SEED_CORPUS, tmp_path / "corpus")
    env = {"KB_INDEX_DIR": str(tmp_path / "index"), "KB_CORPUS_DIR": str(tmp_path / "corpus")}
    return tmp_path, env, Settings.from_env(environ={}, index_dir=tmp_path / "index", corpus_dir=tmp_path / "corpus")


def truncate(path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def garble(path) -> None:
    path.write_bytes(b"\xff" * path.stat().st_size)
    for leftover in path.parent.glob(path.name + "-*"):  # SQLite's -wal and -shm files
        leftover.unlink()


DAMAGE = {
    "records.sqlite": garble,
    "manifest.json": lambda p: p.write_text(json.dumps({**json.loads(p.read_text()), "format_version": 99})),
}


def checkpoint_file(settings, name: str):
    root = current_folder(settings.index_dir) / "checkpoints"
    return root / json.loads((root / "latest.json").read_text())["checkpoint"] / name


@pytest.mark.parametrize("name", sorted(DAMAGE))
def test_kb_search_on_a_damaged_index_names_the_file_and_the_fix(copied, name):
    _, env, settings = copied
    DAMAGE[name](current_folder(settings.index_dir) / name)
    result = kb("search", "Has a US president visited Kazakhstan?", env=env)
    assert result.returncode == 1
    line = last_line(result.stderr)
    assert name in line and "kb build" in line, line


def test_a_damaged_checkpoint_is_rebuilt_from_the_records_and_search_answers(copied):
    _, env, settings = copied
    truncate(checkpoint_file(settings, "vectors.faiss"))
    result = kb("search", "Has a US president visited Kazakhstan?", "--json", env=env)
    assert result.returncode == 0 and json.loads(result.stdout)["results"], result.stderr[-2000:]


def test_kb_serve_heals_a_damaged_index_from_the_corpus_and_says_what_it_found(copied):
    tmp_path, env, settings = copied
    garble(current_folder(settings.index_dir) / "records.sqlite")
    server = start_server(tmp_path / "index", tmp_path / "serve.log", corpus_dir=tmp_path / "corpus")
    try:
        status, body = server.get_json("/api/search?q=" + urllib.parse.quote("Has a US president visited Kazakhstan?"))
        assert status == 200 and body["results"]
    finally:
        server.stop()
    assert "records.sqlite" in server.output() and "rebuilding" in server.output()
    assert open_current(settings).snapshot().counts()[1] > 0, "the rebuilt index is current"


def test_a_missing_model_stops_kb_search_and_kb_serve_with_one_sentence(tmp_path):
    missing = str(tmp_path / "no-such-model")
    settings = Settings.from_env(environ={}, corpus_dir=SEED_CORPUS, index_dir=tmp_path / "index", model=missing)
    build_index(settings, embedder=FakeEmbedder(name=missing))  # an index that matches the model's name
    env = {"KB_INDEX_DIR": str(tmp_path / "index"), "KB_CORPUS_DIR": str(SEED_CORPUS), "KB_MODEL": missing}
    result = kb("search", "anything", env=env)
    assert result.returncode == 1
    line = last_line(result.stderr)
    assert "cannot load model" in line and missing in line, line
    served = kb("serve", env={**env, "KB_PORT": str(free_port())}, timeout=180)
    assert served.returncode == 1
    line = last_line(served.stderr)
    assert "cannot load model" in line and missing in line, line


def test_a_live_server_keeps_its_index_when_a_bad_build_becomes_current(copied):
    tmp_path, env, settings = copied
    server = start_server(tmp_path / "index", tmp_path / "serve.log", corpus_dir=tmp_path / "corpus")
    question = "/api/search?q=" + urllib.parse.quote("Has a US president visited Kazakhstan?")
    try:
        _, before = server.get_json(question)
        good = current_folder(settings.index_dir)
        bad = good.parent / "store-9999999999999999999"
        shutil.copytree(good, bad)
        garble(bad / "records.sqlite")
        os.symlink(bad.name, good.parent / "current.new")
        os.replace(good.parent / "current.new", good.parent / "current")  # the same atomic swap kb build makes
        deadline = time.monotonic() + 15
        while "kept serving" not in server.output() and time.monotonic() < deadline:
            status, after = server.get_json(question + "&k=4")  # a new question each time: no cached answer
            assert status == 200 and after["results"]
            time.sleep(0.3)
        status, after = server.get_json(question)
        _, health = server.get_json("/api/health")
    finally:
        server.stop()
    assert status == 200 and [r["passage_id"] for r in after["results"]] == [r["passage_id"] for r in before["results"]]
    assert health["status"] == "ok"
    assert "kept serving" in server.output() and "records.sqlite" in server.output()


def _add_a_long_document(corpus) -> None:
    (corpus / "long.txt").write_text("A long report\n\n" + "\n\n".join(
        f"Paragraph {i} describes grain exports, pipelines and the Caspian route in some detail." for i in range(400)
    ), encoding="utf-8")


def _mount_tmpfs(path, size_kb: int) -> bool:
    path.mkdir()
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(path)],
                          capture_output=True).returncode == 0


def _limit_file_size(limit: int):
    def apply() -> None:  # the unprivileged stand-in: every write past `limit` bytes fails (EFBIG)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


@pytest.mark.parametrize("fault", ["disk full", "read-only"])
def test_a_build_that_cannot_write_says_so_and_leaves_the_old_index(copied, fault):
    tmp_path, env, _ = copied
    index_bytes = sum(f.stat().st_size for f in (tmp_path / "index").rglob("*") if f.is_file())
    mount = tmp_path / "disk"
    mounted = _mount_tmpfs(mount, size_kb=index_bytes // 1024 + 96)
    preexec = None
    try:
        if mounted:
            shutil.copytree(tmp_path / "index", mount / "index", symlinks=True)
            env = {**env, "KB_INDEX_DIR": str(mount / "index")}
            if fault == "read-only":
                subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
        else:  # no permission to mount: a file-size limit makes the writes fail for real instead
            preexec = _limit_file_size(64 * 1024)
        settings = Settings.from_env(environ={}, index_dir=env["KB_INDEX_DIR"], corpus_dir=tmp_path / "corpus")
        before = current_folder(settings.index_dir)
        _add_a_long_document(tmp_path / "corpus")
        result = kb("build", env=env, preexec_fn=preexec)
        assert result.returncode == 1
        line = last_line(result.stderr)
        assert "cannot write" in line and ("nothing was changed" in line or "previous index is unchanged" in line
                                           or "written before is kept" in line), line
        assert current_folder(settings.index_dir) == before
        if fault == "read-only" and mounted:
            subprocess.run(["mount", "-o", "remount,rw", str(mount)], check=True)
        store = open_current(settings)
        assert store.document("long.txt") is None and store.snapshot().counts()[1] > 0
        store.close()
    finally:
        if mounted:  # lazy: detached now even if a mapping is still open
            subprocess.run(["umount", "--lazy", str(mount)], check=True)


def test_an_api_write_on_a_full_disk_is_a_507_and_everything_acknowledged_is_still_served(copied):
    """A real full disk (tmpfs) under a running server: the write is refused whole, the rest keeps answering."""
    from tests.e2e.conftest import call

    tmp_path, env, _ = copied
    mount = tmp_path / "disk"
    if not _mount_tmpfs(mount, size_kb=64 * 1024):
        pytest.skip("mounting a tmpfs needs root (the file-size limit stand-in cannot fill a disk under a server)")
    try:
        shutil.copytree(tmp_path / "index", mount / "index", symlinks=True)
        server = start_server(mount / "index", tmp_path / "serve.log", {"KB_API_KEY": "k"},
                              corpus_dir=tmp_path / "corpus")
        try:
            first = {"id": "before-full", "text": "The Graf Zeppelin crossed the Atlantic in 1928."}
            assert call(server.base, "POST", "/api/documents", first, key="k")[0] == 201
            filler = mount / "filler"
            with open(filler, "wb") as handle:  # take every byte left
                try:
                    while True:
                        handle.write(b"\0" * 2**20)
                        handle.flush()
                except OSError:
                    pass
            big = {"id": "on-full", "text": " ".join(f"Sentence {i} about airships and mail." for i in range(300))}
            status, body = call(server.base, "POST", "/api/documents", big, key="k")
            assert status == 507 and body["error"]["code"] == "storage_unwritable", (status, body)
            status, answer = call(server.base, "GET", "/api/search?q=Which+airship+crossed+the+Atlantic")
            assert status == 200 and answer["results"][0]["doc_id"] == "before-full"
            assert call(server.base, "GET", "/api/documents/on-full")[0] == 404, "nothing half-written"
            filler.unlink()
            assert call(server.base, "POST", "/api/documents", big, key="k")[0] == 201, "and it works again"
        finally:
            server.stop()
        assert "Traceback" not in server.output(), server.output()[-3000:]
    finally:
        subprocess.run(["umount", "--lazy", str(mount)], check=True)
