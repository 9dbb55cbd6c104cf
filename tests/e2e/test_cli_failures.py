"""Every `kb` command against every known failure: exit 1 and one sentence, never a traceback.

The README promises this. Each case sets up one failure in a private folder and runs the real
command as a subprocess.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import SEED_CORPUS, SEED_QUESTIONS, free_port

BAD_UTF8 = b'{"id": "caf\xe9"}\n'


def _no_index(root):
    return {}


def _missing_corpus(root):
    shutil.rmtree(root / "corpus")
    return {}


def _missing_model(root):
    return {"KB_MODEL": str(root / "no-such-model")}


def _corrupt_records(root, seed_index_dir):
    shutil.copytree(seed_index_dir, root / "index", symlinks=True)
    current = (root / "index" / "current").resolve()
    (current / "records.sqlite").write_bytes(BAD_UTF8 * 4096)
    for leftover in current.glob("records.sqlite-*"):
        leftover.unlink()
    return {}


def _other_model_index(root, seed_index_dir):
    shutil.copytree(seed_index_dir, root / "index", symlinks=True)
    return {"KB_MODEL": str(root / "another-model")}


def _database_down(root):
    """KB_STORE=postgres with nothing listening where the primary should be."""
    return {"KB_STORE": "postgres", "KB_PG_DSN": f"postgresql://kb@127.0.0.1:{free_port()}/kb"}


# (command, failure, words the one line must hold)
CASES = [
    (["search", "oil"], _no_index, "kb build"),
    (["search", "oil"], _corrupt_records, "records.sqlite"),
    (["search", "oil"], _other_model_index, "rebuild"),
    (["eval", str(SEED_QUESTIONS)], _no_index, "kb build"),
    (["eval", str(SEED_QUESTIONS)], _corrupt_records, "records.sqlite"),
    (["eval", "no-such-dataset"], _no_index, "neither a BEIR folder"),
    (["build"], _missing_corpus, "KB_CORPUS_DIR"),
    (["build"], _missing_model, "cannot load model"),
    (["add", "no-such-file.txt"], _no_index, "no-such-file.txt"),
    (["add", str(SEED_CORPUS / "astana-times-runde-interview.txt")], _missing_model, "cannot load model"),
    (["remove", "no-such-doc"], _no_index, "no document with id"),
    (["serve"], _missing_corpus, "KB_CORPUS_DIR"),
    (["serve"], _missing_model, "cannot load model"),
    (["search", "oil"], _database_down, "unreachable"),
    (["build"], _database_down, "unreachable"),
    (["db", "migrate"], _database_down, "unreachable"),
]


def _run(case_number: int, root, seed_index_dir) -> subprocess.CompletedProcess:
    command, failure, _ = CASES[case_number]
    shutil.copytree(SEED_CORPUS, root / "corpus")
    needs_index = failure.__code__.co_argcount == 2
    extra = failure(root, seed_index_dir) if needs_index else failure(root)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "KB_INDEX_DIR": str(root / "index"),
           "KB_CORPUS_DIR": str(root / "corpus"), "KB_PORT": str(free_port()), **extra}
    return subprocess.run([sys.executable, "-m", "kb.cli", *command], env=env, capture_output=True, text=True,
                          timeout=300, cwd=root)


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory, seed_settings, seed_index):
    """Every case run once, four processes at a time (each starts Python and most load the model)."""
    from concurrent.futures import ThreadPoolExecutor

    roots = [tmp_path_factory.mktemp(f"failure-{n}") for n in range(len(CASES))]
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(lambda n: _run(n, roots[n], seed_settings.index_dir), range(len(CASES))))


@pytest.mark.parametrize("case_number", range(len(CASES)),
                         ids=[f"{c[0]}-{f.__name__.strip('_')}" for c, f, _ in CASES])
def test_a_known_failure_is_one_sentence_and_exit_1(outcomes, case_number):
    command, _, words = CASES[case_number]
    result = outcomes[case_number]
    assert result.returncode == 1, (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    if command[0] == "serve":  # it listens first, so its address line comes before the failure
        lines = [line for line in lines if not line.startswith("kb: serving http")]
    assert len(lines) == 1, lines
    assert lines[0].startswith("kb: ") and words in lines[0], lines[0]
