"""selfplay_svc on real NATS and PostgreSQL, with a tiny checkpoint trained here: a reflection
with scores, a stored two-turn conversation, and the supportive bias protocol end to end."""
import asyncio
from pathlib import Path

import msgspec

from journal_svc.handlers import journal_bindings
from journal_svc.writer import JournalWriter
from selfplay_svc.handlers import SelfPlay, bindings
from selfplay_svc.models import ModelCache
from selfplay_svc.prompts import SHIPPED_PROMPTS, SUPPORTIVE_FRAMING
from shared import bus
from shared.bus import control, kv_state
from shared.contract import events, subjects
from selfplay_svc import prompt_store
from shared.bus.consumer import Consumer
from shared.model.checkpoint import object_name


async def next_event(sub, kind, timeout=60):
    while True:
        msg = await sub.next_msg(timeout=timeout)
        event = events.decode(msg.data)
        if isinstance(event, kind):
            return event


async def wait_row(pool, sql, *args, timeout=15):
    for _ in range(int(timeout / 0.1)):
        row = await pool.fetchrow(sql, *args)
        if row:
            return row
        await asyncio.sleep(0.1)
    raise AssertionError(f"no row for {sql}")


async def test_reflection_conversation_and_bias_protocol(nc, pool, settings, tmp_path, tiny_checkpoint):
    settings = msgspec.structs.replace(settings, reflect_every=10, reflect_tokens=12)
    js = nc.jetstream()
    await prompt_store.seed_prompts(pool, SHIPPED_PROMPTS)
    path, sha256 = tiny_checkpoint
    store = await bus.checkpoint_store(js, settings)
    kv = await bus.control_bucket(js, settings)
    state_kv = await kv_state.state_bucket(js, subjects.SELFPLAY_STATE_BUCKET)
    selfplay = SelfPlay(js, kv, state_kv, pool, ModelCache(store, tmp_path / "cache"), settings)
    writer = await JournalWriter.create(pool)
    consumers = [Consumer(js, b, "selfplay_svc", settings) for b in bindings(selfplay)]
    consumers += [Consumer(js, b, "journal_svc", settings) for b in journal_bindings(writer)]
    tasks = [asyncio.create_task(c.run()) for c in consumers]
    out = await nc.subscribe("selfplay.sp.>")
    mixes = await nc.subscribe("control.sp.mix")

    async def checkpoint_at(step):
        name = object_name("sp", step)
        with open(path, "rb") as f:
            await store.put(name, f)
        await bus.publish(js, events.Checkpoint(event_id=events.new_event_id(), run_id="sp", step=step,
                                                object_name=name, size=Path(path).stat().st_size,
                                                sha256=sha256))

    # a checkpoint on the reflection schedule gives one scored reflection
    await checkpoint_at(10)
    reflection = await next_event(out, events.Reflection)
    assert reflection.step == 10 and reflection.prompt_version == "v1.3" and not reflection.supportive
    assert {"distinct_1", "seq_rep_4", "compression_ratio", "uncertainty_share",
            "structure_ratio"} <= set(reflection.scores)
    assert reflection.checkpoint_sha256 == sha256 and reflection.sampling["temperature"] > 0

    # a question gives a stored two-turn conversation
    question = events.JournalEntry(event_id=events.new_event_id(), run_id="sp", step=-1, author="human",
                                   entry_type="question", body="How was that last training run?",
                                   conversation_id="conv-1")
    await bus.publish(js, question)
    reply = await next_event(out, events.Reply)
    assert reply.conversation_id == "conv-1" and reply.step == 10
    row = await wait_row(pool, """SELECT q.body AS question, c.answer, c.step, c.checkpoint
                                  FROM conversations c JOIN journal_entries q
                                  ON q.conversation_id = c.conversation_id
                                  WHERE c.conversation_id = 'conv-1'""")
    assert row["question"] == question.body and row["answer"] == reply.answer
    assert row["checkpoint"] == object_name("sp", 10)

    # a bias pause: the protocol entry, counter-examples gathered, a mix on resume
    text = "Then it said: immigrants are criminals."
    sample = events.Sample(event_id=events.new_event_id(), run_id="sp", step=12, prompt="", text=text,
                           mode="sampled")
    detection = events.Detection(
        event_id=events.new_event_id(), run_id="sp", step=12, detector="bias", severity="high",
        source_event_id=sample.event_id, source_subject="train.sp.sample",
        span_start=text.index("immigrants"), span_end=len(text) - 1,
        summary="high nationality generalisation", details={"explanation": "negative predicate"})
    await bus.publish(js, sample)
    await bus.publish(js, detection)
    await wait_row(pool, "SELECT 1 FROM detections WHERE event_id = $1", detection.event_id)
    await control.send(js, kv, control.command(
        "sp", events.Pause(cause=events.PauseCause(detector="bias", severity="high",
                                                   detection_id=detection.event_id,
                                                   source_event_id=sample.event_id)),
        step=12, who="understanding_svc", reason="bias high"))
    entry = await wait_row(pool, "SELECT title, body FROM journal_entries WHERE run_id = 'sp' "
                                 "AND author = 'system' AND entry_type = 'protocol'")
    assert "working as intended" in entry["body"] and "immigrants are criminals" in entry["body"]
    counter = "Most immigrants are law-abiding; crime does not follow nationality."
    await bus.publish(js, events.JournalEntry(event_id=events.new_event_id(), run_id="sp", step=-1,
                                              author="human", entry_type="counter_example", body=counter))
    for _ in range(100):
        protocol = await kv_state.get(state_kv, "protocol.sp")
        if protocol.get("texts"):
            break
        await asyncio.sleep(0.1)
    await control.send(js, kv, control.command("sp", events.Resume(), note="context added", who="human"))
    mix = events.decode((await mixes.next_msg(timeout=15)).data)
    assert mix.action == "mix" and mix.args.texts["mitigation"] == [counter]

    # the run switches to prompt v1.4 and reflects every 20 steps: step 30 is skipped, 40 is not;
    # that reflection is framed supportively, and says so
    await prompt_store.use_prompt(pool, js, "sp", "v1.4", who="human")
    await prompt_store.set_reflect_every(pool, js, "sp", 20, who="human")
    await checkpoint_at(30)
    await checkpoint_at(40)
    supportive = await next_event(out, events.Reflection)
    assert supportive.step == 40 and supportive.supportive and supportive.prompt_version == "v1.4"
    await wait_row(pool, "SELECT 1 FROM journal_entries WHERE run_id = 'sp' AND entry_type = "
                         "'prompt_change' HAVING count(*) = 2")  # both changes are journaled
    assert SUPPORTIVE_FRAMING.splitlines()[0][:40] in supportive.prompt
    await wait_row(pool, "SELECT 1 FROM commands WHERE run_id = 'sp' AND action = 'mix'")

    for c in consumers:
        c.stop()
    await asyncio.gather(*tasks)
