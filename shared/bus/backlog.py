"""How far behind the durable consumers are, asked of JetStream rather than of a list of names:
whatever streams and consumers exist now (a service added tomorrow included) are the ones counted.
`introspect up` waits on it before it stops the services, so nothing a run published is left
unhandled or unjournaled.
"""
from __future__ import annotations

import asyncio

from nats.js import JetStreamContext


async def backlog(js: JetStreamContext) -> tuple[dict[str, int], dict[str, tuple[int, int]]]:
    """Each stream's last sequence, and (pending, unacked) for every durable consumer of it."""
    heads, consumers = {}, {}
    for stream in await paged(js.streams_info):
        name = stream.config.name
        heads[name] = stream.state.last_seq
        for info in await paged(js.consumers_info, name):
            if info.config.durable_name:  # ephemeral ones (watchers, the CLI's) come and go
                consumers[f"{name}/{info.name}"] = (info.num_pending or 0, info.num_ack_pending or 0)
    return heads, consumers


async def paged(list_call, *args) -> list:
    """Every item of a JetStream list call (the server answers at most 256 at a time)."""
    items: list = []
    while page := await list_call(*args, offset=len(items)):
        items += page
        if len(page) < 256:
            break
    return items


async def wait_until_caught_up(js: JetStreamContext, timeout: float, poll: float = 0.2) -> list[str]:
    """Wait until no durable consumer has anything pending or unacked, twice in a row with no
    stream grown in between (a handler publishes its output before it acks its input, so output
    still on its way shows up as growth). Returns what was still behind at the deadline, or []."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    settled_heads = None
    while True:
        heads, consumers = await backlog(js)
        behind = sorted(f"{name} ({pending} pending, {unacked} unacked)"
                        for name, (pending, unacked) in consumers.items() if pending or unacked)
        if not behind and heads == settled_heads:
            return []
        if loop.time() >= deadline:
            return behind or ["streams still growing"]
        settled_heads = None if behind else heads
        await asyncio.sleep(poll)
