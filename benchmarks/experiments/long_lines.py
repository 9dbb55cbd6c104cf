"""Seconds kb's sentence splitter takes on one long line, as the line grows.

    .venv/bin/python benchmarks/experiments/long_lines.py [--sizes 1000,2000,5000,20000,200000]

Two kinds of line: short sentences ("This is a sentence about kb. " repeated) and words with
no sentence end at all. pysbd's time grows faster than the line, which is why kb.documents.chunking cuts
lines over 2,000 characters into pieces first; the last column is the cost per megabyte.
"""

from __future__ import annotations

import argparse
import time

from kb.documents.sentences import sentence_spans


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1000,2000,5000,20000,200000")
    args = parser.parse_args()
    print("| characters | sentences s | no sentence end s | s per MB (worse of the two) |")
    print("| ---: | ---: | ---: | ---: |")
    for size in (int(s) for s in args.sizes.split(",")):
        sentences = ("This is a sentence about kb. " * (size // 29 + 1))[:size]
        words = ("lorem ipsum dolor sit amet consectetur " * (size // 38 + 1))[:size]
        began = time.perf_counter()
        sentence_spans(sentences)
        a = time.perf_counter() - began
        began = time.perf_counter()
        sentence_spans(words)
        b = time.perf_counter() - began
        print(f"| {size:,} | {a:.3f} | {b:.3f} | {max(a, b) * 1e6 / size:.1f} |", flush=True)


if __name__ == "__main__":
    main()
