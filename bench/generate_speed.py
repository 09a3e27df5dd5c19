"""Generation speed: a long prompt plus new tokens, cached and batched against the no-cache original.

The shape is selfplay's reflection (a prompt of about 1,000 tokens, 120 new tokens) on the trainer's
default model (depth 4, vocabulary 4096). Both run greedy on the same model in the same process, and
their tokens are compared one for one. The uncached original re-runs the whole window for every token,
so each of its tokens costs about the same (a little more as the window grows): to stay under 45 s it
is timed on the first --baseline-tokens tokens and its time for all of them is that per-token cost
times the count, an underestimate (pass --baseline-tokens 120 to time it whole). Also timed: the trainer's sample round (4 prompts x greedy
and sampled, 48 tokens), one batch against eight one-at-a-time uncached calls.

    python -m bench.generate_speed [--device cpu|cuda] [--prompt-tokens 1000] [--new-tokens 120]
"""
from __future__ import annotations

import argparse
import sys
import time

import torch

from shared.model.generate import GREEDY, Sampling, generate_batch, reference_generate_ids
from shared.model.gpt import build_model, config_for_depth

SAMPLE_ROUND = 4  # the trainer's sample prompts, each greedy and sampled


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="where the model runs")
    p.add_argument("--depth", type=int, default=4, help="transformer layers (width 64 x depth)")
    p.add_argument("--vocab-size", type=int, default=4096, help="vocabulary size")
    p.add_argument("--seq-len", type=int, default=2048, help="the model's window (holds prompt + new tokens)")
    p.add_argument("--prompt-tokens", type=int, default=1000, help="tokens in the long prompt")
    p.add_argument("--new-tokens", type=int, default=120, help="tokens generated after it")
    p.add_argument("--baseline-tokens", type=int, default=24,
                   help="tokens the uncached original generates while timed (its total is scaled from these)")
    p.add_argument("--sample-tokens", type=int, default=48, help="tokens per sample in the sample round")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    return p


def timed(fn, device: torch.device):
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    result = fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return result, time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: skipped")
        return 0
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = build_model(config_for_depth(args.depth, args.vocab_size, args.seq_len), device)
    with torch.no_grad():  # a trained-looking model: zero-initialised projections would make every logit equal
        for p in model.parameters():
            p.normal_(0.0, 0.05)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)
    prompt = torch.randint(1, args.vocab_size, (args.prompt_tokens,), generator=torch.Generator().manual_seed(1)).tolist()
    print(f"device {device}, depth {args.depth}, vocab {args.vocab_size}, window {args.seq_len}, "
          f"{args.threads} thread(s), torch {torch.__version__}")

    with autocast:
        generate_batch(model, [prompt[:16]], 2, [GREEDY])  # warm-up (allocator, kernels)
        cached, cached_s = timed(lambda: generate_batch(model, [prompt], args.new_tokens, [GREEDY]), device)
        counted = min(args.baseline_tokens, args.new_tokens)
        old, old_part_s = timed(lambda: reference_generate_ids(model, prompt, counted), device)
        old_s = old_part_s / counted * args.new_tokens
        print(f"long prompt: uncached {old_part_s:.2f} s for {counted} tokens "
              f"({old_part_s / counted * 1000:.0f} ms each, {old_s:.1f} s for {args.new_tokens}); "
              f"cached {cached_s:.3f} s for {args.new_tokens} ({cached_s / args.new_tokens * 1000:.1f} ms each, "
              f"prefill included); first {counted} tokens the same: {cached[0][:counted] == old}")

        prompts = [prompt[i * 7:i * 7 + 6] for i in range(SAMPLE_ROUND)]
        rows = prompts + prompts
        sampling = [GREEDY] * SAMPLE_ROUND + [Sampling(0.8, 40, seed=i) for i in range(SAMPLE_ROUND)]
        _, round_s = timed(lambda: generate_batch(model, rows, args.sample_tokens, sampling), device)
        _, old_round_s = timed(lambda: [reference_generate_ids(model, p, args.sample_tokens, s.temperature, s.top_k, s.seed)
                                        for p, s in zip(rows, sampling)], device)
        print(f"sample round ({2 * SAMPLE_ROUND} rows x {args.sample_tokens} tokens): "
              f"uncached one at a time {old_round_s:.2f} s, batched {round_s:.3f} s ({old_round_s / round_s:.1f}x)")
    print(f"generate {args.prompt_tokens}+{args.new_tokens} tokens, depth {args.depth} on {device}: "
          f"cached {cached_s:.3f} s vs uncached {old_s:.2f} s: {old_s / cached_s:.1f}x faster")
    return 0


if __name__ == "__main__":
    sys.exit(main())
