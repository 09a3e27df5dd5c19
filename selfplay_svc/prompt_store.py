"""Reflection prompt versions in PostgreSQL: the shipped versions (stored by the migrations, from
selfplay_svc/prompts.py), the active version per run, and the run's reflection schedule (kept in
the control KV bucket, which the trainer reads too; `run_prompts.reflect_every` is its record).

Every change of a run's version is also a journal entry, so the journal says which prompt wrote
which reflection and when that changed: the entry carries the run's step at the time (its last
journaled step), so it sits between the reflections it separates.
"""
from __future__ import annotations

import asyncpg

from shared import bus
from shared.bus import control
from shared.contract import events


async def list_prompts(pool: asyncpg.Pool):
    return await pool.fetch("SELECT version, word_count, created_at FROM prompts ORDER BY version")


async def active_prompt(pool: asyncpg.Pool, run_id: str, default: str) -> tuple[str, str]:
    """(version, text) of the run's active prompt, or of `default` when the run never chose one."""
    row = await pool.fetchrow(
        """SELECT p.version, p.text FROM prompts p
           WHERE p.version = coalesce((SELECT version FROM run_prompts WHERE run_id = $1), $2)""",
        run_id, default)
    if row is None:
        raise LookupError(f"prompt version {default!r} is not in the prompts table")
    return row["version"], row["text"]


async def current_step(pool: asyncpg.Pool, run_id: str) -> int:
    """The run's last journaled step; -1 ("no step") for a run the journal has not seen yet."""
    step = await pool.fetchval("SELECT last_step FROM runs WHERE run_id = $1", run_id)
    return -1 if step is None else step


async def set_reflect_every(pool: asyncpg.Pool, js, kv, run_id: str, every: int,
                            who: str) -> events.ReflectSchedule:
    """The run reflects every `every` steps: the schedule goes to the control bucket, where
    selfplay and the trainer (which checkpoints at those steps) read it, and to the journal."""
    if every < 1:
        raise SystemExit("reflect every: steps must be at least 1")
    schedule = await control.set_reflect_schedule(kv, run_id, every, who)
    await pool.execute(
        """INSERT INTO run_prompts (run_id, reflect_every, who) VALUES ($1, $2, $3)
           ON CONFLICT (run_id) DO UPDATE SET reflect_every = EXCLUDED.reflect_every,
           set_at = now(), who = EXCLUDED.who""", run_id, every, who)
    await bus.publish(js, events.JournalEntry(
        event_id=events.new_event_id(), run_id=run_id, step=await current_step(pool, run_id),
        author="system",
        entry_type="prompt_change", title=f"reflections every {every} steps", who=who,
        body=f"Run {run_id} now reflects every {every} steps.", refs={"reflect_every": str(every)}))
    return schedule


async def use_prompt(pool: asyncpg.Pool, js, run_id: str, version: str, who: str) -> None:
    known = [r["version"] for r in await list_prompts(pool)]
    if version not in known:
        raise SystemExit(f"unknown prompt version {version!r}; known: {', '.join(known) or 'none'} "
                         "(the migrations store the shipped versions: run `alembic upgrade head`)")
    await pool.execute(
        """INSERT INTO run_prompts (run_id, version, who) VALUES ($1, $2, $3)
           ON CONFLICT (run_id) DO UPDATE SET version = EXCLUDED.version, set_at = now(),
           who = EXCLUDED.who""", run_id, version, who)
    await bus.publish(js, events.JournalEntry(
        event_id=events.new_event_id(), run_id=run_id, step=await current_step(pool, run_id),
        author="system",
        entry_type="prompt_change", title=f"prompt {version}", who=who,
        body=f"Reflections for run {run_id} now use prompt {version}.", refs={"version": version}))
