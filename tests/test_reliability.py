"""Faults that used to lose or hide data, against real NATS, PostgreSQL and processes: a database
outage, a poison event in a batch, NaN and infinity, out-of-range values, an event on another
run's subject, and a re-pause after a person's resume."""
import asyncio
import json
import math
import os
import time

import msgspec
import nats.errors

from processes import Processes
from tcp_proxy import TcpProxy

from introspect import servers
from journal_svc.handlers import journal_bindings
from journal_svc.writer import JournalWriter
from shared import bus
from shared.bus import control
from shared.bus.consumer import Consumer
from shared.bus.service import status_subject
from shared.contract import events, subjects


def step_event(run="r1", step=1, **fields) -> events.StepMetrics:
    values = dict(loss=3.0, loss_smooth=3.0, lr=1e-3, grad_norm=1.0, tokens_per_s=1e4,
                  step_time_s=0.1, mfu=None, tokens_seen=1024)
    return events.StepMetrics(event_id=events.new_event_id(), run_id=run, step=step,
                              **{**values, **fields})


def raw_step(run="r1", **overrides) -> bytes:
    """A step event as JSON with fields a well-behaved producer would never write."""
    raw = msgspec.json.decode(events.encode(step_event(run)))
    raw.update(overrides)
    return msgspec.json.encode(raw)


async def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await predicate():
            return True
        await asyncio.sleep(0.1)
    return False


async def dead_letters(js) -> list:
    try:
        info = await js.stream_info("DLQ")
    except Exception:  # noqa: BLE001
        return []
    if info.state.messages == 0:
        return []
    sub = await js.pull_subscribe("dlq.>", stream="DLQ")
    got = await sub.fetch(info.state.messages, timeout=3)
    await sub.unsubscribe()
    return got


async def journal(js, pool, settings):
    writer = await JournalWriter.create(pool)
    consumers = [Consumer(js, b, "journal_svc", settings)
                 for b in journal_bindings(writer, settings.journal_batch_size)]
    return consumers, [asyncio.create_task(c.run()) for c in consumers]


async def stop(consumers, tasks):
    for c in consumers:
        c.stop()
    await asyncio.gather(*tasks)


async def test_database_outage_holds_events_reports_unhealthy_and_catches_up(
        nc, pool, settings, database_url, tmp_path):
    host, port = servers.host_port(database_url, 5432)
    proxy = await TcpProxy(host, port, servers.free_port()).start()
    via_proxy = database_url.replace(f"{host}:{port}", f"127.0.0.1:{proxy.port}")
    env = {**os.environ, "NATS_URL": settings.nats_url, "DATABASE_URL": via_proxy,
           "INTROSPECT_WEB_PORT": "0", "INTROSPECT_ACK_WAIT_S": "2", "INTROSPECT_MAX_DELIVER": "2",
           "INTROSPECT_JOURNAL_BATCH_SIZE": "50", "LOG_LEVEL": "INFO"}
    processes = Processes(env, tmp_path)
    processes.start("journal", "journal_svc")
    js = nc.jetstream()

    async def rows(n):
        return await pool.fetchval("SELECT count(*) FROM steps WHERE run_id = 'out'") == n

    async def health():
        try:
            return json.loads((await nc.request(status_subject("journal_svc"), b"", timeout=1)).data)
        except (nats.errors.TimeoutError, nats.errors.NoRespondersError):
            return None
    try:
        for i in range(100):
            await bus.publish(js, step_event("out", i))
        assert await wait_for(lambda: rows(100), 20), processes.logs()
        await proxy.cut()
        log_before = (tmp_path / "journal.log").stat().st_size
        for i in range(100, 300):
            await bus.publish(js, step_event("out", i))

        async def unhealthy():
            answer = await health()
            return answer is not None and not answer["healthy"]
        assert await wait_for(unhealthy, 10), processes.logs()
        status = processes.cli("status")
        assert "UNHEALTHY" in status, status
        await asyncio.sleep(8)  # four ack waits: long enough for max_deliver=2 to dead-letter all
        assert await dead_letters(js) == []
        logged = (tmp_path / "journal.log").stat().st_size - log_before
        assert logged < 20_000, f"{logged} bytes of log in 10 s of outage"
        await proxy.restore()
        assert await wait_for(lambda: rows(300), 30), processes.logs()

        async def healthy():
            answer = await health()
            return answer is not None and answer["healthy"]
        assert await wait_for(healthy, 10)
        assert await dead_letters(js) == []
        assert await processes.stop_all() == {"journal": 0}
    finally:
        await processes.stop_all()
        await proxy.cut()


