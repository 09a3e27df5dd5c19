"""What publishing costs the training loop: tokens/s with every event on the bus against the bus off.

Both sides train the same small GPT on the CPU with the same config, seed and report intervals, so
they do the same training work: steps, activation statistics, evaluations, samples and local
checkpoints. With the bus on, the trainer is wired as `python -m trainer_svc` wires it: events go
through trainer_svc/wiring.py, as `python -m trainer_svc` wires it (bounded queue, publisher thread
with its own event loop) to this bench's own nats-server, checkpoints are uploaded to the object
store, and the controls watch the control bucket and consume freeze/mix commands. With the bus off, `emit` is a no-op and checkpoints stay local.

tokens/s is wall time between the StepMetrics events of step --warmup and of the last step, so it
counts everything the loop does in between (periodic reports and each emit included); the warm-up
steps and the final evaluation are not timed. After an untimed short run (first-run costs), runs
go A B B A (bus on, off, off, on, ...) so a drift in machine speed cancels, and each side's
tokens/s is its tokens over its summed time. Expect about +-1.5% run-to-run noise on a shared
2-core machine; --repeats 2 halves it (about 60 s).
torch gets --threads 1 by default: on 2 cores the second is left to the publisher thread and the
server, as a trainer on its own machine would leave them room; use --threads to see contention.

    python bench/trainer_overhead.py [--steps 120] [--repeats 1] [--threads 1] [--depth 2]
Last line: tokens/s with events over tokens/s with the bus off (target >= 0.98).
"""
import argparse
import logging
import random
import statistics
import tempfile
import time
from pathlib import Path

from _servers import bench_servers

from shared.contract import events
from shared.contract.settings import load_settings
from trainer_svc.options import parse_args
from trainer_svc.training import Trainer
from trainer_svc.wiring import wire

WORDS = ("the king queen said to be or not that is question of love death night day sword crown "
         "river stone light shadow page").split()


def write_corpus(path: Path, lines: int = 5000) -> Path:
    rng = random.Random(0)
    path.write_text("\n".join(" ".join(rng.choices(WORDS, k=12)) for _ in range(lines)) + "\n")
    return path


def trainer_args(args, corpus: Path, out_dir: Path, run_id: str):
    return parse_args([
        "--run-id", run_id, "--data", f"main={corpus}", "--out-dir", str(out_dir), "--no-progress",
        "--depth", str(args.depth), "--seq-len", str(args.seq_len), "--batch-size", str(args.batch_size),
        "--vocab-size", "512", "--steps", str(args.steps), "--threads", str(args.threads),
        "--activations-every", "10", "--eval-every", "50", "--eval-tokens", "8192", "--core-bundle", "none",
        "--sample-every", "50", "--checkpoint-every", "100", "--bias-probes", "none"])  # the bus, not the probes


class StepClock:
    """Wraps an emit: stamps each StepMetrics and counts what was emitted."""

    def __init__(self, emit):
        self.emit, self.stamps, self.emitted, self.reported = emit, {}, 0, []

    def __call__(self, event) -> None:
        if isinstance(event, events.StepMetrics):
            self.stamps[event.step] = time.perf_counter()
            self.reported.append(event.tokens_per_s)
        self.emitted += 1
        self.emit(event)

    def timed(self, warmup: int) -> tuple[int, float]:
        """(steps, seconds) from step `warmup` to the last step."""
        last = max(self.stamps)
        return last - warmup, self.stamps[last] - self.stamps[warmup]


def run_bus_off(args, corpus: Path, out_dir: Path, run_id: str) -> StepClock:
    clock = StepClock(lambda event: None)
    Trainer(trainer_args(args, corpus, out_dir, run_id), clock).run()
    return clock


def run_bus_on(args, corpus: Path, out_dir: Path, run_id: str, nats_url: str) -> StepClock:
    trainer_options = trainer_args(args, corpus, out_dir, run_id)
    wiring = wire(trainer_options, load_settings({}, nats_url=nats_url))
    assert wiring.start(timeout=10), "publisher did not connect"
    clock = StepClock(wiring.emit)

    def on_checkpoint(path: str, step: int, size: int, sha256: str, reason: str) -> None:
        clock.emitted += 1
        wiring.on_checkpoint(path, step, size, sha256, reason)

    try:
        Trainer(trainer_options, clock, wiring.controls, on_checkpoint).run()
    finally:
        wiring.close()
    publisher = wiring.publisher
    assert publisher.published == clock.emitted and not publisher.outbox.pending(), (
        f"published {publisher.published} of {clock.emitted} events")
    return clock


def main(args) -> None:
    logging.getLogger().addHandler(logging.NullHandler())  # no "nats disconnected" at each close
    on: list[StepClock] = []
    off: list[StepClock] = []
    with bench_servers(migrate=False) as (nats_url, _), tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        corpus = write_corpus(work / "corpus.txt")
        warm = argparse.Namespace(**{**vars(args), "steps": args.warmup_run_steps})
        run_bus_on(warm, corpus, work, "warm", nats_url)  # first-run costs (allocator, lazy init)
        for i in range(args.repeats):
            order = ("on", "off") if i % 2 == 0 else ("off", "on")
            for side in order + order[::-1]:  # A B B A
                run_id = f"{side}{len(on) + len(off)}"
                if side == "on":
                    on.append(run_bus_on(args, corpus, work, run_id, nats_url))
                else:
                    off.append(run_bus_off(args, corpus, work, run_id))
    tokens_per_step = args.batch_size * args.seq_len
    rate = {}
    for side, clocks in (("events on the bus", on), ("bus off", off)):
        timed = [c.timed(args.warmup) for c in clocks]
        steps, seconds = map(sum, zip(*timed))
        rate[side] = steps * tokens_per_step / seconds
        runs = ", ".join(f"{s * tokens_per_step / t:,.0f}" for s, t in timed)
        own = statistics.median(x for c in clocks for x in c.reported[args.warmup:])
        print(f"{side:17}: {rate[side]:,.0f} tokens/s over {steps} steps (runs: {runs}; "
              f"median of the trainer's own per-step figure {own:,.0f})")
    print(f"published a run with the bus on: {on[0].emitted} events (checkpoint uploads included)")
    with_events, bus_off = rate["events on the bus"], rate["bus off"]
    print(f"config: depth {args.depth}, seq {args.seq_len}, batch {args.batch_size}, {args.steps} steps "
          f"({args.warmup} warm-up), threads {args.threads}, runs A B B A x {args.repeats}")
    print(f"trainer overhead: tokens/s with events {with_events:,.0f} vs bus off {bus_off:,.0f} "
          f"= ratio {with_events / bus_off:.3f} (target >= 0.98)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=120, help="optimizer steps per run")
    parser.add_argument("--warmup", type=int, default=10, help="first steps not timed")
    parser.add_argument("--warmup-run-steps", type=int, default=30,
                        help="steps of an untimed first run, bus on, before the A B B A runs")
    parser.add_argument("--repeats", type=int, default=1, help="A B B A rounds (4 runs each)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads, both sides")
    parser.add_argument("--depth", type=int, default=2, help="transformer layers (width 64 x depth)")
    parser.add_argument("--seq-len", type=int, default=128, help="tokens per sequence")
    parser.add_argument("--batch-size", type=int, default=8, help="sequences per step")
    main(parser.parse_args())
