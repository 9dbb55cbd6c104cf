"""`kb build | search | serve`: parses arguments, calls the library, prints."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Callable, Sequence

from kb.settings import Settings, describe

EXIT_USAGE = 2
EXIT_FAILED = 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    from kb.logs import configure

    configure(verbose=getattr(args, "verbose", False), as_json=getattr(args, "log_json", False))
    try:
        settings = Settings.from_env(
            index_dir=getattr(args, "index_dir", None),
            corpus_dir=getattr(args, "corpus_dir", None),
            model=getattr(args, "model", None),
            host=getattr(args, "host", None),
            port=getattr(args, "port", None),
        )
    except ValueError as exc:
        print(f"kb: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return _guarded(lambda: args.run(args, settings))


def _guarded(action: Callable[[], int]) -> int:
    """Known failures print one sentence, not a traceback."""
    from kb.embed import ModelUnavailable
    from kb.exchange import ImportProblem
    from kb.library import DocumentError
    from kb.store import StoreProblem

    try:
        return action()
    except (StoreProblem, ModelUnavailable, ImportProblem, DocumentError) as exc:
        print(f"kb: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except (FileNotFoundError, PermissionError) as exc:
        print(f"kb: {exc.strerror or exc}: {exc.filename}" if exc.filename else f"kb: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except OSError as exc:
        print(f"kb: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    epilog = "settings (environment variables):\n" + "\n".join(
        f"  {env:<18} {help} (default: {default})" for _, env, default, help in describe()
    )
    parser = argparse.ArgumentParser(
        prog="kb", description="A searchable knowledge base.", epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)

    build = sub.add_parser("build", help="build or update the index from the corpus folder")
    build.add_argument("--force", action="store_true", help="re-embed every document")
    build.add_argument("--json", action="store_true", help="print the report as one JSON object on the last line")
    build.add_argument("--ids", action="store_true", help="with --json: also list the document ids of each kind")
    build.add_argument("--corpus-dir", help="overrides KB_CORPUS_DIR")
    build.set_defaults(run=_build)

    search = sub.add_parser("search", help="ask the knowledge base a question")
    search.add_argument("query")
    search.add_argument("-k", type=_k, default=5, help="how many passages (1 to 50, default 5)")
    search.add_argument("--json", action="store_true", help="print the API's JSON answer")
    search.add_argument("--mode", choices=("hybrid", "dense", "keyword"), help="overrides KB_SEARCH_MODE")
    search.set_defaults(run=_search)

    evaluate = sub.add_parser("eval", help="measure retrieval quality of every mode on a test collection or question set")
    evaluate.add_argument("dataset", help="a BEIR or Cranfield folder, or a question-set .jsonl scored against the current index")
    evaluate.add_argument("--modes", default="hybrid,dense,keyword", help="comma-separated modes (default: all)")
    evaluate.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    evaluate.set_defaults(run=_eval)

    add = sub.add_parser("add", help="add files to the knowledge base, as uploads (kept in corpus/.kb/uploads/ on FAISS)")
    add.add_argument("paths", nargs="+", help=".txt, .md, .html, .pdf or .jsonl files")
    add.add_argument("--json", action="store_true", help="print the report as one JSON object on the last line")
    add.set_defaults(run=_add)

    remove = sub.add_parser("remove", help="delete documents' files from the corpus and drop them from the index")
    remove.add_argument("doc_ids", nargs="+")
    remove.add_argument("--json", action="store_true", help="print the report as one JSON object on the last line")
    remove.set_defaults(run=_remove)

    export = sub.add_parser("export", help="write every document as JSON lines (standard output, or -o FILE)")
    export.add_argument("-o", "--output", help="the file to write (whole or not at all); default: standard output")
    export.set_defaults(run=_export)

    load = sub.add_parser("import", help="load documents written by `kb export`, through the normal write path")
    load.add_argument("source", help="an export file, or - for standard input (run again to resume after a kill)")
    load.set_defaults(run=_import)

    save = sub.add_parser("backup", help="a consistent copy of the knowledge base in a new folder, while it serves")
    save.add_argument("folder", help="a new or empty folder")
    save.set_defaults(run=_backup)

    back = sub.add_parser("restore", help="bring back a backup made by `kb backup`")
    back.add_argument("folder", help="the backup's folder")
    back.add_argument("--force", action="store_true",
                      help="set aside (FAISS) or replace (PostgreSQL) documents the backup does not hold alike")
    back.set_defaults(run=_restore)

    serve = sub.add_parser("serve", help="serve the search page and the JSON API")
    serve.add_argument("--host", help="overrides KB_HOST")
    serve.add_argument("--port", type=int, help="overrides KB_PORT")
    serve.add_argument("--threads", type=int, default=8, help="request threads (default 8: see benchmarks/serving.py --compare)")
    serve.add_argument("--log-json", action="store_true", help="log one JSON object a line (one line per request)")
    serve.set_defaults(run=_serve)

    db = sub.add_parser("db", help="KB_STORE=postgres: create, upgrade or empty kb's tables; run a local PostgreSQL")
    db.add_argument("action", choices=("init", "migrate", "status", "reset", "start-local", "stop-local"),
                    help="init: create the tables (idempotent); migrate: apply missing schema versions; status: "
                         "the schema version; reset: drop every table (needs --yes); start-local / stop-local: a "
                         "PostgreSQL with pgvector in --data on 127.0.0.1:--pg-port (for development and tests)")
    db.add_argument("--yes", action="store_true", help="with reset: yes, delete every document")
    db.add_argument("--data", default=".pgdata", help="start-local / stop-local: the cluster's folder (default .pgdata)")
    db.add_argument("--pg-port", type=int, default=55432, help="start-local: its port (default 55432)")
    db.set_defaults(run=_db)

    for command in (build, search, evaluate, add, remove, export, load, save, back, serve, db):
        command.add_argument("--index-dir", help="overrides KB_INDEX_DIR")
        command.add_argument("--model", help="overrides KB_MODEL")
        command.add_argument("-v", "--verbose", action="store_true", help="log progress")
    return parser


def _k(raw: str) -> int:
    from kb.search import MAX_K

    try:
        k = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"k must be a whole number, got {raw!r}") from None
    if not 1 <= k <= MAX_K:
        raise argparse.ArgumentTypeError(f"k must be between 1 and {MAX_K}, got {k}")
    return k


class _ProgressBars:
    """tqdm bars (embedding, export, import), shown on a terminal only (tqdm's ``disable=None``); closed on exit."""

    def __init__(self) -> None:
        self.bars: list = []

    def __call__(self, total: int | None, unit: str = "passage", desc: str = "embedding") -> Callable[[int], None]:
        from tqdm import tqdm

        bar = tqdm(total=total, unit=unit, desc=desc, disable=True if total == 0 else None, file=sys.stderr,
                   unit_scale=unit == "B")
        self.bars.append(bar)
        return bar.update

    def __enter__(self) -> "_ProgressBars":
        return self

    def __exit__(self, *exc: object) -> None:
        for bar in self.bars:
            bar.close()


def _db(args: argparse.Namespace, settings: Settings) -> int:
    if args.action in ("start-local", "stop-local"):
        from kb.pg_local import ClusterError, LocalCluster

        cluster = LocalCluster(Path(args.data), args.pg_port)
        try:
            if args.action == "stop-local":
                cluster.stop()
                print(f"stopped the PostgreSQL in {cluster.data}", file=sys.stderr)
                return 0
            cluster.ensure_running()
        except ClusterError as exc:
            print(f"kb: {exc}", file=sys.stderr)
            return EXIT_FAILED
        print(f"PostgreSQL with pgvector in {cluster.data}, listening on 127.0.0.1:{args.pg_port}", file=sys.stderr)
        print(cluster.dsn())
        return 0
    import psycopg

    from kb import pg_schema
    from kb.pg_store import where_is

    if not settings.pg_dsn:
        print("kb: `kb db` needs KB_PG_DSN, the primary's connection string", file=sys.stderr)
        return EXIT_USAGE
    schema, where = settings.pg_schema, where_is(settings.pg_dsn)
    try:
        with psycopg.connect(settings.pg_dsn, connect_timeout=10) as conn:
            if args.action == "status":
                print(f"schema {schema} at {where}: version {pg_schema.version(conn, schema)} "
                      f"(this kb: {pg_schema.LATEST})")
                return 0
            if args.action == "reset":
                if not args.yes:
                    print(f"kb: `kb db reset` deletes every document in schema {schema} at {where}, those sent "
                          "through the API too: add --yes", file=sys.stderr)
                    return EXIT_USAGE
                pg_schema.drop(conn, schema)
                print(f"dropped schema {schema} at {where}", file=sys.stderr)
                return 0
            meta = None
            if args.action == "init" and pg_schema.version(conn, schema) == 0:
                from kb.embed import embedder_for
                from kb.prepare import build_config

                meta = {"model": settings.model, "dimension": embedder_for(settings).dimension,
                        "config": build_config(settings), "hnsw_m": settings.hnsw_m}
            applied = pg_schema.migrate(conn, schema, meta)
    except pg_schema.SchemaBehind as exc:
        print(f"kb: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except psycopg.Error as exc:
        print(f"kb: PostgreSQL at {where} is unreachable or refused: "
              f"{str(exc).strip().splitlines()[0] if str(exc).strip() else exc}", file=sys.stderr)
        return EXIT_FAILED
    done = f"applied schema version(s) {', '.join(map(str, applied))}" if applied else "already up to date"
    print(f"schema {schema} at {where}: {done} (version {pg_schema.LATEST})", file=sys.stderr)
    return 0


def _build(args: argparse.Namespace, settings: Settings) -> int:
    from kb.build import build_index

    with _ProgressBars() as progress:
        report = build_index(settings, force=args.force, progress=progress)
    return _report(report, args.json, args.ids)


def _add(args: argparse.Namespace, settings: Settings) -> int:
    from kb.library import DocumentError

    for raw in args.paths:  # a missing file is found before the model is loaded
        if not Path(raw).is_file():
            print(f"kb: {raw}: no such file", file=sys.stderr)
            return EXIT_FAILED
    library, report = _library(settings), None
    for raw in args.paths:
        try:
            added, report = library.add_path(Path(raw))
        except DocumentError as exc:
            print(f"kb: {raw}: {exc.message}", file=sys.stderr)
            return EXIT_FAILED
        print(f"added {raw} as {', '.join(d['id'] for d in added)}", file=sys.stderr)
    return _report(report, args.json)


def _remove(args: argparse.Namespace, settings: Settings) -> int:
    from kb.library import DocumentError
    from kb.stores import store_exists

    if not store_exists(settings):
        print(f"kb: no document with id {args.doc_ids[0]!r} (there is no index in {settings.index_dir}/ yet)",
              file=sys.stderr)
        return EXIT_FAILED
    library, report = _library(settings), None
    for doc_id in args.doc_ids:
        try:
            report = library.remove(doc_id)
        except DocumentError as exc:
            print(f"kb: {exc.message}", file=sys.stderr)
            return EXIT_FAILED
        print(f"removed {doc_id}", file=sys.stderr)
    return _report(report, args.json)


def _library(settings: Settings):
    """A Library on the current store (created empty when there is none yet), embedding whole batches."""
    from kb.build import build_index
    from kb.embed import embedder_for
    from kb.library import Library
    from kb.prepare import prepare
    from kb.stores import open_store, store_exists

    embedder = embedder_for(settings)
    if not store_exists(settings):
        build_index(settings, embedder=embedder)
    store = open_store(settings, expected_model=settings.model)
    return Library(settings, embedder, store=lambda: store,
                   preparer=lambda documents, settings: prepare(documents, embedder, settings))


def _export(args: argparse.Namespace, settings: Settings) -> int:
    import os
    import time

    from kb.build import build_index
    from kb.exchange import export
    from kb.stores import open_store, store_class

    if store_class(settings).record_is_corpus_folder:  # the index first catches up with the folder, its record
        build_index(settings)
    store = open_store(settings)
    began = time.perf_counter()
    target = Path(args.output) if args.output else None
    with _ProgressBars() as progress:
        tick = progress(store.counts()[0], unit="document", desc="exporting")
        if target is None:
            count = export(store, sys.stdout.buffer, tick)
            sys.stdout.buffer.flush()
        else:
            partial = target.with_name(f".{target.name}.partial")
            with open(partial, "wb") as out:
                count = export(store, out, tick)
                out.flush()
                os.fsync(out.fileno())
            os.replace(partial, target)
    store.close()
    print(f"exported {count} documents{f' to {target}' if target else ''} in {time.perf_counter() - began:.1f}s",
          file=sys.stderr)
    return 0


def _import(args: argparse.Namespace, settings: Settings) -> int:
    import time

    from kb.exchange import import_rows, read_rows

    source = sys.stdin.buffer if args.source == "-" else open(args.source, "rb")  # a missing file: one sentence
    began = time.perf_counter()
    library = _library(settings)
    with source, _ProgressBars() as progress:
        size = None if args.source == "-" else Path(args.source).stat().st_size
        tick = progress(size, unit="B", desc="importing")
        report = import_rows(read_rows(source, tick), library.write, library.store.record,
                             settings.max_upload_mb * 2**20)
    print(f"{report.summary()} in {time.perf_counter() - began:.1f}s", file=sys.stderr)
    return 0


def _backup(args: argparse.Namespace, settings: Settings) -> int:
    from kb.backup import backup

    manifest = backup(settings, Path(args.folder))
    print(f"backed up {manifest.get('documents', 0)} documents to {args.folder} in {manifest['seconds']:.1f}s",
          file=sys.stderr)
    return 0


def _restore(args: argparse.Namespace, settings: Settings) -> int:
    from kb.backup import restore
    from kb.exchange import import_rows, read_rows

    manifest, pending = restore(settings, Path(args.folder), force=args.force)
    if pending is not None:
        library = _library(settings)
        with open(pending, "rb") as source:
            report = import_rows(read_rows(source), library.write, library.store.record, settings.max_upload_mb * 2**20)
        print(report.summary(), file=sys.stderr)
    print(f"restored the backup of {manifest['created']} ({manifest.get('documents', 0)} documents) from "
          f"{args.folder}", file=sys.stderr)
    return 0


def _report(report, as_json: bool, ids: bool = False) -> int:
    print(report.summary(), file=sys.stderr if as_json else sys.stdout)
    if as_json:
        print(json.dumps(report.to_json(ids=ids)))
    return 0


def _search(args: argparse.Namespace, settings: Settings) -> int:
    import time

    from kb.embed import embedder_for
    from kb.search import Searcher
    from kb.stores import open_store

    store = open_store(settings, expected_model=settings.model)
    embedder = embedder_for(settings)
    searcher = Searcher(store, embedder, settings)
    began = time.perf_counter()
    answer = searcher.answer(args.query, args.k, args.mode)
    took_ms = (time.perf_counter() - began) * 1000
    if args.json:
        print(json.dumps(answer.to_json(args.k, took_ms), ensure_ascii=False))
        return 0
    with store.snapshot() as snapshot:
        empty = not snapshot.counts()[1]
    if empty:
        print("The knowledge base is empty: put documents in the corpus folder and run `kb build`, "
              "or add one with `kb add FILE`.")
        return 0
    if not answer.confident:
        print("Nothing in the knowledge base answers this confidently; the nearest passages:\n")
    for hit in answer.hits:
        print(f"{hit.rank}. [{hit.score:.3f}] {hit.title} ({hit.source}, {hit.position()})")
        marked = hit.highlights[0] if hit.highlights else None
        print(f"   {hit.text}")
        if marked:
            print(f"   > {hit.text[marked['start'] - hit.start:marked['end'] - hit.start]}")
        print()
    return 0


def _eval(args: argparse.Namespace, settings: Settings) -> int:
    from pathlib import Path

    from kb.embed import embedder_for
    from kb.evaluate import evaluate_collection, evaluate_questions, table
    from kb.settings import MODES

    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not modes or set(modes) - set(MODES):
        print(f"kb: --modes takes a comma-separated list of {', '.join(MODES)}", file=sys.stderr)
        return EXIT_USAGE
    path = Path(args.dataset)
    if path.suffix == ".jsonl":
        from kb.questions import load_questions
        from kb.stores import open_store

        store = open_store(settings, expected_model=settings.model)  # before the model: a missing index is quick
        embedder = embedder_for(settings)
        results, calibration = evaluate_questions(load_questions(path), store, embedder, settings, modes)
        if args.json:
            print(json.dumps({"dataset": str(path), "results": results, "calibration": vars(calibration)}))
        else:
            print(table(f"{path.name} against {settings.index_dir}", results))
            c = calibration
            print(f"\nno-good-match threshold on the top passage's cosine: {c.threshold:.3f} "
                  f"(accuracy {c.accuracy:.1%}; on-topic min {c.on_topic_min:.3f} mean {c.on_topic_mean:.3f}; "
                  f"off-topic max {c.off_topic_max:.3f} mean {c.off_topic_mean:.3f}; "
                  f"KB_CONFIDENCE_THRESHOLD is {settings.confidence_threshold})")
        return 0
    from kb.datasets import load_collection

    collection = load_collection(path)
    embedder = embedder_for(settings)
    with _ProgressBars() as progress:
        results = evaluate_collection(collection, settings, embedder, modes, progress=progress)
    if args.json:
        print(json.dumps({"dataset": collection.name, "results": results}))
    else:
        print(table(collection.name, results))
    return 0


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    import threading
    import time

    # The web layer is imported only here: the core library never imports Flask.
    from waitress import create_server

    from kb.build import build_index
    from kb.embed import embedder_for
    from kb.store import StoreUnwritable
    from web.app import create_app

    def bring_in_line() -> None:
        """Finish whatever a crash left half done (documents on disk but not yet indexed)."""
        try:
            report = build_index(settings)
        except StoreUnwritable as exc:  # the last good index still serves
            print(f"kb: {exc}; serving the last good index", file=sys.stderr, flush=True)
            return
        if report.written:
            print(f"kb: {report.summary()}", file=sys.stderr, flush=True)

    # Listens at once: /api/health says 503 "loading" while the index is brought in line and loaded.
    # Where the corpus folder is the store's record, the server brings the index in line with it first; a
    # database store is shared by stateless servers, and `kb build`, run from one place, syncs a folder into it.
    from kb.stores import store_class

    app = create_app(settings, background=True,
                     prepare=bring_in_line if store_class(settings).record_is_corpus_folder else None)
    loading = app.extensions["kb"]
    # Headers up to 2 MiB reach the app, so an over-long query gets kb's own JSON error, not waitress's page.
    server = create_server(app, host=settings.host, port=settings.port, threads=args.threads, ident="kb",
                           max_request_header_size=2 * 1024 * 1024,
                           max_request_body_size=(settings.max_upload_mb + 1) * 1024 * 1024)
    http = threading.Thread(target=server.run, name="waitress", daemon=True)
    http.start()
    print(f"kb: serving http://{settings.host}:{settings.port}/ (Ctrl+C to stop)", file=sys.stderr, flush=True)
    # With torch, the main thread embeds queries (micro-batched) while waitress's threads answer requests:
    # torch ran a query 9% to 26% faster there. ONNX Runtime has its own threads, so a request thread
    # that finds the model free embeds its query itself, one hand-off fewer (README, "Performance").
    def stopped() -> bool:
        return not http.is_alive() or loading.error is not None

    try:
        embedder = embedder_for(settings)
        if embedder.wants_model_thread:
            embedder.batcher.run_forever(should_stop=stopped)
        while not stopped():
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
    if loading.error is not None:  # nothing to serve, ever: say why in one line and stop
        print(f"kb: {loading.error}", file=sys.stderr)
        return EXIT_FAILED
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
