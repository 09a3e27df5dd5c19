"""How much of the GPU the trainer's model uses: MFU of a depth-12 GPT training step in bf16.

Times full training steps (forward, backward, AdamW) on random tokens after a warm-up that absorbs
compilation, and reports tokens/s and MFU against the card's dense bf16 peak. By default each
transformer block is compiled on its own ("regional" compilation: one graph reused for all layers),
which compiles in a fraction of the time of the whole model and keeps the run under 45 s.
Without CUDA it prints "no CUDA device: skipped" and exits 0. The last line is the headline.

    python -m bench.mfu [--depth 12] [--batch-size 8] [--seq-len 2048] [--compile regional]
"""
from __future__ import annotations

import argparse
import sys
import time

import torch

from shared.model.gpt import build_model, config_for_depth
from trainer_svc.optim import setup_optimizers
from trainer_svc.mfu import mfu, peak_flops


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--depth", type=int, default=12, help="transformer layers (width 64 x depth)")
    p.add_argument("--batch-size", type=int, default=8, help="sequences per step")
    p.add_argument("--seq-len", type=int, default=2048, help="tokens per sequence")
    p.add_argument("--vocab-size", type=int, default=32768, help="vocabulary size")
    p.add_argument("--compile", choices=["regional", "full", "none"], default="regional",
                   help="compile each block (regional), the whole model (full) or nothing")
    p.add_argument("--warmup-steps", type=int, default=3, help="untimed steps (compilation happens here)")
    p.add_argument("--steps", type=int, default=10, help="timed steps")
    return p


def training_step(model: torch.nn.Module, optimizers, x: torch.Tensor, y: torch.Tensor) -> None:
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss = model(x, y)
    loss.backward()
    for optimizer in optimizers:
        optimizer.step()
    model.zero_grad(set_to_none=True)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not torch.cuda.is_available():
        print("no CUDA device: skipped")
        return 0
    torch.manual_seed(0)
    torch.set_float32_matmul_precision("high")
    model = build_model(config_for_depth(args.depth, args.vocab_size, args.seq_len), "cuda")
    optimizers = setup_optimizers(model, "adamw", matrix_lr=1e-4)
    train_model = model
    if args.compile == "regional":
        for block in model.transformer.h:
            block.compile()
    elif args.compile == "full":
        train_model = torch.compile(model)
    x = torch.randint(0, args.vocab_size, (args.batch_size, args.seq_len), device="cuda")
    y = torch.roll(x, -1, dims=1)

    started = time.perf_counter()
    for _ in range(args.warmup_steps):
        training_step(train_model, optimizers, x, y)
    torch.cuda.synchronize()
    print(f"warm-up (incl. compile): {time.perf_counter() - started:.1f} s")

    started = time.perf_counter()
    for _ in range(args.steps):
        training_step(train_model, optimizers, x, y)
    torch.cuda.synchronize()
    elapsed = time.perf_counter() - started

    name = torch.cuda.get_device_name()
    tokens_per_s = args.batch_size * args.seq_len * args.steps / elapsed
    value = mfu(model.flops_per_token(), tokens_per_s, peak_flops(name, torch.bfloat16))
    print(f"device: {name}")
    print(f"params (matmul): {model.matmul_params() / 1e6:.1f} M, FLOPs/token: {model.flops_per_token() / 1e9:.2f} G")
    print(f"step time: {elapsed / args.steps * 1000:.1f} ms, tokens/s: {tokens_per_s:,.0f}")
    headline = f"{value:.1%}" if value is not None else "unknown (card not in the peak table)"
    print(f"MFU {headline} (depth {args.depth}, bf16, compile={args.compile}, {name})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
