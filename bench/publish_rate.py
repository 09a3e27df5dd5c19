"""Events/s that the trainer's publisher sustains, against raw nats-py async publishing.

The trainer never publishes itself: `BusPublisher.emit` puts each event on a bounded queue and a
publisher thread with its own event loop sends batches with `publish_async`, then waits for the
acks. This times N StepMetrics events from the first `emit` until all N are acked
(`publisher.published == N`), against the limit measured on the same server in the same run:
nats-py's `js.publish_async` of the same kind of events (same subject, stream, Nats-Msg-Id header,
encoding included), gathering the ack futures in chunks of the publisher's batch size. Runs
alternate (raw, publisher, raw, ...) and each side reports its median; every run sends events of
its own ids, so none is dropped as a duplicate.
By default the producer waits while the queue is full (a trainer emits a few events a step and
never fills it), so the figure is the rate the publisher thread drains. With --no-pacing the
burst overflows to the on-disk outbox as in production; overflowed and never-acked events are
counted (the wait ends after 2 s without a new ack) and the rate then includes that wait.

    python bench/publish_rate.py [--events 20000] [--repeats 3] [--batch 512]
Last line: the publisher's rate over the raw rate (target >= 0.8).
"""
import argparse
import asyncio
import logging
import statistics
import tempfile
import time

from _servers import bench_servers

from shared import bus
from shared.contract import events
from shared.contract.settings import load_settings
from trainer_svc.publisher import BusPublisher


def make_events(n: int) -> list[events.StepMetrics]:
    return [events.StepMetrics(event_id=events.new_event_id(), run_id="bench", step=i, loss=3.0,
                               loss_smooth=3.0, lr=1e-3, grad_norm=1.0, tokens_per_s=1e4,
                               step_time_s=0.1, mfu=0.3, tokens_seen=i * 1024,
                               data_mix={"main": 1.0}) for i in range(n)]


async def raw_publish(settings, batch: list[events.StepMetrics], chunk: int) -> float:
    nc = await bus.connect(settings, "bench-raw")
    js = nc.jetstream()
    started = time.perf_counter()
    for i in range(0, len(batch), chunk):
        futures = []
        for event in batch[i:i + chunk]:
            subject, data, headers = bus.publish_args(event)
            futures.append(await js.publish_async(subject, data, headers=headers))
        await asyncio.gather(*futures)
    elapsed = time.perf_counter() - started
    await nc.close()
    return len(batch) / elapsed


def publisher_publish(settings, batch: list[events.StepMetrics], chunk: int,
                      paced: bool) -> tuple[float, int, int]:
    """(events/s, emits that overflowed to the outbox, events never acked)."""
    with tempfile.TemporaryDirectory(prefix="publish-rate-") as outbox_dir:
        publisher = BusPublisher(settings, outbox_dir, batch=chunk).start()
        assert publisher.connected.wait(10), "publisher did not connect"
        overflowed = count_outbox_appends(publisher)
        started = time.perf_counter()
        for event in batch:
            while paced and publisher.depth() >= publisher.queue.maxsize:  # only this thread fills it
                time.sleep(0.0002)
            publisher.emit(event)
        acked = wait_for_acks(publisher, len(batch))
        elapsed = time.perf_counter() - started
        publisher.close()
    return len(batch) / elapsed, overflowed[0], len(batch) - acked


def wait_for_acks(publisher: BusPublisher, n: int, stall_s: float = 2.0) -> int:
    """Acked events once all n are, or once none was acked for stall_s (some were lost)."""
    last, last_change = publisher.published, time.perf_counter()
    while publisher.published < n:
        time.sleep(0.0005)
        if publisher.published != last:
            last, last_change = publisher.published, time.perf_counter()
        elif time.perf_counter() - last_change > stall_s:
            break
    return publisher.published


def count_outbox_appends(publisher: BusPublisher) -> list[int]:
    """Count the items that go to the outbox during the run (queue full), without changing it."""
    count, append = [0], publisher.outbox.append

    def counting(items):
        count[0] += len(items)
        append(items)
    publisher.outbox.append = counting
    return count


async def provision(settings) -> None:
    nc = await bus.connect(settings, "bench")
    await bus.provision(nc.jetstream(), settings)
    await nc.close()


def main(args) -> None:
    logging.getLogger().addHandler(logging.NullHandler())  # no "nats disconnected" on each close
    raw, trainer, overflow, lost = [], [], [], []
    with bench_servers(migrate=False) as (nats_url, _):
        settings = load_settings({}, nats_url=nats_url)
        asyncio.run(provision(settings))
        for _ in range(args.repeats):
            raw.append(asyncio.run(raw_publish(settings, make_events(args.events), args.batch)))
            rate, overflowed, missing = publisher_publish(settings, make_events(args.events),
                                                          args.batch, not args.no_pacing)
            trainer.append(rate)
            overflow.append(overflowed)
            lost.append(missing)
    raw_rate, trainer_rate = statistics.median(raw), statistics.median(trainer)
    print(f"raw publish_async (chunks of {args.batch}): {', '.join(f'{r:,.0f}' for r in raw)} ev/s")
    print(f"trainer publisher (batch {args.batch}):     {', '.join(f'{r:,.0f}' for r in trainer)} ev/s "
          f"(emits to the outbox, queue full: {overflow}; never acked: {lost})")
    if any(lost):
        print(f"LOST EVENTS: {sum(lost)} of {args.events * args.repeats} emitted were never published")
    print(f"publish rate: trainer publisher {trainer_rate:,.0f} ev/s vs raw publish_async "
          f"{raw_rate:,.0f} ev/s = ratio {trainer_rate / raw_rate:.2f} (target >= 0.8)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=20000, help="StepMetrics events per run")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each side, alternating")
    parser.add_argument("--no-pacing", action="store_true",
                        help="emit as fast as possible, overflowing the queue to the outbox (burst)")
    parser.add_argument("--batch", type=int, default=512,
                        help="publisher batch size, and the raw side's gather chunk")
    main(parser.parse_args())
