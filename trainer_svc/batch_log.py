"""`--batch-log FILE`: every micro-batch's input token ids, as the model receives them, one JSON
line each ({"step", "micro", "rows"}). For answering "what did the model train on at step s?"
(a mix that joined, a source that ran dry) from the real batches, not from the mix weights.

Debugging only: it copies each batch to the host (a device sync per micro-batch on CUDA) and
writes about 6 bytes per token. Rank 0 only.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch


class BatchLog:
    def __init__(self, path: str | Path):
        self.file = open(path, "a", encoding="utf-8", buffering=1 << 16)

    def write(self, step: int, micro: int, x: torch.Tensor) -> None:
        self.file.write(json.dumps({"step": step, "micro": micro, "rows": x.tolist()}) + "\n")

    def close(self) -> None:
        self.file.close()


def read_batch_log(path: str | Path) -> list[dict]:
    """The logged batches in the order they were trained on."""
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
