"""`kb`: the command line. It parses arguments, calls the front door (kb/__init__.py), and prints.

Known failures print one sentence and exit 1; a usage error exits 2. Commands from outside the core library
come in through the ``kb.commands`` entry point (pyproject.toml): `kb serve` is the web layer's (web/serve.py),
so kb itself never imports Flask. docs/cli.md is generated from this parser.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Callable, Sequence

from kb.errors import KbError
from kb.settings import MODES, Settings, describe

EXIT_USAGE = 2
EXIT_FAILED = 1
COMMON = ("--index-dir", "--model", "--verbose")  # every command takes these


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser()
    args = parser.parse_args(argv)
    configure_logging(verbose=args.verbose)
    try:
        settings = Settings.from_env(**{name: getattr(args, name, None) for name in (
            "index_dir", "corpus_dir", "model", "host", "port")})
    except ValueError as exc:
        print(f"kb: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return guarded(lambda: args.run(args, settings))


def configure_logging(verbose: bool = False) -> None:
    """Plain lines on standard error: warnings, and with ``verbose`` progress too."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    logging.getLogger("kb.requests").setLevel(logging.INFO)
    logging.getLogger("kb.ingestion.watch").setLevel(logging.INFO)  # what the folder watch did, and what it skipped
    # psycopg_pool warns at every failed reconnection attempt (several a second while a database is down);
    # kb says it once, in the error that answers the request or stops the command.
    logging.getLogger("psycopg.pool").setLevel(logging.ERROR)


