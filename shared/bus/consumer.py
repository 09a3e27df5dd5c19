"""Bind a durable pull consumer to a typed handler.

The helper fetches a batch, decodes each message strictly, calls the handler and acks only after
the handler returned (its effect is durable: row committed, command published). A message that
cannot be decoded, or that names another run or kind than its subject, goes to `dlq.<service>`
with the error and is then acked.

Two kinds of failure are told apart:
- a dependency that is down (database refused or shut down, broker unreachable): the messages are
  fine. The consumer keeps the batch in hand (marking it in progress so it is not redelivered),
  stops fetching, retries with a bounded back-off, reports itself unavailable (`down`), logs one
  line when it goes down, one a minute while it stays down and one when it is back, and then
  catches up. Nothing is dead-lettered for an outage, however long.
- a message at fault (a value the database refuses): a failed batch is split in halves until the
  poison is alone; only it is dead-lettered, its batch-mates are written and acked. A message
  handled alone (ordered bindings, per-message handlers) is retried with a delay and dead-lettered
  once it reaches `max_deliver`.

Instances of a service bind the same durable and share its messages. `ordered=True` bindings
keep at most one message in flight across all instances (max_ack_pending=1), for state that must
follow a run in order.
"""
from __future__ import annotations

import asyncio
import errno
import logging
import socket
import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable

import msgspec
import nats.errors
from asyncio_pool import AioPool
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from shared import failures
from shared.contract import events, subjects
from shared.contract.settings import Settings

log = logging.getLogger(__name__)

Handler = Callable[[events.Event, Msg], Awaitable[None]]
BatchHandler = Callable[[list[tuple[events.Event, Msg]]], Awaitable[None]]

BROKER_UNAVAILABLE = (ConnectionError, socket.gaierror, TimeoutError, asyncio.TimeoutError,
                      nats.errors.ConnectionClosedError,
                      nats.errors.ConnectionReconnectingError, nats.errors.NoRespondersError,
                      nats.errors.OutboundBufferLimitError, nats.errors.StaleConnectionError,
                      nats.errors.NoServersError)
BACKOFF_S = (0.5, 30.0)  # first and longest wait between attempts while a dependency is down
STILL_DOWN_LOG_S = 60.0  # one "still unavailable" line a minute, not one traceback per message


NETWORK_ERRNOS = {errno.ECONNREFUSED, errno.ECONNRESET, errno.EHOSTUNREACH, errno.ENETUNREACH,
                  errno.ETIMEDOUT}


def unavailable(err: BaseException) -> bool:
    """True when `err` says a dependency is down, not that the message is bad. A missing file
    or a refused value is the message's fault; a refused connection is not."""
    if isinstance(err, ValueError):
        return False
    if type(err) is OSError:  # asyncpg: "Multiple exceptions: [Errno 111] ..." over several addresses
        return err.errno in NETWORK_ERRNOS or "Connect call failed" in str(err)
    return failures.unavailable(err) or isinstance(err, BROKER_UNAVAILABLE)


def subject_mismatch(event: events.Event, subject: str) -> str | None:
    """Why an event does not belong on the subject it came on (None when it does)."""
    # a command's last token is its sender, checked by the server's permissions, not here
    sender = subject.rsplit(".", 1)[-1] if isinstance(event, events.ControlCommand) else ""
    expected = subjects.subject_for(event, sender)
    if subject != expected:
        return f"subject {subject!r} does not match the event (run {event.run_id!r}): {expected!r}"
    return None


@dataclass
class Binding:
    stream: str
    durable: str
    filter_subjects: list[str]
    handler: Handler | None = None  # called per message
    batch_handler: BatchHandler | None = None  # called once per fetched batch (bulk writes)
    ordered: bool = False
    pipelined: bool = False  # fetch the next batch while this one is handled (order-free handlers)
    accepts: tuple[type, ...] = field(default=())  # event types this binding handles; others are acked
    batch_size: int | None = None  # fetch size; default settings.batch_size
    on_dead_letter: Callable[[Msg, str], Awaitable[None]] | None = None  # e.g. say why in the journal


def consumer_config(binding: Binding, settings: Settings) -> ConsumerConfig:
    return ConsumerConfig(
        durable_name=binding.durable, ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.ALL, filter_subjects=binding.filter_subjects,
        ack_wait=settings.ack_wait_s, max_deliver=settings.max_deliver,
        max_ack_pending=1 if binding.ordered else 20_000)


