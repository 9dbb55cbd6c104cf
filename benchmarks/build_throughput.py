"""`kb build` from scratch on a folder of N documents: this checkout against an older commit, one run.

    .venv/bin/python benchmarks/build_throughput.py --docs 10000 --ref 9291d69

The corpus is the Cranfield abstracts as plain `.txt` files (title line, blank line, text),
repeated under new names until there are ``--docs`` files; each copy carries its copy number
in the first line, so every file is a distinct document. The older commit is checked out with
`git worktree` into a temporary folder and run with the same virtual environment and settings.
Each build starts from an empty index folder; wall time of the whole command is reported, with
documents and passages per second. The two builds run one after the other (never at once).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from kb.evaluation.datasets import load_cranfield  # noqa: E402


def make_corpus(folder: Path, count: int) -> None:
    documents = [d for d in load_cranfield(REPO / "benchmarks" / "data" / "cranfield").documents if d.text.strip()]
    folder.mkdir(parents=True)
    for n in range(count):
        document = documents[n % len(documents)]
        copy = n // len(documents)
        (folder / f"cran-{document.id}-{copy}.txt").write_text(f"{document.title} ({copy})\n\n{document.text}\n")


def build(code: Path, corpus: Path, index: Path) -> tuple[float, dict]:
    env = {**os.environ, "PYTHONPATH": str(code), "KB_CORPUS_DIR": str(corpus), "KB_INDEX_DIR": str(index),
           "HF_HUB_OFFLINE": "1"}
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "kb.cli", "build", "--json"], cwd=code, env=env,
                            capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if result.returncode:
        raise SystemExit(f"build in {code} failed: {result.stderr[-2000:]}")
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    return elapsed, json.loads(lines[-1]) if lines else {}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--docs", type=int, default=10_000)
    parser.add_argument("--ref", default="9291d69", help="the older commit to compare with")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kb-build-") as tmp:
        work = Path(tmp)
        make_corpus(work / "corpus", args.docs)
        old = work / "old"
        subprocess.run(["git", "worktree", "add", "--detach", str(old), args.ref], cwd=REPO, check=True,
                       capture_output=True)
        try:
            rows = []
            for label, code in ((f"commit {args.ref}", old), ("this checkout", REPO)):
                elapsed, report = build(code, work / "corpus", work / f"index-{label.split()[-1]}")
                passages = report.get("passages") or 0
                rows.append((label, elapsed, report.get("documents"), passages))
                print(f"{label}: {elapsed:.0f} s, {report.get('documents')} documents, {passages} passages", flush=True)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(old)], cwd=REPO, capture_output=True)
    print(f"\n| build of {args.docs:,} documents | wall s | documents/s | passages/s |")
    print("| --- | ---: | ---: | ---: |")
    for label, elapsed, documents, passages in rows:
        print(f"| {label} | {elapsed:.0f} | {(documents or 0) / elapsed:.1f} | {passages / elapsed:.1f} |")


if __name__ == "__main__":
    main()
