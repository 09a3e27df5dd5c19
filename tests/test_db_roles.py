"""The journal's roles on a real PostgreSQL: the reader only reads, the writer journals events but
changes no schema, the migration tolerates roles that are already there (they are cluster-wide),
and the services' URLs and passwords come out as the README says."""
import asyncio
import base64
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from introspect import servers
from introspect.launcher import Infrastructure, stored_passwords
from journal_svc.writer import JournalWriter
from processes import ROOT, Processes
from shared import bus, db, role_passwords, schema
from shared.contract import events
from shared.contract.db_roles import READER, ROLES, WRITER, role_url
from shared.contract.settings import load_settings

DENIED = asyncpg.exceptions.InsufficientPrivilegeError


@pytest.fixture
async def as_role(database_url):
    """`await as_role(ROLE)`: a connection to the test's database as that role."""
    conns = []

    async def connect(role: str) -> asyncpg.Connection:
        conns.append(await asyncpg.connect(role_url(database_url, role)))
        return conns[-1]
    yield connect
    for conn in conns:
        await conn.close()


async def allowed(conn: asyncpg.Connection, statements: list[str]) -> list[str]:
    """The statements the connection was allowed to run (each on its own: autocommit)."""
    ran = []
    for sql in statements:
        try:
            await conn.execute(sql)
            ran.append(sql)
        except DENIED:
            pass
    return ran


async def test_the_reader_may_not_change_anything(as_role):
    reader = await as_role(READER)
    assert await allowed(reader, [
        "INSERT INTO runs (run_id, first_seen, last_seen) VALUES ('x', now(), now())",
        "UPDATE runs SET state = 'hacked'",
        "DELETE FROM steps",
        "INSERT INTO journal_entries (event_id, run_id, step, ts, author, entry_type) "
        "VALUES ('e', 'x', 0, now(), 'me', 'note')",
        "INSERT INTO run_prompts (run_id, version) VALUES ('x', 'v1.4')",
        "CREATE TABLE mine (x int)",
        "CREATE VIEW mine AS SELECT 1",
        "DROP TABLE steps",
        "TRUNCATE events",
    ]) == []


async def test_the_reader_reads_tables_and_views(pool, as_role, one_of_each):
    await (await JournalWriter.create(pool)).write([(e, "x", events.encode(e)) for e in one_of_each()])
    reader = await as_role(READER)
    assert await reader.fetchval("SELECT count(*) FROM events") == len(one_of_each())
    assert await reader.fetchval("SELECT count(*) FROM loss_by_step") == 1
    assert await reader.fetchval("SELECT count(*) FROM prompts") >= 2  # selfplay_svc reads them


async def test_the_writer_journals_every_kind_idempotently(writer_pool, pool, one_of_each):
    batch = [(e, "x", events.encode(e)) for e in one_of_each()]
    writer = await JournalWriter.create(writer_pool)
    await writer.write(batch)
    await writer.write(batch)  # a redelivery: the runs upsert and ON CONFLICT need no more rights
    assert await pool.fetchval("SELECT count(*) FROM events") == len(batch)
    assert await pool.fetchval("SELECT last_step FROM runs WHERE run_id = 'r1'") == 10


async def test_the_writer_may_not_change_the_schema_or_the_operators_tables(as_role):
    writer = await as_role(WRITER)
    assert await allowed(writer, [
        "CREATE TABLE mine (x int)",
        "DROP TABLE steps",
        "ALTER TABLE steps ADD COLUMN x int",
        "DELETE FROM steps",
        "TRUNCATE events",
        "UPDATE steps SET loss = 0",
        "INSERT INTO prompts (version, text, word_count) VALUES ('evil', 'x', 1)",  # the operator's
        "INSERT INTO run_prompts (run_id, version) VALUES ('x', 'v1.4')",
        "UPDATE alembic_version SET version_num = '0001'",
    ]) == []


