"""Live pages: server-sent events (`/events?run=R`) fed from core NATS subscriptions on the run's
subjects, so new points, journal entries, detections and pauses reach an open page without reload.

Each browser gets its own subscriptions and a bounded queue. The bus callback only decodes and
appends (never awaits the browser): when a browser reads slower than the bus delivers, the oldest
events are dropped and the page is told how many (`event: dropped`), so one slow tab can neither
block the bus nor grow memory. A comment line every HEARTBEAT_S keeps proxies from closing an idle
stream and finds browsers that went away; on shutdown every stream ends with `event: bye`.
Core subscriptions see what is published from now on; the page itself was rendered from the
journal, so together they cover the run (an event published between the two may show twice).
"""
from __future__ import annotations

import asyncio
import collections
import logging

import msgspec
from aiohttp import web

from journal_svc import web_render
from shared.contract import events, subjects

log = logging.getLogger(__name__)

# every kind a page can show; activations stay off (large, one per measuring step): the residual
# heatmap is drawn from the journal when the page loads
LIVE_KINDS = ("step", "eval", "status", "sample", "checkpoint", "mix", "detection", "shimmer",
              "entry", "reflection", "reply", "command")
QUEUE_LIMIT = 2000  # events per browser between two reads
HEARTBEAT_S = 15.0
CONTENT_TYPE = "text/event-stream"


class ClientQueue:
    """One browser's pending events, newest kept: put never blocks, take empties."""

    def __init__(self, limit: int = QUEUE_LIMIT):
        self.items: collections.deque[bytes] = collections.deque(maxlen=limit)
        self.dropped = 0
        self.ready = asyncio.Event()
        self.closing = False

    def put(self, item: bytes) -> None:
        if len(self.items) == self.items.maxlen:
            self.dropped += 1  # deque(maxlen) drops the oldest on append
        self.items.append(item)
        self.ready.set()

    def take(self) -> tuple[list[bytes], int]:
        items, dropped = list(self.items), self.dropped
        self.items.clear()
        self.dropped = 0
        self.ready.clear()
        return items, dropped

    def close(self) -> None:
        self.closing = True
        self.ready.set()


def sse(kind: str, data: object) -> bytes:
    """One server-sent event; msgspec writes NaN and ±inf as null, which JSON.parse accepts."""
    return f"event: {kind}\ndata: ".encode() + msgspec.json.encode(data) + b"\n\n"


def page_data(event: events.Event) -> dict:
    """What a page needs of an event: its fields, and for what the journal lists (entries,
    detections) the entry's HTML, rendered and escaped like the rest of the journal."""
    data = msgspec.to_builtins(event)
    if isinstance(event, events.JournalEntry):
        data["html"] = web_render.render_entry(data, {})
    elif isinstance(event, events.Detection):
        data["html"] = web_render.render_detection(data)
    return data


class LiveHub:
    """The open streams of one web app; `close` ends them all (aiohttp's on_shutdown)."""

    def __init__(self, nc, heartbeat_s: float = HEARTBEAT_S, queue_limit: int = QUEUE_LIMIT):
        self.nc, self.heartbeat_s, self.queue_limit = nc, heartbeat_s, queue_limit
        self.clients: set[ClientQueue] = set()

    async def close(self, app: web.Application | None = None) -> None:
        for queue in list(self.clients):
            queue.close()

    async def subscribe(self, run: str, queue: ClientQueue) -> list:
        async def deliver(msg):
            try:
                event = events.decode(msg.data)
            except msgspec.ValidationError:  # the journal dead-letters it; nothing to show
                return
            queue.put(sse(event.__struct_config__.tag, page_data(event)))
        return [await self.nc.subscribe(subjects.filter_for_kind(kind, run), cb=deliver)
                for kind in LIVE_KINDS]

    async def stream(self, request: web.Request, run: str) -> web.StreamResponse:
        """Send the run's events to one browser until it goes away or the server stops."""
        response = web.StreamResponse(headers={"Content-Type": CONTENT_TYPE, "Cache-Control": "no-cache",
                                               "X-Accel-Buffering": "no"})  # nginx: do not buffer
        queue = ClientQueue(self.queue_limit)
        subscriptions = await self.subscribe(run, queue)
        self.clients.add(queue)
        try:
            await response.prepare(request)
            await response.write(b"retry: 3000\n" + sse("hello", {"run_id": run}))
            while not queue.closing:
                try:
                    await asyncio.wait_for(queue.ready.wait(), self.heartbeat_s)
                except TimeoutError:
                    await response.write(b": heartbeat\n\n")
                    continue
                items, dropped = queue.take()
                if dropped:
                    items.insert(0, sse("dropped", {"count": dropped}))
                if items:
                    await response.write(b"".join(items))
            await response.write(sse("bye", {"reason": "the journal is shutting down"}))
        except ConnectionResetError:  # the browser went away: nothing to tell it
            pass
        finally:
            self.clients.discard(queue)
            for sub in subscriptions:
                await sub.unsubscribe()
        return response
