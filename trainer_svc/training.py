"""The training loop, which talks to the world only through injected objects.

`Trainer(args, emit, controls, on_checkpoint).run()` trains and reports: `emit(event)` must return
at once (the wiring puts events on a bounded queue for a publisher task), `controls.poll()` returns
the commands that arrived since the last call, `controls.wait_while_paused()` blocks until a resume
or stop, and `on_checkpoint(path, step, size, sha256, reason)` is told about every checkpoint
written locally (the wiring uploads it and emits the Checkpoint event). Nothing here knows NATS.

Commands apply at step boundaries: pause (checkpoint, wait, then resume or stop), stop (checkpoint,
return), freeze (parameters by name prefix, or rows of a parameter, stop changing), mix (sources
join or change weight). `--resume` restores model, optimizer, step, data position and RNG, so
N steps straight and N/2 + resume + N/2 give the same losses.

One host sync per step: loss and gradient norm leave the device together in one `.tolist()`.
Under torchrun (WORLD_SIZE > 1) the model is wrapped in DDP and only rank 0 emits and checkpoints;
rank 0's commands are broadcast so every rank pauses, freezes and stops together.
"""
from __future__ import annotations

import datetime
import json
import logging
import math
import os
import queue
import sys
import time
from collections import deque
from contextlib import nullcontext
from pathlib import Path
from typing import Protocol

import torch
import torch.distributed as dist

from shared.model.checkpoint import (checkpoint_path, latest_checkpoint, load_checkpoint, restore_rng_state,
                               save_checkpoint)
from shared.contract.events import (ActivationStats, ControlCommand, EvalResult, Event, MixChange, Sample,
                           Status, StepMetrics, stable_event_id)
from shared.model.generate import generate
from shared.model.gpt import GPT, GPTConfig, build_model, config_for_depth
from trainer_svc.optim import setup_optimizers
from shared.model.tokenizer import BPETokenizer
from trainer_svc.activations import activation_stats
from trainer_svc.data import MixedTokenLoader
from trainer_svc.evaluate import evaluate_bpb, evaluate_core
from trainer_svc.mfu import device_peak_flops, mfu
from trainer_svc.progress import ProgressBar
from trainer_svc.schedule import lr_multiplier

log = logging.getLogger(__name__)

SAMPLE_PROMPTS = ["To be, or not to be", "The king said", "Once upon a time", "I think that"]
SAMPLED_SETTINGS = dict(temperature=0.8, top_k=40)
LOSS_EMA_BETA = 0.9


# --- the injected objects --------------------------------------------------------------------

class Emit(Protocol):
    def __call__(self, event: Event) -> None: ...


class Controls(Protocol):
    def poll(self) -> list[ControlCommand]: ...

    def wait_while_paused(self) -> ControlCommand: ...


class OnCheckpoint(Protocol):
    def __call__(self, path: str, step: int, size: int, sha256: str, reason: str) -> None: ...


class EventLog(list):
    """An `emit` that keeps every event in memory (tests, local runs)."""

    def __call__(self, event: Event) -> None:
        self.append(event)


class LocalControls:
    """In-memory `Controls`: `send` from any thread; the trainer polls at step boundaries."""

    def __init__(self):
        self._queue: queue.Queue[ControlCommand] = queue.Queue()
        self._held: list[ControlCommand] = []  # arrived while paused, applied after resuming

    def send(self, command: ControlCommand) -> None:
        self._queue.put(command)

    def poll(self) -> list[ControlCommand]:
        commands, self._held = self._held, []
        while True:
            try:
                commands.append(self._queue.get_nowait())
            except queue.Empty:
                return commands

    def wait_while_paused(self) -> ControlCommand:
        while True:
            command = self._queue.get()
            if command.action in ("resume", "stop"):
                return command
            self._held.append(command)