async def test_a_table_a_later_migration_creates_gets_the_same_grants(database_url, as_role):
    owner = await asyncpg.connect(database_url)
    try:
        await owner.execute("CREATE TABLE later (event_id text PRIMARY KEY)")
    finally:
        await owner.close()
    writer, reader = await as_role(WRITER), await as_role(READER)
    await writer.execute("INSERT INTO later VALUES ('a')")
    assert await reader.fetchval("SELECT count(*) FROM later") == 1
    with pytest.raises(DENIED):
        await reader.execute("INSERT INTO later VALUES ('b')")


async def test_migrating_where_the_roles_exist_and_down_and_up_again_keeps_the_grants(pg_server, template_db):
    """The template already made the roles: a new journal migrates beside it; its downgrade revokes
    its own grants and keeps the roles the template still uses."""
    url = db.with_database(pg_server, f"introspect_roles_{uuid.uuid4().hex[:8]}")
    await db.ensure_database(url)
    try:
        await schema.migrate_async(url)
        await asyncio.to_thread(schema.downgrade, url, "0008")
        reader = await asyncpg.connect(role_url(url, READER))  # the role is still there
        try:
            with pytest.raises(DENIED):
                await reader.fetchval("SELECT count(*) FROM runs")
            await schema.migrate_async(url)
            assert await reader.fetchval("SELECT count(*) FROM runs") == 0
        finally:
            await reader.close()
    finally:
        await db.drop_database(url)


def test_role_urls_default_to_the_owners_server_as_each_role():
    settings = load_settings({"DATABASE_URL": "postgresql://owner:pw@db.example:5433/journal?sslmode=require"})
    assert settings.journal_database_url == f"postgresql://{WRITER}@db.example:5433/journal?sslmode=require"
    assert settings.reader_database_url == f"postgresql://{READER}@db.example:5433/journal?sslmode=require"
    given = "postgresql://introspect_reader:s3cret@elsewhere/journal"
    assert load_settings({"READER_DATABASE_URL": given}).reader_database_url == given


def test_up_makes_the_role_passwords_once_readable_by_their_owner_only(tmp_path):
    path = tmp_path / "db_passwords.json"
    first = stored_passwords(path)
    assert set(first) == set(ROLES) and len(set(first.values())) == 2
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stored_passwords(path) == first
    assert role_passwords.role_password(role_url("postgresql://h/db", WRITER, first[WRITER])) == (WRITER, first[WRITER])


async def stored_verifier(conn: asyncpg.Connection, role: str) -> tuple[str, bytes, int]:
    """(verifier, salt, iterations) PostgreSQL keeps for the role."""
    stored = await conn.fetchval("SELECT rolpassword FROM pg_authid WHERE rolname = $1", role)
    iterations, salt = re.match(r"SCRAM-SHA-256\$(\d+):([^$]+)\$", stored).groups()
    return stored, base64.b64decode(salt), int(iterations)


async def test_the_password_verifier_is_the_one_postgresql_computes(database_url):
    """PostgreSQL hashes a password itself; ours, with its salt and iterations, must match."""
    role, password = f"introspect_t_{uuid.uuid4().hex[:8]}", "pässword with spaces/and:colons"
    owner = await asyncpg.connect(database_url)
    try:
        await owner.execute("SET password_encryption = 'scram-sha-256'")
        await owner.execute(f"CREATE ROLE {role} PASSWORD '{password}'")
        stored, salt, iterations = await stored_verifier(owner, role)
    finally:
        await owner.execute(f"DROP ROLE IF EXISTS {role}")
        await owner.close()
    assert role_passwords.scram_verifier(password, salt, iterations) == stored


async def test_the_migrate_job_sets_the_password_in_a_role_url(database_url):
    owner = await asyncpg.connect(database_url)
    before = await owner.fetchval("SELECT rolpassword FROM pg_authid WHERE rolname = $1", READER)
    try:
        changed = await role_passwords.set_passwords(
            database_url, [role_url(database_url, READER, "s3cret"), role_url(database_url, WRITER)])
        assert changed == [READER]  # the writer's URL has no password: its role keeps its own
        stored, salt, iterations = await stored_verifier(owner, READER)
        assert role_passwords.scram_verifier("s3cret", salt, iterations) == stored
    finally:  # roles are cluster-wide: leave the shared server as it was
        await owner.execute(await owner.fetchval("SELECT format('ALTER ROLE %I PASSWORD %L', $1::text, $2::text)",
                                                 READER, before))
        await owner.close()