def guarded(action: Callable[[], int]) -> int:
    """Known failures print one sentence, not a traceback."""
    try:
        return action()
    except KbError as exc:
        print(f"kb: {exc.message}", file=sys.stderr)
        return EXIT_FAILED
    except (FileNotFoundError, PermissionError) as exc:
        print(f"kb: {exc.strerror or exc}: {exc.filename}" if exc.filename else f"kb: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except OSError as exc:
        print(f"kb: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130


def make_parser() -> argparse.ArgumentParser:
    epilog = "settings (environment variables):\n" + "\n".join(
        f"  {env:<18} {help} (default: {default})" for _, env, default, help in describe()
    )
    parser = argparse.ArgumentParser(prog="kb", description="A searchable knowledge base.", epilog=epilog,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    build = sub.add_parser("build", help="bring the index in line with the corpus folder")
    build.add_argument("--force", action="store_true", help="derive the whole index again (every document embedded)")
    build.add_argument("--json", action="store_true", help="print the report as one JSON object on the last line")
    build.add_argument("--ids", action="store_true", help="with --json: also list the document ids of each kind")
    build.add_argument("--corpus-dir", help="overrides KB_CORPUS_DIR")
    build.set_defaults(run=_build)

    search = sub.add_parser("search", help="ask the knowledge base a question")
    search.add_argument("query")
    search.add_argument("-k", type=_k, default=5, help="how many passages (1 to 50, default 5)")
    search.add_argument("--json", action="store_true", help="print the API's JSON answer")
    search.add_argument("--mode", choices=MODES, help="overrides KB_SEARCH_MODE")
    search.add_argument("--url", help="ask a running kb serve at this address instead of the local index "
                                      "(with KB_READ_KEY from the environment, when the server needs one)")
    search.set_defaults(run=_search)

    evaluate = sub.add_parser("eval", help="retrieval quality of every mode on a test collection or question set")
    evaluate.add_argument("dataset", help="a BEIR or Cranfield folder, or a question-set .jsonl scored against the "
                                          "current index")
    evaluate.add_argument("--modes", default=",".join(MODES), help="comma-separated modes (default: all)")
    evaluate.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    evaluate.set_defaults(run=_eval)

    add = sub.add_parser("add", help="add files as uploads (kept as they came: corpus/.kb/uploads/ on FAISS)")
    add.add_argument("paths", nargs="+", help=".txt, .md, .html, .pdf or .jsonl files")
    add.add_argument("--access", default="", metavar="GROUPS",
                     help="comma-separated groups that may read them (default: public; a .jsonl line's own wins)")
    add.add_argument("--json", action="store_true", help="print the report as one JSON object on the last line")
    add.set_defaults(run=_add)

    remove = sub.add_parser("remove", help="delete documents, their own files with them")
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

    insights = sub.add_parser("insights", help="what people ask, what kb cannot answer, what is cited (the query log)")
    insights.add_argument("--days", type=int, default=30, help="the last N days, today included (default 30)")
    insights.add_argument("--json", action="store_true", help="print the report as one JSON object (/api/insights)")
    insights.set_defaults(run=_insights)

    keys = sub.add_parser("keys", help="keys that name callers, with the groups whose documents they read (docs/access.md)")
    keys.add_argument("action", choices=("add", "list", "revoke"),
                      help="add NAME: a new key, printed once on the last line; list: every key (never the key "
                           "itself); revoke NAME: refused from the next request on")
    keys.add_argument("name", nargs="?", help="the key's name (add, revoke): who holds it, e.g. alice or hr-bot")
    keys.add_argument("--groups", default="", help="add: the groups it reads, comma-separated (none: public documents only)")
    keys.add_argument("--write", action="store_true", help="add: it may also write documents of its groups, or public ones")
    keys.add_argument("--json", action="store_true", help="list: as JSON")
    keys.set_defaults(run=_keys)

    db = sub.add_parser("db", help="KB_STORE=postgres: create, upgrade or drop kb's tables; run a local PostgreSQL")
    db.add_argument("action", choices=("init", "migrate", "status", "reset", "start-local", "stop-local"),
                    help="init: create the tables (idempotent); migrate: apply missing schema versions; status: "
                         "the schema version; reset: drop every table, every document with them (needs --yes); "
                         "start-local / stop-local: a PostgreSQL with pgvector in --data on 127.0.0.1:--pg-port "
                         "(for development and tests)")
    db.add_argument("--yes", action="store_true", help="with reset: yes, delete every document")
    db.add_argument("--data", default=".pgdata", help="start-local / stop-local: the cluster's folder (default .pgdata)")
    db.add_argument("--pg-port", type=int, default=55432, help="start-local: its port (default 55432)")
    db.set_defaults(run=_db)

    for point in entry_points(group="kb.commands"):  # `kb serve` (web/serve.py)
        point.load()(sub)
    for command in sub.choices.values():
        command.add_argument("--index-dir", help="overrides KB_INDEX_DIR")
        command.add_argument("--model", help="overrides KB_MODEL")
        command.add_argument("-v", "--verbose", action="store_true", help="log progress")
    return parser


def _k(raw: str) -> int:
    from kb.search.pipeline import MAX_K

    try:
        k = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"k must be a whole number, got {raw!r}") from None
    if not 1 <= k <= MAX_K:
        raise argparse.ArgumentTypeError(f"k must be between 1 and {MAX_K}, got {k}")
    return k


class ProgressBars:
    """tqdm bars (embedding, export, import), shown on a terminal only (tqdm's ``disable=None``); closed on exit."""

    def __init__(self) -> None:
        self.bars: list = []

    def __call__(self, total: int | None, unit: str = "passage", desc: str = "embedding") -> Callable[[int], None]:
        from tqdm import tqdm

        bar = tqdm(total=total, unit=unit, desc=desc, disable=True if total == 0 else None, file=sys.stderr,
                   unit_scale=unit == "B")
        self.bars.append(bar)
        return bar.update

    def __enter__(self) -> "ProgressBars":
        return self

    def __exit__(self, *exc: object) -> None:
        for bar in self.bars:
            bar.close()


def _report(report, as_json: bool, ids: bool = False) -> int:
    print(report.summary(), file=sys.stderr if as_json else sys.stdout)
    if as_json:
        print(json.dumps(report.to_json(ids=ids)))
    return 0


def _build(args: argparse.Namespace, settings: Settings) -> int:
    import kb

    with ProgressBars() as progress:
        report = kb.open(settings).build(force=args.force, progress=progress)
    return _report(report, args.json, args.ids)


def _search_remote(args: argparse.Namespace, settings: Settings) -> int:
    """`kb search --url`: the same answer from a running server, through kb.client."""
    from kb.client import Client

    answer = Client(args.url, key=settings.read_key or None).search(args.query, args.k, args.mode)
    if args.json:
        print(answer.model_dump_json())
        return 0
    if not answer.confident:
        print("Nothing in the knowledge base answers this confidently; the nearest passages:\n")
    for hit in answer.results:
        where = f"passage {hit.passage.ordinal + 1} of {hit.passage.of}"
        print(f"{hit.rank}. [{hit.score:.3f}] {hit.title} ({hit.source}, {where})")
        print(f"   {hit.text}")
        if hit.highlights:
            print(f"   > {hit.quote(hit.highlights[0])}")
        print()
    return 0


def _search(args: argparse.Namespace, settings: Settings) -> int:
    import time

    import kb

    if args.url:
        return _search_remote(args, settings)

    with kb.open(settings) as base:
        began = time.perf_counter()
        answer = base.search(args.query, args.k, args.mode)
        took_ms = (time.perf_counter() - began) * 1000
        if args.json:
            print(json.dumps(answer.to_json(args.k, took_ms), ensure_ascii=False))
            return 0
        if not base.counts()[1]:
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
    from kb.evaluation.metrics import evaluate

    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not modes or set(modes) - set(MODES):
        print(f"kb: --modes takes a comma-separated list of {', '.join(MODES)}", file=sys.stderr)
        return EXIT_USAGE
    with ProgressBars() as progress:
        figures, text = evaluate(Path(args.dataset), settings, modes, progress=progress)
    print(json.dumps(figures) if args.json else text)
    return 0


def _add(args: argparse.Namespace, settings: Settings) -> int:
    import kb
    from kb.documents.access import parse_groups
    from kb.errors import UnreadableDocument

    try:  # a bad group or a missing file is found before the model is loaded
        access = parse_groups(args.access, "--access")
    except UnreadableDocument as exc:
        print(f"kb: {exc.message}", file=sys.stderr)
        return EXIT_FAILED
    for raw in args.paths:
        if not Path(raw).is_file():
            print(f"kb: {raw}: no such file", file=sys.stderr)
            return EXIT_FAILED
    report = None
    with kb.open(settings) as base:
        for raw in args.paths:
            try:
                added, report = base.add_file(Path(raw).name, Path(raw).read_bytes(), access=access)
            except KbError as exc:
                print(f"kb: {raw}: {exc.message}", file=sys.stderr)
                return EXIT_FAILED
            print(f"added {raw} as {', '.join(d['id'] for d in added)}", file=sys.stderr)
    return _report(report, args.json)


def _remove(args: argparse.Namespace, settings: Settings) -> int:
    import kb
    from kb.stores import store_exists

    if not store_exists(settings):
        print(f"kb: no document with id {args.doc_ids[0]!r} (there is no index in {settings.index_dir}/ yet)",
              file=sys.stderr)
        return EXIT_FAILED
    report = None
    with kb.open(settings) as base:
        for doc_id in args.doc_ids:
            report = base.delete(doc_id)
            print(f"removed {doc_id}", file=sys.stderr)
    return _report(report, args.json)


def _insights(args: argparse.Namespace, settings: Settings) -> int:
    import kb
    from kb.insights.report import MAX_DAYS, text

    if not 1 <= args.days <= MAX_DAYS:
        print(f"kb: --days must be from 1 to {MAX_DAYS}, got {args.days}", file=sys.stderr)
        return EXIT_FAILED
    with kb.open(settings) as base:
        insights = base.insights(args.days)
    print(json.dumps(insights) if args.json else text(insights))
    return 0


def _keys(args: argparse.Namespace, settings: Settings) -> int:
    from kb.documents.access import parse_groups
    from kb.errors import KeyProblem, UnreadableDocument
    from kb.stores import store_class

    if args.action in ("add", "revoke") and not args.name:
        print(f"kb: `kb keys {args.action}` needs the key's NAME", file=sys.stderr)
        return EXIT_FAILED
    try:
        groups = parse_groups(args.groups, "--groups")
    except UnreadableDocument as exc:
        print(f"kb: {exc}", file=sys.stderr)
        return EXIT_FAILED
    table = store_class(settings).key_table(settings)
    try:
        if args.action == "add":
            key = table.add(args.name, groups, args.write)
            print(f"key {args.name!r}: reads {', '.join(groups) or 'public documents only'}"
                  f"{' (and public documents)' if groups else ''}{'; may write' if args.write else ''}. "
                  "It is shown this once; kb keeps only its hash:")
            print(key)
        elif args.action == "revoke":
            if not table.revoke(args.name):
                raise KeyProblem(f"there is no key named {args.name!r} (`kb keys list` shows them)")
            print(f"revoked {args.name!r}: it is refused from the next request on", file=sys.stderr)
        else:
            found = [info.to_json() for info, _ in table.keys()]
            if args.json:
                print(json.dumps(found))
            else:
                for row in found:
                    print(f"{row['name']:<24} {','.join(row['groups']) or '(public only)':<32} "
                          f"{'write' if row['write'] else 'read':<6} {row['created']}")
    finally:
        table.close()
    return 0


def _export(args: argparse.Namespace, settings: Settings) -> int:
    import os
    import time

    import kb
    from kb.stores import store_class

    base = kb.open(settings)
    if store_class(settings).record_is_corpus_folder:  # the index first catches up with the folder, its record
        base.build()
    began = time.perf_counter()
    target = Path(args.output) if args.output else None
    with ProgressBars() as progress:
        tick = progress(base.counts()[0], unit="document", desc="exporting")
        if target is None:
            count = base.export(sys.stdout.buffer, tick)
            sys.stdout.buffer.flush()
        else:
            partial = target.with_name(f".{target.name}.partial")
            with open(partial, "wb") as out:
                count = base.export(out, tick)
                out.flush()
                os.fsync(out.fileno())
            os.replace(partial, target)
    base.close()
    print(f"exported {count} documents{f' to {target}' if target else ''} in {time.perf_counter() - began:.1f}s",
          file=sys.stderr)
    return 0


def _import(args: argparse.Namespace, settings: Settings) -> int:
    import time

    import kb

    source = sys.stdin.buffer if args.source == "-" else open(args.source, "rb")  # a missing file: one sentence
    began = time.perf_counter()
    with kb.open(settings) as base, source, ProgressBars() as progress:
        size = None if args.source == "-" else Path(args.source).stat().st_size
        report = base.load(source, progress(size, unit="B", desc="importing"))
    print(f"{report.summary()} in {time.perf_counter() - began:.1f}s", file=sys.stderr)
    return 0


def _backup(args: argparse.Namespace, settings: Settings) -> int:
    from kb.ingestion.backup import backup

    manifest = backup(settings, Path(args.folder))
    print(f"backed up {manifest.get('documents', 0)} documents to {args.folder} in {manifest['seconds']:.1f}s",
          file=sys.stderr)
    return 0


def _restore(args: argparse.Namespace, settings: Settings) -> int:
    import kb
    from kb.ingestion.backup import restore

    manifest, pending = restore(settings, Path(args.folder), force=args.force)
    if pending is not None:
        with kb.open(settings) as base, open(pending, "rb") as source:
            print(base.load(source).summary(), file=sys.stderr)
    print(f"restored the backup of {manifest['created']} ({manifest.get('documents', 0)} documents) from "
          f"{args.folder}", file=sys.stderr)
    return 0


def _db(args: argparse.Namespace, settings: Settings) -> int:
    from kb.stores.postgres import admin

    if args.action in ("start-local", "stop-local"):
        if args.action == "stop-local":
            print(admin.stop_local(Path(args.data), args.pg_port), file=sys.stderr)
            return 0
        cluster, said = admin.start_local(Path(args.data), args.pg_port)
        print(said, file=sys.stderr)
        print(cluster.dsn())
        return 0
    if not settings.pg_dsn:
        print("kb: `kb db` needs KB_PG_DSN, the primary's connection string", file=sys.stderr)
        return EXIT_USAGE
    if args.action == "status":
        print(admin.status(settings))
    elif args.action == "reset":
        if not args.yes:
            print(f"kb: `kb db reset` deletes every document in schema {settings.pg_schema}, those sent through "
                  "the API too: add --yes", file=sys.stderr)
            return EXIT_USAGE
        print(admin.reset(settings), file=sys.stderr)
    else:
        print(admin.migrate(settings, meta=_new_schema_meta(settings) if args.action == "init" else None),
              file=sys.stderr)
    return 0


def _new_schema_meta(settings: Settings) -> Callable[[], dict]:
    """What a new PostgreSQL schema records of the vectors to come (the model is loaded only if it is new)."""
    def meta() -> dict:
        from kb.embedding.embedder import embedder_for
        from kb.embedding.prepare import build_config

        return {"model": settings.model, "dimension": embedder_for(settings).dimension,
                "config": build_config(settings), "hnsw_m": settings.hnsw_m}

    return meta


if __name__ == "__main__":
    raise SystemExit(main())
