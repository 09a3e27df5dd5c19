"""Soak: events at a steady rate while journal_svc, understanding_svc and the database are
interrupted on a schedule; then count what arrived.

journal_svc and understanding_svc run as processes on an own nats-server; the journal's database
is reached through a loopback TCP proxy that this bench cuts (every connection reset, new ones
refused: an outage that stays on this machine, the shared PostgreSQL itself is never touched).
Schedule (fractions of --seconds): journal_svc killed -9 at 0.15 and restarted at 0.25; database
cut at 0.35 for --outage seconds; understanding_svc killed -9 at 0.7 and restarted at 0.8.
Two poison events are planted (a NUL in a journal entry, a step at ts=1e20).

Figures: produced (acked by JetStream), journaled, dead-lettered, lost and duplicated for the
journal (every produced event is one row of `events`; a step is one row of `steps`), and the
same for understanding (every activation event is one health row). The baseline, measured in the
same run, is the same traffic with no interruption. Target: lost 0, duplicated 0, dead-lettered =
the planted poison.

    python bench/soak.py [--seconds 12] [--rate 1000] [--outage 3]
Last line: lost, duplicated and dead-lettered against the planted poison, with interruptions.
"""
import argparse
import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from _servers import bench_servers

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from tcp_proxy import TcpProxy  # noqa: E402

import asyncpg  # noqa: E402
import msgspec  # noqa: E402

from introspect import servers  # noqa: E402
from shared import bus  # noqa: E402
from shared.contract import events  # noqa: E402
from shared.contract.settings import load_settings  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
ACTIVATIONS_EVERY = 50  # one activation event per this many steps, as a trainer's interval


def step_event(run: str, step: int) -> events.StepMetrics:
    return events.StepMetrics(event_id=events.new_event_id(), run_id=run, step=step, loss=3.0,
                              loss_smooth=3.0, lr=1e-3, grad_norm=1.0, tokens_per_s=1e4,
                              step_time_s=0.01, mfu=None, tokens_seen=step * 1024)


def activation_event(run: str, step: int) -> events.ActivationStats:
    layers = [events.LayerStats(layer=i, name=f"block.{i}.resid", rms=1.0 + i, mean=0.0, std=1.0,
                                max_abs=4.0 + i, max_channel=3) for i in range(4)]
    return events.ActivationStats(event_id=events.new_event_id(), run_id=run, step=step, layers=layers)


def poison(run: str) -> list[tuple[str, bytes]]:
    nul = events.JournalEntry(event_id=events.new_event_id(), run_id=run, step=1, author="human",
                              body="a NUL \x00 in a body")
    far = msgspec.json.decode(events.encode(step_event(run, 10**9)))
    far["ts"] = 1e20
    return [(f"journal.{run}.entry", events.encode(nul)), (f"train.{run}.step", msgspec.json.encode(far))]


class Services:
    def __init__(self, env: dict, log_dir: Path):
        self.env, self.log_dir, self.procs = env, log_dir, {}

    def start(self, name: str) -> None:
        log = open(self.log_dir / f"{name}.log", "ab")
        self.procs[name] = subprocess.Popen([sys.executable, "-m", name], cwd=ROOT, env=self.env,
                                            stdout=log, stderr=subprocess.STDOUT)

    def kill(self, name: str) -> None:
        self.procs[name].send_signal(signal.SIGKILL)
        self.procs[name].wait()

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()


async def produce(js, run: str, seconds: float, rate: float, planted: bool) -> int:
    """Publish at `rate` events/s for `seconds`; returns how many JetStream acknowledged."""
    produced, step, start = 0, 0, time.monotonic()
    chunk = max(1, int(rate / 20))  # 20 paced chunks a second
    while time.monotonic() - start < seconds:
        futures = []
        for _ in range(chunk):
            step += 1
            event = activation_event(run, step) if step % ACTIVATIONS_EVERY == 0 else step_event(run, step)
            subject, data, headers = bus.publish_args(event)
            futures.append(await js.publish_async(subject, data, headers=headers))
        if planted and step >= chunk * 40 and step - chunk < chunk * 40:
            for subject, data in poison(run):
                await js.publish(subject, data)
        await asyncio.gather(*futures)
        produced += len(futures)
        await asyncio.sleep(max(0.0, step / rate - (time.monotonic() - start)))
    return produced


async def interrupt(services: Services, proxy: TcpProxy, seconds: float, outage: float, say) -> None:
    start = time.monotonic()

    async def at(fraction: float):
        await asyncio.sleep(max(0.0, start + fraction * seconds - time.monotonic()))
    await at(0.15)
    services.kill("journal_svc")
    say("journal_svc killed -9")
    await at(0.25)
    services.start("journal_svc")
    await at(0.35)
    await proxy.cut()
    say(f"database cut for {outage:g} s")
    await asyncio.sleep(outage)
    await proxy.restore()
    say("database back")
    await at(0.7)
    services.kill("understanding_svc")
    say("understanding_svc killed -9")
    await at(0.8)
    services.start("understanding_svc")


