"""The `introspect` command against real NATS and PostgreSQL, as a person runs it (a subprocess):
commands wait for the trainer's answer and say it, exit codes tell applied from rejected."""
import asyncio
import os
import subprocess
import sys

from processes import ROOT
from support import Running, trainer_on, write_corpus
from trainer_svc.wiring import wire


def cli_env(settings) -> dict:
    return {**os.environ, "NATS_URL": settings.nats_url, "DATABASE_URL": settings.database_url}


async def cli(settings, *args, timeout=60) -> subprocess.CompletedProcess:
    """`introspect ARGS` in a subprocess, without blocking the test's event loop."""
    return await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "introspect", *args], cwd=ROOT, env=cli_env(settings),
        capture_output=True, text=True, timeout=timeout)


async def test_commands_print_the_trainers_answer_and_fail_when_it_rejects(settings, trainer_args, tmp_path):
    args = trainer_args("--steps", "100000", run_id="c1")
    wiring = wire(args, settings)
    assert await asyncio.to_thread(wiring.start, 10)
    inside = write_corpus(tmp_path / "more.txt", seed=1)
    async with Running(trainer_on(wiring, args), wiring) as running:
        rejected = await cli(settings, "mix", "--run", "c1", "pw=/etc/passwd:0.5")
        assert rejected.returncode == 1, rejected.stderr
        assert "REJECTED" in rejected.stdout and "outside the data folders" in rejected.stdout
        applied = await cli(settings, "mix", "--run", "c1", f"more={inside}:0.5")
        assert applied.returncode == 0, applied.stderr + applied.stdout
        assert "applied" in applied.stdout and "more" in running.trainer.loader.sources
        bad_freeze = await cli(settings, "freeze", "--run", "c1", "--names", "no.such.parameter")
        assert bad_freeze.returncode == 1 and "no.such.parameter" in bad_freeze.stdout
        paused = await cli(settings, "pause", "--run", "c1", "--reason", "look")
        assert paused.returncode == 0 and "applied" in paused.stdout and "paused" in paused.stdout
        held = await cli(settings, "freeze", "--run", "c1", "--names", "transformer.h.0.mlp")
        assert held.returncode == 0 and "holds" in held.stdout
        resumed = await cli(settings, "resume", "--run", "c1", "--note", "go on")
        assert resumed.returncode == 0 and "applied" in resumed.stdout
        stopped = await cli(settings, "stop", "--run", "c1")
        assert stopped.returncode == 0 and "stopped" in stopped.stdout
        assert await running.task == "stopped"
    assert running.trainer.frozen.names == ["transformer.h.0.mlp"]  # the held freeze, applied on resume


async def test_a_command_nobody_answers_times_out_and_says_so(settings, nc):
    done = await cli(settings, "pause", "--run", "nobody", "--wait", "1")
    assert done.returncode == 2 and "no answer" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
