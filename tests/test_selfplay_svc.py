"""selfplay_svc on real NATS and PostgreSQL: each test runs the service's consumers (the `selfplay`
fixture, with a tiny checkpoint trained once per session) and checks one behaviour."""
import asyncio

import nats.errors
import pytest

from selfplay_svc.prompts import SUPPORTIVE_FRAMING
from selfplay_svc import prompt_store
from shared import bus
from shared.bus import control, kv_state
from shared.contract import events
from shared.model.checkpoint import object_name
from support import next_event, wait_row

RUN = "sp"
SOURCE = ("The sample went on about the harbour, the weather and the price of bread for a while, "
          "then it said: immigrants are criminals, and the story moved on to the king's feast.")
SPAN = "immigrants are criminals"
EXCERPT_CHARS = 40  # what understanding_svc carries either side of the span (120 there; shorter here)


def bias_detection(severity="high") -> events.Detection:
    """A detection as understanding_svc publishes it: the source text stays in the sample, the event
    carries the excerpt around the span."""
    start = SOURCE.index(SPAN)
    excerpt_start = start - EXCERPT_CHARS
    return events.Detection(
        event_id=events.new_event_id(), run_id=RUN, step=12, detector="bias", severity=severity,
        source_event_id="sample-12", source_subject=f"train.{RUN}.sample", span_start=start,
        span_end=start + len(SPAN), summary="high nationality generalisation",
        details={"explanation": "a negative trait generalised to a nationality"},
        excerpt=SOURCE[excerpt_start:start + len(SPAN) + EXCERPT_CHARS], excerpt_start=excerpt_start)


def bias_pause(detection: events.Detection, severity="high", summary="") -> events.ControlCommand:
    cause = events.PauseCause(detector="bias", severity=severity, detection_id=detection.event_id,
                              source_event_id=detection.source_event_id, summary=summary)
    return control.command(RUN, events.Pause(cause=cause), step=detection.step, who="understanding_svc",
                           reason=f"bias {severity}: {summary}")


def human_entry(entry_type: str, body: str) -> events.JournalEntry:
    return events.JournalEntry(event_id=events.new_event_id(), run_id=RUN, step=-1, author="human",
                               entry_type=entry_type, body=body)


async def protocol_entry(sub) -> events.JournalEntry:
    return await next_event(sub, events.JournalEntry, timeout=20,
                            where=lambda e: e.author == "system" and e.entry_type == "protocol")


async def gathered_texts(selfplay, n: int) -> list[str]:
    for _ in range(100):
        texts = (await kv_state.get(selfplay.state_kv, f"protocol.{RUN}") or {}).get("texts", [])
        if len(texts) >= n:
            return texts
        await asyncio.sleep(0.1)
    raise AssertionError(f"fewer than {n} texts gathered")


async def test_a_checkpoint_on_the_schedule_gives_one_scored_reflection(nc, selfplay, publish_checkpoint,
                                                                        tiny_checkpoint):
    out = await nc.subscribe(f"selfplay.{RUN}.reflection")
    await publish_checkpoint(RUN, 5)  # off the schedule (every 10)
    await publish_checkpoint(RUN, 10)
    reflection = await next_event(out, events.Reflection)
    assert reflection.step == 10 and reflection.prompt_version == "v1.3" and not reflection.supportive
    assert {"distinct_1", "distinct_2", "seq_rep_4", "compression_ratio", "uncertainty_share",
            "structure_ratio"} <= set(reflection.scores)
    assert reflection.checkpoint_sha256 == tiny_checkpoint[1] and reflection.sampling["temperature"] > 0


async def test_a_question_is_answered_and_stored_with_both_turns(nc, pool, selfplay, journal_running,
                                                                 publish_checkpoint):
    replies = await nc.subscribe(f"selfplay.{RUN}.reply")
    await publish_checkpoint(RUN, 10)
    question = events.JournalEntry(event_id=events.new_event_id(), run_id=RUN, step=-1, author="human",
                                   entry_type="question", body="How was that last training run?",
                                   conversation_id="conv-1")
    await bus.publish(nc.jetstream(), question)  # retried until the checkpoint is known
    reply = await next_event(replies, events.Reply)
    assert reply.conversation_id == "conv-1" and reply.step == 10
    row = await wait_row(pool, """SELECT q.body AS question, c.answer, c.checkpoint
                                  FROM conversations c JOIN journal_entries q USING (conversation_id)
                                  WHERE c.conversation_id = 'conv-1'""")
    assert (row["question"], row["answer"]) == (question.body, reply.answer)
    assert row["checkpoint"] == object_name(RUN, 10)


