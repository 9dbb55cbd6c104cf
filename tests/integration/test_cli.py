"""The `kb` command: build, search and its error messages, run as a real subprocess."""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from kb.evaluation.questions import load_questions
from tests.conftest import SEED_QUESTIONS

QUESTION = load_questions(SEED_QUESTIONS)[0]


def kb(*args, env=None):
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "kb.cli", *args], capture_output=True, text=True, env=full_env,
                          timeout=300)


def test_search_json_answers_like_the_api(seed_settings, seed_index):
    result = kb("search", QUESTION.q, "-k", "2", "--json", env={"KB_INDEX_DIR": str(seed_settings.index_dir)})
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["k"] == 2 and len(body["results"]) == 2
    assert QUESTION.evidence in body["results"][0]["text"]


def test_build_with_nothing_changed_embeds_nothing(seed_settings, seed_index):
    result = kb("build", "--json", env={"KB_INDEX_DIR": str(seed_settings.index_dir),
                                        "KB_CORPUS_DIR": str(seed_settings.corpus_dir)})
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["passages_embedded"] == 0 and report["unchanged"] == 1 and report["written"] is False


def test_search_without_an_index_says_how_to_fix_it(tmp_path):
    result = kb("search", "anything", env={"KB_INDEX_DIR": str(tmp_path / "missing")})
    assert result.returncode == 1
    assert "kb build" in result.stderr and "Traceback" not in result.stderr


def test_search_with_another_model_says_to_rebuild(seed_settings, seed_index, tmp_path):
    result = kb("search", "anything", env={"KB_INDEX_DIR": str(seed_settings.index_dir),
                                           "KB_MODEL": str(tmp_path / "no-such-model")})
    assert result.returncode == 1
    assert "rebuild" in result.stderr and "Traceback" not in result.stderr


def test_bad_k_is_a_usage_error():
    result = kb("search", "anything", "-k", "0")
    assert result.returncode == 2 and "k must be between 1 and 50" in result.stderr


def test_the_core_library_never_imports_flask():
    code = "import sys, kb.cli, kb.ingestion.sync, kb.search.pipeline, kb.search.live, kb.evaluation.questions; print('flask' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "False", result.stderr


def test_kb_add_and_kb_remove_embed_only_what_they_touch(tmp_path, seed_settings):
    import shutil

    corpus = tmp_path / "corpus"
    shutil.copytree(seed_settings.corpus_dir, corpus)
    env = {"KB_CORPUS_DIR": str(corpus), "KB_INDEX_DIR": str(tmp_path / "index")}
    assert kb("build", env=env).returncode == 0
    note = tmp_path / "airships.md"
    note.write_text("# Airships\n\nThe Graf Zeppelin crossed the Atlantic in 1928.\n")
    added = kb("add", str(note), "--json", env=env)
    assert added.returncode == 0, added.stderr
    report = json.loads(added.stdout.strip().splitlines()[-1])
    # A write reports its own documents; the store now holds both.
    assert (report["added"], report["passages_embedded"], report["documents"]) == (1, 1, 2)
    assert (corpus / ".kb" / "uploads" / "airships.md").read_text() == note.read_text(), "kept as it came"
    removed = kb("remove", "uploads--airships.md", "--json", env=env)
    assert removed.returncode == 0, removed.stderr
    report = json.loads(removed.stdout.strip().splitlines()[-1])
    assert (report["removed"], report["passages_embedded"]) == (1, 0)
    assert not (corpus / ".kb" / "uploads" / "airships.md").exists()
    missing = kb("remove", "no-such-doc", env=env)
    assert missing.returncode == 1 and "no document with id" in missing.stderr
    rota = tmp_path / "rota.md"
    rota.write_text("# Rota\n\nNight shifts rotate weekly.\n")
    assert kb("add", str(rota), "--access", "crew,pilots", env=env).returncode == 0
    kept = json.loads((corpus / ".kb" / "documents" / "uploads--rota.md.jsonl").read_text())
    assert kept["access"] == ["crew", "pilots"] and kept["title"] == "Rota"
    bad = kb("add", str(rota), "--access", "crew, no spaces!", env=env)
    assert bad.returncode == 1 and len(bad.stderr.strip().splitlines()) == 1 and "--access" in bad.stderr


def test_the_core_library_starts_no_web_layer_and_kb_serve_comes_from_an_entry_point():
    from importlib.metadata import entry_points

    assert [point.value for point in entry_points(group="kb.commands") if point.name == "serve"] == \
        ["web.serve:register"], "pip install -e . registers it"


class Ran:
    def __init__(self, code, out, err):
        self.code, self.out, self.err = code, out, err


def run_in_process(argv, capsys, stdin=b""):
    """``kb ARGV`` in this process (the model loads once for all of them); its exit code and output."""
    import io
    import logging

    from kb.cli import main

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    saved = sys.stdin
    sys.stdin = io.TextIOWrapper(io.BytesIO(stdin))
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own refusals
        code = exc.code
    finally:
        sys.stdin = saved
        root.handlers[:], root.level = handlers, level
    out, err = capsys.readouterr()
    return Ran(code, out, err)


