"""The `kb` command: build, search and its error messages, run as a real subprocess."""

import json
import os
import subprocess
import sys

from tests.conftest import SEED_QUESTIONS
from kb.questions import load_questions

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
    code = "import sys, kb.cli, kb.build, kb.search, kb.live, kb.questions; print('flask' in sys.modules)"
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
