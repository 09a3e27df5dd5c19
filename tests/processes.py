"""Services as real processes for tests: start, call the CLI, read logs, stop with SIGTERM."""
import asyncio
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class Processes:
    def __init__(self, env, log_dir: Path):
        self.env, self.log_dir, self.procs = env, log_dir, {}

    def start(self, name, *args, env=None):
        log = open(self.log_dir / f"{name}.log", "wb")
        self.procs[name] = subprocess.Popen([sys.executable, "-m", *args], cwd=ROOT, env={**self.env, **(env or {})},
                                            stdout=log, stderr=subprocess.STDOUT)

    def cli(self, *args) -> str:
        done = subprocess.run([sys.executable, "-m", "introspect", *args], cwd=ROOT, env=self.env,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in self.log_dir.glob("*.log"))

    async def stop_all(self, timeout=30) -> dict[str, int]:
        """terminate_all without blocking the event loop (a proxy in this loop may be serving)."""
        return await asyncio.to_thread(self.terminate_all, timeout)

    def terminate_all(self, timeout=30) -> dict[str, int]:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        return {name: proc.wait(timeout) for name, proc in self.procs.items()}
