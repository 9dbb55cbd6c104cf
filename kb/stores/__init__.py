"""Stores: where documents live (the record) and the index derived from them, on FAISS files or PostgreSQL.

- ``base``: the Store and Snapshot interface everything above uses, and the types it takes and gives;
- ``record``: where each store keeps the documents written through kb, and their portable JSON form;
- ``filters``: what a search filter means, in Python and in SQL; ``sentence_vectors``: how highlights' vectors
  are packed;
- ``faiss/`` and ``postgres/``: one package per backend, each owning its whole lifecycle.

This module is the registry: it picks the class KB_STORE names and imports only that one. Every question about
a store's lifecycle (open it, does it exist, where an evaluation keeps its own, how a build derives a new
index) is the store class's own; nothing else asks which store it is.
"""

from __future__ import annotations

import importlib

from kb.settings import STORES, Settings
from kb.stores.base import Store

REGISTRY = {"faiss": "kb.stores.faiss.store:FaissStore", "postgres": "kb.stores.postgres.store:PostgresStore"}
assert set(REGISTRY) == set(STORES), "every KB_STORE value has a store class"


def store_class(settings: Settings) -> type[Store]:
    module, name = REGISTRY[settings.store].split(":")
    return getattr(importlib.import_module(module), name)


def open_store(settings: Settings, expected_model: str | None = None) -> Store:
    """The configured store; StoreProblem when there is none, it is damaged, or it holds another model's vectors."""
    return store_class(settings).open(settings, expected_model)


def store_exists(settings: Settings) -> bool:
    """Whether there is a store to open (without loading it)."""
    return store_class(settings).exists(settings)


def evaluation_settings(settings: Settings, name: str) -> Settings:
    """Settings for a dataset's own store, beside the knowledge base's and never mixed with it."""
    return store_class(settings).evaluation_settings(settings, name)