def test_up_on_its_embedded_server_gives_each_service_a_url_with_its_own_password():
    """`up` found no PostgreSQL, started one: the roles' URLs carry the stored passwords, and each
    role connects with its URL and has its rights there."""
    # not tmp_path: as root the server runs as another user, and each pytest session makes
    # /tmp/pytest-of-root private again, locking a concurrent session's server out of its folder
    tmp_path = Path(tempfile.mkdtemp(prefix="introspect-up-pg-"))
    port = servers.free_port()
    infra = Infrastructure(tmp_path / "state")
    (tmp_path / "state").mkdir()
    try:
        settings = infra.ensure_postgres(load_settings(
            {}, database_url=f"postgresql://postgres@127.0.0.1:{port}/introspect"))
        passwords = stored_passwords(tmp_path / "state" / "db_passwords.json")
        assert settings.journal_database_url == role_url(settings.database_url, WRITER, passwords[WRITER])
        assert settings.reader_database_url == role_url(settings.database_url, READER, passwords[READER])

        async def check():
            owner = await asyncpg.connect(settings.database_url)
            try:
                for role in ROLES:  # the server holds a verifier of the stored password
                    stored, salt, iterations = await stored_verifier(owner, role)
                    assert role_passwords.scram_verifier(passwords[role], salt, iterations) == stored
            finally:
                await owner.close()
            reader = await asyncpg.connect(settings.reader_database_url)
            try:
                assert await allowed(reader, ["DELETE FROM runs"]) == []
                assert await reader.fetchval("SELECT count(*) FROM prompts") >= 2
            finally:
                await reader.close()
        asyncio.run(check())
    finally:
        infra.stop()
        shutil.rmtree(tmp_path, ignore_errors=True)


async def test_the_cli_reads_as_the_reader_and_chooses_a_prompt_as_the_owner(settings, nc, pool):

    async def cli(*args, **env):
        return await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "introspect", *args], cwd=ROOT, capture_output=True,
            text=True, timeout=60, env={**os.environ, "NATS_URL": settings.nats_url, **env})
    only_reader = {"DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
                   "READER_DATABASE_URL": settings.reader_database_url}
    listed = await cli("prompt", "list", **only_reader)
    assert listed.returncode == 0 and "v1.4" in listed.stdout, listed.stderr
    chosen = await cli("prompt", "use", "v1.4", "--run", "cli1", DATABASE_URL=settings.database_url)
    assert chosen.returncode == 0, chosen.stderr
    assert await pool.fetchval("SELECT version FROM run_prompts WHERE run_id = 'cli1'") == "v1.4"


async def test_journal_svc_ingests_as_the_writer_and_serves_the_web_journal_as_the_reader(
        settings, nc, database_url, tmp_path):
    port = servers.free_port()
    env = {**os.environ, "NATS_URL": settings.nats_url, "DATABASE_URL": settings.database_url,
           "INTROSPECT_WEB_PORT": str(port), "INTROSPECT_STATE_DIR": str(tmp_path / "state")}
    processes = Processes(env, tmp_path)
    processes.start("journal_svc", "journal_svc")
    owner = await asyncpg.connect(database_url)  # one connection: pg_backend_pid() is all of ours
    try:
        status = events.Status(event_id=events.new_event_id(), run_id="roles1", step=4, state="running")
        await bus.publish(nc.jetstream(), status)
        for _ in range(150):
            if await owner.fetchval("SELECT 1 FROM runs WHERE run_id = 'roles1'"):
                break
            await asyncio.sleep(0.2)
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/journal", params={"run": "roles1"}) as page:
                assert page.status == 200 and "roles1" in await page.text(), processes.logs()
        users = {r[0] for r in await owner.fetch(
            "SELECT usename FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")}
        assert users == {WRITER, READER}, processes.logs()
    finally:
        await owner.close()
        assert (await processes.stop_all())["journal_svc"] == 0, processes.logs()
