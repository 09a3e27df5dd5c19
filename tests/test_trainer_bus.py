"""The trainer on a real bus: control from the KV bucket and the control subjects, checkpoints in
the object store, the on-disk outbox while the bus is down, and the monitor safety pause."""
import asyncio
import hashlib

import msgspec
from nats.micro import add_service

from shared import bus
from shared.bus import control
from shared.contract import events
from introspect import servers
from shared.contract.settings import load_settings
from trainer_svc.controls import MONITOR_WHO
from trainer_svc.publisher import BusPublisher
from trainer_svc.wiring import wire
from support import Running, trainer_on


async def next_status(sub, timeout=30) -> events.Status:
    return events.decode((await sub.next_msg(timeout=timeout)).data)


async def statuses(sub, wanted, timeout=30):
    """The states seen until `wanted`."""
    seen = []
    while wanted not in seen:
        seen.append((await next_status(sub, timeout)).state)
    return seen


async def test_a_pause_set_while_the_trainer_was_down_holds_from_the_first_step(nc, settings, trainer_args):
    js = nc.jetstream()
    kv = await bus.control_bucket(js, settings)
    await control.send(js, kv, control.command("t1", events.Pause(), reason="paused before start"),
                       "operator")
    status = await nc.subscribe("train.t1.status")
    args = trainer_args("--steps", "400", run_id="t1")
    wiring = wire(args, settings)
    assert await asyncio.to_thread(wiring.start, 10)
    async with Running(trainer_on(wiring, args), wiring) as running:
        assert (await statuses(status, "paused"))[-1] == "paused"
        assert running.trainer.step == 0
        await control.send(js, kv, control.command("t1", events.Stop(), reason="enough"), "operator")
        assert await running.task == "stopped"


async def test_a_resume_from_the_bus_continues_training(nc, settings, trainer_args):
    js = nc.jetstream()
    kv = await bus.control_bucket(js, settings)
    await control.send(js, kv, control.command("t6", events.Pause()), "operator")
    status = await nc.subscribe("train.t6.status")
    args = trainer_args("--steps", "3", run_id="t6")
    wiring = wire(args, settings)
    assert await asyncio.to_thread(wiring.start, 10)
    async with Running(trainer_on(wiring, args), wiring) as running:
        await statuses(status, "paused")
        await control.send(js, kv, control.command("t6", events.Resume(), note="go on"), "operator")
        assert await running.task == "finished"
        assert running.trainer.step == 3


async def test_a_freeze_from_the_bus_is_applied(nc, settings, trainer_args):
    js = nc.jetstream()
    kv = await bus.control_bucket(js, settings)
    status = await nc.subscribe("train.t7.status")
    args = trainer_args("--steps", "400", run_id="t7")
    wiring = wire(args, settings)
    assert await asyncio.to_thread(wiring.start, 10)
    async with Running(trainer_on(wiring, args), wiring) as running:
        await statuses(status, "running")
        await control.send(js, kv, control.command("t7", events.Freeze(names=["transformer.h.0.mlp"])),
                           "operator")
        while not (await next_status(status)).reason.startswith("froze"):
            pass
        assert running.trainer.frozen.names == ["transformer.h.0.mlp"]


async def test_an_undecodable_control_message_is_dead_lettered_and_the_next_one_arrives(
        nc, settings, trainer_args):
    js = nc.jetstream()
    kv = await bus.control_bucket(js, settings)
    wiring = wire(trainer_args(run_id="t8"), settings)
    try:
        assert await asyncio.to_thread(wiring.start, 10)
        await js.publish("control.t8.mix.operator", b'{"kind": "command", "nonsense": true}')
        dlq = await js.pull_subscribe("dlq.trainer_svc", stream="DLQ")
        dead = (await dlq.fetch(1, timeout=5))[0]
        assert "undecodable" in dead.headers["Introspect-Error"] and dead.data.startswith(b'{"kind"')
        await control.send(js, kv, control.command("t8", events.Freeze(names=["lm_head"])), "operator")
        assert [c.action for c in await next_command(wiring.controls)] == ["freeze"]
    finally:
        await asyncio.to_thread(wiring.close)


