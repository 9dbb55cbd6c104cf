"""`kb serve`: the web app on waitress. The web layer adds this command to `kb` through the ``kb.commands``
entry point (pyproject.toml), so the core library never imports Flask.

It listens at once and answers 503 ``loading`` while it brings the index in line with the corpus folder (where
that folder is the store's record) and loads the model; then it serves the search page and the API.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
import time

from kb.settings import Settings

EXIT_FAILED = 1


def register(commands: argparse._SubParsersAction) -> None:
    serve = commands.add_parser("serve", help="serve the search page and the JSON API")
    serve.add_argument("--host", help="overrides KB_HOST")
    serve.add_argument("--port", type=int, help="overrides KB_PORT")
    serve.add_argument("--threads", type=int, default=8,
                       help="request threads (default 8: see benchmarks/serving.py --compare)")
    serve.add_argument("--log-json", action="store_true", help="log one JSON object a line (one line per request)")
    serve.set_defaults(run=serve_command)


def serve_command(args: argparse.Namespace, settings: Settings) -> int:
    from waitress import create_server

    from kb.errors import StoreUnwritable
    from kb.ingestion.sync import build_index
    from kb.stores import store_class
    from web.app import create_app
    from web.logs import use_json_lines

    if args.log_json:
        use_json_lines(verbose=args.verbose)

    def bring_in_line() -> None:
        """Finish whatever a crash left half done (documents on disk but not yet indexed)."""
        try:
            report = build_index(settings)
        except StoreUnwritable as exc:  # the last good index still serves
            print(f"kb: {exc}; serving the last good index", file=sys.stderr, flush=True)
            return
        if report.written:
            print(f"kb: {report.summary()}", file=sys.stderr, flush=True)

    # Where the corpus folder is the store's record, the server brings the index in line with it first; a
    # database store is shared by stateless servers, and `kb build`, run from one place, syncs a folder into it.
    app = create_app(settings, background=True,
                     prepare=bring_in_line if store_class(settings).record_is_corpus_folder else None, watch=True)
    # Headers up to 2 MiB reach the app, so an over-long query gets kb's own JSON error, not waitress's page.
    server = create_server(app, host=settings.host, port=settings.port, threads=args.threads, ident="kb",
                           max_request_header_size=2 * 1024 * 1024,
                           max_request_body_size=(settings.max_upload_mb + 1) * 1024 * 1024)
    closing = threading.Event()

    def run_http() -> None:
        try:
            server.run()
        except OSError:  # its sockets closed under its select() as the server stops: nothing to say
            if not closing.is_set():
                raise

    http = threading.Thread(target=run_http, name="waitress", daemon=True)
    http.start()
    print(f"kb: serving http://{settings.host}:{settings.port}/ (Ctrl+C to stop)", file=sys.stderr, flush=True)

    def failed() -> str | None:
        return getattr(app.extensions["kb"], "error", None)

    def stopped() -> bool:
        return not http.is_alive() or failed() is not None

    # With torch, the main thread embeds queries (micro-batched) while waitress's threads answer requests:
    # torch ran a query 9% to 26% faster there. ONNX Runtime has its own threads, so a request thread that
    # finds the model free embeds its query itself, one hand-off fewer (docs/architecture.md).
    try:
        while not stopped():
            base = app.extensions["kb"]
            if getattr(base, "serving", False) and base.embedder.wants_model_thread:
                base.embedder.batcher.run_forever(should_stop=stopped)
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        closing.set()
        server.close()
        base = app.extensions["kb"]
        if getattr(base, "watching", None) is not None:
            base.watching.stop()
    if failed() is not None:  # nothing to serve, ever: say why in one line and stop
        print(f"kb: {failed()}", file=sys.stderr)
        return EXIT_FAILED
    logging.getLogger(__name__).info("stopped")
    return 0
