"""The contract, settings, migrations and control state."""
import asyncio
import re
import uuid

import asyncpg
import msgspec
import pytest

from shared import bus, db, schema
from shared.bus import control
from shared.contract import events, subjects
from shared.contract.settings import ConfigError, load_settings


def test_every_event_kind_round_trips_and_has_a_subject_in_a_stream(one_of_each):
    sample = one_of_each()
    assert {type(e) for e in sample} == set(events.EVENT_TYPES.values())
    for event in sample:
        assert events.decode(events.encode(event)) == event
        subject = subjects.subject_for(event, "operator")
        assert subjects.stream_for(subject) in subjects.STREAMS
        assert subject.split(".")[1] == event.run_id


@pytest.mark.parametrize("payload, error", [
    (b'{"kind":"step","event_id":"a","run_id":"r","step":1}', "missing required field"),
    (b'{"kind":"nope","event_id":"a","run_id":"r","step":1}', "invalid value 'nope'"),
    (b'{"kind":"entry","event_id":"a","run_id":"r","step":"one","author":"human","body":"x"}',
     "expected `int`"),
    (b'{"kind":"entry","event_id":"a","run_id":"r","step":1,"author":"human","body":"x","evil":1}',
     "unknown field"),
])
def test_decoding_is_strict(payload, error):
    with pytest.raises(msgspec.ValidationError, match=re.compile(re.escape(error), re.I)):
        events.decode(payload)


def test_broken_config_names_the_environment_variable():
    with pytest.raises(ConfigError, match="INTROSPECT_BATCH_SIZE"):
        load_settings({"INTROSPECT_BATCH_SIZE": "zero"})
    with pytest.raises(ConfigError, match="DATABASE_URL"):
        load_settings({"DATABASE_URL": "mysql://x"})
    assert load_settings({"INTROSPECT_CONCURRENCY": "3"}).concurrency == 3


def test_run_ids_cannot_break_subjects():
    for bad in ("a.b", "a b", "*", ">", ""):
        with pytest.raises(ValueError):
            subjects.check_run_id(bad)


async def names(url: str, sql: str) -> set[str]:
    conn = await asyncpg.connect(url)
    try:
        return {r[0] for r in await conn.fetch(sql)}
    finally:
        await conn.close()


TABLES = ("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' "
          "AND table_name <> 'alembic_version'")
RUN_PROMPTS = "SELECT column_name FROM information_schema.columns WHERE table_name = 'run_prompts'"


async def test_migrations_go_up_and_down(pg_server):
    url = db.with_database(pg_server, f"introspect_mig_{uuid.uuid4().hex[:8]}")
    await db.ensure_database(url)
    try:
        await schema.migrate_async(url)
        assert {"runs", "steps", "activations", "samples", "reflections", "detections", "commands",
                "journal_entries", "conversations", "prompts", "shimmer", "concepts",
                "loss_by_step", "pauses", "journal_timeline",
                "written_after_last_pause"} <= await names(url, TABLES)
        assert "reflect_every" in await names(url, RUN_PROMPTS)  # revision 0002
        await asyncio.to_thread(schema.downgrade, url, "0001")
        assert "reflect_every" not in await names(url, RUN_PROMPTS)
        await asyncio.to_thread(schema.downgrade, url, "base")
        assert await names(url, TABLES) == set()
    finally:
        await db.drop_database(url)


async def test_pause_for_a_detection_is_sent_once_and_resume_clears_it(nc, settings):
    js = nc.jetstream()
    kv = await bus.control_bucket(js, settings)
    seen = await js.pull_subscribe("control.r9.>", stream="CONTROL")
    cause = events.PauseCause(detector="bias", severity="high", detection_id="det-1", source_event_id="s")
    pause = control.command("r9", events.Pause(cause=cause), reason="bias high", who="understanding_svc")
    assert await control.send(js, kv, pause, "understanding")
    assert not await control.send(js, kv, control.command("r9", events.Pause(cause=cause)), "understanding")
    state, _ = await control.read_state(kv, "r9")
    assert (state.state, state.detection_id) == ("paused", "det-1")
    assert await control.send(js, kv, control.command("r9", events.Resume(), note="context checked"), "operator")
    state, _ = await control.read_state(kv, "r9")
    assert state.state == "running"
    msgs = await seen.fetch(5, timeout=2)
    assert [m.subject for m in msgs] == ["control.r9.pause.understanding", "control.r9.resume.operator"]