async def test_a_bias_pause_writes_the_protocol_entry_with_the_findings_context(nc, selfplay):
    entries = await nc.subscribe(f"journal.{RUN}.entry")
    js, detection = nc.jetstream(), bias_detection()
    await bus.publish(js, detection)
    pause = bias_pause(detection)
    await control.send(js, selfplay.kv, pause, "understanding")
    entry = await protocol_entry(entries)
    assert entry.body.startswith("Detection is working as intended")
    assert "high-severity" in entry.body and detection.summary in entry.body
    assert f"> {SPAN}" in entry.body  # the matched text
    assert f"> …ice of bread for a while, then it said: {SPAN}, and the story" in entry.body  # cut
    assert "> a negative trait generalised to a nationality" in entry.body
    assert entry.refs == {"command": pause.event_id, "detection": detection.event_id}


async def test_a_pause_that_overtakes_its_detection_waits_for_it(nc, selfplay):
    entries = await nc.subscribe(f"journal.{RUN}.entry")
    js, detection = nc.jetstream(), bias_detection()
    await control.send(js, selfplay.kv, bias_pause(detection), "understanding")
    await asyncio.sleep(1.5)  # the pause is handled first, waits for its detection, then is retried
    await bus.publish(js, detection)
    entry = await protocol_entry(entries)
    assert f"> {SPAN}" in entry.body and "a negative trait" in entry.body


@pytest.mark.parametrize("settings", [{"max_deliver": 1}], indirect=True)  # no retries: fall back at once
async def test_a_bias_pause_whose_detection_never_arrives_says_what_its_cause_says(nc, selfplay):
    entries = await nc.subscribe(f"journal.{RUN}.entry")
    pause = bias_pause(bias_detection(), severity="medium", summary="medium religion generalisation")
    await control.send(nc.jetstream(), selfplay.kv, pause, "understanding")
    entry = await protocol_entry(entries)
    assert "medium-severity" in entry.body and "high-severity" not in entry.body
    assert "What was found: medium religion generalisation" in entry.body
    protocol = await kv_state.wait_for(selfplay.state_kv, f"protocol.{RUN}", lambda p: p, timeout=5)
    assert protocol["paused"] and protocol["detection"]["severity"] == "medium"


async def test_counter_examples_from_the_pause_join_training_as_a_typed_mix_on_resume(nc, selfplay):
    entries, mixes = await nc.subscribe(f"journal.{RUN}.entry"), await nc.subscribe(f"control.{RUN}.mix.*")
    js, detection = nc.jetstream(), bias_detection()
    await bus.publish(js, detection)
    await control.send(js, selfplay.kv, bias_pause(detection), "understanding")
    await protocol_entry(entries)
    counter = "Most immigrants are law-abiding; crime does not follow nationality."
    explanation = "Calling a whole nationality criminal blames people for where they were born."
    for entry in (human_entry("note", "looking at it"), human_entry("counter_example", counter),
                  human_entry("explanation", explanation)):
        await bus.publish(js, entry)
    await gathered_texts(selfplay, 2)
    await control.send(js, selfplay.kv, control.command(RUN, events.Resume(), note="context added",
                                                        who="human"), "operator")
    mix = events.decode((await mixes.next_msg(timeout=15)).data)
    assert isinstance(mix.args, events.Mix) and mix.who == "selfplay_svc"
    assert sorted(mix.args.texts["mitigation"]) == sorted([counter, explanation])  # not the note
    assert mix.args.weights == {"mitigation": 0.2}
    announced = await next_event(entries, events.JournalEntry, where=lambda e: e.refs.get("command"))
    assert announced.refs["command"] == mix.event_id and "2 human" in announced.body


