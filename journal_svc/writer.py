"""Idempotent batch writes: COPY into a per-connection staging table, then INSERT … ON CONFLICT
DO NOTHING, all in one transaction per fetched batch. A redelivered or re-published event
(same event_id) adds nothing.
"""
from __future__ import annotations

from collections import defaultdict

import asyncpg

from journal_svc import rows
from shared.contract import events

EVENTS_COLUMNS = ["event_id", "run_id", "step", "ts", "kind", "subject", "payload"]


async def table_columns(pool: asyncpg.Pool) -> dict[str, tuple[list[str], set[str]]]:
    """Column order and jsonb columns of every event table, read once at start-up."""
    records = await pool.fetch(
        """SELECT table_name, column_name, data_type FROM information_schema.columns
           WHERE table_schema = current_schema() AND table_name = ANY($1::text[])
           ORDER BY table_name, ordinal_position""", rows.TABLES)
    columns: dict[str, tuple[list[str], set[str]]] = defaultdict(lambda: ([], set()))
    for r in records:
        names, jsonb = columns[r["table_name"]]
        names.append(r["column_name"])
        if r["data_type"] == "jsonb":
            jsonb.add(r["column_name"])
    return dict(columns)


async def create_staging_tables(conn: asyncpg.Connection) -> None:
    """Per-connection staging tables, emptied at each commit; made once when a connection opens."""
    for table in ["events", *rows.TABLES]:
        await conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS stage_{table} (LIKE {table}) "
                           "ON COMMIT DELETE ROWS")


async def copy_upsert(conn: asyncpg.Connection, table: str, columns: list[str], records) -> None:
    stage = f"stage_{table}"
    await conn.copy_records_to_table(stage, records=records, columns=columns)
    names = ", ".join(columns)
    await conn.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM {stage} ON CONFLICT DO NOTHING")


class JournalWriter:
    def __init__(self, pool: asyncpg.Pool, columns):
        self.pool, self.columns = pool, columns

    @classmethod
    async def create(cls, pool: asyncpg.Pool) -> "JournalWriter":
        return cls(pool, await table_columns(pool))

    def group(self, batch: list[tuple[events.Event, str, bytes]]) -> dict[str, list[tuple]]:
        by_table: dict[str, list[tuple]] = defaultdict(list)
        for event, subject, raw in batch:
            by_table["events"].append(rows.event_row(event, subject, raw))
            table = rows.TABLE_FOR_KIND[rows.kind_of(event)]
            names, jsonb = self.columns[table]
            by_table[table].extend(rows.typed_rows(event, names, jsonb))
            for derived, records in rows.derived_rows(event, self.columns).items():
                by_table[derived].extend(records)
        return by_table

    async def write(self, batch: list[tuple[events.Event, str, bytes]]) -> None:
        """Write (event, subject, raw bytes) triples in one transaction."""
        by_table = self.group(batch)
        async with self.pool.acquire() as conn, conn.transaction():
            for table, records in by_table.items():
                names = EVENTS_COLUMNS if table == "events" else self.columns[table][0]
                await copy_upsert(conn, table, names, records)
            await upsert_runs(conn, [event for event, _, _ in batch])


async def upsert_runs(conn: asyncpg.Connection, batch: list[events.Event]) -> None:
    """One row per run: when it was first and last seen, its last step and reported state."""
    runs: dict[str, list] = {}
    for e in batch:
        state = e.state if isinstance(e, events.Status) else None
        seen = runs.setdefault(e.run_id, [e.ts, e.ts, e.step, None])
        seen[0], seen[1], seen[2] = min(seen[0], e.ts), max(seen[1], e.ts), max(seen[2], e.step)
        seen[3] = state or seen[3]
    await conn.executemany(
        """INSERT INTO runs (run_id, first_seen, last_seen, last_step, state)
           VALUES ($1, $2, $3, $4, $5)
           ON CONFLICT (run_id) DO UPDATE SET
             first_seen = least(runs.first_seen, EXCLUDED.first_seen),
             last_seen = greatest(runs.last_seen, EXCLUDED.last_seen),
             last_step = greatest(runs.last_step, EXCLUDED.last_step),
             state = coalesce(EXCLUDED.state, runs.state)""",
        [(run, rows.timestamp(a), rows.timestamp(b), step, state)
         for run, (a, b, step, state) in runs.items()])
