"""Helpers the tests share (conftest.py turns some into fixtures): a small corpus, the trainer
options of a tiny, fast run, one valid event of every kind, who answers service discovery, and
waiting for an event or a journal row."""
from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path

import msgspec
import nats

from shared.contract import events as ev
from shared.contract.events import new_event_id
from trainer_svc.options import parse_args

WORDS = "the king queen said to be or not that is question of love death night day sword crown".split()


def write_corpus(path: Path, n_lines: int = 400, seed: int = 0, words: list[str] = WORDS) -> Path:
    rng = random.Random(seed)
    path.write_text("\n".join(" ".join(rng.choices(words, k=9)) for _ in range(n_lines)) + "\n")
    return path


def tiny_run_args(tmp_path: Path, *extra: str, run_id: str = "t"):
    """A 12-step run of a one-layer GPT on tmp_path/corpus.txt, reports and checkpoints off;
    `extra` flags override these."""
    data = tmp_path / "corpus.txt"
    if not data.exists():
        write_corpus(data)
    return parse_args([
        "--run-id", run_id, "--data", f"main={data}", "--depth", "1", "--seq-len", "32", "--vocab-size", "300",
        "--batch-size", "4", "--steps", "12", "--warmup-steps", "2", "--threads", "1",
        "--eval-every", "0", "--sample-every", "0", "--activations-every", "0", "--checkpoint-every", "0",
        "--eval-tokens", "256", "--bias-probes", "none", "--core-bundle", "none", "--no-progress", "--out-dir", str(tmp_path / "ckpt"),
        *extra])


def one_of_each(run_id: str = "r1", step: int = 10) -> list[ev.Event]:
    """One valid example of every event kind, for contract and persistence tests."""
    base = lambda: {"event_id": new_event_id(), "run_id": run_id, "step": step}  # noqa: E731
    layer = ev.LayerStats(layer=0, name="block.0.resid", rms=1.0, mean=0.0, std=1.0, max_abs=3.0,
                          max_channel=5, dead_frac=0.1)
    return [
        ev.StepMetrics(**base(), loss=3.2, loss_smooth=3.3, lr=1e-3, grad_norm=0.5,
                       tokens_per_s=1000.0, step_time_s=0.1, mfu=None, tokens_seen=4096,
                       data_mix={"shakespeare": 1.0}),
        ev.ActivationStats(**base(), layers=[layer, ev.LayerStats(**{**msgspec.structs.asdict(layer),
                                                                      "name": "block.0.mlp"})]),
        ev.Sample(**base(), prompt="Once", text="Once upon a time", mode="greedy"),
        ev.EvalResult(**base(), name="val_bpb", value=1.9),
        ev.Checkpoint(**base(), object_name=f"{run_id}/step_{step:08d}.pt", size=123, sha256="ab" * 32),
        ev.Status(**base(), state="running"),
        ev.MixChange(**base(), weights={"shakespeare": 0.8, "philosophy": 0.2}),
        ev.Detection(**base(), detector="bias", severity="high", source_event_id="s1",
                     source_subject="train.r1.sample", span_start=0, span_end=10, summary="x",
                     group_id="g1", revision=2, samples=2, levels=["line", "word"], occurrences=[
                         ev.Occurrence(source_event_id="s1", source_subject="train.r1.sample", span_start=0,
                                       span_end=10, severity="high", summary="x", level="line", count=3)]),
        ev.Coupling(**base(), leader="norm.3", follower="loop.count", strength=0.9, p_value=1e-4, lag=2,
                    lag_steps=200, steps=[100, 200, 300], window_steps=2000),
        ev.Health(**base(), status="healthy", focus="late", norms=[1.0, 2.0], notes=["ok"]),
        ev.Shimmer(**base(), per_layer=[0.1, 0.2], mean=0.15),
        ev.Concept(**base(), feature="block.1.mlp:7", tier="forming", score=0.4, first_step=5),
        ev.Reflection(**base(), text="I am learning", prompt_version="v1.3", prompt="Reflect",
                      checkpoint="r1/10.pt", checkpoint_sha256="cd" * 32, scores={"distinct_1": 0.9}),
        ev.Reply(**base(), conversation_id="c1", question_event_id="q1", question="How?",
                 answer="Well", checkpoint="r1/10.pt", checkpoint_sha256="cd" * 32),
        ev.JournalEntry(**base(), author="human", body="A note"),
        ev.ControlCommand(**base(), args=ev.Pause(cause=ev.PauseCause(
            detector="bias", severity="high", detection_id="d1", source_event_id="s1")),
            reason="bias high", who="understanding_svc"),
    ]


async def discovered(nats_url: str, user: str = "", password: str = "") -> set[str]:
    """The names of the services that answer NATS service discovery (as `user`, when given)."""
    credentials = {"user": user, "password": password, "inbox_prefix": f"_INBOX.{user}"} if user else {}
    nc = await nats.connect(nats_url, max_reconnect_attempts=0, **credentials)
    names = set()

    async def collect(msg):
        names.add(json.loads(msg.data)["name"])
    inbox = nc.new_inbox()
    await nc.subscribe(inbox, cb=collect)
    await nc.publish("$SRV.PING", b"", reply=inbox)
    await asyncio.sleep(0.5)
    await nc.close()
    return names


async def next_event(sub, kind: type, timeout: float = 60.0, where=lambda event: True):
    """The next event of this kind (and matching `where`) on a core NATS subscription."""
    async with asyncio.timeout(timeout):
        while True:
            event = ev.decode((await sub.next_msg(timeout=timeout)).data)
            if isinstance(event, kind) and where(event):
                return event


async def wait_row(pool, sql: str, *args, timeout: float = 15.0):
    """The first row of a query once the journal has it."""
    for _ in range(int(timeout / 0.1)):
        row = await pool.fetchrow(sql, *args)
        if row:
            return row
        await asyncio.sleep(0.1)
    raise AssertionError(f"no row within {timeout} s for {sql}")


def trainer_on(wiring, args):
    from trainer_svc.training import Trainer
    return Trainer(args, wiring.emit, wiring.controls, wiring.on_checkpoint)


class Running:
    """A trainer in a worker thread that is always stopped, even when the test fails."""

    def __init__(self, trainer, wiring):
        self.trainer, self.publisher, self.controls = trainer, wiring.publisher, wiring.controls

    async def __aenter__(self):
        self.task = asyncio.create_task(asyncio.to_thread(self.trainer.run))
        return self

    async def __aexit__(self, *exc):
        if not self.task.done():
            self.controls.send(ev.ControlCommand(event_id="teardown", run_id="x", step=-1,
                                                 args=ev.Stop()))
        await asyncio.wait([self.task], timeout=30)
        await asyncio.to_thread(self.publisher.close)
