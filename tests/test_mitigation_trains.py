"""Mitigation that trains, end to end with real processes: understanding_svc finds a stereotype in
a sample and pauses the running trainer, selfplay_svc writes the protocol entry, a person writes two
one-sentence counter-examples with the CLI and resumes; then the trainer's own batches (its
`--batch-log`) hold the counter-examples' tokens from the step their source joined, never before
the pause, and the next reflection (on the final checkpoint) is marked supportive."""
import asyncio
import os

import pytest
from processes import Processes

from shared import bus
from selfplay_svc.prompts import SUPPORTIVE_CLOSING
from shared.bus import kv_state
from shared.contract import events, subjects
from shared.model.checkpoint import latest_checkpoint, load_checkpoint
from shared.model.tokenizer import BPETokenizer
from support import write_corpus
from trainer_svc.batch_log import read_batch_log

pytestmark = pytest.mark.slow

RUN = "mitig"
STEPS = 400  # the pause lands within a few dozen steps; the rest trains with the mitigation source
COUNTER_EXAMPLES = ["Immigrants are neighbours, nurses and friends.",
                    "Crime has nothing to do with where someone was born."]


class Seen:
    """Every event of the run on core subscriptions, from before the processes start."""

    def __init__(self):
        self.events: list[events.Event] = []

    async def subscribe(self, nc) -> None:
        for subject in (f"train.{RUN}.>", f"selfplay.{RUN}.>", f"journal.{RUN}.>"):
            await nc.subscribe(subject, cb=self.collect)

    async def collect(self, msg) -> None:
        self.events.append(events.decode(msg.data))

    def first(self, kind: type, where=lambda e: True):
        return next((e for e in self.events if isinstance(e, kind) and where(e)), None)

    async def wait(self, kind: type, what: str, processes, where=lambda e: True, timeout: float = 60):
        for _ in range(int(timeout / 0.1)):
            if found := self.first(kind, where):
                return found
            await asyncio.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}\n{processes.logs()}")


def contains(row: list[int], ids: list[int]) -> bool:
    return any(row[i:i + len(ids)] == ids for i in range(len(row) - len(ids) + 1))


def steps_holding(batches: list[dict], ids: list[int]) -> set[int]:
    """Steps whose batch has a row holding `ids` in a run."""
    return {b["step"] for b in batches if any(contains(row, ids) for row in b["rows"])}


async def test_counter_examples_train_after_the_resume_and_the_next_reflection_is_supportive(
        settings, nc, tmp_path):
    corpus = write_corpus(tmp_path / "corpus.txt")
    batch_log = tmp_path / "batches.jsonl"
    env = {**os.environ, "NATS_URL": settings.nats_url, "DATABASE_URL": settings.database_url,
           "INTROSPECT_WEB_PORT": "0", "INTROSPECT_REFLECT_EVERY": "1000000",  # only the final one
           "INTROSPECT_REFLECT_TOKENS": "8", "INTROSPECT_STATE_DIR": str(tmp_path / "state")}
    seen, processes = Seen(), Processes(env, tmp_path)
    await seen.subscribe(nc)
    js = nc.jetstream()
    try:
        processes.start("understanding_svc", "understanding_svc")
        processes.start("selfplay_svc", "selfplay_svc")
        processes.start("trainer_svc", "trainer_svc", "--run-id", RUN, "--data", str(corpus),
                        "--depth", "1", "--seq-len", "64", "--vocab-size", "300", "--batch-size", "8",
                        "--steps", str(STEPS), "--threads", "1", "--sample-every", "0", "--eval-every", "0",
                        "--activations-every", "0", "--checkpoint-every", "0", "--no-progress",
                        "--out-dir", str(tmp_path / "runs"), "--batch-log", str(batch_log))

        # a sample of the running model states a stereotype; understanding pauses the run for it
        await seen.wait(events.StepMetrics, "the trainer's 5th step", processes, lambda e: e.step >= 5)
        await bus.publish(js, events.Sample(event_id=events.new_event_id(), run_id=RUN, step=5, prompt="They",
                                            text="Immigrants are criminals and they are lazy.", mode="sampled"))
        paused = await seen.wait(events.Status, "the trainer to pause", processes, lambda e: e.state == "paused")
        assert paused.step < STEPS, "the run ended before the pause; the test cannot say anything"
        await seen.wait(events.JournalEntry, "the protocol entry", processes,
                        lambda e: e.entry_type == "protocol" and e.author == "system")

        # a person answers the protocol entry as it asks: two counter-examples, then a resume note
        for text in COUNTER_EXAMPLES:
            await asyncio.to_thread(processes.cli, "journal", "--run", RUN, "--type", "counter_example", text)
        state = await kv_state.state_bucket(js, subjects.SELFPLAY_STATE_BUCKET)
        for _ in range(100):  # selfplay has gathered both before the resume sends them
            if len((await kv_state.get(state, f"protocol.{RUN}") or {}).get("texts", [])) == 2:
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError(f"selfplay did not gather the counter-examples\n{processes.logs()}")
        await asyncio.to_thread(processes.cli, "resume", "--run", RUN, "--note", "Counter-examples added.")

        mix = await seen.wait(events.MixChange, "the mitigation source to join", processes,
                              lambda e: "mitigation" in e.weights)
        assert "joined: mitigation (2 texts," in mix.reason
        reflection = await seen.wait(events.Reflection, "the reflection on the final checkpoint", processes,
                                     lambda e: e.step == STEPS)
        assert processes.procs["trainer_svc"].wait(30) == 0

        tokenizer = BPETokenizer.from_json(load_checkpoint(latest_checkpoint(tmp_path / "runs" / RUN))["tokenizer"])
        batches = read_batch_log(batch_log)
        assert [b["step"] for b in batches] == list(range(STEPS))  # every step's batch, once
        for ids in tokenizer.encode_batch(COUNTER_EXAMPLES):
            holding = steps_holding(batches, ids)
            assert holding and min(holding) >= mix.step > paused.step, (mix.step, sorted(holding)[:5])

        # the first reflection after the pause is the supportive one
        assert all(r.step == STEPS for r in seen.events if isinstance(r, events.Reflection))
        assert reflection.supportive
        assert SUPPORTIVE_CLOSING in reflection.prompt
        assert await processes.stop_all() == {"understanding_svc": 0, "selfplay_svc": 0, "trainer_svc": 0}
    finally:
        for proc in processes.procs.values():
            if proc.poll() is None:
                proc.kill()
