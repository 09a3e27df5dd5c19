"""Commands from the bus for the training loop, applied at step boundaries.

- pause/resume/stop come from the run's desired state in the control KV bucket, read first at
  start (a pause issued while the trainer was down still holds), then re-read on every change a
  KV watcher reports, and at least every `poll_interval` seconds in case the watcher missed one;
- the run's reflection schedule (`introspect prompt every N`, key `reflect_every.<run>`) is read
  the same way into `reflect_schedule`: the loop checkpoints at those steps, so selfplay has
  weights to reflect on even below `--checkpoint-every`;
- freeze/mix come from a durable consumer on `control.<run>.{freeze,mix}` (the kit's Consumer:
  strict decode, dead letter for what does not decode), so none is missed while the trainer is
  down; inline mix texts (the bias protocol's counter-examples) join as an
  in-memory source (they are data, never file names);
- with `--require-monitor` the trainer pauses itself when no understanding_svc instance answered
  service discovery for `--monitor-timeout` seconds, and resumes when one is back.
Everything here runs on the publisher's event loop; the training thread only calls `poll()` and
`wait_while_paused()` (inherited from LocalControls).
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from pathlib import Path

import msgspec
import nats.errors

from shared import bus
from shared.bus import control
from shared.bus.consumer import Binding, Consumer
from shared.contract import events, subjects
from shared.contract.settings import Settings
from trainer_svc.hooks import LocalControls

log = logging.getLogger(__name__)
ORDER_FOR_STATE = {"paused": events.Pause, "running": events.Resume, "stopped": events.Stop}
MONITOR_WHO = "trainer_svc:monitor"
RECONNECT_CHECK_S = 1.0  # how soon a reconnect is noticed (the watcher is silent meanwhile)


class BusControls(LocalControls):
    """LocalControls (the queue the training thread polls), fed from the bus."""

    def __init__(self, run_id: str, settings: Settings, run_dir: Path, require_monitor: bool = False,
                 monitor_timeout: float = 60.0, poll_interval: float = 2.0):
        super().__init__()
        self.run_id, self.settings, self.run_dir = run_id, settings, Path(run_dir)
        self.require_monitor, self.monitor_timeout = require_monitor, monitor_timeout
        self.poll_interval = poll_interval
        self.state_read = threading.Event()  # the initial desired state has been applied
        self.last_command_id = ""
        self.tasks: list[asyncio.Task] = []
        self.reflect_schedule: events.ReflectSchedule | None = None  # read by the training thread

    # --- the publisher's loop ----------------------------------------------------------------
    async def attach(self, nc, js) -> None:
        self.nc, self.js = nc, js
        self.kv = await bus.control_bucket(js, self.settings)
        await self.check_desired_state(initial=True)
        await self.read_reflect_schedule()
        self.state_read.set()
        self.tasks = [asyncio.create_task(self.watch_key(subjects.check_run_id(self.run_id),
                                                         self.check_desired_state)),
                      asyncio.create_task(self.watch_key(subjects.reflect_schedule_key(self.run_id),
                                                         self.read_reflect_schedule)),
                      asyncio.create_task(self.freeze_and_mix_consumer().run())]
        if self.require_monitor:
            self.tasks.append(asyncio.create_task(self.watch_monitor()))

    async def check_desired_state(self, initial: bool = False) -> None:
        """Turn a new desired state into a command; at start only a pause or stop matters."""
        desired, _ = await control.read_state(self.kv, self.run_id)
        if desired is None or desired.command_id == self.last_command_id:
            return
        self.last_command_id = desired.command_id
        if initial and desired.state == "running":
            return
        self.send(events.ControlCommand(
            event_id=desired.command_id or events.new_event_id(), run_id=self.run_id, step=-1,
            args=ORDER_FOR_STATE[desired.state](), reason=desired.reason, who=desired.who))

    async def read_reflect_schedule(self) -> None:
        try:
            self.reflect_schedule = await control.read_reflect_schedule(self.kv, self.run_id)
        except msgspec.DecodeError as err:  # not the CLI's writing: keep the schedule we had
            log.warning("reflection schedule unreadable", extra={"error": str(err)})

    async def watch_key(self, key: str, read) -> None:
        """`await read()` whenever the watcher reports a change of `key` (its first report is the
        current value or a None marker: a read too, harmless), and at least every
        `poll_interval` s. After a reconnect, whose server may have forgotten the watcher's
        subscription, the watcher is re-created and the key re-read."""
        watcher, reconnects, last_read = None, None, 0.0
        while True:
            try:
                if watcher is None or self.nc.stats["reconnects"] != reconnects:
                    await stop_watcher(watcher)
                    reconnects = self.nc.stats["reconnects"]
                    watcher = await self.kv.watch(key)
                    last_read = 0.0
                try:
                    await watcher.updates(timeout=RECONNECT_CHECK_S)
                    changed = True
                except nats.errors.TimeoutError:
                    changed = False
                if changed or time.monotonic() - last_read >= self.poll_interval:
                    last_read = time.monotonic()
                    await read()
            except Exception as err:  # noqa: BLE001 - the bus may be down; keep trying
                log.debug("control key unreadable", extra={"key": key, "error": repr(err)})
                await stop_watcher(watcher)
                watcher = None
                await asyncio.sleep(RECONNECT_CHECK_S)

    def freeze_and_mix_consumer(self) -> Consumer:
        """In order, one at a time: a mix and a freeze apply in the order they were sent."""
        stream, durable, filters = subjects.trainer_control(self.run_id)
        binding = Binding(stream, durable, filters, handler=self.on_command, ordered=True,
                          accepts=(events.ControlCommand,), on_dead_letter=self.on_rejected)
        return Consumer(self.js, binding, "trainer_svc", self.settings)

    async def on_command(self, command: events.ControlCommand, msg) -> None:
        self.send(command)  # acked once queued: the training thread applies it at the next step

    async def on_rejected(self, msg, reason: str) -> None:
        """A command the contract refuses (rows not a list of ints, a weight of 0 or NaN, a
        payload naming another run) never reaches the loop: say why in the journal, train on."""
        seq = msg.metadata.sequence.stream
        await bus.publish(self.js, events.JournalEntry(
            event_id=events.stable_event_id("rejected", self.run_id, msg.subject, seq),
            run_id=self.run_id, step=-1, author="system", title="command rejected",
            body=f"{msg.subject}: {reason}"[:2000], who="trainer_svc", refs={"subject": msg.subject}))

    async def monitor_alive(self) -> bool:
        try:
            await self.nc.request("$SRV.PING.understanding_svc", b"", timeout=1)
            return True
        except (nats.errors.NoRespondersError, nats.errors.TimeoutError, asyncio.TimeoutError):
            return False

    async def watch_monitor(self) -> None:
        last_seen = time.monotonic()
        while True:
            alive = await self.monitor_alive()
            desired, _ = await control.read_state(self.kv, self.run_id)
            self_paused = desired is not None and desired.state == "paused" and desired.who == MONITOR_WHO
            if alive:
                last_seen = time.monotonic()
                if self_paused:
                    await control.send(self.js, self.kv, control.command(
                        self.run_id, events.Resume(), who=MONITOR_WHO, reason="understanding_svc is back"))
            elif time.monotonic() - last_seen > self.monitor_timeout and not (
                    desired and desired.state == "paused"):
                reason = f"no understanding_svc instance alive for {self.monitor_timeout:.0f} s"
                log.warning("pausing: monitor missing", extra={"reason": reason})
                await control.send(self.js, self.kv, control.command(
                    self.run_id, events.Pause(), who=MONITOR_WHO, reason=reason))
            await asyncio.sleep(min(2.0, self.monitor_timeout / 3))


async def stop_watcher(watcher) -> None:
    if watcher is not None:
        try:
            await watcher.stop()
        except Exception as err:  # noqa: BLE001 - its subscription may be gone with the connection
            log.debug("watcher stop failed", extra={"error": repr(err)})
