"""Per-run service state kept in a KV bucket, so it survives the instance that built it.

`update` is a compare-and-set loop: two instances updating the same run's state never lose each
other's changes (one retries on the other's revision).
"""
from __future__ import annotations

import asyncio

import msgspec
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError

from shared.bus import kv_bucket


async def state_bucket(js, name: str, replicas: int = 1):
    return await kv_bucket(js, KeyValueConfig(bucket=name, history=1, storage=StorageType.FILE,
                                              replicas=replicas, max_value_size=8 * 2**20))


async def load(kv, key: str) -> tuple[dict | None, int]:
    try:
        entry = await kv.get(key)
    except KeyNotFoundError:
        return None, 0
    return (msgspec.json.decode(entry.value) if entry.value else None), entry.revision


async def update(kv, key: str, change, attempts: int = 20):
    """Apply `change(state | None) -> (new_state, result)` atomically; returns result."""
    for _ in range(attempts):
        state, revision = await load(kv, key)
        new_state, result = change(state)
        try:
            await kv.update(key, msgspec.json.encode(new_state), last=revision)
            return result
        except KeyWrongLastSequenceError:
            continue  # another instance wrote first: redo on its state
    raise RuntimeError(f"state {key!r} kept changing under us ({attempts} attempts)")


async def get(kv, key: str) -> dict | None:
    return (await load(kv, key))[0]


async def merge(kv, key: str, fields: dict) -> None:
    await update(kv, key, lambda saved: ({**(saved or {}), **fields}, None))


async def claim(kv, key: str) -> bool:
    """True for the one caller that creates `key` first (work done once across instances)."""
    try:
        await kv.create(key, b"1")
        return True
    except KeyWrongLastSequenceError:
        return False


async def wait_for(kv, key: str, found, timeout: float):
    """The first `found(state)` that is not None, from the state now or from its updates within
    `timeout` seconds (a KV watch, not polling); None when time runs out."""
    watcher = await kv.watch(key)
    try:
        async with asyncio.timeout(timeout):
            async for entry in watcher:  # the current value first, then a None marker, then updates
                if entry is not None and entry.value:
                    result = found(msgspec.json.decode(entry.value))
                    if result is not None:
                        return result
    except TimeoutError:
        return None
    finally:
        await watcher.stop()