def test_every_command_runs_with_every_documented_flag(tmp_path, capsys, embedder, pg_settings, monkeypatch, request):
    """Each command of docs/cli.md with each of its flags, against a small index: exit 0, or one sentence."""
    import shutil

    from tests.conftest import SEED_CORPUS, free_port

    # The local cluster's folder: under /tmp directly, as the server's own user must reach it (a pytest session
    # started meanwhile resets pytest's folders to 0700).
    local_pg = Path(tempfile.mkdtemp(prefix="kb-cli-pg-"))
    request.addfinalizer(lambda: shutil.rmtree(local_pg, ignore_errors=True))
    sys.path.insert(0, str(SEED_CORPUS.parent / "docs"))
    from generate import commands  # docs/generate.py: what docs/cli.md documents

    corpus, other = tmp_path / "corpus", tmp_path / "other"
    shutil.copytree(SEED_CORPUS, corpus)
    other.mkdir()
    note = tmp_path / "note.md"
    note.write_text("# Airships\n\nThe Graf Zeppelin crossed the Atlantic in 1928.\n")
    for name in ("KB_INDEX_DIR", "KB_CORPUS_DIR", "KB_STORE", "KB_PG_DSN", "KB_PG_SCHEMA"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KB_CORPUS_DIR", str(corpus))
    index = ["--index-dir", str(tmp_path / "index"), "--model", "all-MiniLM-L6-v2"]
    exported, backed = tmp_path / "kb.jsonl", tmp_path / "backup"
    pg = {"KB_STORE": "postgres", "KB_PG_DSN": pg_settings.pg_dsn, "KB_PG_SCHEMA": pg_settings.pg_schema}
    runs = [
        ([], ["build", "--json", "--ids", "-v", *index]),
        ([], ["build", "--force", "--corpus-dir", str(corpus), *index]),
        ([], ["search", "Has an American president visited Kazakhstan?", "-k", "2", "--mode", "keyword", "--json",
              "-v", *index]),
        ([], ["search", "oil prices", *index]),
        ([], ["eval", str(SEED_QUESTIONS), "--modes", "hybrid", "--json", "-v", *index]),
        ([], ["add", str(note), "--json", "--access", "crew", "-v", *index]),
        ([], ["remove", "uploads--note.md", "--json", "-v", *index]),
        ([], ["export", "-o", str(exported), "-v", *index]),
        ([], ["export", "--output", str(tmp_path / "again.jsonl"), *index]),
        ([], ["export", *index]),
        ([], ["import", str(exported), "-v", *index]),
        ([], ["import", "-", *index]),
        ([], ["insights", "--days", "7", "--json", "-v", *index]),
        ([], ["insights", *index]),
        ([], ["keys", "add", "alice", "--groups", "hr,legal", "--write", "-v", *index]),
        ([], ["keys", "list", "--json", *index]),
        ([], ["keys", "revoke", "alice", *index]),
        ([], ["backup", str(backed), "-v", *index]),
        ([("KB_CORPUS_DIR", str(other))], ["restore", str(backed), "-v", "--index-dir", str(tmp_path / "restored"),
                                           "--model", "all-MiniLM-L6-v2"]),
        ([("KB_CORPUS_DIR", str(other))], ["restore", str(backed), "--force", "--index-dir",
                                           str(tmp_path / "restored2")]),
        (list(pg.items()), ["db", "init", "-v", *index]),
        (list(pg.items()), ["db", "migrate", *index]),
        (list(pg.items()), ["db", "status", *index]),
        (list(pg.items()), ["db", "reset", "--yes", *index]),
        ([], ["db", "start-local", "--data", str(local_pg / "pg"), "--pg-port", str(free_port()), *index]),
        ([], ["db", "stop-local", "--data", str(local_pg / "pg"), *index]),
    ]
    used: dict[str, set[str]] = {}
    for env, argv in runs:
        with monkeypatch.context() as scoped:
            for name, value in env:
                scoped.setenv(name, value)
            ran = run_in_process(argv, capsys, stdin=exported.read_bytes() if argv[:2] == ["import", "-"] else b"")
        assert "Traceback" not in ran.err, (argv, ran.err[-2000:])
        assert ran.code == 0, (argv, ran.err[-2000:])
        used.setdefault(argv[0], set()).update(arg for arg in argv if arg.startswith("-") and arg != "-")
    # kb search --url asks a real server: the app over the same index, on a loopback port in a thread.
    import threading

    from waitress import create_server

    import kb
    from kb.settings import Settings
    from web.app import create_app

    settings = Settings.from_env(index_dir=tmp_path / "index", corpus_dir=corpus)
    base = kb.open(settings, serving=True, embedder=embedder)
    http = create_server(create_app(settings, base=base), host="127.0.0.1", port=free_port())
    threading.Thread(target=http.run, daemon=True).start()
    try:
        argv = ["search", "oil prices", "-k", "2", "--url", f"http://127.0.0.1:{http.effective_port}"]
        ran = run_in_process(argv, capsys)
        assert ran.code == 0 and ran.out.startswith("1. ["), (ran.out, ran.err[-2000:])
        used["search"].update(arg for arg in argv if arg.startswith("-"))
    finally:
        http.task_dispatcher.shutdown()  # its threads finish what they serve before the sockets close under them
        http.close()
        base.close()
    # kb serve and kb mcp cannot run in this process: their flags are used on real ones by tests/e2e/test_serve.py
    # and tests/e2e/test_mcp.py.
    missing = {name: {flag for action in command._actions for flag in action.option_strings
                      if flag not in ("-h", "--help", "--verbose")} - used.get(name, set())
               for name, command in commands().items() if name not in ("serve", "mcp")}
    assert not any(missing.values()), f"documented flags no test run uses: {missing}"
    failing = run_in_process(["search", "oil", "--index-dir", str(tmp_path / "none")], capsys)
    assert failing.code == 1 and failing.err.strip().startswith("kb: ") and len(failing.err.strip().splitlines()) == 1
