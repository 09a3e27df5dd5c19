"""How fast find_loops runs, and whether its time grows about linearly with text length.

The service runs find_loops on every sample and reflection, so a typical 2 KB sample must take a
few milliseconds, and a runaway 100 KB generation must not take quadratic time. Text is generated:
paragraphs of prose with loops of the seed log's kinds mixed in. Headline on the last line.
"""
from __future__ import annotations

import argparse
import random
import statistics
import time

from understanding_svc.loops import find_loops

WORDS = ("the model reads a page of light and shadow while the journal keeps every step of the "
         "training run in order so that people can look back and see what changed and why it did").split()
LOOPS = [
    lambda r: ", ".join(["quality"] * r.randint(5, 60)) + ". ",
    lambda r: "observe it, or " * r.randint(3, 20),
    lambda r: "\n" + "\n".join(f"{i}. You are learning" for i in range(1, r.randint(4, 15))) + "\n",
    lambda r: "0-0 " * r.randint(4, 30),
    lambda r: "* ** " * r.randint(3, 20),
    lambda r: "The light falls through the window and I watch it move across the floor. " * r.randint(2, 4),
]


def generate(size: int, seed: int = 0) -> str:
    rng = random.Random(seed)
    parts, length = [], 0
    while length < size:
        if rng.random() < 0.25:
            part = rng.choice(LOOPS)(rng)
        else:
            part = " ".join(rng.choice(WORDS) for _ in range(rng.randint(20, 80))).capitalize() + ". "
        parts.append(part)
        length += len(part)
    return "".join(parts)[:size]


def best_time(text: str, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        find_loops(text)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timings per size; the best is kept")
    parser.add_argument("--samples", type=int, default=200, help="2 KB samples timed for the median")
    args = parser.parse_args()
    seconds = {}
    for kb in (1, 10, 100):
        text = generate(kb * 1024, seed=kb)
        seconds[kb] = best_time(text, args.repeats)
        print(f"{kb:>4} KB: {seconds[kb] * 1000:8.2f} ms  {kb / seconds[kb]:9.0f} KB/s  "
              f"({len(find_loops(text))} loops)")
    ratio = seconds[100] / seconds[10]
    print(f"time(100 KB) / time(10 KB) = {ratio:.1f} (10 = linear)")
    sample_ms = [best_time(generate(2048, seed=1000 + i), 1) * 1000 for i in range(args.samples)]
    median = statistics.median(sample_ms)
    print(f"2 KB samples: median {median:.2f} ms, p95 {sorted(sample_ms)[int(0.95 * len(sample_ms))]:.2f} ms "
          f"(target < 5 ms)")
    print(f"find_loops: {100 / seconds[100]:.0f} KB/s at 100 KB (growth x{ratio:.1f} for 10x text); "
          f"2 KB sample median {median:.2f} ms")


if __name__ == "__main__":
    main()
