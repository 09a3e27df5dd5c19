"""The training loop, which talks to the world only through injected objects (trainer_svc/hooks.py).

`Trainer(args, emit, controls, on_checkpoint).run()` trains and reports. `__init__` builds the run
(trainer_svc/build.py); `run` is the loop, read top to bottom: apply the commands that arrived,
follow the run's reflection schedule, let scheduled sources join, take one optimizer step, report
it, run the periodic reports and checkpoints (at the interval and at the run's reflection steps).
Nothing here knows NATS.

Commands apply at step boundaries: pause (checkpoint, wait, then resume or stop), stop (checkpoint,
return), freeze (parameters by name prefix, or rows of a parameter, stop changing), mix (sources
join or change weight). `--resume` restores model, optimizer, step, data position and RNG, so
N steps straight and N/2 + resume + N/2 give the same losses.

One host sync per step: loss and gradient norm leave the device together in one `.tolist()`.
Under torchrun (WORLD_SIZE > 1) the model is wrapped in DDP and only rank 0 emits and checkpoints;
rank 0's commands are broadcast so every rank pauses, freezes and stops together.
"""
from __future__ import annotations

import json
import logging
import math
import sys
import time
from collections import deque
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist

from shared.contract.events import ControlCommand, Event, MixChange, Status, StepMetrics, stable_event_id
from shared.model.checkpoint import checkpoint_path, checkpoint_state, load_checkpoint, restore_rng_state
from trainer_svc import commands, probe_sets, reports
from trainer_svc.batch_log import BatchLog
from trainer_svc.build import (build_data, build_gpt, init_distributed, resolve_resume_path, restore_weights,
                               wrap_model)
from trainer_svc.checkpointing import CheckpointWriter
from trainer_svc.core_bundle import core_tasks
from trainer_svc.freezing import Frozen, restore_rows
from trainer_svc.hooks import (Controls, Emit, EventLog, LocalControls, OnCheckpoint,  # noqa: F401 - re-exported
                               ignore_checkpoint)
from trainer_svc.mfu import device_peak_flops, mfu
from trainer_svc.optim import setup_optimizers
from trainer_svc.progress import ProgressBar
from trainer_svc.schedule import lr_multiplier

log = logging.getLogger(__name__)

LOSS_EMA_BETA = 0.9


def due(every: int, step: int) -> bool:
    """A report every `every` steps is due after `step` steps (never when `every` is 0: off)."""
    return every > 0 and step % every == 0


def due_at_end(every: int, step: int) -> bool:
    """A report that is on but did not fall on the last step runs once more at the end."""
    return every > 0 and step % every != 0


@dataclass
class Progress:
    """How far the run is: optimizer steps taken, tokens trained on, the loss's moving average."""
    step: int = 0
    tokens_seen: int = 0
    loss_ema: float = 0.0

    @classmethod
    def from_checkpoint(cls, checkpoint: dict) -> Progress:
        meta = checkpoint["meta"]
        return cls(checkpoint["step"], meta.get("tokens_seen", 0), meta.get("loss_ema", 0.0))

    def advance(self, loss: float, tokens: int) -> float:
        """Count one step; returns the de-biased moving average of the loss."""
        self.tokens_seen += tokens
        self.loss_ema = LOSS_EMA_BETA * self.loss_ema + (1 - LOSS_EMA_BETA) * loss
        smooth = self.loss_ema / (1 - LOSS_EMA_BETA ** (self.step + 1))
        self.step += 1
        return smooth


def json_safe(args) -> dict:
    return json.loads(json.dumps(vars(args), default=str))


