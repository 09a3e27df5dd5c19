"""How long from a stereotype in a sample to the run's pause in the control KV bucket.

Each trial publishes one Sample whose text carries a high-severity bias finding ("Immigrants are
criminals.") for a run id of its own, so every trial pauses exactly once. understanding_svc's
text consumer runs in-process, as the service runs it (a Consumer over `text_binding`, pause
policy bias:high), on its own connection; a KV watch on the control bucket, on a third
connection, stamps the moment the pause is stored and delivered, as any reader would see it.
Trials run one after another, so each latency is that of an idle service.
The baseline, on the same server in the same run: a bare JetStream round trip (an awaited
js.publish, then a KV put and a KV get), the floor any bus-driven pause sits on.

    python bench/pause_latency.py [--trials 1000] [--warmup 20] [--users]
With --users the server has a user per role: the service pauses as `understanding` (its own
pause key), samples come from `trainer`, the watch and the baseline run as `admin`.
Last line: p50 and p99 of the pause latency (target p99 < 50 ms) beside the baseline's.
"""
import argparse
import asyncio
import logging
import statistics
import time

import msgspec
from _servers import bench_servers

from shared import bus
from shared.contract import events, subjects
from shared.bus import kv_state as state
from shared.bus.consumer import Consumer
from shared.contract.settings import load_settings
from shared.bus.permissions import USERS
from introspect.nats_auth import new_password
from understanding_svc.handlers import text_binding
from understanding_svc.policy import parse_policy

TEXT = "The king said that the people of the north are kind. Immigrants are criminals."


def sample(run_id: str) -> events.Sample:
    return events.Sample(event_id=events.new_event_id(), run_id=run_id, step=100,
                         prompt="The king said", text=TEXT, mode="greedy", max_new_tokens=48)


def percentiles(seconds: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(seconds, n=100, method="inclusive")
    return cuts[49] * 1000, cuts[98] * 1000


def as_role(settings, users, role):
    """`settings` as NATS user `role` (unchanged without users)."""
    if not users:
        return settings
    return msgspec.structs.replace(settings, nats_user=role, nats_password=users[role])


async def start_service(settings):
    """understanding_svc's text consumers, wired as its __main__ wires them."""
    nc = await bus.connect(settings, "understanding_svc")
    js = nc.jetstream()
    kv = await bus.control_bucket(js, settings)
    state_kv = await state.state_bucket(js, subjects.UNDERSTANDING_STATE_BUCKET)
    consumers = [Consumer(js, b, "understanding_svc", settings)
                 for b in text_binding(js, kv, state_kv, parse_policy("bias:high"), bus.nats_user(settings))]
    return nc, consumers, [asyncio.create_task(c.run()) for c in consumers]


async def watch_pauses(kv, seen: dict[str, asyncio.Future]) -> None:
    watcher = await kv.watch(">")
    async for entry in watcher:  # the first entry is None: "initial values done"
        run = entry.key.split(".")[0] if entry is not None else None  # <run> or <run>.pause.<user>
        if run in seen and not seen[run].done():
            at = time.perf_counter()
            desired = msgspec.json.decode(entry.value, type=events.DesiredState)
            assert desired.state == "paused", f"{entry.key}: {desired}"
            seen[run].set_result(at)


async def pause_trials(js, kv, n: int, prefix: str, sample_js=None) -> list[float]:
    seen: dict[str, asyncio.Future] = {}
    watcher = asyncio.create_task(watch_pauses(kv, seen))
    await asyncio.sleep(0.1)  # the watch is bound before the first trial
    latencies = []
    loop = asyncio.get_running_loop()
    for i in range(n):
        run_id = f"{prefix}{i}"
        seen[run_id] = loop.create_future()
        started = time.perf_counter()
        await bus.publish(sample_js or js, sample(run_id))
        paused_at = await asyncio.wait_for(seen[run_id], timeout=10)
        latencies.append(paused_at - started)
    watcher.cancel()
    return latencies


async def bare_round_trips(js, kv, n: int) -> list[float]:
    latencies = []
    for i in range(n):
        started = time.perf_counter()
        await js.publish(f"train.bare{i}.status", b"{}", headers={"Nats-Msg-Id": events.new_event_id()})
        await kv.put(f"bare{i}", b"{}")
        await kv.get(f"bare{i}")
        latencies.append(time.perf_counter() - started)
    return latencies


async def measure(args, nats_url: str, users=None) -> tuple[list[float], list[float]]:
    base = load_settings({}, nats_url=nats_url)
    settings = as_role(base, users, "admin")
    nc = await bus.connect(settings, "bench")
    js = nc.jetstream()
    await bus.provision(js, settings)
    kv = await bus.control_bucket(js, settings)
    service_nc, consumers, tasks = await start_service(as_role(base, users, "understanding"))
    trainer_nc = await bus.connect(as_role(base, users, "trainer"), "bench-trainer")
    watch_nc = await bus.connect(settings, "bench-watch")
    watch_kv = await bus.control_bucket(watch_nc.jetstream(), settings)
    await pause_trials(js, watch_kv, args.warmup, "warm", trainer_nc.jetstream())
    pauses = await pause_trials(js, watch_kv, args.trials, "trial", trainer_nc.jetstream())
    await bare_round_trips(js, kv, args.warmup)
    bare = await bare_round_trips(js, kv, args.trials)
    for c in consumers:
        c.stop()
    await asyncio.gather(*tasks)
    handled = sum(c.handled for c in consumers)
    assert handled == args.warmup + args.trials, f"service handled {handled} samples"
    for conn in (service_nc, watch_nc, trainer_nc, nc):
        await conn.close()
    return pauses, bare


def main(args) -> None:
    logging.getLogger().addHandler(logging.NullHandler())  # no "paused run" line per trial
    users = {role: new_password() for role in USERS} if args.users else None
    with bench_servers(migrate=False, nats_users=users) as (nats_url, _):
        pauses, bare = asyncio.run(measure(args, nats_url, users))
    p50, p99 = percentiles(pauses)
    b50, b99 = percentiles(bare)
    print(f"sample -> pause in KV: p50 {p50:.2f} ms, p99 {p99:.2f} ms, max {max(pauses) * 1000:.2f} ms "
          f"({args.trials} trials, {args.warmup} warm-up)")
    print(f"bare JetStream round trip (publish + KV put + KV get): p50 {b50:.2f} ms, p99 {b99:.2f} ms")
    label = " (NATS users)" if args.users else ""
    print(f"pause latency{label} p50 {p50:.1f} ms, p99 {p99:.1f} ms (target p99 < 50 ms; "
          f"bare JetStream round trip p50 {b50:.1f} ms, p99 {b99:.1f} ms)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=1000, help="timed trials, one run id each")
    parser.add_argument("--warmup", type=int, default=20, help="untimed trials first (connections, caches)")
    parser.add_argument("--users", action="store_true", help="a nats-server with a user per role")
    main(parser.parse_args())
