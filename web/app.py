"""The app factory: create_app(settings) loads the index and model once and registers the routes."""

from __future__ import annotations

from flask import Flask

from kb.settings import Settings
from web.api import api
from web.documents import documents
from web.errors import register_error_handlers
from web.pages import pages


def create_app(settings: Settings | None = None, searcher=None) -> Flask:
    """Build the app. ``searcher`` (a LiveSearcher) may be passed in to share one loaded model."""
    settings = settings or Settings.from_env()
    if searcher is None:
        from kb.embed import get_embedder
        from kb.index import IndexStore
        from kb.live import LiveSearcher

        searcher = LiveSearcher(IndexStore(settings.index_dir), get_embedder(settings.model))
        searcher.current().search("warm up", 1)  # the first real question should not pay for lazy set-up
    from kb.library import Library

    app = Flask(__name__)
    app.config.update(KB_SETTINGS=settings, MAX_CONTENT_LENGTH=settings.max_upload_mb * 1024 * 1024)
    app.json.sort_keys = False
    app.extensions["kb"] = searcher
    app.extensions["kb_library"] = Library(settings, searcher.embedder, on_change=searcher.refresh)
    app.register_blueprint(pages)
    app.register_blueprint(api, url_prefix="/api")
    app.register_blueprint(documents, url_prefix="/api")
    register_error_handlers(app)
    return app