class Trainer:
    bar: ProgressBar | None = None  # the terminal's progress bar while run() trains

    def __init__(self, args, emit: Emit | None = None, controls: Controls | None = None,
                 on_checkpoint: OnCheckpoint | None = None):
        self.args, self.run_id = args, args.run_id
        self.emit_event = emit if emit is not None else EventLog()  # an empty EventLog is falsy
        self.controls = controls if controls is not None else LocalControls()
        self.on_checkpoint = on_checkpoint if on_checkpoint is not None else ignore_checkpoint
        self.checkpoints = CheckpointWriter(self.on_checkpoint)
        torch.set_num_threads(args.threads)
        torch.manual_seed(args.seed)
        self.placement = init_distributed(args.device, args.dtype)
        self.device = self.placement.device
        self.run_dir = Path(args.out_dir) / args.run_id
        self.progress = Progress()
        self.status("starting")

        self.resume_path = resolve_resume_path(args.resume, self.run_dir)
        checkpoint = load_checkpoint(self.resume_path) if self.resume_path else None
        self.loader, self.tokenizer, self.primary_sources = build_data(args, self.placement, checkpoint)
        self.data_roots = commands.data_roots(
            [*args.data_root, *(s.path for s in self.loader.sources.values() if s.path)])
        self.model = build_gpt(args, self.tokenizer, self.placement, checkpoint)
        self.optimizers = setup_optimizers(self.model, args.optimizer, args.lr, args.embedding_lr,
                                           args.unembedding_lr, args.weight_decay)
        self.frozen = Frozen()
        if checkpoint:
            restore_weights(self.model, self.optimizers, checkpoint)
            self.progress = Progress.from_checkpoint(checkpoint)
            self.frozen = Frozen.from_dict(checkpoint["frozen"])
        self.train_model = wrap_model(self.model, args.compile, self.placement)

        self.token_bytes = self.tokenizer.token_bytes(self.device)
        self.flops_per_token = self.model.flops_per_token()
        dtype = torch.bfloat16 if self.placement.use_bf16 else torch.float32
        self.peak_flops = device_peak_flops(self.device, dtype)
        self.activations: torch.Tensor | None = None  # statistics the measuring step's forward gathered
        # read once (built at first use for "auto"); only the rank that evaluates needs them
        self.core_tasks = core_tasks(args.core_bundle, args.state_dir) if self.placement.is_main and args.core_every else {}
        self.batch_log = BatchLog(args.batch_log) if args.batch_log and self.placement.is_main else None
        self.reflect_every, self.reflect_schedule_id = 0, ""  # the run's reflection schedule (0: none)
        self.probe_set = self.start_probes()  # a getter: None until the data is there
        if checkpoint:
            restore_rng_state(checkpoint["rng"])  # last, after everything that draws random numbers

    def start_probes(self):
        """A getter of this run's bias-probe set: None until it is ready, or always when they are off."""
        a = self.args
        if a.bias_probes == "none" or not a.eval_every or not self.placement.is_main:
            return lambda: None
        step_tokens = a.batch_size * self.loader.seq_len * a.grad_accum  # one rank's: rank 0 probes alone
        return probe_sets.start_loading(Path(a.state_dir), lambda items: probe_sets.subset_for_run(
            items, self.tokenizer, a.bias_probe_examples, step_tokens, a.eval_every))

    @property
    def step(self) -> int:
        return self.progress.step

    # --- the loop ----------------------------------------------------------------------------

    def run(self) -> str:
        """Train to --steps; returns "finished" or "stopped"."""
        a, world_size = self.args, self.placement.world_size
        self.status("running", f"resumed from {self.resume_path}" if self.resume_path else "started",
                    step=self.step, steps=a.steps, device=str(self.device), world_size=world_size)
        self.bar = bar = ProgressBar(a.steps, self.step, enabled=self.placement.is_main and not a.no_progress)
        try:
            while self.step < a.steps:
                if self.apply_commands(commands.poll(self.controls, self.placement)):
                    return "stopped"
                self.follow_reflect_schedule()
                self.join_scheduled_sources()
                self.set_learning_rates()
                started = time.perf_counter()
                loss, grad_norm = self.train_step(measure=due(a.activations_every, self.step + 1))
                step_time = time.perf_counter() - started
                tokens = a.batch_size * self.loader.seq_len * a.grad_accum * world_size
                self.report_step(loss, grad_norm, step_time, tokens)
                bar.update(loss, tokens / step_time)
                self.report(activations=due(a.activations_every, self.step),
                            evaluation=due(a.eval_every, self.step), samples=due(a.sample_every, self.step),
                            core=due(a.core_every, self.step))
                if self.checkpoint_due() and self.step < a.steps:
                    self.checkpoint("interval")
            self.report(activations=False, evaluation=due_at_end(a.eval_every, self.step),
                        samples=due_at_end(a.sample_every, self.step), core=due_at_end(a.core_every, self.step))
            self.checkpoint("final")
            self.status("finished", step=self.step, tokens_seen=self.progress.tokens_seen)
            return "finished"
        except Exception as error:
            self.status("failed", repr(error)[:500])
            raise
        finally:
            bar.close()
            if self.batch_log:
                self.batch_log.close()
            self.checkpoints.wait()  # never leave a checkpoint half written behind us

    def checkpoint_due(self) -> bool:
        """At --checkpoint-every, and at the steps the run reflects on (selfplay reflects on
        checkpoints, so `introspect prompt every N` below the interval needs these)."""
        return due(self.args.checkpoint_every, self.step) or due(self.reflect_every, self.step)

    def follow_reflect_schedule(self) -> None:
        """Take up a new reflection schedule from the controls and say so, answering its id."""
        schedule = self.controls.reflect_schedule if self.placement.is_main else None
        if schedule is None or schedule.command_id == self.reflect_schedule_id:
            return
        self.reflect_every, self.reflect_schedule_id = schedule.every, schedule.command_id
        self.emit(Status(event_id=self.event_id("status", "schedule", schedule.command_id), run_id=self.run_id,
                         step=self.step, state="running", command_id=schedule.command_id, outcome="applied",
                         reason=f"checkpoints every {schedule.every} steps too, for reflections",
                         detail={"reflect_every": schedule.every, "who": schedule.who}))

    def set_learning_rates(self) -> None:
        multiplier = lr_multiplier(self.step, self.args.steps, self.args.warmup_steps, self.args.warmdown_frac)
        for optimizer in self.optimizers:
            for group in optimizer.param_groups:
                group["lr"] = group["initial_lr"] * multiplier

    def train_step(self, measure: bool = False) -> tuple[float, float]:
        """One optimizer step over --grad-accum micro-batches; (mean loss, gradient norm). With
        `measure`, the last micro-batch's forward also gathers activation statistics (left on
        the device in self.activations for the report after the step)."""
        a = self.args
        distributed = self.placement.world_size > 1
        loss_sum = torch.zeros((), device=self.device)
        for micro in range(a.grad_accum):
            x, y = self.loader.next_batch(self.device)
            if self.batch_log:
                self.batch_log.write(self.step, micro, x)
            last = micro == a.grad_accum - 1
            with self.train_model.no_sync() if distributed and not last else nullcontext():
                with self.placement.autocast():
                    if measure and last:
                        loss, self.activations = self.train_model(x, y, with_stats=True)
                    else:
                        loss = self.train_model(x, y)
                (loss / a.grad_accum).backward()
            loss_sum += loss.detach()
        self.frozen.zero_grads(self.model)
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), a.grad_clip or math.inf)
        kept_rows = self.frozen.kept_rows(self.model)
        for optimizer in self.optimizers:
            optimizer.step()
        restore_rows(kept_rows)
        self.model.zero_grad(set_to_none=True)
        mean_loss = loss_sum / a.grad_accum
        if distributed:
            dist.all_reduce(mean_loss, op=dist.ReduceOp.AVG)
        loss, grad_norm = torch.stack([mean_loss.float(), grad_norm.float()]).tolist()  # the one sync
        return loss, grad_norm

    def join_scheduled_sources(self) -> None:
        joined = self.loader.activate_due(self.step)
        if joined:
            self.emit(MixChange(event_id=self.event_id("mix", *joined), run_id=self.run_id, step=self.step,
                                weights=self.loader.mix(), reason=f"scheduled: {', '.join(joined)} joined"))

    # --- events ------------------------------------------------------------------------------

    def emit(self, event: Event) -> None:
        if self.placement.is_main:
            self.emit_event(event)

    def event_id(self, kind: str, *parts) -> str:
        return stable_event_id(self.run_id, kind, self.step, *parts)

    def status(self, state: str, reason: str = "", answers: ControlCommand | None = None,
               outcome: str = "applied", **detail) -> None:
        """Emit a Status; one that `answers` a command names it and its outcome."""
        command_id = answers.event_id if answers else ""
        self.emit(Status(event_id=self.event_id("status", state, reason, time.time()), run_id=self.run_id,
                         step=self.step, state=state, reason=reason, detail=detail, command_id=command_id,
                         outcome=outcome if answers else ""))

    def report_step(self, loss: float, grad_norm: float, step_time: float, tokens: int) -> None:
        step = self.step
        smooth = self.progress.advance(loss, tokens)
        tokens_per_s = tokens / step_time
        matrix_lr = self.optimizers[-1].param_groups[-1]["lr"]
        self.emit(StepMetrics(
            event_id=stable_event_id(self.run_id, "step", step), run_id=self.run_id, step=step, loss=loss,
            loss_smooth=smooth, lr=matrix_lr, grad_norm=grad_norm, tokens_per_s=tokens_per_s,
            step_time_s=step_time, tokens_seen=self.progress.tokens_seen, data_mix=self.loader.mix(),
            mfu=mfu(self.flops_per_token, tokens_per_s, self.peak_flops, self.placement.world_size)))

    def report(self, activations: bool, evaluation: bool, samples: bool, core: bool = False) -> None:
        """Rank 0 runs the reports asked for and emits their events."""
        if not self.placement.is_main:
            return
        a, placement, run_id, step = self.args, self.placement, self.run_id, self.step
        found: list[Event] = []
        if activations and self.activations is not None:
            found += reports.activations_report(self.activations, run_id, step)
            self.activations = None
        if evaluation:
            sources = sorted(set(self.primary_sources) | set(self.loader.weights))
            found += reports.bpb_report(self.model, self.loader, sources, self.primary_sources, a.eval_tokens,
                                        a.batch_size, self.token_bytes, placement, run_id, step)
            if (probe_set := self.probe_set()) is not None:
                found += reports.probes_report(self.model, self.tokenizer, probe_set,
                                               a.batch_size * self.loader.seq_len, placement, run_id, step)
        if core and self.core_tasks:
            found += reports.core_report(self.model, self.tokenizer, self.core_tasks, a.batch_size,
                                         a.core_max_examples, placement, run_id, step)
        if samples:
            found += reports.samples_report(self.model, self.tokenizer, a.sample_tokens, a.seed, placement,
                                            run_id, step)
        for event in found:
            self.emit(event)

    def checkpoint(self, reason: str) -> None:
        """Snapshot now; write in the background, except at the end, a pause or a stop, where a
        restart must find the checkpoint complete."""
        if not self.placement.is_main:
            return
        self.checkpoints.wait()  # the last one first: one snapshot in host memory at a time
        path = checkpoint_path(self.run_dir, self.step)
        meta = {"run_id": self.run_id, "reason": reason, "created": time.time(), "args": json_safe(self.args),
                "loss_ema": self.progress.loss_ema, "tokens_seen": self.progress.tokens_seen,
                "primary_sources": list(self.primary_sources)}
        state = checkpoint_state(model=self.model, optimizers=self.optimizers, step=self.step,
                                 tokenizer_json=self.tokenizer.to_json(), data_state=self.loader.state_dict(),
                                 meta=meta, frozen=self.frozen.as_dict())
        self.checkpoints.submit(path, state, self.step, reason, wait=reason != "interval")

    # --- commands ----------------------------------------------------------------------------

    def apply_commands(self, polled: list[ControlCommand]) -> bool:
        """Apply commands in order at this step boundary; True when training must stop."""
        pending = deque(polled)
        while pending:
            command = pending.popleft()
            if command.action == "pause":
                ending = self.pause(command, pending)
                if ending.action == "stop":
                    self.stop(ending)
                    return True
            elif command.action == "stop":
                self.stop(command)
                return True
            elif command.action == "freeze":
                self.freeze(command)
            elif command.action == "mix":
                self.mix(command)
        return False

    def pause(self, command: ControlCommand, pending: deque) -> ControlCommand:
        """Checkpoint, then wait; returns the resume or stop that ended the pause."""
        self.checkpoint("pause")
        self.status("paused", command.reason, answers=command, who=command.who)
        if self.bar:
            self.bar.paused(command.reason)
        ending = commands.wait_for_resume_or_stop(self.controls, pending, self.placement)
        if self.bar:
            self.bar.resumed()
        if ending.action == "resume":
            self.status("running", ending.reason or "resumed", answers=ending, who=ending.who)
        return ending

    def stop(self, command: ControlCommand) -> None:
        self.checkpoint("stop")
        self.status("stopped", command.reason, answers=command, who=command.who)

    def freeze(self, command: ControlCommand) -> None:
        names, rows = command.args.names, command.args.rows
        try:
            self.frozen = self.frozen.with_added(self.model, names, rows)
        except (KeyError, ValueError, TypeError, IndexError) as error:  # never the end of the run
            return self.reject(command, error)
        self.status("running", f"froze names={names} rows={rows}"[:500], answers=command)

    def mix(self, command: ControlCommand) -> None:
        try:
            joined = commands.apply_mix(self.loader, command.args, self.data_roots)
        except (OSError, ValueError, KeyError) as error:
            return self.reject(command, error)
        reason = command.reason or "command"
        if joined:
            reason += "; joined: " + ", ".join(self.loader.describe(name) for name in joined)
        self.emit(MixChange(event_id=self.event_id("mix", command.event_id), run_id=self.run_id, step=self.step,
                            weights=self.loader.mix(), reason=reason))
        self.status("running", f"mix is now {self.loader.mix()}"[:500], answers=command)

    def reject(self, command: ControlCommand, error: Exception) -> None:
        """A bad command is reported and ignored; it never ends the run."""
        log.warning("%s command rejected: %s", command.action, error)
        self.status("running", f"{command.action} rejected: {error}"[:500], answers=command, outcome="rejected")


def main(argv: list[str] | None = None) -> int:
    """Train locally without the bus: events are logged, nothing is uploaded."""
    from trainer_svc.options import parse_args
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    def log_event(event: Event) -> None:
        if not isinstance(event, StepMetrics):
            log.info("%s", event)

    state = Trainer(parse_args(argv), emit=log_event).run()
    print(state, file=sys.stderr)
    if dist.is_initialized():
        dist.barrier()  # every rank done (rank 0 may still be checkpointing) before gloo/NCCL go down
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
