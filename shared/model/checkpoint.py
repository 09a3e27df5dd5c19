"""The checkpoint format: one file that is enough to resume training exactly or to generate text.

A checkpoint is `torch.save` of a plain dict: model state and config, optimizer states, step,
data-loader position, RNG states, the tokenizer as JSON, run metadata and the frozen-parameter
spec. It holds only tensors and plain Python values, so it loads with `weights_only=True` and a
service that downloads one from the object store needs nothing but this module.
Writes are atomic (temporary file, then rename) so a reader never sees half a checkpoint.
"""
from __future__ import annotations

import hashlib
import os
import random
from pathlib import Path

import torch

from shared.model.gpt import GPT, GPTConfig
from shared.model.tokenizer import BPETokenizer

FORMAT_VERSION = 1


def capture_rng_state() -> dict:
    state = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict) -> None:
    random.setstate(_as_python_rng_state(state["python"]))
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def _as_python_rng_state(state) -> tuple:
    version, internal, gauss = state  # weights_only loading may turn tuples into lists
    return version, tuple(internal), gauss


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def to_host(obj):
    """A copy of a state (nested dicts, lists, tensors) that training can no longer change.

    GPU tensors go to pinned host memory with non-blocking copies, so the caller pays one
    `torch.cuda.synchronize()` instead of a sync per tensor; CPU tensors are cloned.
    """
    if isinstance(obj, torch.Tensor):
        tensor = obj.detach()
        if not tensor.is_cuda:
            return tensor.clone()
        host = torch.empty(tensor.shape, dtype=tensor.dtype, pin_memory=True)
        return host.copy_(tensor, non_blocking=True)
    if isinstance(obj, dict):
        return {k: to_host(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_host(v) for v in obj)
    return obj


def checkpoint_state(*, model: GPT, optimizers: list[torch.optim.Optimizer], step: int,
                     tokenizer_json: str, data_state: dict | None = None, meta: dict | None = None,
                     frozen: dict | None = None) -> dict:
    """The whole checkpoint as a host-memory snapshot, taken at a step boundary (one device sync)."""
    state = to_host({
        "format": FORMAT_VERSION,
        "model": model.state_dict(),
        "model_config": model.config.to_dict(),
        "optimizers": [opt.state_dict() for opt in optimizers],
        "step": step,
        "data": data_state or {},
        "rng": capture_rng_state(),
        "tokenizer": tokenizer_json,
        "meta": meta or {},
        "frozen": frozen or {"names": [], "rows": {}},
    })
    if torch.cuda.is_available() and any(p.is_cuda for p in model.parameters()):
        torch.cuda.synchronize()  # the non-blocking copies have landed
    return state


class _HashingFile:
    """A write-only file that hashes what goes through it, so the sha256 needs no second read."""

    def __init__(self, f):
        self.f, self.digest, self.size = f, hashlib.sha256(), 0

    def write(self, data) -> int:
        self.digest.update(data)
        self.size += len(data)
        return self.f.write(data)

    def flush(self) -> None:
        self.f.flush()


def write_checkpoint(path: str | Path, state: dict) -> tuple[int, str]:
    """Write a snapshot atomically (temporary file, fsync, rename); returns (size, sha256 hex).
    A crash mid-write leaves only a hidden temporary file, never a partial `step_*.pt`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            hashing = _HashingFile(f)
            torch.save(state, hashing)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a failed write (disk full, bad state) leaves nothing behind
        raise
    return hashing.size, hashing.digest.hexdigest()


def save_checkpoint(path: str | Path, **fields) -> tuple[int, str]:
    """Snapshot and write in one call (the synchronous path); returns (size, sha256 hex)."""
    return write_checkpoint(path, checkpoint_state(**fields))


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> dict:
    return torch.load(path, map_location=device, weights_only=True)


def load_model_for_inference(path: str | Path, device: str | torch.device = "cpu"
                             ) -> tuple[GPT, BPETokenizer, dict]:
    """(model in eval mode, tokenizer, meta) where meta also carries step and model_config."""
    checkpoint = load_checkpoint(path, device)
    model = GPT(GPTConfig(**checkpoint["model_config"])).to(device)
    model.load_state_dict(checkpoint["model"])
    model.eval()
    tokenizer = BPETokenizer.from_json(checkpoint["tokenizer"])
    meta = {**checkpoint["meta"], "step": checkpoint["step"], "model_config": checkpoint["model_config"]}
    return model, tokenizer, meta


def checkpoint_filename(step: int) -> str:
    """The one name of a step's checkpoint, on disk and in the object store (sorts by step)."""
    return f"step_{step:08d}.pt"


def latest_checkpoint(directory: str | Path) -> Path | None:
    """Newest checkpoint in a run's checkpoint directory."""
    found = sorted(Path(directory).glob("step_*.pt"))
    return found[-1] if found else None


def checkpoint_path(directory: str | Path, step: int) -> Path:
    return Path(directory) / checkpoint_filename(step)


def object_name(run_id: str, step: int) -> str:
    """The checkpoint's key in the NATS object store: `<run>/<file name>`."""
    return f"{run_id}/{checkpoint_filename(step)}"