async def test_one_poison_event_is_dead_lettered_alone_and_its_batch_is_written(nc, pool, settings):
    js = nc.jetstream()
    for i in range(150):
        await bus.publish(js, step_event("p", i))
    def note(body):
        return events.JournalEntry(event_id=events.new_event_id(), run_id="p", step=1,
                                   author="human", body=body)
    for body in [*(f"note {i}" for i in range(20)), "a NUL \x00 in a body", "after"]:
        await bus.publish(js, note(body))
    await js.publish("train.p.step", raw_step("p", ts=1e20))
    await js.publish("train.p.step", raw_step("p", step=2 ** 63))
    for i in range(150, 300):
        await bus.publish(js, step_event("p", i))
    tight = msgspec.structs.replace(settings, max_deliver=2, journal_batch_size=1000)
    consumers, tasks = await journal(js, pool, tight)

    async def all_valid_in():
        return (await pool.fetchval("SELECT count(*) FROM steps WHERE run_id = 'p'") == 300 and
                await pool.fetchval("SELECT count(*) FROM journal_entries WHERE run_id = 'p'") == 21)
    assert await wait_for(all_valid_in, 20)
    await asyncio.sleep(0.5)
    await stop(consumers, tasks)
    dead = await dead_letters(js)
    assert len(dead) == 3, [m.headers["Introspect-Error"] for m in dead]
    assert {m.headers["Introspect-Subject"] for m in dead} == {"train.p.step", "journal.p.entry"}


async def test_nan_and_infinity_travel_and_are_stored_as_such(nc, pool, settings):
    js = nc.jetstream()
    consumers, tasks = await journal(js, pool, settings)
    diverged = step_event("nan", 7, loss=math.nan, loss_smooth=math.inf, grad_norm=-math.inf)
    await bus.publish(js, diverged)

    async def stored():
        return await pool.fetchval("SELECT count(*) FROM steps WHERE run_id = 'nan'") == 1
    assert await wait_for(stored)
    await stop(consumers, tasks)
    row = await pool.fetchrow("SELECT loss, loss_smooth, grad_norm FROM steps WHERE run_id = 'nan'")
    assert math.isnan(row["loss"]) and row["loss_smooth"] == math.inf and row["grad_norm"] == -math.inf
    payload = await pool.fetchval("SELECT payload->>'loss' FROM events WHERE run_id = 'nan'")
    assert payload == "NaN"
    assert await dead_letters(js) == []


async def test_activation_nan_reaches_understanding_and_reads_unstable(nc, settings):
    from shared.bus import kv_state
    from understanding_svc.handlers import activations_binding
    js = nc.jetstream()
    state_kv = await kv_state.state_bucket(js, subjects.UNDERSTANDING_STATE_BUCKET)
    consumer = Consumer(js, activations_binding(js, state_kv), "understanding_svc", settings)
    task = asyncio.create_task(consumer.run())
    layer = events.LayerStats(layer=0, name="block.0.resid", rms=math.nan, mean=0.0, std=math.inf,
                              max_abs=math.inf, max_channel=1)
    await bus.publish(js, events.ActivationStats(event_id=events.new_event_id(), run_id="an",
                                                 step=5, layers=[layer]))
    sub = await js.pull_subscribe("understanding.an.health", stream="UNDERSTANDING")
    health = events.decode((await sub.fetch(1, timeout=10))[0].data)
    await stop([consumer], [task])
    assert health.status == "unstable"


async def test_out_of_range_values_and_foreign_subjects_are_dead_lettered(nc, pool, settings):
    js = nc.jetstream()
    consumers, tasks = await journal(js, pool, settings)
    await js.publish("train.v.step", raw_step("v", step=-5))
    await js.publish("train.v.step", raw_step("v", lr=-0.1))
    await js.publish("train.v.step", raw_step("other"))  # a payload that names another run
    await js.publish("train.v.sample", raw_step("v"))  # a step on the samples' subject
    good = step_event("v", 3)
    await bus.publish(js, good)

    async def good_in():
        return await pool.fetchval("SELECT count(*) FROM events WHERE event_id = $1", good.event_id)
    assert await wait_for(good_in)
    await asyncio.sleep(0.5)
    await stop(consumers, tasks)
    assert await pool.fetchval("SELECT count(*) FROM events") == 1
    reasons = [m.headers["Introspect-Error"] for m in await dead_letters(js)]
    assert len(reasons) == 4, reasons


async def test_a_detection_a_person_answered_never_pauses_the_run_again(nc, settings):
    js = nc.jetstream()
    kv = await bus.control_bucket(js, settings)
    cause = events.PauseCause(detector="bias", severity="high", detection_id="d1", source_event_id="s1")

    def detection_pause():
        return control.command("rp", events.Pause(cause=cause), who="understanding_svc")
    assert await control.send(js, kv, detection_pause(), "understanding")
    assert await control.send(js, kv, control.command("rp", events.Resume(), who="human"), "operator")
    # the sample is redelivered (understanding died between its pause and its ack)
    assert not await control.send(js, kv, detection_pause(), "understanding")
    desired, _ = await control.read_state(kv, "rp")
    assert desired.state == "running"
    other = events.PauseCause(detector="bias", severity="high", detection_id="d2", source_event_id="s2")
    assert await control.send(js, kv, control.command("rp", events.Pause(cause=other)), "understanding")
    assert (await control.read_state(kv, "rp"))[0].state == "paused"


