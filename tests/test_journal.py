"""journal_svc against real NATS and PostgreSQL: every kind lands once, duplicates and
redeliveries add nothing, malformed messages are dead-lettered and the consumer keeps going."""
import asyncio
import time

from nats.js.errors import NotFoundError

from journal_svc.handlers import journal_bindings
from journal_svc.rows import TABLE_FOR_KIND, kind_of
from journal_svc.writer import JournalWriter
from shared import bus
from shared.contract import events, subjects
from shared.bus.consumer import Binding, Consumer


async def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await predicate():
            return True
        await asyncio.sleep(0.05)
    return False


async def start_consumers(js, bindings, settings):
    consumers = [Consumer(js, b, "journal_svc", settings) for b in bindings]
    tasks = [asyncio.create_task(c.run()) for c in consumers]
    return consumers, tasks


async def stop_consumers(consumers, tasks):
    for c in consumers:
        c.stop()
    await asyncio.gather(*tasks)


async def test_every_kind_lands_as_exactly_one_row_even_when_published_twice(nc, pool, settings, one_of_each):
    js = nc.jetstream()
    writer = await JournalWriter.create(pool)
    consumers, tasks = await start_consumers(js, journal_bindings(writer), settings)
    sample = one_of_each()
    for event in sample + sample:  # the second round is de-duplicated by Nats-Msg-Id and ON CONFLICT
        await bus.publish(js, event, sender="anonymous")
    # a third copy under a different msg id passes JetStream's window: only the database stops it
    for event in sample:
        subject, data, _ = bus.publish_args(event, "anonymous")
        await js.publish(subject, data, headers={"Nats-Msg-Id": event.event_id + "-again"})

    async def all_in():
        return await pool.fetchval("SELECT count(*) FROM events") == len(sample)
    assert await wait_for(all_in)
    await asyncio.sleep(0.5)  # let any straggling duplicate arrive before counting
    await stop_consumers(consumers, tasks)
    assert await pool.fetchval("SELECT count(*) FROM events") == len(sample)
    for event in sample:
        table = TABLE_FOR_KIND[kind_of(event)]
        count = await pool.fetchval(f"SELECT count(*) FROM {table} WHERE event_id = $1", event.event_id)
        assert count == (2 if table == "activations" else 1), table
    assert await pool.fetchval("SELECT last_step FROM runs WHERE run_id = 'r1'") == 10


async def test_redelivery_after_crash_before_ack_still_gives_one_row(nc, pool, settings):
    js = nc.jetstream()
    writer = await JournalWriter.create(pool)
    crashes = []

    async def write_then_crash(batch):
        await writer.write([(e, m.subject, m.data) for e, m in batch])
        if not crashes:
            crashes.append(1)
            raise RuntimeError("crashed after commit, before ack")

    stream, durable, filters = subjects.JOURNAL_CONSUMERS[0]  # TRAIN
    binding = Binding(stream, durable, filters, batch_handler=write_then_crash)
    consumers, tasks = await start_consumers(js, [binding], settings)
    step = events.StepMetrics(event_id=events.new_event_id(), run_id="r2", step=1, loss=1.0,
                              loss_smooth=1.0, lr=0.1, grad_norm=1.0, tokens_per_s=1.0,
                              step_time_s=1.0, mfu=None, tokens_seen=1)
    await bus.publish(js, step)

    async def redelivered_and_acked():
        try:
            info = await js.consumer_info(stream, durable)
        except NotFoundError:  # the consumer task has not created its durable yet
            return False
        return crashes and info.num_ack_pending == 0 and info.num_pending == 0 and \
            info.delivered.consumer_seq >= 2
    try:  # a failed wait must not leave the consumer writing while the pool closes
        assert await wait_for(redelivered_and_acked, timeout=15)
    finally:
        await stop_consumers(consumers, tasks)
    assert await pool.fetchval("SELECT count(*) FROM steps WHERE run_id = 'r2'") == 1


async def test_malformed_message_goes_to_dlq_with_reason_and_consumer_keeps_going(nc, pool, settings,
                                                                               one_of_each):
    js = nc.jetstream()
    writer = await JournalWriter.create(pool)
    consumers, tasks = await start_consumers(js, journal_bindings(writer), settings)
    await js.publish("train.r3.step", b'{"kind": "step", "event_id": "x"}')  # missing fields
    await js.publish("train.r3.step", b"not json at all")
    good = one_of_each(run_id="r3")[0]
    await bus.publish(js, good)

    async def good_in():
        return await pool.fetchval("SELECT count(*) FROM steps WHERE event_id = $1", good.event_id) == 1
    assert await wait_for(good_in)
    await stop_consumers(consumers, tasks)
    dlq = await js.pull_subscribe("dlq.journal_svc", stream="DLQ")
    dead = await dlq.fetch(2, timeout=3)
    reasons = [m.headers["Introspect-Error"] for m in dead]
    assert any("missing required field" in r.lower() for r in reasons), reasons
    assert any("malformed" in r.lower() or "json" in r.lower() for r in reasons), reasons
    assert {m.headers["Introspect-Subject"] for m in dead} == {"train.r3.step"}
    assert dead[1].data == b"not json at all"


async def test_shutdown_lets_the_batch_in_hand_commit_and_ack(nc, pool, settings, one_of_each):
    js = nc.jetstream()
    writer = await JournalWriter.create(pool)
    consumers, tasks = await start_consumers(js, journal_bindings(writer), settings)
    batch = one_of_each(run_id="r4")
    await asyncio.gather(*(bus.publish(js, e, sender="anonymous") for e in batch))
    await asyncio.sleep(0.3)
    await stop_consumers(consumers, tasks)
    info = await js.consumer_info("TRAIN", "journal_train")
    assert info.num_ack_pending == 0
    assert await pool.fetchval("SELECT count(*) FROM events WHERE run_id = 'r4'") == len(batch)