async def test_checkpoints_are_in_the_object_store_as_their_events_announce(nc, settings, trainer_args):
    js = nc.jetstream()
    args = trainer_args("--steps", "3", "--checkpoint-every", "2", run_id="t9")
    wiring = wire(args, settings)
    assert await asyncio.to_thread(wiring.start, 10)
    assert await asyncio.to_thread(trainer_on(wiring, args).run) == "finished"
    await asyncio.to_thread(wiring.close)
    store = await bus.checkpoint_store(js, settings)
    sub = await js.pull_subscribe("train.t9.checkpoint", stream="TRAIN")
    announced = [events.decode(m.data) for m in await sub.fetch(10, timeout=2)]
    assert [(c.step, c.reason) for c in announced] == [(2, "interval"), (3, "final")]
    for cp in announced:
        data = (await store.get(cp.object_name)).data
        assert len(data) == cp.size and hashlib.sha256(data).hexdigest() == cp.sha256


async def test_events_wait_in_the_outbox_while_the_bus_is_down_and_go_out_in_order(settings, tmp_path, trainer_args):
    port = servers.free_port()
    down = msgspec.structs.replace(settings, nats_url=f"nats://127.0.0.1:{port}")
    args = trainer_args("--steps", "8", run_id="t2")
    wiring = wire(args, down)
    assert not await asyncio.to_thread(wiring.start, 0.5)
    publisher = wiring.publisher
    assert await asyncio.to_thread(trainer_on(wiring, args).run) == "finished"
    wiring.close()  # the trainer finished with no bus at all
    waiting = publisher.outbox.read()
    assert len(waiting) >= 10 and any(item.upload for item in waiting)
    proc = servers.start_nats(port, tmp_path / "late-js")
    try:
        again = BusPublisher(down, tmp_path / "ckpt" / "t2").start()  # e.g. the trainer restarted
        for _ in range(200):
            if again.connected.is_set() and not again.outbox.pending():
                break
            await asyncio.sleep(0.05)
        again.close()
        nc = await bus.connect(down, "check")
        js = nc.jetstream()
        sub = await js.pull_subscribe("train.t2.>", stream="TRAIN")
        got = await sub.fetch(len(waiting) + 5, timeout=2)
        assert [m.headers["Nats-Msg-Id"] for m in got] == [item.msg_id for item in waiting]
        steps = [events.decode(m.data).step for m in got if m.subject == "train.t2.step"]
        assert steps == sorted(steps) and len(steps) == 8
        final = [events.decode(m.data) for m in got if m.subject == "train.t2.checkpoint"][-1]
        store = await bus.checkpoint_store(js, down)
        assert (await store.get_info(final.object_name)).size == final.size
        await nc.close()
    finally:
        servers.stop_process(proc)


async def test_trainer_pauses_itself_without_a_monitor_and_resumes_when_one_is_back(nc, settings, trainer_args):
    js = nc.jetstream()
    kv = await bus.control_bucket(js, settings)
    status = await nc.subscribe("train.t3.status")
    args = trainer_args("--steps", "100000", "--require-monitor", "--monitor-timeout", "1", run_id="t3")
    wiring = wire(args, settings)
    wiring.start(timeout=0)
    async with Running(trainer_on(wiring, args), wiring) as running:
        await statuses(status, "paused")
        desired, _ = await control.read_state(kv, "t3")
        assert desired.who == MONITOR_WHO and "understanding_svc" in desired.reason
        monitor = await add_service(nc, name="understanding_svc", version="0.1.0")
        await statuses(status, "running")
        await control.send(js, kv, control.command("t3", events.Stop()), "operator")
        assert await running.task == "stopped"
        await monitor.stop()


async def test_a_burst_larger_than_the_queue_loses_nothing_and_keeps_order(nc, settings, tmp_path):
    publisher = BusPublisher(settings, tmp_path / "burst", max_queue=200).start()
    assert await asyncio.to_thread(publisher.connected.wait, 10)
    sent = [events.StepMetrics(event_id=events.new_event_id(), run_id="t4", step=i, loss=1.0,
                               loss_smooth=1.0, lr=0.1, grad_norm=1.0, tokens_per_s=1.0,
                               step_time_s=0.01, mfu=None, tokens_seen=i) for i in range(5000)]
    for event in sent:  # far faster than the publisher: the queue overflows many times
        publisher.emit(event)
    assert publisher.spill or publisher.outbox.pending() or publisher.published < len(sent)
    await asyncio.to_thread(publisher.close)
    sub = await nc.jetstream().pull_subscribe("train.t4.step", stream="TRAIN")
    got = []
    while len(got) < len(sent):
        batch = await sub.fetch(1000, timeout=2)
        for m in batch:
            await m.ack()
        got += batch
    assert [events.decode(m.data).step for m in got] == list(range(5000))
    assert not publisher.outbox.pending()


