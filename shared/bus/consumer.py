"""Bind a durable pull consumer to a typed handler.

The helper fetches a batch, decodes each message strictly, calls the handler and acks only after
the handler returned (its effect is durable: row committed, command published). A message that
cannot be decoded goes to `dlq.<service>` with the error and is then acked; a message whose
handler keeps failing is dead-lettered once it reaches `max_deliver`.

Instances of a service bind the same durable and share its messages. `ordered=True` bindings
keep at most one message in flight across all instances (max_ack_pending=1), for state that must
follow a run in order.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Awaitable, Callable

import msgspec
import nats.errors
from asyncio_pool import AioPool
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from shared.contract import events, subjects
from shared.contract.settings import Settings

log = logging.getLogger(__name__)

Handler = Callable[[events.Event, Msg], Awaitable[None]]
BatchHandler = Callable[[list[tuple[events.Event, Msg]]], Awaitable[None]]


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
    """Keep the original bytes and say why; then the original can be acked without loss."""
    headers = {"Introspect-Error": reason[:1000], "Introspect-Subject": msg.subject}
    if msg.reply:
        headers["Introspect-Origin"] = msg.reply  # the $JS.ACK subject names stream and sequence
    await js.publish(subjects.dlq(service), msg.data, headers=headers)
    log.warning("dead-lettered", extra={"subject": msg.subject, "reason": reason[:200]})


class Consumer:
    """One fetch loop for one binding; `stop()` lets the batch in hand finish and be acked."""

    def __init__(self, js: JetStreamContext, binding: Binding, service: str, settings: Settings):
        self.js, self.binding, self.service, self.settings = js, binding, service, settings
        self.batch = 1 if binding.ordered else binding.batch_size or settings.batch_size
        self._stopping = asyncio.Event()
        self.handled = 0

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
            if in_hand:
                await in_hand
            in_hand = asyncio.create_task(self.handle_batch(msgs, pool))
            if not self.binding.pipelined:
                await in_hand
        if in_hand:
            await in_hand
        await sub.unsubscribe()

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

    async def decode_or_dead_letter(self, msg: Msg):
        try:
            return events.decode(msg.data)
        except (msgspec.DecodeError, msgspec.ValidationError) as err:
            await dead_letter(self.js, self.service, msg, f"undecodable: {err}")
            await msg.ack()
            return None

    async def run_handler(self, event, msg: Msg) -> None:
        try:
            await self.binding.handler(event, msg)
        except Exception as err:  # noqa: BLE001 - one bad message must not stop the service
            await self.retry_or_dead_letter(msg, err)
            return
        await msg.ack()

    async def run_batch_handler(self, decoded) -> None:
        try:
            await self.binding.batch_handler(decoded)
        except Exception as err:  # noqa: BLE001
            for _, msg in decoded:
                await self.retry_or_dead_letter(msg, err)
            return
        for _, msg in decoded:
            await msg.ack()

    async def retry_or_dead_letter(self, msg: Msg, err: Exception) -> None:
        deliveries = msg.metadata.num_delivered
        log.exception("handler failed", extra={"subject": msg.subject, "delivery": deliveries},
                      exc_info=err)
        if deliveries >= self.settings.max_deliver:
            await dead_letter(self.js, self.service, msg, f"handler failed {deliveries} times: {err!r}")
            await msg.ack()
        else:
            await msg.nak(delay=min(2.0 ** deliveries, 30.0))
