"""What a run left behind, everywhere it left it: checkpoints in the object store, its own
durable consumer, KV keys, messages in the streams, journal rows and local files. `runs` lists
runs from all of these; `clean` removes one run's; `up` refuses a run id that was stopped.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from nats.js.errors import NoKeysError, NotFoundError

from shared import bus
from shared.bus import control
from shared.contract import subjects
from introspect.journal_queries import fetch_if_reachable

STATE_BUCKETS = (subjects.CONTROL_BUCKET, subjects.UNDERSTANDING_STATE_BUCKET, subjects.SELFPLAY_STATE_BUCKET)
RUN_TABLES_SQL = """SELECT c.table_name FROM information_schema.columns c
                    JOIN information_schema.tables t USING (table_schema, table_name)
                    WHERE c.table_schema = 'public' AND c.column_name = 'run_id'
                      AND t.table_type = 'BASE TABLE' ORDER BY 1"""


def local_dir(settings, run_id: str) -> Path:
    """Where `up` has the trainer write the run's checkpoints (`--out-dir <state>/runs`)."""
    return Path(settings.state_dir).resolve() / "runs" / run_id


def belongs_to(key: str, run_id: str) -> bool:
    """A KV key is the run's when the run id is one of its dot-separated tokens (`r1`,
    `protocol.r1`): run ids have no dots, so this never matches another run."""
    return run_id in key.split(".")


@dataclass
class Leftovers:
    run_id: str
    checkpoints: list[tuple[str, int]] = field(default_factory=list)  # object name, bytes
    consumers: list[tuple[str, str]] = field(default_factory=list)  # stream, durable
    kv_keys: list[tuple[str, str]] = field(default_factory=list)  # bucket, key
    messages: dict[str, int] = field(default_factory=dict)  # stream -> the run's messages
    rows: dict[str, int] = field(default_factory=dict)  # journal table -> rows
    journal_reachable: bool = True
    local: Path | None = None
    local_bytes: int = 0

    def empty(self) -> bool:
        return not (self.checkpoints or self.consumers or self.kv_keys or any(self.messages.values())
                    or any(self.rows.values()) or self.local)

    def lines(self) -> list[str]:
        out = []
        if self.checkpoints:
            size = sum(n for _, n in self.checkpoints) / 1e6
            out.append(f"checkpoints  {len(self.checkpoints)} in the object store ({size:.1f} MB)")
        out += [f"consumer     {durable} on {stream}" for stream, durable in self.consumers]
        out += [f"kv key       {bucket}/{key}" for bucket, key in self.kv_keys]
        if any(self.messages.values()):
            out.append("messages     " + ", ".join(f"{s} {n}" for s, n in self.messages.items() if n))
        if any(self.rows.values()):
            out.append("journal rows " + ", ".join(f"{t} {n}" for t, n in self.rows.items() if n))
        if not self.journal_reachable:
            out.append("journal      (database unreachable: its rows were not counted)")
        if self.local:
            out.append(f"local files  {self.local} ({self.local_bytes / 1e6:.1f} MB)")
        return out


async def run_objects(js, settings) -> list:
    store = await bus.checkpoint_store(js, settings)
    try:
        return [info for info in await store.list() if not info.deleted]
    except NotFoundError:  # an empty store
        return []


async def bucket_keys(js, bucket: str) -> list[str]:
    try:
        kv = await js.key_value(bucket)
        return await kv.keys()
    except (NotFoundError, NoKeysError):
        return []


async def stream_messages(js, run_id: str) -> dict[str, int]:
    counts = {}
    for stream, (filter_,) in subjects.STREAMS.items():
        if stream == "DLQ":  # dead letters keep their original subject only in a header
            continue
        subject = filter_.replace(">", f"{run_id}.>")
        info = await js.stream_info(stream, subjects_filter=subject)
        counts[stream] = sum((info.state.subjects or {}).values())
    return counts


