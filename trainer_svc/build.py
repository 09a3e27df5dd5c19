"""Building a run, fresh or from a checkpoint: where it runs, its data and tokenizer, its model.

Each function returns what it builds; `Trainer.__init__` calls them in the order that matters
(the tokenizer comes from the data, the model's vocabulary from the tokenizer, the RNG state is
restored last, after everything that draws random numbers).
"""
from __future__ import annotations

import datetime
import logging
import os
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist

from shared.model.checkpoint import latest_checkpoint
from shared.model.gpt import GPT, GPTConfig, build_model, config_for_depth
from shared.model.tokenizer import BPETokenizer
from trainer_svc.data import MixedTokenLoader

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Placement:
    """Where this process trains: its rank among `world_size` processes, its device, its dtype."""
    rank: int
    world_size: int
    device: torch.device
    use_bf16: bool

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def autocast(self):
        return torch.autocast("cuda", dtype=torch.bfloat16) if self.use_bf16 else nullcontext()


def init_distributed(device_choice: str, dtype: str) -> Placement:
    """Joins the torchrun process group when WORLD_SIZE > 1."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    use_cuda = device_choice == "cuda" or (device_choice == "auto" and torch.cuda.is_available())
    if world_size == 1:
        rank, device = 0, torch.device("cuda" if use_cuda else "cpu")
    else:
        if not dist.is_initialized():  # long timeout: a paused run waits in a broadcast
            dist.init_process_group("nccl" if use_cuda else "gloo", timeout=datetime.timedelta(days=7))
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        device = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
        if use_cuda:
            torch.cuda.set_device(device)
        rank = dist.get_rank()
    if device.type == "cuda":
        torch.set_float32_matmul_precision("high")
    return Placement(rank, world_size, device, device.type == "cuda" and dtype in ("auto", "bfloat16"))


def resolve_resume_path(resume: str | None, run_dir: Path) -> Path | None:
    if resume is None:
        return None
    path = latest_checkpoint(run_dir) if resume == "latest" else Path(resume)
    if path is None or not path.exists():
        raise FileNotFoundError(f"--resume {resume}: no checkpoint found (looked in {run_dir})")
    return path


def build_data(args, placement: Placement, checkpoint: dict | None
               ) -> tuple[MixedTokenLoader, BPETokenizer, list[str]]:
    """(loader, tokenizer, primary source names): from --data and --mix, or as the checkpoint left them."""
    loader = MixedTokenLoader(args.batch_size, args.seq_len, args.seed, args.val_fraction,
                              rank=placement.rank, world_size=placement.world_size)
    if checkpoint:
        tokenizer = BPETokenizer.from_json(checkpoint["tokenizer"])
        loader.seq_len = checkpoint["model_config"]["sequence_len"]
        loader.load_state_dict(checkpoint["data"])
        primary_sources = checkpoint["meta"].get("primary_sources", sorted(loader.weights))
    else:
        for name, path in args.data:
            loader.add_source(name, path)
        for name, path, step, weight in args.mix:
            loader.add_source(name, path, weight, start_step=step)
        primary_sources = [name for name, _ in args.data]
        tokenizer = train_tokenizer(loader, args.tokenizer_chars, args.vocab_size, placement)
    loader.tokenizer = tokenizer
    return loader, tokenizer, primary_sources


def train_tokenizer(loader: MixedTokenLoader, chars: int, vocab_size: int, placement: Placement) -> BPETokenizer:
    """Rank 0 trains the BPE; under DDP the others receive its JSON so all ranks agree."""
    tokenizer_json = [None]
    if placement.is_main:
        tokenizer_json[0] = BPETokenizer.train(loader.train_text(chars), vocab_size).to_json()
    if placement.world_size > 1:
        dist.broadcast_object_list(tokenizer_json, src=0)
    return BPETokenizer.from_json(tokenizer_json[0])


def build_gpt(args, tokenizer: BPETokenizer, placement: Placement, checkpoint: dict | None) -> GPT:
    """A fresh model sized by --depth, or the checkpoint's shape (its weights are loaded later)."""
    if checkpoint:
        config = GPTConfig(**checkpoint["model_config"])
    else:
        config = config_for_depth(args.depth, tokenizer.vocab_size, args.seq_len)
    return build_model(config, placement.device)


def restore_weights(model: GPT, optimizers: list[torch.optim.Optimizer], checkpoint: dict) -> None:
    model.load_state_dict(checkpoint["model"])
    for optimizer, state in zip(optimizers, checkpoint["optimizers"], strict=True):
        optimizer.load_state_dict(state)


def wrap_model(model: GPT, compile_model: bool, placement: Placement) -> torch.nn.Module:
    """What the step calls: the model, under DDP when distributed, compiled on cuda if asked."""
    device = placement.device
    if placement.world_size > 1:
        from torch.nn.parallel import DistributedDataParallel
        model = DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
    if compile_model and device.type == "cuda":
        model = torch.compile(model)
    elif compile_model:
        log.warning("--compile is used on cuda only; training uncompiled on %s", device)
    return model