async def test_dlq_replay_sends_dead_letters_back_to_their_subject(nc, pool, settings, tmp_path):
    js = nc.jetstream()
    lost = [step_event("dl", i) for i in range(3)]
    for event in lost:
        await bus.publish(js, event)
    await js.publish("train.dl.step", b"not json")  # stays dead: the filter below skips it
    sub = await js.pull_subscribe("train.dl.step", durable="outage", stream="TRAIN")
    from shared.bus.consumer import dead_letter
    for msg in await sub.fetch(4, timeout=3):
        reason = "handler failed 5 times: ConnectionRefusedError" if msg.data != b"not json" else "junk"
        await dead_letter(js, "journal_svc", msg, reason)
        await msg.ack()
    env = {**os.environ, "NATS_URL": settings.nats_url, "DATABASE_URL": settings.database_url}
    out = Processes(env, tmp_path).cli("dlq", "replay", "--service", "journal_svc",
                                       "--subject-filter", "train.*.step", "--contains", "Refused")
    assert "3 dead letters replayed" in out, out
    consumers, tasks = await journal(js, pool, settings)

    async def replayed_in():
        return await pool.fetchval("SELECT count(*) FROM steps WHERE run_id = 'dl'") == 3
    assert await wait_for(replayed_in)
    await stop(consumers, tasks)
    remaining = await dead_letters(js)  # the junk, which the journal also dead-letters itself
    assert {m.data for m in remaining} == {b"not json"}


def run_cli(env, *args, timeout=30):
    import subprocess
    import sys
    from processes import ROOT
    return subprocess.run([sys.executable, "-m", "introspect", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_cli_says_nats_is_unreachable_instead_of_hanging():
    env = {**os.environ, "NATS_URL": f"nats://127.0.0.1:{servers.free_port()}",
           "DATABASE_URL": "postgresql://postgres@127.0.0.1:1/none"}
    for args in (["pause", "--run", "r1"], ["status"]):
        start = time.monotonic()
        done = run_cli(env, *args)
        assert done.returncode != 0 and "did not answer" in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
        assert time.monotonic() - start < 20


def test_cli_refuses_a_bad_run_id_with_a_message(settings):
    env = {**os.environ, "NATS_URL": settings.nats_url, "DATABASE_URL": settings.database_url}
    done = run_cli(env, "pause", "--run", "a.b")
    assert done.returncode != 0 and "run_id" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_activations_redelivered_after_their_state_was_saved_still_give_their_health():
    """understanding_svc killed between saving its per-run state and publishing: the redelivered
    event must publish the same outputs again, not nothing."""
    from understanding_svc.handlers import track_activations
    layer = events.LayerStats(layer=0, name="block.0.resid", rms=math.nan, mean=0.0, std=1.0,
                              max_abs=2.0, max_channel=1)
    event = events.ActivationStats(event_id=events.new_event_id(), run_id="rd", step=5, layers=[layer])
    saved, first = track_activations(event)(None)
    saved = msgspec.json.decode(msgspec.json.encode(saved))  # as the KV bucket keeps it
    again_state, again = track_activations(event)(saved)
    assert again_state == saved and [e.event_id for e in again] == [e.event_id for e in first]
    assert isinstance(again[0], events.Health) and again[0].status == "unstable"


async def test_connections_terminated_by_an_admin_are_retried_not_dead_lettered(nc, pool, settings,
                                                                                database_url):
    """pg_terminate_backend on the journal's connections (a restart, a failover) mid-ingest."""
    import asyncpg
    js = nc.jetstream()
    for i in range(400):
        await bus.publish(js, step_event("kill", i))
    strict = msgspec.structs.replace(settings, max_deliver=1, journal_batch_size=50)
    consumers, tasks = await journal(js, pool, strict)
    admin = await asyncpg.connect(database_url)
    try:
        for _ in range(5):
            await admin.execute("""SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                                   WHERE datname = current_database() AND pid <> pg_backend_pid()""")
            await asyncio.sleep(0.2)
    finally:
        await admin.close()

    async def all_in():
        try:
            return await pool.fetchval("SELECT count(*) FROM steps WHERE run_id = 'kill'") == 400
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):  # our own pool, killed too
            return False
    try:
        assert await wait_for(all_in, 30)
    finally:
        await stop(consumers, tasks)
    assert await dead_letters(js) == []
