"""What the operator's commands ask the journal: best effort, because the commands themselves go
over the bus and must work when the database is down or not migrated yet."""
from __future__ import annotations

import asyncio

import asyncpg


async def fetch_if_reachable(url: str, query: str, *args) -> list | None:
    """Rows of a journal query for the CLI, or None when the journal cannot answer (no database,
    not migrated): the CLI's commands go over the bus and must not need the database."""
    try:
        conn = await asyncpg.connect(url, timeout=2)
    except (OSError, asyncpg.PostgresError, asyncio.TimeoutError):
        return None
    try:
        return await conn.fetch(query, *args)
    except asyncpg.PostgresError:
        return None
    finally:
        await conn.close()


async def last_step(url: str, run_id: str) -> int:
    """The run's last journaled step, or -1 when the journal cannot say (unknown run, no database):
    human entries are stamped with it so they sit at the right place in the journal."""
    rows = await fetch_if_reachable(url, "SELECT last_step FROM runs WHERE run_id = $1", run_id)
    return rows[0]["last_step"] if rows else -1
