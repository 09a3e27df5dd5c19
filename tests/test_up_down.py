"""`introspect up` starts what is missing (here: NATS) and the services; `introspect down` from
another shell stops them all cleanly, services first, then the server `up` started."""
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from introspect import servers

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def test_up_starts_what_is_missing_and_down_stops_everything(database_url, tmp_path):
    port = servers.free_port()
    env = {**os.environ, "NATS_URL": f"nats://127.0.0.1:{port}", "DATABASE_URL": database_url,
           "INTROSPECT_STATE_DIR": str(tmp_path / "state"), "INTROSPECT_WEB_PORT": "0"}
    log = open(tmp_path / "up.log", "wb")
    up = subprocess.Popen([sys.executable, "-m", "introspect.cli", "up", "--no-train"], cwd=ROOT, env=env,
                          stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while "services are up" not in (tmp_path / "up.log").read_text() and time.monotonic() < deadline:
            assert up.poll() is None, (tmp_path / "up.log").read_text()
            time.sleep(0.2)
        status = subprocess.run([sys.executable, "-m", "introspect.cli", "status"], cwd=ROOT, env=env,
                                capture_output=True, text=True, timeout=60).stdout
        for name in ("journal_svc", "understanding_svc", "selfplay_svc"):
            deadline = time.monotonic() + 30
            while f"service   {name}" not in status and time.monotonic() < deadline:
                time.sleep(0.5)
                status = subprocess.run([sys.executable, "-m", "introspect.cli", "status"], cwd=ROOT,
                                        env=env, capture_output=True, text=True, timeout=60).stdout
            assert f"service   {name}" in status, status
        down = subprocess.run([sys.executable, "-m", "introspect.cli", "down"], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=120)
        assert down.returncode == 0, down.stderr
        assert "introspect up" in down.stdout
        assert up.wait(30) == 0
        output = (tmp_path / "up.log").read_text()
        assert "starting nats-server" in output
        assert output.count('"msg":"stopped"') == 3, output  # every service drained and closed
        assert "Traceback" not in output, output
        assert not servers.reachable("127.0.0.1", port)
        assert not (tmp_path / "state" / "servers.json").exists()
    finally:
        if up.poll() is None:
            up.kill()
