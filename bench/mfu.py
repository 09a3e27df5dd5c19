"""How much of the GPU the trainer uses: tokens/s and MFU of its training step, AdamW against Muon.

The trainer's real path by default: the whole model under `torch.compile`, bf16 autocast, the batch
the trainer would use at this shape (16 x 2048 tokens, depth 12, vocabulary 32768), gradient clipping,
the trainer's own optimizers (`setup_optimizers`) and its one host sync per step. Each optimizer runs
on the same compiled model (its weights re-initialised), after untimed steps that absorb compilation.
Without CUDA it prints that CUDA is missing and exits 0: a CPU figure would not be an MFU. The last
line is the headline.

    python -m bench.mfu [--depth 12] [--batch-size 16] [--seq-len 2048] [--optimizers adamw,muon]
"""
from __future__ import annotations

import argparse
import math
import sys
import time

import torch

from shared.model.gpt import build_model, config_for_depth
from trainer_svc.build import init_distributed, wrap_model
from trainer_svc.mfu import mfu, peak_flops
from trainer_svc.optim import setup_optimizers

# issue 8, measured on one H200 (torch 2.11, CUDA 13) at depth 12, 16 x 2048, vocab 32768, compiled
NANOCHAT_MUON_H200 = 485_000


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--depth", type=int, default=12, help="transformer layers (width 64 x depth)")
    p.add_argument("--batch-size", type=int, default=16, help="sequences per step")
    p.add_argument("--seq-len", type=int, default=2048, help="tokens per sequence")
    p.add_argument("--vocab-size", type=int, default=32768, help="vocabulary size")
    p.add_argument("--compile", choices=["full", "regional", "none"], default="full",
                   help="compile the whole model as the trainer does (full), each block, or nothing")
    p.add_argument("--optimizers", default="adamw,muon", help="comma-separated: adamw, muon")
    p.add_argument("--warmup-steps", type=int, default=5, help="untimed steps (compilation happens here)")
    p.add_argument("--steps", type=int, default=30, help="timed steps")
    return p


def training_step(model: torch.nn.Module, params, optimizers, x: torch.Tensor, y: torch.Tensor,
                  autocast) -> list[float]:
    """Trainer.train_step without data loading and freezing: forward/backward under the trainer's
    autocast, clip, optimizers, one host sync."""
    with autocast():
        loss = model(x, y)
    loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(params, 1.0)
    for optimizer in optimizers:
        optimizer.step()
    for p in params:
        p.grad = None
    return torch.stack([loss.detach().float(), grad_norm.float()]).tolist()


def measure(model, train_model, optimizer: str, args, x, y, autocast) -> float:
    """Tokens/s of the timed steps with `optimizer` for the block matrices."""
    torch.manual_seed(0)
    model.init_weights()
    lr = 0.02 if optimizer == "muon" else 0.003  # the trainer's defaults
    optimizers = setup_optimizers(model, optimizer, matrix_lr=lr)
    params = list(model.parameters())
    started = time.perf_counter()
    for _ in range(args.warmup_steps):
        training_step(train_model, params, optimizers, x, y, autocast)
    print(f"{optimizer}: warm-up (compilation included) {time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    for _ in range(args.steps):
        loss, _ = training_step(train_model, params, optimizers, x, y, autocast)
    elapsed = time.perf_counter() - started  # the step's own sync ends each step
    if not math.isfinite(loss):
        print(f"{optimizer}: loss {loss} is not finite")
    return args.batch_size * args.seq_len * args.steps / elapsed


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not torch.cuda.is_available():
        print("no CUDA device: MFU is measured on CUDA only, skipped")
        return 0
    placement = init_distributed("cuda", "auto")  # the trainer's device, dtype and matmul precision
    model = build_model(config_for_depth(args.depth, args.vocab_size, args.seq_len), "cuda")
    train_model = wrap_model(model, args.compile == "full", placement)  # what the trainer's step calls
    if args.compile == "regional":
        for block in model.transformer.h:
            block.compile()
    g = torch.Generator(device="cuda").manual_seed(0)
    x = torch.randint(0, args.vocab_size, (args.batch_size, args.seq_len), device="cuda", generator=g)
    y = torch.roll(x, -1, dims=1)
    name = torch.cuda.get_device_name()
    peak = peak_flops(name, torch.bfloat16)
    print(f"device: {name}, torch {torch.__version__}, depth {args.depth}, {args.batch_size} x {args.seq_len} "
          f"tokens, vocab {args.vocab_size}, compile={args.compile}")
    print(f"params (matmul): {model.matmul_params() / 1e6:.1f} M, FLOPs/token: {model.flops_per_token() / 1e9:.2f} G")
    results = {}
    for optimizer in args.optimizers.split(","):
        tokens_per_s = measure(model, train_model, optimizer, args, x, y, placement.autocast)
        value = mfu(model.flops_per_token(), tokens_per_s, peak)
        results[optimizer] = (tokens_per_s, value)
        shown = f"{value:.1%}" if value is not None else "unknown (card not in the peak table)"
        print(f"{optimizer}: {tokens_per_s:,.0f} tokens/s, MFU {shown}")
    if "muon" in results and "adamw" in results:
        print(f"muon / adamw: {results['muon'][0] / results['adamw'][0]:.2f}")
    if "muon" in results and "h200" in name.lower() and (args.depth, args.batch_size, args.seq_len) == (12, 16, 2048):
        print(f"muon / nanochat's MuonAdamW (issue 8: {NANOCHAT_MUON_H200:,} tokens/s on an H200, same shape): "
              f"{results['muon'][0] / NANOCHAT_MUON_H200:.2f}")
    print("MFU " + ", ".join(f"{opt} {v:.1%} ({t:,.0f} tok/s)" if v is not None else f"{opt} ? ({t:,.0f} tok/s)"
                             for opt, (t, v) in results.items()) + f" on {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