async def survey(nc, settings, run_id: str) -> Leftovers:
    """Everything the run left, counted, nothing changed."""
    run = subjects.check_run_id(run_id)
    js = nc.jetstream()
    found = Leftovers(run)
    found.checkpoints = [(o.name, o.size or 0) for o in await run_objects(js, settings)
                         if o.name.startswith(f"{run}/")]
    stream, durable, _ = subjects.trainer_control(run)
    try:
        await js.consumer_info(stream, durable)
        found.consumers.append((stream, durable))
    except NotFoundError:
        pass
    for bucket in STATE_BUCKETS:
        found.kv_keys += [(bucket, key) for key in await bucket_keys(js, bucket) if belongs_to(key, run)]
    found.messages = await stream_messages(js, run)
    # as the owner, like `remove`: it counts what it may delete
    tables = await fetch_if_reachable(settings.database_url, RUN_TABLES_SQL)
    if tables is None:
        found.journal_reachable = False
    else:
        counts = " UNION ALL ".join(f"""SELECT '{r["table_name"]}' AS t, count(*) AS n FROM "{r["table_name"]}" """
                                    f"WHERE run_id = $1" for r in tables)
        counted = await fetch_if_reachable(settings.database_url, counts, run)
        found.rows = {r["t"]: r["n"] for r in counted or []}
    path = local_dir(settings, run)
    if path.exists():
        found.local = path
        found.local_bytes = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return found


async def remove(nc, settings, found: Leftovers) -> None:
    """Delete what `survey` found: journal rows in one transaction, then the bus, then files."""
    js, run = nc.jetstream(), found.run_id
    if any(found.rows.values()):
        import asyncpg
        conn = await asyncpg.connect(settings.database_url)  # the owner: the services' roles cannot delete
        try:
            async with conn.transaction():
                for table in found.rows:
                    await conn.execute(f'DELETE FROM "{table}" WHERE run_id = $1', run)
        finally:
            await conn.close()
    if found.checkpoints:
        store = await bus.checkpoint_store(js, settings)
        for name, _ in found.checkpoints:
            await store.delete(name)
    for stream, durable in found.consumers:
        await js.delete_consumer(stream, durable)
    for bucket, key in found.kv_keys:
        await (await js.key_value(bucket)).purge(key)
    for stream, (filter_,) in subjects.STREAMS.items():
        if found.messages.get(stream):
            await js.purge_stream(stream, subject=filter_.replace(">", f"{run}.>"))
    if found.local:
        shutil.rmtree(found.local)


async def known_runs(nc, settings) -> dict[str, dict]:
    """Every run any store knows: journal state and last step, desired state, checkpoints."""
    js = nc.jetstream()
    runs: dict[str, dict] = {}
    rows = await fetch_if_reachable(settings.reader_database_url,
                                    "SELECT run_id, last_step, state, last_seen FROM runs ORDER BY last_seen")
    for row in rows or []:
        runs[row["run_id"]] = {"step": row["last_step"], "state": row["state"] or "", "checkpoints": 0}
    kv = await bus.control_bucket(js, settings)
    for key in filter(subjects.is_run_key, await bucket_keys(js, subjects.CONTROL_BUCKET)):
        desired, _ = await control.read_state(kv, key)
        if desired:
            runs.setdefault(key, {"step": None, "state": "", "checkpoints": 0})["wanted"] = desired.state
    for info in await run_objects(js, settings):
        run = info.name.split("/", 1)[0]
        runs.setdefault(run, {"step": None, "state": "", "checkpoints": 0})["checkpoints"] += 1
    return runs


async def stopped_reason(nc, settings, run_id: str) -> str | None:
    """Why the run was stopped, when its desired state says it was; None when it may train."""
    desired, _ = await control.read_state(await bus.control_bucket(nc.jetstream(), settings), run_id)
    if desired and desired.state == "stopped":
        return f"stopped by {desired.who or 'someone'}" + (f": {desired.reason}" if desired.reason else "")
    return None


def left_behind(state_dir: Path) -> list[str]:
    """What `down` leaves on disk (the servers' data, runs, corpus), with sizes, for a person."""
    if not state_dir.exists():
        return []
    lines = []
    for entry in sorted(state_dir.iterdir()):
        files = [entry] if entry.is_file() else [f for f in entry.rglob("*") if f.is_file()]
        size = sum(f.stat().st_size for f in files) / 1e6
        what = f"{entry.name}: " + ", ".join(sorted(p.name for p in entry.iterdir())) if entry.name == "runs" \
            and entry.is_dir() else entry.name
        lines.append(f"  {what} ({size:.1f} MB)")
    return lines
