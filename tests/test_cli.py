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


async def test_tail_prints_the_kinds_asked_for_of_one_run(settings, nc):
    from shared import bus
    from shared.contract import events
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "introspect", "tail", "--run", "r1", "--kind", "step,status", "--count", "2",
        cwd=ROOT, env=cli_env(settings), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        assert b"watching" in await asyncio.wait_for(proc.stdout.readline(), 30)
        js = nc.jetstream()
        base = dict(run_id="r1", step=7)
        await bus.publish(js, events.Status(event_id="s0", state="running", reason="other run",
                                            run_id="r2", step=1))
        await bus.publish(js, events.MixChange(event_id="m1", weights={"a": 1.0}, **base))  # not asked for
        await bus.publish(js, events.StepMetrics(event_id="e1", loss=2.5, loss_smooth=2.6, lr=0.01, grad_norm=1.0,
                                                 tokens_per_s=1000.0, step_time_s=0.1, mfu=None, tokens_seen=10,
                                                 **base))
        await bus.publish(js, events.Status(event_id="s1", state="paused", reason="look at samples", **base))
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, err
    lines = out.decode().splitlines()
    assert len(lines) == 2 and "loss 2.5" in lines[0] and "paused" in lines[1] and "look at samples" in lines[1]
    assert all("r1" in line for line in lines)


async def test_tail_refuses_an_unknown_kind(settings):
    done = await cli(settings, "tail", "--kind", "step,nonsense")
    assert done.returncode != 0 and "nonsense" in done.stderr and "Traceback" not in done.stderr