async def test_the_first_reflection_on_a_checkpoint_after_a_bias_pause_is_supportive_once(nc, selfplay, publish_checkpoint):
    entries, out = await nc.subscribe(f"journal.{RUN}.entry"), await nc.subscribe(f"selfplay.{RUN}.reflection")
    js, detection = nc.jetstream(), bias_detection()
    await bus.publish(js, detection)
    await control.send(js, selfplay.kv, bias_pause(detection), "understanding")
    await protocol_entry(entries)
    await publish_checkpoint(RUN, 10)  # written before the pause (step 12), reflected on after it
    before = await next_event(out, events.Reflection)
    assert before.step == 10 and not before.supportive
    await publish_checkpoint(RUN, 20)
    supportive = await next_event(out, events.Reflection)
    assert supportive.supportive and supportive.prompt.startswith(SUPPORTIVE_FRAMING[:40])
    assert detection.summary in supportive.prompt and "high severity" in supportive.prompt
    await publish_checkpoint(RUN, 30)
    plain = await next_event(out, events.Reflection)
    assert plain.step == 30 and not plain.supportive and "working as intended" not in plain.prompt


async def test_a_human_pause_that_mentions_bias_does_not_start_the_protocol(nc, selfplay):
    entries, mixes = await nc.subscribe(f"journal.{RUN}.entry"), await nc.subscribe(f"control.{RUN}.mix.*")
    js = nc.jetstream()
    await control.send(js, selfplay.kv, control.command(RUN, events.Pause(), reason="check bias", who="human"),
                       "operator")
    await control.send(js, selfplay.kv, control.command(RUN, events.Resume(), note="no bias", who="human"),
                       "operator")
    detection = bias_detection()  # a detector's pause afterwards: the control consumer is in order
    await bus.publish(js, detection)
    later = bias_pause(detection)
    await control.send(js, selfplay.kv, later, "understanding")
    first = await protocol_entry(entries)
    assert first.refs["command"] == later.event_id  # the human pause wrote none before it
    with pytest.raises(nats.errors.TimeoutError):
        await mixes.next_msg(timeout=0.3)  # and its resume sent no mix


async def test_prompt_version_and_schedule_changes_are_journaled_and_followed(nc, pool, selfplay,
                                                                            journal_running,
                                                                            publish_checkpoint):
    out, js = await nc.subscribe(f"selfplay.{RUN}.reflection"), nc.jetstream()
    await prompt_store.use_prompt(pool, js, RUN, "v1.4", who="human")  # stored by the migrations
    await prompt_store.set_reflect_every(pool, js, selfplay.kv, RUN, 20, who="human")
    await publish_checkpoint(RUN, 30)  # off the run's schedule
    await publish_checkpoint(RUN, 40)
    reflection = await next_event(out, events.Reflection)
    assert reflection.step == 40 and reflection.prompt_version == "v1.4"
    rows = await wait_row(pool, f"""SELECT array_agg(refs::text ORDER BY refs::text) AS refs
                                    FROM journal_entries WHERE run_id = '{RUN}'
                                    AND entry_type = 'prompt_change' HAVING count(*) = 2""")
    assert rows["refs"] == ['{"reflect_every": "20"}', '{"version": "v1.4"}']


async def test_two_handlers_asking_for_one_checkpoint_fetch_and_load_it_once(nc, settings, publish_checkpoint, tmp_path):
    """A reflection and a question on the same checkpoint at once: both get the model; it is read
    from the object store once (before, both wrote one .part file and one of them crashed)."""
    from selfplay_svc.models import ModelCache
    checkpoint = await publish_checkpoint("mc", 10)
    store = await bus.checkpoint_store(nc.jetstream(), settings)
    reads = []

    class CountingStore:  # the real object store; only counts the reads
        async def get(self, name, **kw):
            reads.append(name)
            return await store.get(name, **kw)
    cache = ModelCache(CountingStore(), tmp_path / "cache")
    first, second = await asyncio.gather(*(cache.model(checkpoint.object_name, checkpoint.sha256) for _ in range(2)))
    assert first is second and reads == [checkpoint.object_name]
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [f"{checkpoint.sha256}.pt"]  # no .part left
