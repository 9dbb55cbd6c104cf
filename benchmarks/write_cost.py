"""What the record costs a write: a one-passage API write at about 10,000 passages, this checkout against an
older commit, side by side in one run.

    .venv/bin/python benchmarks/write_cost.py --ref 88ed1ac [--passages 10000] [--writes 20] [--rounds 3]

The store is made as benchmarks/writes.py makes its stores: Cranfield's abstracts, embedded once by the real
model, repeated under new ids up to --passages. The older commit gets a copy of it marked with its own index
format (4: the same records.sqlite, without the corpus folder's name). Each version runs its own `kb serve`
(the older one from a git worktree, on the same virtual environment) with the write worker warmed up; the
rounds alternate between them, --writes one-passage documents per server per round, each a new id. The
figure is the time from sending the request to its answer, over HTTP: with the record, that includes
writing the document's file durably (written, flushed, renamed, folder flushed) before the index transaction.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))
from serving import percentile  # noqa: E402
from writes import CRANFIELD, make_store, note, request, servers_on, start  # noqa: E402

from kb.embedding.embedder import embedder_for  # noqa: E402
from kb.embedding.prepare import prepare  # noqa: E402
from kb.evaluation.datasets import load_cranfield  # noqa: E402
from kb.settings import Settings  # noqa: E402


def as_format_4(folder: Path) -> None:
    """The store folder as kb before the record reads it: manifest format 4, no corpus folder named."""
    manifest_path = next((folder).glob("store-*/manifest.json"))
    manifest = json.loads(manifest_path.read_text())
    manifest.pop("corpus", None)
    manifest["format_version"] = 4
    manifest_path.write_text(json.dumps(manifest, indent=2, sort_keys=True))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ref", default="88ed1ac", help="the older commit (index format 4)")
    parser.add_argument("--passages", type=int, default=10000)
    parser.add_argument("--writes", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="kb-write-cost-"))
    with servers_on(args.ref, work) as (servers, tree):
        settings = Settings.from_env()
        collection = load_cranfield(CRANFIELD)
        prepared = prepare(collection.documents, embedder_for(settings), settings)
        here = work / "here"
        passages = make_store(here, args.passages, prepared)
        shutil.copytree(here, work / "old", symlinks=True)
        as_format_4(work / "old")
        versions = {"this checkout": (here, None), f"kb at {args.ref}": (work / "old", tree)}
        ports = {}
        for label, (folder, code) in versions.items():
            process, port = start(folder, code=code)
            servers.append(process)
            for n in range(3):  # the write worker loads its model on the first write
                assert request(port, "POST", "/api/documents", note(n, "warm"))[0] == 201
            ports[label] = port
        times: dict[str, list[float]] = {label: [] for label in versions}
        for round_ in range(args.rounds):
            for label, port in ports.items():
                for n in range(args.writes):
                    status, ms = request(port, "POST", "/api/documents", note(n, f"r{round_}"))
                    assert status == 201, (label, status)
                    times[label].append(ms)
        print(f"\none-passage API write at {passages:,} passages, {args.rounds} alternating rounds of "
              f"{args.writes} writes per server\n")
        print("| kb | write p50 ms | p95 ms | writes |")
        print("| --- | ---: | ---: | ---: |")
        for label, values in times.items():
            print(f"| {label} | {statistics.median(values):.1f} | {percentile(values, 0.95):.1f} | {len(values)} |")
        here_p50, old_p50 = (statistics.median(values) for values in times.values())
        print(f"\nthis checkout / {args.ref}: {here_p50 / old_p50:.2f}x at p50 (the bound is 1.5x)")


if __name__ == "__main__":
    main()
