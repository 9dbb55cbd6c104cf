"""What the blueprints ask for the knowledge base: it, or a 503 while it loads (or could not)."""

from __future__ import annotations

from flask import current_app

import kb
from web.errors import ApiError


class Loading:
    """Stands in for the knowledge base while the model and index load: every use answers 503."""

    def __init__(self) -> None:
        self.error: str | None = None

    def refuse(self) -> None:
        if self.error:
            raise ApiError("failed", f"kb could not start: {self.error}")
        raise ApiError("loading", "kb is loading its model and index; try again shortly")


def knowledge_base() -> kb.KnowledgeBase:
    """The app's knowledge base (kb/__init__.py), or ApiError 503 ``loading`` / ``failed``."""
    base = current_app.extensions["kb"]
    if isinstance(base, Loading):
        base.refuse()
    return base
