"""PostgreSQL access: the asyncpg pool, database creation and removal. Migrations are in
`shared.schema` (alembic), which the services never need."""
from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import asyncpg


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
    return isinstance(err, UNAVAILABLE) and not isinstance(err, ValueError)
