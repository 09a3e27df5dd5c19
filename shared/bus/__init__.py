"""The bus kit. This module: connect, provision streams and buckets, publish events; beside it the
consumer helper, the service life, run control, per-run KV state and structured logs.

Streams use file storage, limits retention (several services read the same subjects) and a
duplicate window, so an event re-published with the same `Nats-Msg-Id` is stored once.
"""
from __future__ import annotations

import asyncio
import logging
from urllib.parse import urlsplit

import nats
import nats.errors
from nats.js import JetStreamContext
from nats.js.api import (DiscardPolicy, KeyValueConfig, ObjectStoreConfig, RetentionPolicy,
                         StorageType, StreamConfig)
from nats.js.errors import BucketNotFoundError, NotFoundError

from shared.contract import events, subjects
from shared.contract.settings import Settings

log = logging.getLogger(__name__)


class Unreachable(ConnectionError):
    """NATS did not answer in time (a command line must say so, not hang)."""


class NotProvisioned(RuntimeError):
    """A stream or bucket is missing and this user may not create it."""


def nats_user(settings: Settings) -> str:
    """The NATS user this process connects as (NATS_USER, else the URL's), or "anonymous". It is
    the sender token of the commands it publishes (subjects.control)."""
    return settings.nats_user or urlsplit(settings.nats_url).username or subjects.ANONYMOUS


def user_of(nc: nats.NATS) -> str:
    """The NATS user a connection made by `connect` authenticated as, or "anonymous"."""
    return nc.options.get("user") or subjects.ANONYMOUS


async def connect(settings: Settings, name: str, timeout: float | None = None) -> nats.NATS:
    """A connection that reconnects forever and logs every change of state. With `timeout`
    (a person waiting at a command line) the first connection gives up after that many seconds."""
    errors: list[Exception] = []  # what the server said, for the message when we give up
    if timeout is not None:
        try:
            return await asyncio.wait_for(_connect(settings, name, errors), timeout)
        except (asyncio.TimeoutError, OSError, nats.errors.Error) as err:  # refused at once, or in time
            errors.append(err)
            raise Unreachable(f"NATS at {settings.nats_url} did not answer within {timeout:g} s"
                              f"{refusal(errors, settings)}") from None
    return await _connect(settings, name, errors)


def refusal(errors: list[Exception], settings: Settings) -> str:
    """Why the first connection failed, in words a person can act on."""
    if any("Authorization Violation" in str(err) for err in errors):
        return (f": it refused NATS user {nats_user(settings)!r} (set NATS_USER and NATS_PASSWORD, "
                "or run from the folder whose .state holds `up`'s passwords; README, Security)")
    return " (is it running? `introspect up` starts one)"


async def _connect(settings: Settings, name: str, errors: list[Exception]) -> nats.NATS:
    async def on_error(err):
        errors.append(err)
        del errors[:-1]  # the last one is enough
        log.warning("nats error", extra={"error": repr(err)})

    async def on_disconnect():
        if not (nc.is_closed or nc.is_draining):  # a deliberate close is not news
            log.warning("nats disconnected")

    async def on_reconnect():
        log.info("nats reconnected")

    user = nats_user(settings)  # explicit even when the URL carries it, so user_of(nc) can tell
    password = settings.nats_password if settings.nats_user else urlsplit(settings.nats_url).password
    credentials = {"user": user, "password": password or ""} if user != subjects.ANONYMOUS else {}
    nc = nats.NATS()
    await nc.connect(
        settings.nats_url, name=name, max_reconnect_attempts=-1, reconnect_time_wait=1,
        connect_timeout=5, error_cb=on_error, disconnected_cb=on_disconnect,
        reconnected_cb=on_reconnect, inbox_prefix=f"_INBOX.{nats_user(settings)}", **credentials)
    return nc


def stream_config(name: str, settings: Settings) -> StreamConfig:
    return StreamConfig(
        name=name, subjects=subjects.STREAMS[name], storage=StorageType.FILE,
        retention=RetentionPolicy.LIMITS, discard=DiscardPolicy.OLD,
        max_age=settings.stream_max_age_s, duplicate_window=settings.duplicate_window_s,
        num_replicas=settings.stream_replicas)


async def provision(js: JetStreamContext, settings: Settings) -> None:
    """Create or update every stream and bucket: the admin's job (`introspect up`, compose's
    `provision` job), since only the admin may create, update, purge or delete streams."""
    for name in subjects.STREAMS:
        config = stream_config(name, settings)
        try:
            await js.stream_info(name)
            await js.update_stream(config)
        except NotFoundError:
            await js.add_stream(config)
    await control_bucket(js, settings)
    await checkpoint_store(js, settings)
    from shared.bus import kv_state  # it imports kv_bucket from here
    for bucket in (subjects.UNDERSTANDING_STATE_BUCKET, subjects.SELFPLAY_STATE_BUCKET):
        await kv_state.state_bucket(js, bucket, settings.stream_replicas)


async def ensure_provisioned(js: JetStreamContext, settings: Settings) -> None:
    """What a service or the CLI calls at start: every stream must exist. A missing one is created
    when this user may (a server without users, in development and tests); with users, only the
    admin may, and the error says so instead of waiting forever."""
    for name in subjects.STREAMS:
        try:
            await js.stream_info(name)
        except NotFoundError:
            try:
                await js.add_stream(stream_config(name, settings))
            except nats.errors.TimeoutError:  # a denied request is not answered (PITFALLS)
                raise NotProvisioned(f"stream {name} does not exist and NATS user {nats_user(settings)!r} "
                                     "may not create it: provision as admin first (introspect up does, "
                                     "compose runs its provision job)") from None
    await control_bucket(js, settings)
    await checkpoint_store(js, settings)


async def kv_bucket(js: JetStreamContext, config: KeyValueConfig):
    """The bucket if it exists, else created with `config` (every instance calls this at start)."""
    try:
        return await js.key_value(config.bucket)
    except BucketNotFoundError:
        return await js.create_key_value(config)


async def control_bucket(js: JetStreamContext, settings: Settings):
    return await kv_bucket(js, KeyValueConfig(
        bucket=subjects.CONTROL_BUCKET, history=16, storage=StorageType.FILE,
        replicas=settings.stream_replicas))


async def checkpoint_store(js: JetStreamContext, settings: Settings):
    try:
        return await js.object_store(subjects.CHECKPOINT_BUCKET)
    except BucketNotFoundError:
        return await js.create_object_store(subjects.CHECKPOINT_BUCKET, ObjectStoreConfig(
            storage=StorageType.FILE, replicas=settings.stream_replicas))


def publish_args(event: events.Event, sender: str = "") -> tuple[str, bytes, dict[str, str]]:
    return subjects.subject_for(event, sender), events.encode(event), {"Nats-Msg-Id": event.event_id}


async def publish(js: JetStreamContext, event: events.Event, timeout: float = 5.0, sender: str = ""):
    """Publish and wait for the stream's ack: the event is stored (or was already) on return. A
    command needs its `sender` (nats_user(settings)): its subject ends with it."""
    subject, data, headers = publish_args(event, sender)
    return await js.publish(subject, data, headers=headers, timeout=timeout)