def ignore_checkpoint(path: str, step: int, size: int, sha256: str, reason: str) -> None:
    """The default `on_checkpoint`: the file stays local."""


# --- set-up helpers --------------------------------------------------------------------------

def init_distributed(device_choice: str) -> tuple[int, int, torch.device]:
    """(rank, world size, device); joins the torchrun process group when WORLD_SIZE > 1."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    use_cuda = device_choice == "cuda" or (device_choice == "auto" and torch.cuda.is_available())
    if world_size == 1:
        return 0, 1, torch.device("cuda" if use_cuda else "cpu")
    if not dist.is_initialized():  # long timeout: a paused run waits in a broadcast
        dist.init_process_group("nccl" if use_cuda else "gloo", timeout=datetime.timedelta(days=7))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    return dist.get_rank(), world_size, device


def resolve_resume_path(resume: str | None, run_dir: Path) -> Path | None:
    if resume is None:
        return None
    path = latest_checkpoint(run_dir) if resume == "latest" else Path(resume)
    if path is None or not path.exists():
        raise FileNotFoundError(f"--resume {resume}: no checkpoint found (looked in {run_dir})")
    return path


def json_safe(args) -> dict:
    return json.loads(json.dumps(vars(args), default=str))


class Trainer:
    def __init__(self, args, emit: Emit | None = None, controls: Controls | None = None,
                 on_checkpoint: OnCheckpoint | None = None):
        self.args, self.run_id = args, args.run_id
        self.emit_event = emit if emit is not None else EventLog()  # an empty EventLog is falsy
        self.controls = controls if controls is not None else LocalControls()
        self.on_checkpoint = on_checkpoint if on_checkpoint is not None else ignore_checkpoint
        torch.set_num_threads(args.threads)
        torch.manual_seed(args.seed)
        self.rank, self.world_size, self.device = init_distributed(args.device)
        self.use_bf16 = self.device.type == "cuda" and args.dtype in ("auto", "bfloat16")
        if self.device.type == "cuda":
            torch.set_float32_matmul_precision("high")
        self.run_dir = Path(args.out_dir) / args.run_id
        self.step, self.loss_ema, self.tokens_seen = 0, 0.0, 0
        self.status("starting")
        self.resume_path = resolve_resume_path(args.resume, self.run_dir)
        checkpoint = load_checkpoint(self.resume_path) if self.resume_path else None
        self.frozen: dict = {"names": [], "rows": {}}
        self.loader = self.build_loader(checkpoint)
        self.model = self.build_model(checkpoint)
        self.optimizers = setup_optimizers(self.model, args.optimizer, args.lr, args.embedding_lr,
                                           args.unembedding_lr, args.weight_decay)
        if checkpoint:
            self.restore(checkpoint)
        self.train_model = self.wrap_model()
        self.token_bytes = self.tokenizer.token_bytes(self.device)
        self.flops_per_token = self.model.flops_per_token()
        self.peak_flops = device_peak_flops(self.device, torch.bfloat16 if self.use_bf16 else torch.float32)
        self.last_x: torch.Tensor | None = None
        if checkpoint:
            restore_rng_state(checkpoint["rng"])  # last, after everything that draws random numbers

    # --- building ----------------------------------------------------------------------------

    def build_loader(self, checkpoint: dict | None) -> MixedTokenLoader:
        a = self.args
        loader = MixedTokenLoader(a.batch_size, a.seq_len, a.seed, a.val_fraction,
                                  rank=self.rank, world_size=self.world_size)
        if checkpoint:
            self.tokenizer = BPETokenizer.from_json(checkpoint["tokenizer"])
            loader.seq_len = checkpoint["model_config"]["sequence_len"]
            loader.load_state_dict(checkpoint["data"])
            self.primary_sources = checkpoint["meta"].get("primary_sources", sorted(loader.weights))
        else:
            for name, path in a.data:
                loader.add_source(name, path)
            for name, path, step, weight in a.mix:
                loader.add_source(name, path, weight, start_step=step)
            self.primary_sources = [name for name, _ in a.data]
            self.tokenizer = self.train_tokenizer(loader)
        loader.tokenizer = self.tokenizer
        return loader

    def train_tokenizer(self, loader: MixedTokenLoader) -> BPETokenizer:
        """Rank 0 trains the BPE; under DDP the others receive its JSON so all ranks agree."""
        tokenizer_json = [None]
        if self.rank == 0:
            tokenizer_json[0] = BPETokenizer.train(loader.train_text(self.args.tokenizer_chars),
                                                   self.args.vocab_size).to_json()
        if self.world_size > 1:
            dist.broadcast_object_list(tokenizer_json, src=0)
        return BPETokenizer.from_json(tokenizer_json[0])

    def build_model(self, checkpoint: dict | None) -> GPT:
        if checkpoint:
            config = GPTConfig(**checkpoint["model_config"])
        else:
            config = config_for_depth(self.args.depth, self.tokenizer.vocab_size, self.args.seq_len)
        return build_model(config, self.device)

    def restore(self, checkpoint: dict) -> None:
        self.model.load_state_dict(checkpoint["model"])
        for optimizer, state in zip(self.optimizers, checkpoint["optimizers"], strict=True):
            optimizer.load_state_dict(state)
        self.step = checkpoint["step"]
        self.loss_ema = checkpoint["meta"].get("loss_ema", 0.0)
        self.tokens_seen = checkpoint["meta"].get("tokens_seen", 0)
        self.frozen = {"names": list(checkpoint["frozen"]["names"]),
                       "rows": {k: list(v) for k, v in checkpoint["frozen"]["rows"].items()}}

    def wrap_model(self) -> torch.nn.Module:
        model = self.model
        if self.world_size > 1:
            from torch.nn.parallel import DistributedDataParallel
            model = DistributedDataParallel(model, device_ids=[self.device] if self.device.type == "cuda" else None)
        if self.args.compile and self.device.type == "cuda":
            model = torch.compile(model)
        elif self.args.compile:
            log.warning("--compile is used on cuda only; training uncompiled on %s", self.device)
        return model

    def autocast(self):
        return torch.autocast("cuda", dtype=torch.bfloat16) if self.use_bf16 else nullcontext()

    # --- events ------------------------------------------------------------------------------

    def emit(self, event: Event) -> None:
        if self.rank == 0:
            self.emit_event(event)

    def event_id(self, kind: str, *parts) -> str:
        return stable_event_id(self.run_id, kind, self.step, *parts)

    def status(self, state: str, reason: str = "", **detail) -> None:
        self.emit(Status(event_id=self.event_id("status", state, reason, time.time()), run_id=self.run_id,
                         step=self.step, state=state, reason=reason, detail=detail))

    # --- the loop ----------------------------------------------------------------------------

    def run(self) -> str:
        """Train to --steps; returns "finished" or "stopped"."""
        a = self.args
        self.status("running", f"resumed from {self.resume_path}" if self.resume_path else "started",
                    step=self.step, steps=a.steps, device=str(self.device), world_size=self.world_size)
        bar = ProgressBar(a.steps, self.step, enabled=self.rank == 0 and not a.no_progress)
        try:
            while self.step < a.steps:
                if self.apply_commands(self.poll()):
                    return "stopped"
                self.join_scheduled_sources()
                loss, tokens_per_s = self.train_step()
                bar.update(loss, tokens_per_s)
                self.after_step()
            self.finish()
            return "finished"
        except Exception as error:
            self.status("failed", repr(error)[:500])
            raise
        finally:
            bar.close()

    def set_learning_rates(self) -> float:
        multiplier = lr_multiplier(self.step, self.args.steps, self.args.warmup_steps, self.args.warmdown_frac)
        for optimizer in self.optimizers:
            for group in optimizer.param_groups:
                group["lr"] = group["initial_lr"] * multiplier
        return multiplier

    def train_step(self) -> tuple[float, float]:
        a = self.args
        multiplier = self.set_learning_rates()
        started = time.perf_counter()
        loss_sum = torch.zeros((), device=self.device)
        for micro in range(a.grad_accum):
            x, y = self.loader.next_batch(self.device)
            last = micro == a.grad_accum - 1
            sync = self.train_model.no_sync() if self.world_size > 1 and not last else nullcontext()
            with sync:
                with self.autocast():
                    loss = self.train_model(x, y)
                (loss / a.grad_accum).backward()
            loss_sum += loss.detach()
        self.last_x = x
        self.freeze_grads()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), a.grad_clip or math.inf)
        kept_rows = self.frozen_row_values()
        for optimizer in self.optimizers:
            optimizer.step()
        self.restore_rows(kept_rows)
        self.model.zero_grad(set_to_none=True)
        mean_loss = loss_sum / a.grad_accum
        if self.world_size > 1:
            dist.all_reduce(mean_loss, op=dist.ReduceOp.AVG)
        loss, grad_norm = torch.stack([mean_loss.float(), grad_norm.float()]).tolist()  # the one sync
        step_time = time.perf_counter() - started
        tokens = a.batch_size * self.loader.seq_len * a.grad_accum * self.world_size
        self.report_step(loss, grad_norm, multiplier, step_time, tokens)
        return loss, tokens / step_time

    def report_step(self, loss: float, grad_norm: float, multiplier: float, step_time: float, tokens: int) -> None:
        self.tokens_seen += tokens
        self.loss_ema = LOSS_EMA_BETA * self.loss_ema + (1 - LOSS_EMA_BETA) * loss
        smooth = self.loss_ema / (1 - LOSS_EMA_BETA ** (self.step + 1))  # de-biased
        tokens_per_s = tokens / step_time
        matrix_lr = self.optimizers[-1].param_groups[-1]["lr"]
        self.emit(StepMetrics(
            event_id=self.event_id("step"), run_id=self.run_id, step=self.step, loss=loss,
            loss_smooth=smooth, lr=matrix_lr, grad_norm=grad_norm, tokens_per_s=tokens_per_s,
            step_time_s=step_time, tokens_seen=self.tokens_seen, data_mix=self.loader.mix(),
            mfu=mfu(self.flops_per_token, tokens_per_s, self.peak_flops, self.world_size)))
        self.step += 1

    def due(self, every: int) -> bool:
        return every > 0 and self.step % every == 0

    def after_step(self) -> None:
        a = self.args
        if self.rank == 0:
            if self.due(a.activations_every):
                self.report_activations()
            if self.due(a.eval_every):
                self.report_evaluation()
            if self.due(a.sample_every):
                self.report_samples()
        if self.due(a.checkpoint_every) and self.step < a.steps:
            self.checkpoint("interval")

    def finish(self) -> None:
        a = self.args
        if self.rank == 0:
            if not self.due(a.eval_every):
                self.report_evaluation()
            if a.sample_every and not self.due(a.sample_every):
                self.report_samples()
        self.checkpoint("final")
        self.status("finished", step=self.step, tokens_seen=self.tokens_seen)

    # --- periodic reports --------------------------------------------------------------------

    def report_activations(self) -> None:
        layers = activation_stats(self.model, self.last_x, self.autocast())
        self.emit(ActivationStats(event_id=self.event_id("activations"), run_id=self.run_id,
                                  step=self.step, layers=layers))

    def report_evaluation(self) -> None:
        a = self.args
        per_source = {}
        for name in sorted(set(self.primary_sources) | set(self.loader.weights)):
            batches = self.loader.val_batches(name, a.eval_tokens, a.batch_size, self.device)
            bpb = evaluate_bpb(self.model, batches, self.token_bytes, self.autocast())
            if bpb is not None:
                per_source[name] = bpb
        primary = [per_source[n] for n in self.primary_sources if n in per_source]
        if primary:
            details = {f"bpb:{name}": value for name, value in per_source.items()}
            self.emit(EvalResult(event_id=self.event_id("eval", "val_bpb"), run_id=self.run_id, step=self.step,
                                 name="val_bpb", value=sum(primary) / len(primary),
                                 details={**details, "tokens_per_source": a.eval_tokens}))
        if a.core_bundle:
            self.report_core()

    def report_core(self) -> None:
        results = evaluate_core(self.model, self.tokenizer, self.args.core_bundle, self.model.config.sequence_len,
                                self.device, self.args.batch_size, self.args.core_max_examples, self.autocast())
        for task, result in results.items():
            self.emit(EvalResult(event_id=self.event_id("eval", f"core:{task}"), run_id=self.run_id,
                                 step=self.step, name=f"core:{task}", value=result["centered"], details=result))
        if results:
            mean = sum(r["centered"] for r in results.values()) / len(results)
            self.emit(EvalResult(event_id=self.event_id("eval", "core"), run_id=self.run_id, step=self.step,
                                 name="core", value=mean, details={"tasks": len(results)}))

    def report_samples(self) -> None:
        n = self.args.sample_tokens
        for i, prompt in enumerate(SAMPLE_PROMPTS):
            with self.autocast():
                greedy = generate(self.model, self.tokenizer, prompt, n)
                seed = self.args.seed + self.step + i
                sampled = generate(self.model, self.tokenizer, prompt, n, seed=seed, **SAMPLED_SETTINGS)
            self.emit(Sample(event_id=self.event_id("sample", i, "greedy"), run_id=self.run_id, step=self.step,
                             prompt=prompt, text=greedy, mode="greedy", max_new_tokens=n))
            self.emit(Sample(event_id=self.event_id("sample", i, "sampled"), run_id=self.run_id, step=self.step,
                             prompt=prompt, text=sampled, mode="sampled", seed=seed, max_new_tokens=n,
                             **SAMPLED_SETTINGS))

    def checkpoint(self, reason: str) -> None:
        if self.rank != 0:
            return
        path = checkpoint_path(self.run_dir, self.step)
        meta = {"run_id": self.run_id, "reason": reason, "created": time.time(), "args": json_safe(self.args),
                "loss_ema": self.loss_ema, "tokens_seen": self.tokens_seen,
                "primary_sources": list(self.primary_sources)}
        size, sha256 = save_checkpoint(path, model=self.model, optimizers=self.optimizers, step=self.step,
                                       tokenizer_json=self.tokenizer.to_json(), data_state=self.loader.state_dict(),
                                       meta=meta, frozen=self.frozen)
        self.on_checkpoint(str(path), self.step, size, sha256, reason)

    def join_scheduled_sources(self) -> None:
        joined = self.loader.activate_due(self.step)
        if joined:
            self.emit(MixChange(event_id=self.event_id("mix", *joined), run_id=self.run_id, step=self.step,
                                weights=self.loader.mix(), reason=f"scheduled: {', '.join(joined)} joined"))

    # --- commands ----------------------------------------------------------------------------

    def poll(self) -> list[ControlCommand]:
        commands = [self.controls.poll() if self.rank == 0 else None]
        if self.world_size > 1:
            dist.broadcast_object_list(commands, src=0)
        return commands[0]

    def wait_while_paused(self, pending: deque) -> ControlCommand:
        """The resume/stop that ends a pause: from the commands already polled, else wait for one."""
        for command in pending:
            if command.action in ("resume", "stop"):
                pending.remove(command)
                return command
        command = [self.controls.wait_while_paused() if self.rank == 0 else None]
        if self.world_size > 1:
            dist.broadcast_object_list(command, src=0)
        return command[0]

    def apply_commands(self, commands: list[ControlCommand]) -> bool:
        """Apply commands in order at this step boundary; True when training must stop."""
        pending = deque(commands)
        while pending:
            command = pending.popleft()
            if command.action == "pause":
                self.checkpoint("pause")
                self.status("paused", command.reason, who=command.who, command_id=command.event_id)
                command = self.wait_while_paused(pending)
                if command.action == "resume":
                    self.status("running", command.reason or "resumed", who=command.who)
            if command.action == "stop":
                self.checkpoint("stop")
                self.status("stopped", command.reason, who=command.who, command_id=command.event_id)
                return True
            if command.action == "freeze":
                self.apply_freeze(command)
            elif command.action == "mix":
                self.apply_mix(command)
        return False

    def reject(self, command: ControlCommand, error: Exception) -> None:
        """A bad command is reported and ignored; it never ends the run."""
        log.warning("%s command rejected: %s", command.action, error)
        self.status("running", f"{command.action} rejected: {error}"[:500], command_id=command.event_id)

    def apply_freeze(self, command: ControlCommand) -> None:
        params = dict(self.model.named_parameters())
        names, rows = command.args.names, command.args.rows
        try:
            for prefix in names:
                if not any(matches_prefix(n, prefix) for n in params):
                    raise KeyError(f"no parameter named {prefix!r}")
            for name, indices in rows.items():
                if name not in params or any(not 0 <= r < params[name].size(0) for r in indices):
                    raise KeyError(f"bad rows for {name!r}")
        except KeyError as error:
            return self.reject(command, error)
        self.frozen["names"] = sorted(set(self.frozen["names"]) | set(names))
        for name, indices in rows.items():
            self.frozen["rows"][name] = sorted(set(self.frozen["rows"].get(name, [])) | set(indices))
        self.status("running", f"froze names={names} rows={rows}"[:500], command_id=command.event_id)

    def apply_mix(self, command: ControlCommand) -> None:
        mix = command.args
        added = []
        try:
            for name, path_or_texts in {**mix.paths, **mix.texts}.items():
                if name not in self.loader.sources:
                    self.loader.add_source(name, path_or_texts, mix.weights.get(name, 1.0))
                    added.append(name)
                    self.loader.prepare(name)
            self.loader.set_weights(mix.weights)
        except (OSError, ValueError, KeyError) as error:
            for name in added:
                self.loader.remove_source(name)
            return self.reject(command, error)
        self.emit(MixChange(event_id=self.event_id("mix", command.event_id), run_id=self.run_id, step=self.step,
                            weights=self.loader.mix(), reason=command.reason or "command"))

    # --- freezing ----------------------------------------------------------------------------

    def frozen_params(self) -> list[torch.nn.Parameter]:
        return [p for n, p in self.model.named_parameters()
                if any(matches_prefix(n, prefix) for prefix in self.frozen["names"])]

    def freeze_grads(self) -> None:
        """Frozen parameters get no gradient (so no optimizer update); frozen rows get zeros."""
        for p in self.frozen_params():
            p.grad = None
        params = dict(self.model.named_parameters())
        for name, rows in self.frozen["rows"].items():
            if params[name].grad is not None:
                params[name].grad[rows] = 0

    def frozen_row_values(self) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Rows to put back after the step: momentum and weight decay would still move them."""
        params = dict(self.model.named_parameters())
        kept = []
        for name, rows in self.frozen["rows"].items():
            index = torch.tensor(rows, device=self.device, dtype=torch.long)
            kept.append((params[name], index, params[name].detach()[index].clone()))
        return kept

    @staticmethod
    @torch.no_grad()
    def restore_rows(kept: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]) -> None:
        for param, index, values in kept:
            param[index] = values


def matches_prefix(name: str, prefix: str) -> bool:
    prefix = prefix.rstrip(".")
    return name == prefix or name.startswith(prefix + ".")


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
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
