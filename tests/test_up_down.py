"""`introspect up` starts what is missing (here: NATS, with a user per role) and the services;
`introspect down` from another shell stops them all cleanly, services first, then the server `up`
started."""
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import nats
import nats.errors
import pytest

from introspect import servers
from introspect.launcher import SERVICES
from support import discovered

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def wait_for(check, up: subprocess.Popen, log: Path, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while not (found := check()) and time.monotonic() < deadline:
        assert up.poll() is None, log.read_text()
        time.sleep(0.3)
    return found


def test_up_starts_what_is_missing_and_down_stops_everything(database_url, tmp_path):
    port = servers.free_port()
    nats_url, state = f"nats://127.0.0.1:{port}", tmp_path / "state"
    env = {**os.environ, "NATS_URL": nats_url, "DATABASE_URL": database_url,
           "INTROSPECT_STATE_DIR": str(state), "INTROSPECT_WEB_PORT": "0"}
    log = tmp_path / "up.log"
    up = subprocess.Popen([sys.executable, "-m", "introspect.cli", "up", "--no-train"], cwd=ROOT, env=env,
                          stdout=log.open("wb"), stderr=subprocess.STDOUT)
    try:
        record = wait_for(lambda: (state / "servers.json").exists() and
                          json.loads((state / "servers.json").read_text()), up, log)
        assert record.get("nats_pid"), record  # none was reachable, so up started one
        assert wait_for(lambda: servers.reachable("127.0.0.1", port), up, log)
        users = state / "nats-users.json"
        assert users.stat().st_mode & 0o077 == 0  # the passwords are the owner's alone
        viewer = json.loads(users.read_text())["viewer"]
        with pytest.raises(nats.errors.Error, match="Authorization Violation"):  # anonymous: refused
            asyncio.run(nats.connect(nats_url, allow_reconnect=False))
        assert wait_for(lambda: asyncio.run(discovered(nats_url, "viewer", viewer)) >= set(SERVICES), up, log), \
            log.read_text()
        status = subprocess.run([sys.executable, "-m", "introspect.cli", "status"], cwd=ROOT, env=env,
                                capture_output=True, text=True, timeout=60)
        assert status.returncode == 0, status.stderr
        down = subprocess.run([sys.executable, "-m", "introspect.cli", "down"], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=120)
        assert down.returncode == 0, down.stderr
        assert up.wait(30) == 0, log.read_text()  # non-zero when a service did not drain and exit 0
        assert "Traceback" not in log.read_text(), log.read_text()
        assert not servers.reachable("127.0.0.1", port)
        assert not (state / "servers.json").exists()
        assert "Violation" not in (state / "nats.log").read_text()  # each service had what it needed
    finally:
        if up.poll() is None:
            up.kill()
