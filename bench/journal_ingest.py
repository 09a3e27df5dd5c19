"""Events/s through journal_svc end to end (published, consumed, committed, acked), against two
raw limits measured in the same run on the same servers: a bare nats-py pull consumer that
fetches and acks the same messages, and asyncpg's copy_records_to_table of the same rows.

    python bench/journal_ingest.py [--events 20000] [--batch 1000]
Last line: the ratio of journal_svc to the slower raw limit (target >= 0.7).
"""
import argparse
import asyncio
import time

from _servers import bench_servers

from journal_svc.handlers import journal_bindings
from journal_svc.rows import event_row
from journal_svc.writer import JournalWriter, create_staging_tables
from shared import bus
from shared.contract import events
from shared.bus.consumer import Consumer
from shared.db import create_pool
from shared.contract.settings import Settings, load_settings

SMALL_BATCH = 256  # the bare consumer's own best batch on this machine
from nats.js.api import AckPolicy, ConsumerConfig
from nats.js.errors import NotFoundError


def make_events(n: int) -> list[events.StepMetrics]:
    return [events.StepMetrics(event_id=events.new_event_id(), run_id="bench", step=i, loss=3.0,
                               loss_smooth=3.0, lr=1e-3, grad_norm=1.0, tokens_per_s=1e4,
                               step_time_s=0.1, mfu=0.3, tokens_seen=i * 1024) for i in range(n)]


async def publish_all(js, batch) -> None:
    for i in range(0, len(batch), 1000):
        futures = [await js.publish_async(*bus.publish_args(e)[:2], headers=bus.publish_args(e)[2])
                   for e in batch[i:i + 1000]]
        await asyncio.gather(*futures)


async def bare_pull(js, n: int, batch: int) -> float:
    durable = f"bare_{batch}"
    await js.add_consumer("TRAIN", ConsumerConfig(durable_name=durable, ack_policy=AckPolicy.EXPLICIT,
                                                  filter_subject="train.>", max_ack_pending=20000))
    sub = await js.pull_subscribe_bind(durable, stream="TRAIN")
    got, start = 0, time.perf_counter()
    while got < n:
        for msg in await sub.fetch(batch, timeout=5):
            await msg.ack()
            got += 1
    return n / (time.perf_counter() - start)


async def raw_copy(pool, batch) -> float:
    rows = [event_row(e, "train.bench.step", events.encode(e)) for e in batch]
    async with pool.acquire() as conn:
        await conn.execute("CREATE TEMP TABLE raw_events (LIKE events)")
        start = time.perf_counter()
        await conn.copy_records_to_table("raw_events", records=rows,
                                         columns=["event_id", "run_id", "step", "ts", "kind",
                                                  "subject", "payload"])
        return len(rows) / (time.perf_counter() - start)


async def through_journal(js, pool, settings, n: int) -> float:
    writer = await JournalWriter.create(pool)
    consumers = [Consumer(js, b, "journal_svc", settings)
                 for b in journal_bindings(writer, settings.journal_batch_size)]
    start = time.perf_counter()
    tasks = [asyncio.create_task(c.run()) for c in consumers]
    while True:
        try:
            info = await js.consumer_info("TRAIN", "journal_train")
        except NotFoundError:  # the consumer task has not bound yet
            await asyncio.sleep(0.01)
            continue
        if info.num_pending == 0 and info.num_ack_pending == 0 and info.delivered.stream_seq >= n:
            break
        await asyncio.sleep(0.01)
    elapsed = time.perf_counter() - start
    for c in consumers:
        c.stop()
    await asyncio.gather(*tasks)
    assert await pool.fetchval("SELECT count(*) FROM steps") == n
    return n / elapsed


async def measure(args, nats_url: str, database_url: str) -> tuple[float, float, float]:
    settings = load_settings({}, nats_url=nats_url, database_url=database_url,
                             journal_batch_size=args.batch)
    nc = await bus.connect(settings, "bench")
    js = nc.jetstream()
    await bus.provision(js, settings)
    pool = await create_pool(database_url, max_size=4, init=create_staging_tables)
    batch = make_events(args.events)
    await publish_all(js, batch)
    pull = await bare_pull(js, args.events, args.batch)
    pull_small = await bare_pull(js, args.events, SMALL_BATCH)
    copy = await raw_copy(pool, batch)
    journal = await through_journal(js, pool, settings, args.events)
    await pool.close()
    await nc.close()
    return pull, pull_small, copy, journal


def main(args) -> None:
    with bench_servers() as urls:
        pull, pull_small, copy, journal = asyncio.run(measure(args, *urls))
    print(f"bare nats-py pull consumer (fetch + ack): {pull:,.0f} msgs/s at batch {args.batch}, "
          f"{pull_small:,.0f} msgs/s at batch {SMALL_BATCH}")
    print(f"raw copy_records_to_table:               {copy:,.0f} rows/s")
    print(f"journal_svc end to end (commit, then ack): {journal:,.0f} events/s "
          f"({args.events} events, batch {args.batch})")
    print(f"against the faster bare consumer (batch {SMALL_BATCH}): "
          f"{journal / min(max(pull, pull_small), copy):.2f}")
    print(f"journal_svc / slower raw limit (same batch {args.batch}) = "
          f"{journal / min(pull, copy):.2f} (target >= 0.7)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=20000, help="events to ingest")
    parser.add_argument("--batch", type=int, default=Settings().journal_batch_size,
                        help="fetch batch size of journal_svc and the bare consumer")
    main(parser.parse_args())
