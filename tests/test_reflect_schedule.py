"""`introspect prompt every N` below the checkpoint interval: the schedule is in the control KV
bucket, the trainer (which reads it at start and watches it) checkpoints at those steps too and
says so, and selfplay reflects on those checkpoints. Real NATS, PostgreSQL and training runs."""
import asyncio
import os
import subprocess
import sys

from processes import ROOT
from shared import bus
from shared.bus import control
from shared.contract import events
from support import Running, next_event, trainer_on
from trainer_svc.wiring import wire


async def cli(settings, *args) -> subprocess.CompletedProcess:
    env = {**os.environ, "NATS_URL": settings.nats_url, "DATABASE_URL": settings.database_url}
    return await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "introspect", *args], cwd=ROOT,
                                   env=env, capture_output=True, text=True, timeout=60)


async def test_prompt_every_below_the_checkpoint_interval_gives_reflections_at_those_steps(
        nc, settings, selfplay, trainer_args):
    js = nc.jetstream()
    kv = await bus.control_bucket(js, settings)
    await control.send(js, kv, control.command("rs", events.Pause(), reason="set the schedule first"))
    status, reflections = await nc.subscribe("train.rs.status"), await nc.subscribe("selfplay.rs.reflection")
    args = trainer_args("--steps", "12", "--checkpoint-every", "10", run_id="rs")  # selfplay's default: 10
    wiring = wire(args, settings)
    assert await asyncio.to_thread(wiring.start, 10)
    async with Running(trainer_on(wiring, args), wiring) as running:
        await next_event(status, events.Status, where=lambda s: s.state == "paused")
        done = await cli(settings, "prompt", "every", "2", "--run", "rs")
        assert done.returncode == 0 and "reflects every 2 steps" in done.stdout, done.stderr
        assert "paused" in done.stdout  # it says the trainer follows once resumed, and does not wait
        schedule = await control.read_reflect_schedule(kv, "rs")
        await control.send(js, kv, control.command("rs", events.Resume()))
        answer = await next_event(status, events.Status, where=lambda s: s.command_id == schedule.command_id)
        assert answer.outcome == "applied" and "every 2 steps" in answer.reason
        assert await running.task == "finished"
    steps, wanted = set(), {2, 4, 6, 8, 10, 12}  # 12: the final checkpoint
    while not wanted <= steps:  # in any order: selfplay writes several at once; a missing one times out
        steps.add((await next_event(reflections, events.Reflection, timeout=60)).step)
    assert steps <= wanted | {0}  # and nothing off the schedule (0: the pause's checkpoint)


async def test_a_trainer_that_starts_follows_the_schedule_already_set(nc, settings, trainer_args):
    js = nc.jetstream()
    await control.set_reflect_schedule(await bus.control_bucket(js, settings), "rs2", 2, who="human")
    args = trainer_args("--steps", "7", "--checkpoint-every", "0", run_id="rs2")
    wiring = wire(args, settings)
    assert await asyncio.to_thread(wiring.start, 10)
    checkpoints = await js.pull_subscribe("train.rs2.checkpoint", stream="TRAIN")
    assert await asyncio.to_thread(trainer_on(wiring, args).run) == "finished"
    await asyncio.to_thread(wiring.close)
    announced = [events.decode(m.data) for m in await checkpoints.fetch(10, timeout=2)]
    assert [(c.step, c.reason) for c in announced] == [(2, "interval"), (4, "interval"), (6, "interval"),
                                                       (7, "final")]


async def test_prompt_every_waits_for_the_running_trainer_and_prints_its_answer(nc, settings, trainer_args):
    args = trainer_args("--steps", "100000", run_id="rs3")
    wiring = wire(args, settings)
    assert await asyncio.to_thread(wiring.start, 10)
    async with Running(trainer_on(wiring, args), wiring) as running:
        done = await cli(settings, "prompt", "every", "500", "--run", "rs3")
        assert done.returncode == 0, done.stderr
        assert "prompt every applied by run rs3" in done.stdout and "every 500 steps too" in done.stdout
        assert running.trainer.reflect_every == 500


async def test_prompt_every_without_a_trainer_keeps_the_schedule_and_says_nobody_answered(nc, settings):
    done = await cli(settings, "prompt", "every", "5", "--run", "nobody", "--wait", "1")
    assert done.returncode == 2 and "no answer" in done.stderr and "Traceback" not in done.stderr
    schedule = await control.read_reflect_schedule(await bus.control_bucket(nc.jetstream(), settings), "nobody")
    assert schedule.every == 5 and schedule.who == "human"
