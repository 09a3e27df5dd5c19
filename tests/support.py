"""Helpers the tests share (conftest.py turns them into fixtures): a small corpus and the
trainer options of a tiny, fast run."""
from __future__ import annotations

import random
from pathlib import Path

from trainer_svc.options import parse_args

WORDS = "the king queen said to be or not that is question of love death night day sword crown".split()


def write_corpus(path: Path, n_lines: int = 400, seed: int = 0, words: list[str] = WORDS) -> Path:
    rng = random.Random(seed)
    path.write_text("\n".join(" ".join(rng.choices(words, k=9)) for _ in range(n_lines)) + "\n")
    return path


def tiny_run_args(tmp_path: Path, *extra: str, run_id: str = "t"):
    """A 12-step run of a one-layer GPT on tmp_path/corpus.txt, reports and checkpoints off;
    `extra` flags override these."""
    data = tmp_path / "corpus.txt"
    if not data.exists():
        write_corpus(data)
    return parse_args([
        "--run-id", run_id, "--data", f"main={data}", "--depth", "1", "--seq-len", "32", "--vocab-size", "300",
        "--batch-size", "4", "--steps", "12", "--warmup-steps", "2", "--threads", "1",
        "--eval-every", "0", "--sample-every", "0", "--activations-every", "0", "--checkpoint-every", "0",
        "--eval-tokens", "256", "--no-progress", "--out-dir", str(tmp_path / "ckpt"), *extra])