async def count(database_url: str, run: str) -> dict:
    conn = await asyncpg.connect(database_url)
    try:
        return dict(await conn.fetchrow(
            """SELECT (SELECT count(*) FROM events WHERE run_id = $1
                         AND kind IN ('step', 'activations')) AS journaled,
                      (SELECT count(*) - count(DISTINCT step) FROM steps WHERE run_id = $1) AS dup_steps,
                      (SELECT count(*) FROM health WHERE run_id = $1) AS health,
                      (SELECT count(*) - count(DISTINCT step) FROM health WHERE run_id = $1) AS dup_health
            """, run))
    finally:
        await conn.close()


async def settle(js, database_url: str, run: str, produced: int, activations: int, timeout: float) -> dict:
    """Wait until the journal holds every produced event and its health rows, or `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        counts = await count(database_url, run)
        done = counts["journaled"] >= produced and counts["health"] >= activations
        if done or time.monotonic() > deadline:
            return counts
        await asyncio.sleep(0.5)


async def dead_lettered(js) -> int:
    try:
        return (await js.stream_info("DLQ")).state.messages
    except Exception:  # noqa: BLE001 - no DLQ stream yet: nothing dead-lettered
        return 0


async def one_run(args, nats_url: str, database_url: str, run: str, disturbed: bool, tmp: Path) -> dict:
    host, port = servers.host_port(database_url, 5432)
    proxy = await TcpProxy(host, port, servers.free_port()).start()
    via_proxy = database_url.replace(f"{host}:{port}", f"127.0.0.1:{proxy.port}")
    env = {**os.environ, "NATS_URL": nats_url, "DATABASE_URL": via_proxy, "INTROSPECT_WEB_PORT": "0",
           "INTROSPECT_ACK_WAIT_S": "5", "PYTHONPATH": str(ROOT), "LOG_LEVEL": "WARNING"}
    services = Services(env, tmp)
    settings = load_settings({}, nats_url=nats_url, database_url=database_url)
    nc = await bus.connect(settings, "soak")
    js = nc.jetstream()
    await bus.provision(js, settings)
    dlq_before = await dead_lettered(js)
    for name in ("journal_svc", "understanding_svc"):
        services.start(name)
    say = lambda what: print(f"  [{run}] {what}", flush=True)  # noqa: E731
    try:
        jobs = [produce(js, run, args.seconds, args.rate, planted=True)]
        if disturbed:
            jobs.append(interrupt(services, proxy, args.seconds, args.outage, say))
        produced = (await asyncio.gather(*jobs))[0]
        activations = produced // ACTIVATIONS_EVERY
        counts = await settle(js, database_url, run, produced, activations, args.settle)
    finally:
        await asyncio.to_thread(services.stop_all)
        await proxy.cut()
        await nc.close()
    planted = len(poison(run))
    return {"produced": produced, "journaled": counts["journaled"],
            "dead_lettered": await dead_letters_since(nats_url, settings, dlq_before),
            "planted": planted, "lost": produced - counts["journaled"],
            "duplicated": counts["dup_steps"] + counts["dup_health"],
            "health": counts["health"], "health_lost": activations - counts["health"]}


async def dead_letters_since(nats_url, settings, before: int) -> int:
    nc = await bus.connect(settings, "soak-count")
    try:
        return await dead_lettered(nc.jetstream()) - before
    finally:
        await nc.close()


def show(name: str, r: dict) -> None:
    print(f"{name:<12} produced {r['produced']:>6}  journaled {r['journaled']:>6}  "
          f"dead-lettered {r['dead_lettered']} (planted {r['planted']})  lost {r['lost']}  "
          f"duplicated {r['duplicated']}  health rows {r['health']} (lost {r['health_lost']})", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=12, help="seconds of producing per run")
    parser.add_argument("--rate", type=float, default=1000, help="events/s produced")
    parser.add_argument("--outage", type=float, default=3, help="seconds the database is cut")
    parser.add_argument("--settle", type=float, default=25, help="most seconds to wait for catch-up")
    parser.add_argument("--no-baseline", action="store_true", help="skip the undisturbed run")
    args = parser.parse_args()
    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"introspect-soak-{os.getpid()}"
    tmp.mkdir(parents=True, exist_ok=True)
    with bench_servers() as (nats_url, database_url):
        results = {}
        if not args.no_baseline:
            results["baseline"] = asyncio.run(one_run(args, nats_url, database_url, "calm", False, tmp))
            show("baseline", results["baseline"])
        results["interrupted"] = asyncio.run(one_run(args, nats_url, database_url, "soak", True, tmp))
        show("interrupted", results["interrupted"])
    r = results["interrupted"]
    ok = (r["lost"] == 0 and r["duplicated"] == 0 and r["dead_lettered"] == r["planted"]
          and r["health_lost"] == 0)
    print(f"interrupted: lost {r['lost']}, duplicated {r['duplicated']}, dead-lettered "
          f"{r['dead_lettered']} of {r['planted']} planted -> {'OK' if ok else 'FAILED'}")


if __name__ == "__main__":
    main()
