"""The app factory: create_app(settings) opens the knowledge base (kb's front door) and registers the routes."""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from flask import Flask, g, request

import kb
from kb.settings import Settings
from web.api import api
from web.assets import assets
from web.contract import contract
from web.documents import documents
from web.errors import register_error_handlers
from web.insights import insights
from web.loading import Loading
from web.mcp import mcp
from web.metrics import Metrics
from web.pages import pages
from web.session import session

log = logging.getLogger(__name__)
request_log = logging.getLogger("kb.requests")

SECURITY_HEADERS = {
    # No inline scripts or styles anywhere: one stylesheet and one script, both files from this server.
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


def create_app(settings: Settings | None = None, base: kb.KnowledgeBase | None = None, background: bool = False,
               prepare: Callable[[], None] | None = None, watch: bool = False) -> Flask:
    """Build the app over ``base`` (kb's front door), or over the knowledge base ``settings`` describe.

    With ``background``, the model and index load in a thread and the app answers 503 until
    they are ready and warmed up, so a server can listen at once and report its own readiness.
    ``prepare`` runs first in that thread (`kb serve` brings the index in line with the corpus there).
    """
    settings = settings or Settings.from_env()
    app = Flask(__name__, static_folder=None)  # web/assets.py serves web/static under hashed names
    app.config.update(KB_SETTINGS=settings, MAX_CONTENT_LENGTH=settings.max_upload_mb * 1024 * 1024)
    app.json.sort_keys = False
    app.register_blueprint(assets)
    app.register_blueprint(pages)
    app.register_blueprint(contract)
    app.register_blueprint(api, url_prefix="/api")
    app.register_blueprint(documents, url_prefix="/api")
    app.register_blueprint(mcp)
    app.register_blueprint(insights)
    app.register_blueprint(session)
    app.extensions["kb_metrics"] = Metrics(app)
    register_error_handlers(app)
    _limit_rates(app, settings)

    @app.before_request
    def _start_clock():
        g.started = time.perf_counter()

    @app.after_request
    def _security_headers_and_log(response):
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        # One line per request; the path only (no query string, no headers: never a key).
        seconds = time.perf_counter() - g.get("started", time.perf_counter())
        request_log.info("%s %s %d", request.method, request.path, response.status_code, extra={
            "method": request.method, "path": request.path, "status": response.status_code,
            "latency_ms": round(seconds * 1000, 2), "results": g.get("result_count"),
        })
        app.extensions["kb_metrics"].observe(seconds, response.status_code)
        return response

    if base is not None:
        app.extensions["kb"] = base
    elif background:
        app.extensions["kb"] = Loading()
        threading.Thread(target=_load, args=(app, settings, prepare, watch), name="kb-load", daemon=True).start()
    else:
        app.extensions["kb"] = kb.open(settings, serving=True)
        app.extensions["kb"].warm_up()
    return app


def _limit_rates(app: Flask, settings: Settings) -> None:
    """Per-client rate limits (flask-limiter, in memory): writes on by default, reads when configured."""
    from flask_limiter import Limiter
    from flask_limiter.util import get_remote_address

    limiter = Limiter(get_remote_address, app=app, storage_uri="memory://", headers_enabled=True,
                      key_prefix=f"kb-{id(app)}")
    if settings.write_rate_limit.lower() != "off":
        limiter.limit(settings.write_rate_limit, methods=["POST", "DELETE"])(documents)
    if settings.read_rate_limit.lower() != "off":
        for blueprint in (api, pages, insights):  # insights: the page's beacons too
            limiter.limit(settings.read_rate_limit, methods=["GET", "POST"])(blueprint)
        limiter.limit(settings.read_rate_limit, methods=["GET"])(documents)
    app.extensions["kb_limiter"] = limiter


def _load(app: Flask, settings: Settings, prepare: Callable[[], None] | None = None, watch: bool = False) -> None:
    try:
        if prepare is not None:
            prepare()
        base = kb.open(settings, serving=True)
        base.warm_up()  # the first real question should not pay for lazy set-up
        app.extensions["kb"] = base
        log.info("ready")
        if watch:
            base.watch()
    except Exception as exc:  # reported by /api/health rather than lost in a thread (kb serve prints it and stops)
        log.info("could not load: %s", exc)
        app.extensions["kb"].error = str(exc)
