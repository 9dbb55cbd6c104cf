"""Single-query embedding on the main thread against a fresh thread, alternating.

    .venv/bin/python benchmarks/experiments/thread_speed.py [--rounds 3]

Why `kb serve` runs the model on its main thread: on this machine the same 100 queries
embedded more slowly from any other thread. Prints the p50 of each trial.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time

from kb.embedding.embedder import Embedder


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    embedder = Embedder(precision="float32")
    embedder.encode(["warm up"])
    questions = [f"what is the pressure distribution on wing number {i} at hypersonic speeds and why" for i in range(100)]

    def trial(tag: str, out: list[float]) -> None:
        for question in questions:
            began = time.perf_counter()
            embedder.encode([question + tag])
            out.append((time.perf_counter() - began) * 1000)

    for round_ in range(args.rounds):
        main_ms: list[float] = []
        trial(f" m{round_}", main_ms)
        other_ms: list[float] = []
        worker = threading.Thread(target=trial, args=(f" t{round_}", other_ms))
        worker.start()
        worker.join()
        print(f"round {round_ + 1}: main thread p50 {statistics.median(main_ms):.2f} ms, "
              f"other thread p50 {statistics.median(other_ms):.2f} ms", flush=True)


if __name__ == "__main__":
    main()
