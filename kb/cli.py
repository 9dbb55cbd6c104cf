"""`kb build | search | serve`: parses arguments, calls the library, prints."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Callable, Sequence

from kb.settings import Settings, describe

EXIT_USAGE = 2
EXIT_FAILED = 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if getattr(args, "verbose", False) else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
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
    from kb.index import IndexProblem

    try:
        return action()
    except (IndexProblem, ModelUnavailable, FileNotFoundError, PermissionError) as exc:
        print(f"kb: {exc}", file=sys.stderr)
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
    build.add_argument("--corpus-dir", help="overrides KB_CORPUS_DIR")
    build.set_defaults(run=_build)

    search = sub.add_parser("search", help="ask the knowledge base a question")
    search.add_argument("query")
    search.add_argument("-k", type=_k, default=5, help="how many passages (1 to 50, default 5)")
    search.add_argument("--json", action="store_true", help="print the API's JSON answer")
    search.set_defaults(run=_search)

    serve = sub.add_parser("serve", help="serve the search page and the JSON API")
    serve.add_argument("--host", help="overrides KB_HOST")
    serve.add_argument("--port", type=int, help="overrides KB_PORT")
    serve.add_argument("--threads", type=int, default=4, help="request threads (default 4)")
    serve.set_defaults(run=_serve)

    for command in (build, search, serve):
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


def _build(args: argparse.Namespace, settings: Settings) -> int:
    from tqdm import tqdm

    from kb.build import build_index

    bars: list[tqdm] = []

    def progress(total: int) -> Callable[[int], None]:
        bar = tqdm(total=total, unit="passage", desc="embedding", disable=total == 0 or None, file=sys.stderr)
        bars.append(bar)
        return bar.update

    try:
        report = build_index(settings, force=args.force, progress=progress)
    finally:
        for bar in bars:
            bar.close()
    print(report.summary(), file=sys.stderr if args.json else sys.stdout)
    if args.json:
        print(json.dumps(report.to_json()))
    return 0


def _search(args: argparse.Namespace, settings: Settings) -> int:
    import time

    from kb.embed import get_embedder
    from kb.index import IndexStore
    from kb.search import Searcher

    index = IndexStore(settings.index_dir).load(expected_model=settings.model)
    searcher = Searcher(index, get_embedder(settings.model))
    began = time.perf_counter()
    hits = searcher.search(args.query, args.k)
    took_ms = (time.perf_counter() - began) * 1000
    if args.json:
        print(json.dumps({"query": args.query, "k": args.k, "took_ms": round(took_ms, 2),
                          "results": [h.to_dict() for h in hits]}, ensure_ascii=False))
        return 0
    for hit in hits:
        print(f"{hit.rank}. [{hit.score:.3f}] {hit.title} ({hit.source}, {hit.position()})")
        print(f"   {hit.text}\n")
    return 0


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    # The web layer is imported only here: the core library never imports Flask.
    from waitress import serve

    from web.app import create_app

    app = create_app(settings)
    print(f"kb: serving http://{settings.host}:{settings.port}/ (Ctrl+C to stop)", file=sys.stderr, flush=True)
    serve(app, host=settings.host, port=settings.port, threads=args.threads, ident="kb")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
