"""PostgreSQL access: the asyncpg pool, database creation and removal. Migrations are in
`shared.schema` (alembic), which the services never need."""
from __future__ import annotations

import asyncio
import logging
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from shared import failures

log = logging.getLogger(__name__)


async def create_pool(url: str, min_size: int = 1, max_size: int = 4, init=None) -> asyncpg.Pool:
    return await asyncpg.create_pool(url, min_size=min_size, max_size=max_size, init=init)


def with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + database))


def database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/") or "postgres"


async def ensure_database(url: str, template: str | None = None) -> None:
    """Create the URL's database if it does not exist (connecting to `postgres` to do so)."""
    name = database_name(url)
    conn = await asyncpg.connect(with_database(url, "postgres"))
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            suffix = f' TEMPLATE "{template}"' if template else ""
            await conn.execute(f'CREATE DATABASE "{name}"{suffix}')
    finally:
        await conn.close()


async def drop_database(url: str) -> None:
    conn = await asyncpg.connect(with_database(url, "postgres"))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{database_name(url)}" WITH (FORCE)')
    finally:
        await conn.close()


# The database is down or going away (refused, reset, shut down by an admin, pool closing, too many
# clients, a deadlock to retry): the message is fine, the journal is not reachable right now.
# asyncpg's DataError is an InterfaceError AND a ValueError: bad input, so never "unavailable".
UNAVAILABLE = (asyncpg.PostgresConnectionError, asyncpg.exceptions.OperatorInterventionError,
               asyncpg.exceptions.InsufficientResourcesError,
               asyncpg.exceptions.TransactionRollbackError, asyncpg.InterfaceError)


def unavailable(err: BaseException) -> bool:
    return (isinstance(err, UNAVAILABLE) and not isinstance(err, ValueError)) or (
        isinstance(err, (ConnectionError, TimeoutError)) or (
            type(err) is OSError and "Connect call failed" in str(err)))


# A value the database refuses (out of range, a NUL in text, a broken constraint): the message is
# at fault, however often it is retried.
BAD_DATA = (asyncpg.exceptions.DataError, asyncpg.exceptions.IntegrityConstraintViolationError,
            ValueError, OverflowError, TypeError)


def bad_data(err: BaseException) -> bool:
    return isinstance(err, BAD_DATA)


failures.register(unavailable, bad_data)


async def when_up(make, what: str, first_wait: float = 0.5, longest_wait: float = 30.0):
    """`await make()`, retried while the database is unavailable (a service may start before
    it, or during an outage): one log line when waiting starts, one when it is over."""
    wait, since = first_wait, None
    while True:
        try:
            made = await make()
        except Exception as err:  # noqa: BLE001
            if not unavailable(err):
                raise
            if since is None:
                since = asyncio.get_running_loop().time()
                log.warning("database unavailable, waiting", extra={"for": what, "error": repr(err)[:300]})
            await asyncio.sleep(wait)
            wait = min(wait * 2, longest_wait)
            continue
        if since is not None:
            log.info("database available", extra={
                "for": what, "waited_s": round(asyncio.get_running_loop().time() - since, 1)})
        return made