async def bind(js: JetStreamContext, binding: Binding, settings: Settings):
    # add_consumer first: pull_subscribe on an existing durable would silently ignore new config
    await js.add_consumer(binding.stream, consumer_config(binding, settings))
    return await js.pull_subscribe_bind(binding.durable, stream=binding.stream)


async def dead_letter(js: JetStreamContext, service: str, msg: Msg, reason: str) -> None:
    """Keep the original bytes and say why; then the original can be acked without loss.
    `introspect dlq replay` re-publishes it to `Introspect-Subject`."""
    headers = {"Introspect-Error": reason[:1000], "Introspect-Subject": msg.subject}
    if msg.reply:
        headers["Introspect-Origin"] = msg.reply  # the $JS.ACK subject names stream and sequence
    await js.publish(subjects.dlq(service), msg.data, headers=headers)
    log.warning("dead-lettered", extra={"subject": msg.subject, "reason": reason[:200]})


class Stopped(Exception):
    """The service stops while a dependency is down: the messages in hand were handed back."""


class Consumer:
    """One fetch loop for one binding; `stop()` lets the batch in hand finish and be acked."""

    def __init__(self, js: JetStreamContext, binding: Binding, service: str, settings: Settings):
        self.js, self.binding, self.service, self.settings = js, binding, service, settings
        self.batch = 1 if binding.ordered else binding.batch_size or settings.batch_size
        self._stopping = asyncio.Event()
        self.handled = 0
        self.dead_lettered = 0
        self.down: str | None = None  # why a dependency is unavailable, while it is
        self.down_since = 0.0
        self._last_down_log = 0.0
        self._held: list[Msg] = []  # fetched and not yet settled: kept alive while we wait

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        sub = await bind(self.js, self.binding, self.settings)
        pool = AioPool(size=self.settings.concurrency)
        in_hand = None  # the batch being handled while the next one is fetched (pipelined)
        while not self._stopping.is_set():
            try:
                msgs = await sub.fetch(self.batch, timeout=1)
            except (nats.errors.TimeoutError, asyncio.TimeoutError):  # nothing arrived: normal
                continue
            except (nats.errors.ConnectionClosedError, nats.errors.ConnectionDrainingError):
                break
            self._held.extend(msgs)
            if in_hand:
                await in_hand
            in_hand = asyncio.create_task(self.handle_batch(msgs, pool))
            if not self.binding.pipelined:
                await in_hand
        if in_hand:
            await in_hand
        await self.hand_back(self._held)  # fetched while stopping: redeliver at once elsewhere
        try:
            await sub.unsubscribe()
        except nats.errors.ConnectionClosedError:  # the connection went first: nothing to undo
            pass

    async def handle_batch(self, msgs: list[Msg], pool: AioPool) -> None:
        decoded = []
        for msg in msgs:
            event = await self.decode_or_dead_letter(msg)
            if event is None:
                continue
            if self.binding.accepts and not isinstance(event, self.binding.accepts):
                await msg.ack()  # on a shared filter but not ours to handle
                continue
            decoded.append((event, msg))
        try:
            if not decoded:
                return
            if self.binding.batch_handler:
                await self.run_batch_handler(decoded)
            elif self.binding.ordered:
                for event, msg in decoded:
                    await self.run_handler(event, msg)
            else:
                await pool.map(lambda pair: self.run_handler(*pair), decoded)
            self.handled += len(decoded)
        except Stopped:
            await self.hand_back([msg for _, msg in decoded])
        finally:
            held = set(map(id, msgs))
            self._held = [m for m in self._held if id(m) not in held]

    async def decode_or_dead_letter(self, msg: Msg):
        try:
            event = events.decode(msg.data)
            reason = subject_mismatch(event, msg.subject)
        except (msgspec.DecodeError, msgspec.ValidationError) as err:
            event, reason = None, f"undecodable: {err}"
        if reason:
            try:
                await self.dead_letter_now(msg, reason)
            except Exception as err:  # noqa: BLE001 - the DLQ unreachable: redelivered after ack_wait
                if not unavailable(err):
                    raise
                log.warning("could not dead-letter", extra={"subject": msg.subject, "error": repr(err)})
            return None
        return event

    async def run_handler(self, event, msg: Msg) -> None:
        try:
            err = await self.attempt(lambda: self.binding.handler(event, msg))
        except Stopped:
            await self.hand_back([msg])
            return
        if err and failures.bad_data(err):
            await self.dead_letter_now(msg, f"refused: {err!r}")
        elif err:
            await self.retry_or_dead_letter(msg, err)
        else:
            await msg.ack()

    async def run_batch_handler(self, decoded, isolated: bool = False) -> None:
        """Write the batch; if a message in it is at fault, split until it stands alone."""
        err = await self.attempt(lambda: self.binding.batch_handler(decoded))
        if err is None:
            for _, msg in decoded:
                await msg.ack()
        elif len(decoded) > 1:
            half = len(decoded) // 2
            await self.run_batch_handler(decoded[:half], isolated=True)
            await self.run_batch_handler(decoded[half:], isolated=True)
        elif isolated or failures.bad_data(err):  # batch-mates went in without it, or value refused
            await self.dead_letter_now(decoded[0][1], f"refused: {err!r}")
        else:
            await self.retry_or_dead_letter(decoded[0][1], err)

    async def attempt(self, work: Callable[[], Awaitable[None]]) -> Exception | None:
        """Run `work` until it does not fail for want of a dependency. Returns None when it
        succeeded, the error when the message is at fault; raises Stopped on shutdown."""
        wait = BACKOFF_S[0]
        while True:
            try:
                await work()
            except Exception as err:  # noqa: BLE001 - one bad message must not stop the service
                if not unavailable(err):
                    self.mark_up()  # something answered; the fault is in the message
                    return err
                self.mark_down(err)
                if self._stopping.is_set():
                    raise Stopped from err
                await self.wait_keeping_alive(wait)
                wait = min(wait * 2, BACKOFF_S[1])
                continue
            self.mark_up()
            return None

    async def wait_keeping_alive(self, seconds: float) -> None:
        """Sleep (or until stop), telling the server every message in hand is still being worked
        on, so none is redelivered (which would count towards max_deliver) during an outage."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0 and not self._stopping.is_set():
            for msg in self._held:
                if not msg.is_acked:
                    try:
                        await msg.in_progress()
                    except Exception:  # noqa: BLE001 - broker down too: it redelivers later
                        break
            try:
                await asyncio.wait_for(self._stopping.wait(),
                                       min(left, self.settings.ack_wait_s / 3))
            except asyncio.TimeoutError:
                pass

    def mark_down(self, err: Exception) -> None:
        now = time.monotonic()
        reason = f"{type(err).__name__}: {err}"[:300]
        if self.down is None:
            self.down, self.down_since, self._last_down_log = reason, now, now
            log.warning("dependency unavailable: holding messages, not fetching",
                        extra={"durable": self.binding.durable, "error": reason})
        elif now - self._last_down_log >= STILL_DOWN_LOG_S:
            self.down, self._last_down_log = reason, now
            log.warning("dependency still unavailable", extra={
                "durable": self.binding.durable, "error": reason,
                "down_s": round(now - self.down_since)})

    def mark_up(self) -> None:
        if self.down is not None:
            log.info("dependency available again", extra={
                "durable": self.binding.durable, "down_s": round(time.monotonic() - self.down_since, 1)})
            self.down = None

    async def hand_back(self, msgs: list[Msg]) -> None:
        for msg in msgs:
            if not msg.is_acked:
                try:
                    await msg.nak()
                except Exception:  # noqa: BLE001 - the server redelivers after ack_wait anyway
                    return

    async def dead_letter_now(self, msg: Msg, reason: str) -> None:
        await dead_letter(self.js, self.service, msg, reason)
        if self.binding.on_dead_letter:
            await self.binding.on_dead_letter(msg, reason)
        await msg.ack()
        self.dead_lettered += 1

    async def retry_or_dead_letter(self, msg: Msg, err: Exception) -> None:
        deliveries = msg.metadata.num_delivered
        log.warning("handler failed", exc_info=err if deliveries == 1 else None,  # one traceback
                    extra={"subject": msg.subject, "delivery": deliveries, "error": repr(err)[:300]})
        if deliveries >= self.settings.max_deliver:
            await self.dead_letter_now(msg, f"handler failed {deliveries} times: {err!r}")
        else:
            await msg.nak(delay=min(2.0 ** deliveries, 30.0))
