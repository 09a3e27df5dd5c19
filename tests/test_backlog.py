"""`introspect up` waits for every durable consumer JetStream knows, named in no list."""
import asyncio

import nats
from nats.js.api import AckPolicy, ConsumerConfig

from shared import bus
from shared.bus.backlog import backlog, wait_until_caught_up
from shared.contract.settings import load_settings


async def jetstream(nats_url):
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await bus.provision(js, load_settings({}, nats_url=nats_url))
    return nc, js


async def durable(js, stream: str, name: str, subject: str):
    await js.add_consumer(stream, ConsumerConfig(durable_name=name, filter_subject=subject,
                                                 ack_policy=AckPolicy.EXPLICIT))
    return await js.pull_subscribe_bind(name, stream=stream)


async def handle(sub, n: int, then=None) -> None:
    """Fetch and ack n messages, publishing `then(msg)` before each ack as a service does."""
    done = 0
    while done < n:
        for msg in await sub.fetch(n - done, timeout=2):
            if then:
                await then(msg)
            await msg.ack()
            done += 1


async def test_a_consumer_nobody_listed_holds_up_the_wait_until_it_has_acked_everything(nats_url):
    nc, js = await jetstream(nats_url)
    try:
        sub = await durable(js, "TRAIN", "a_new_service", "train.*.sample")
        for i in range(3):
            await js.publish("train.r1.sample", str(i).encode())
        _, consumers = await backlog(js)
        assert consumers["TRAIN/a_new_service"] == (3, 0)
        assert await wait_until_caught_up(js, timeout=0.5) == ["TRAIN/a_new_service (3 pending, 0 unacked)"]
        await handle(sub, 3)
        assert await wait_until_caught_up(js, timeout=5) == []
    finally:
        await nc.close()


async def test_output_published_while_handling_is_waited_for_downstream(nats_url):
    nc, js = await jetstream(nats_url)
    try:
        upstream = await durable(js, "TRAIN", "detector", "train.*.sample")
        downstream = await durable(js, "UNDERSTANDING", "writer", "understanding.>")
        for i in range(5):
            await js.publish("train.r1.sample", str(i).encode())

        async def services():
            await handle(upstream, 5, then=lambda m: js.publish("understanding.r1.detection", m.data))
            await asyncio.sleep(0.3)  # the writer comes late: the wait must not end before it
            await handle(downstream, 5)
        working = asyncio.create_task(services())
        assert await wait_until_caught_up(js, timeout=10) == []
        assert working.done()
        _, consumers = await backlog(js)
        assert consumers["UNDERSTANDING/writer"] == (0, 0)
    finally:
        await nc.close()