async def next_command(controls, timeout=5.0):
    for _ in range(int(timeout / 0.05)):
        polled = controls.poll()
        if polled:
            return polled
        await asyncio.sleep(0.05)
    return []


async def test_a_pause_reaches_the_trainer_by_the_watcher_also_after_a_server_restart(tmp_path, trainer_args):
    port = servers.free_port()
    proc = servers.start_nats(port, tmp_path / "js")
    settings = load_settings({}, nats_url=f"nats://127.0.0.1:{port}", instance="test")
    wiring = wire(trainer_args(run_id="t5"), settings)
    wiring.controls.poll_interval = 60  # no safety-net reads within the test: only the watcher
    nc = None
    try:
        assert await asyncio.to_thread(wiring.start, 10)
        nc = await bus.connect(settings, "check")
        js, kv = nc.jetstream(), await bus.control_bucket(nc.jetstream(), settings)
        await control.send(js, kv, control.command("t5", events.Pause(), reason="first"), "operator")
        assert [c.reason for c in await next_command(wiring.controls)] == ["first"]
        servers.stop_process(proc)
        proc = servers.start_nats(port, tmp_path / "js")  # same store: the bucket survives
        for _ in range(100):  # both clients reconnect
            if nc.is_connected and wiring.publisher.nc.stats["reconnects"]:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(3)  # the controls re-create their watcher and re-read: what follows is the watcher's
        await control.send(js, kv, control.command("t5", events.Resume(), reason="second"), "operator")
        assert [c.reason for c in await next_command(wiring.controls, timeout=10)] == ["second"]
    finally:
        if nc:
            await nc.close()
        await asyncio.to_thread(wiring.close)
        servers.stop_process(proc)


def raw_command(run: str, args: dict) -> bytes:
    """A command as a careless or hostile client could publish it, past the CLI's checks."""
    valid = events.encode(control.command(run, events.Stop(), who="x"))
    raw = msgspec.json.decode(valid)
    raw["args"] = args
    return msgspec.json.encode(raw)


async def test_bad_commands_are_rejected_where_applied_and_the_run_trains_on(nc, settings, trainer_args):
    js = nc.jetstream()
    kv = await bus.control_bucket(js, settings)
    status = await nc.subscribe("train.t9.status")
    notes = await nc.subscribe("journal.t9.entry")
    args = trainer_args("--steps", "100000", run_id="t9")
    wiring = wire(args, settings)
    assert await asyncio.to_thread(wiring.start, 10)
    trainer = trainer_on(wiring, args)
    async with Running(trainer, wiring) as running:
        await statuses(status, "running")
        for action, bad in [("freeze", {"action": "freeze", "rows": [1, 2]}),
                            ("freeze", {"action": "freeze", "rows": {"lm_head.weight": ["x"]}}),
                            ("mix", {"action": "mix", "weights": {"a": 0}}),
                            ("mix", {"action": "mix", "weights": {"a": "NaN"}})]:
            await js.publish(f"control.t9.{action}.operator", raw_command("t9", bad))
        rejected = [events.decode((await notes.next_msg(timeout=15)).data) for _ in range(4)]
        assert all(e.author == "system" and e.title == "command rejected" for e in rejected)
        for order in (events.Mix(weights={"pw": 0.5}, paths={"pw": "/etc/passwd"}),
                      events.Freeze(names=["no.such.parameter"])):
            await control.send(js, kv, control.command("t9", order, who="x"), "operator")
        reasons = []
        while len(reasons) < 2:
            event = events.decode((await status.next_msg(timeout=30)).data)
            if "rejected" in event.reason:
                reasons.append(event.reason)
        assert "outside the data folders" in reasons[0] and "no.such.parameter" in reasons[1]
        step = trainer.step
        await asyncio.sleep(1)
        assert trainer.step > step  # trains on
        await control.send(js, kv, control.command("t9", events.Stop(), reason="enough"), "operator")
        assert await running.task == "stopped"
    assert "pw" not in trainer.loader.sources and trainer.frozen.names == []
