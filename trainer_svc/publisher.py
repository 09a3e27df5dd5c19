"""The trainer's publisher: the training loop hands events to a bounded queue and never waits on
the network; a thread with its own event loop publishes them to JetStream in order. When the bus
is unreachable, events go to the on-disk outbox and are sent first, in order, when it is back.
Checkpoints are streamed to the object store from their file before their event is published.
"""
from __future__ import annotations

import asyncio
import logging
import queue
import sys
import threading
import time
from pathlib import Path

import msgspec

from shared import bus
from shared.contract import events, subjects
from shared.contract.settings import Settings
from trainer_svc.outbox import Item, Outbox

log = logging.getLogger(__name__)
STOP = object()


class BusPublisher:
    def __init__(self, settings: Settings, outbox_dir: Path, max_queue: int = 10_000,
                 batch: int = 512, linger: float = 0.01):
        self.settings, self.batch = settings, batch
        self.queue: queue.Queue = queue.Queue(max_queue)
        self.spill: list[Item] = []
        self.spill_lock = threading.Lock()
        self.linger = linger
        self.outbox = Outbox(Path(outbox_dir) / "outbox.jsonl")
        self.loop = asyncio.new_event_loop()
        self.nc = self.js = None
        self.connected = threading.Event()
        self.last_publish_lag = 0.0
        self.published = 0
        self.thread = threading.Thread(target=self._run, name="publisher", daemon=True)
        self.on_connect: list = []  # coroutines functions (nc, js) run in this loop once connected

    # --- called from the training thread -------------------------------------------------
    def start(self) -> "BusPublisher":
        # The training thread must get the GIL back quickly when a torch op returns; with the
        # default 5 ms switch interval it can wait that long behind this thread (measured ~2%).
        sys.setswitchinterval(min(sys.getswitchinterval(), 0.001))
        self.thread.start()
        return self

    def emit(self, event: events.Event) -> None:
        if isinstance(event, events.StepMetrics):
            event = msgspec.structs.replace(event, queue_depth=self.queue.qsize(),
                                            publish_lag_s=self.last_publish_lag)
        self._put(to_item(event))

    def emit_checkpoint(self, event: events.Checkpoint, path: str) -> None:
        item = to_item(event)
        item.upload = str(path)
        self._put(item)

    def _put(self, item: Item) -> None:
        # Never block the step: when the queue is full, events spill to memory and the publisher
        # thread moves queue and spill, in order, to the outbox. Once spilling, every event spills
        # until then, so nothing newer overtakes anything older.
        with self.spill_lock:
            if not self.spill:
                try:
                    self.queue.put_nowait(item)
                    return
                except queue.Full:
                    pass
            self.spill.append(item)

    def depth(self) -> int:
        return self.queue.qsize()

    def close(self, timeout: float = 30) -> None:
        """Flush what is queued (to the bus, or to the outbox), then stop the thread."""
        self.queue.put(STOP)
        self.thread.join(timeout)

    def call(self, coro, timeout: float | None = None):
        """Run a coroutine on the publisher's loop from another thread and wait for it."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    # --- the publisher thread -------------------------------------------------------------
    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._main())

    async def _main(self) -> None:
        self.connector = asyncio.create_task(self._connect())  # held: the loop keeps weak refs
        stopping = False
        while not stopping:
            items, stopping = await asyncio.to_thread(self._take)
            if self.spill:
                items, stopping = self._spill_to_outbox(items, stopping)
            if self.connected.is_set() and self.outbox.pending():
                await self._flush_outbox()
            if items:
                if self.connected.is_set() and not self.outbox.pending():
                    await self._send(items)
                else:
                    self.outbox.append(items)
        others = asyncio.all_tasks() - {asyncio.current_task()}  # connector, control watchers
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)
        if self.nc and not self.nc.is_closed:  # every publish was already acked: no drain needed
            await self.nc.flush()
            await self.nc.close()

    def _take(self) -> tuple[list[Item], bool]:
        """The next batch; after the first event, linger a moment so one wake-up sends several
        (fewer hand-offs between threads, less contention with the training thread)."""
        try:
            first = self.queue.get(timeout=0.2)
        except queue.Empty:
            return [], False
        if first is not STOP and self.linger and self.queue.qsize() < self.batch - 1:
            time.sleep(self.linger)  # only when idle-ish: under load a full batch is already there
        return split_stop([first, *self._drain_nowait(self.batch - 1)])

    def _drain_nowait(self, limit: int):
        for _ in range(limit):
            try:
                yield self.queue.get_nowait()
            except queue.Empty:
                return

    def _spill_to_outbox(self, in_hand: list[Item], stopping: bool) -> tuple[list[Item], bool]:
        """Oldest first: the batch in hand, the rest of the queue, then what spilled."""
        with self.spill_lock:
            rest, stop_seen = split_stop(list(self._drain_nowait(self.queue.maxsize + 1)))
            spilled, self.spill = self.spill, []
        self.outbox.append(in_hand + rest + spilled)
        return [], stopping or stop_seen

    async def _connect(self) -> None:
        while self.nc is None:
            try:
                self.nc = await bus.connect(self.settings, "trainer_svc")
            except Exception as err:  # noqa: BLE001 - training goes on without a bus
                log.warning("bus unreachable; events go to the outbox", extra={"error": repr(err)})
                await asyncio.sleep(2)
        self.js = self.nc.jetstream()
        await bus.ensure_provisioned(self.js, self.settings)
        self.store = await bus.checkpoint_store(self.js, self.settings)
        self.connected.set()
        for hook in self.on_connect:
            await hook(self.nc, self.js)

    async def _send(self, items: list[Item]) -> None:
        """Publish in order; what fails (and everything after it) goes to the outbox."""
        try:
            sent = await self._publish(items)
        except Exception as err:  # noqa: BLE001
            log.warning("publish failed; using the outbox", extra={"error": repr(err)})
            sent = 0
        if sent < len(items):
            self.outbox.append(items[sent:])

    async def _publish(self, items: list[Item]) -> int:
        if not self.nc.is_connected:
            return 0
        futures = []
        for item in items:
            if item.upload:  # the object must be stored before anyone reads its event
                await self._gather(futures)
                futures = []
                with open(item.upload, "rb") as f:
                    await self.store.put(object_name(item), f)
            futures.append(await self.js.publish_async(item.subject, item.data,
                                                       headers={"Nats-Msg-Id": item.msg_id}))
        await self._gather(futures)
        self.published += len(items)
        self.last_publish_lag = time.time() - msgspec.json.decode(items[-1].data)["ts"]
        return len(items)

    async def _gather(self, futures) -> None:
        if futures:
            await asyncio.wait_for(asyncio.gather(*futures), timeout=10)

    async def _flush_outbox(self) -> None:
        items = self.outbox.read()
        sent = 0
        for i in range(0, len(items), self.batch):
            try:
                sent += await self._publish(items[i:i + self.batch])
            except Exception as err:  # noqa: BLE001
                log.warning("outbox flush interrupted", extra={"error": repr(err)})
                break
        self.outbox.keep_from(items, sent)
        if sent:
            log.info("outbox flushed", extra={"sent": sent, "left": len(items) - sent})


def split_stop(items: list) -> tuple[list[Item], bool]:
    """The items before STOP, and whether STOP was among them."""
    if STOP in items:
        return items[:items.index(STOP)], True
    return items, False


def object_name(item: Item) -> str:
    return msgspec.json.decode(item.data)["object_name"]


def to_item(event: events.Event) -> Item:
    return Item(subject=subjects.subject_for(event), data=events.encode(event), msg_id=event.event_id)

