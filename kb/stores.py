"""Which store kb runs on (KB_STORE): a registry of the store classes, each imported only when chosen.

Every question about a store's lifecycle (open it, does it exist, where an evaluation keeps its own,
how a build derives a new index) is the store class's own (kb/store.py); this module only picks it.
"""

from __future__ import annotations

import importlib

from kb.settings import STORES, Settings
from kb.store import Store

REGISTRY = {"faiss": "kb.faiss_store:FaissStore", "postgres": "kb.pg_store:PostgresStore"}
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
