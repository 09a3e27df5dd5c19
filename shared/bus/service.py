"""The life of a service process: connect, check the streams exist, answer discovery, consume,
stop cleanly.

SIGTERM or SIGINT stops the fetch loops; each finishes and acks the batch in hand, then the
connection is drained (pending publishes flushed) and closed. Every instance registers with NATS
service discovery (`$SRV.PING|INFO|STATS.<name>`), which is also how the trainer knows whether
any understanding instance is alive.
"""
from __future__ import annotations

import asyncio
import logging
import signal

import msgspec
import nats.errors
from nats.micro import add_service

from shared import bus
from shared.bus.consumer import Binding, Consumer
from shared.contract.settings import Settings

VERSION = "0.1.0"


def status_subject(service: str) -> str:
    """Every instance of `service` answers a request here with its `Service.health()`."""
    return f"introspect.{service}.status"


class Service:
    def __init__(self, name: str, description: str, settings: Settings):
        self.name, self.description, self.settings = name, description, settings
        self.log = logging.getLogger(name)
        self.consumers: list[Consumer] = []
        self.stopping = asyncio.Event()
        self.nc = self.js = self.micro = None

    async def start(self) -> None:
        self.nc = await bus.connect(self.settings, f"{self.name}:{self.settings.instance}")
        self.js = self.nc.jetstream()
        await bus.ensure_provisioned(self.js, self.settings)
        self.micro = await add_service(
            self.nc, name=self.name, version=VERSION, description=self.description,
            metadata={"instance": self.settings.instance})
        # an own queue group per instance: a status request is answered by every instance
        await self.micro.add_endpoint(name="status", subject=status_subject(self.name),
                                      handler=self._answer_status,
                                      queue_group=f"status-{self.micro.id}")
        self.log.info("started", extra={"instance": self.settings.instance})

    def consume(self, binding: Binding) -> Consumer:
        consumer = Consumer(self.js, binding, self.name, self.settings)
        self.consumers.append(consumer)
        return consumer

    def health(self) -> dict:
        """Healthy unless a consumer is holding messages because a dependency is down."""
        down = {c.binding.durable: c.down for c in self.consumers if c.down}
        return {"service": self.name, "instance": self.settings.instance,
                "id": self.micro.id if self.micro else "", "healthy": not down, "unavailable": down,
                "handled": {c.binding.durable: c.handled for c in self.consumers},
                "dead_lettered": {c.binding.durable: c.dead_lettered for c in self.consumers}}

    async def _answer_status(self, request) -> None:
        await request.respond(msgspec.json.encode(self.health()))

    def stop(self) -> None:
        self.stopping.set()

    async def run(self, *background) -> None:
        """Run every consumer (and any extra coroutines) until SIGTERM/SIGINT, then shut down."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop)
        tasks = [asyncio.create_task(c.run()) for c in self.consumers]
        tasks += [asyncio.create_task(coro) for coro in background]
        stopper = asyncio.create_task(self.stopping.wait())
        done, _ = await asyncio.wait([stopper, *tasks], return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        for task in done - {stopper}:
            if task.exception():
                self.log.error("task failed", exc_info=task.exception())
        await self.close(tasks)

    async def close(self, tasks=()) -> None:
        self.log.info("stopping: draining consumers")
        for consumer in self.consumers:
            consumer.stop()
        consumer_tasks = tasks[:len(self.consumers)]
        await asyncio.gather(*consumer_tasks, return_exceptions=True)
        for task in tasks[len(self.consumers):]:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.micro:
            await self.micro.stop()
        if self.nc and not self.nc.is_closed:
            try:
                await self.nc.drain()
            except (nats.errors.ConnectionReconnectingError, nats.errors.ConnectionClosedError):
                await self.nc.close()  # the server went first: nothing left to flush to
        self.log.info("stopped")
