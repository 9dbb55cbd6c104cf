"""Fixtures shared by the integration tests."""

import shutil

import pytest

import kb
from kb.ingestion.sync import build_index
from kb.settings import Settings
from tests.conftest import SEED_CORPUS
from web.app import create_app


@pytest.fixture()
def make_client(tmp_path, embedder):
    def make(**overrides):
        corpus = tmp_path / "corpus"
        if not corpus.exists():
            shutil.copytree(SEED_CORPUS, corpus, ignore=shutil.ignore_patterns(".kb"))  # the seed document alone
        settings = Settings.from_env(environ={}, corpus_dir=corpus, index_dir=tmp_path / "index", **overrides)
        build_index(settings, embedder=embedder)
        return create_app(settings, base=kb.open(settings, serving=True, embedder=embedder)).test_client(), settings
    return make
