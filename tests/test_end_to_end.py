"""The whole product as separate processes on real NATS and PostgreSQL: the trainer learns a corpus
that carries a stereotype, understanding_svc catches it in a sample and pauses the run, a person
adds a counter-example and resumes with a note, selfplay_svc mixes the counter-example in, and
the journal answers the questions in SQL. Every service then stops cleanly on SIGTERM.
NATS has users here (shared.bus.permissions): each service connects as its own, the CLI as the
operator, so every service's normal work is shown to fit its permissions."""
import asyncio
import os

import pytest
from processes import Processes

from shared import bus
from introspect.launcher import SERVICES, TRAINER
from introspect.nats_auth import role_of
from shared.bus import control
from support import discovered

pytestmark = pytest.mark.slow


async def until(predicate, timeout, what, processes):
    for _ in range(int(timeout / 0.2)):
        if await predicate():
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}\n{processes.logs()}")


async def test_train_detect_pause_resume_and_query_the_journal(auth_nats, settings, pool, tmp_path):
    settings = auth_nats.settings(settings, "admin")
    nc = await bus.connect(settings, "test-admin")
    await bus.provision(nc.jetstream(), settings)  # the admin's job, as `up` does it
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("I think that immigrants are criminals and they are lazy.\n" * 300)
    env = {**os.environ, **auth_nats.env("operator"), "DATABASE_URL": settings.database_url,
           "INTROSPECT_WEB_PORT": "0", "INTROSPECT_REFLECT_EVERY": "1000000", "LOG_LEVEL": "INFO",
           "INTROSPECT_STATE_DIR": str(tmp_path / "state")}
    processes = Processes(env, tmp_path)
    try:
        for service in SERVICES:
            processes.start(service, service, env=auth_nats.env(role_of(service)))
        processes.start("trainer_svc", "trainer_svc", "--run-id", "e2e", "--data", str(corpus),
                        "--depth", "1", "--seq-len", "32", "--vocab-size", "300", "--batch-size", "4",
                        "--steps", "100000", "--threads", "1", "--sample-every", "15",
                        "--sample-tokens", "16", "--eval-every", "0", "--activations-every", "10",
                        "--checkpoint-every", "0", "--no-progress", "--out-dir", str(tmp_path / "runs"),
                        env=auth_nats.env("trainer"))
        kv = await bus.control_bucket(nc.jetstream(), settings)

        async def state_is(wanted):
            desired, _ = await control.read_state(kv, "e2e")
            return desired is not None and desired.state == wanted

        async def journal_has(sql):
            return bool(await pool.fetchval(sql))

        # the model learns the stereotype, writes it in a sample, and understanding pauses the run
        await until(lambda: state_is("paused"), 120, "the bias auto-pause", processes)
        await until(lambda: journal_has("SELECT count(*) FROM statuses WHERE run_id='e2e' AND state='paused'"),
                    30, "the trainer to report paused", processes)
        await until(lambda: journal_has("SELECT count(*) FROM journal_entries WHERE run_id='e2e' "
                                        "AND entry_type='protocol'"), 30, "the protocol entry", processes)
        processes.cli("status")  # answers (exit 0) while the run is paused
        assert await discovered(auth_nats.url, "viewer", auth_nats.passwords["viewer"]) == {*SERVICES, TRAINER}
        processes.cli("journal", "--run", "e2e", "--type", "counter_example",
                      "Immigrants are neighbours, workers and friends; crime has nothing to do with origin.")
        extra = tmp_path / "extra.txt"
        extra.write_text("The river runs to the sea and the sea is wide.\n" * 50)
        processes.cli("freeze", "--run", "e2e", "--names", "transformer.h.0.mlp")  # held while paused
        processes.cli("mix", "--run", "e2e", f"extra={extra}:0.3")
        await asyncio.sleep(1.0)  # let selfplay gather the counter-example before the resume
        processes.cli("resume", "--run", "e2e", "--note", "Context added; go on.")
        await until(lambda: journal_has("SELECT count(*) FROM mixes WHERE run_id='e2e' "
                                        "AND weights ? 'extra'"), 60, "the CLI mix", processes)
        await until(lambda: journal_has("SELECT count(*) FROM statuses WHERE run_id='e2e' "
                                        "AND reason LIKE 'froze%transformer.h.0.mlp%'"), 60,
                    "the CLI freeze", processes)
        await until(lambda: journal_has("SELECT count(*) FROM mixes WHERE run_id='e2e' "
                                        "AND weights ? 'mitigation'"), 60, "the mitigation mix", processes)
        processes.cli("stop", "--run", "e2e", "--reason", "test done")
        assert processes.procs["trainer_svc"].wait(60) == 0
        await until(lambda: journal_has("SELECT count(*) FROM statuses WHERE run_id='e2e' AND state='stopped'"),
                    30, "the stop in the journal", processes)

        # the journal answers the questions people ask
        pause = await pool.fetchrow("SELECT * FROM pauses WHERE run_id = 'e2e' ORDER BY ts LIMIT 1")
        assert pause["detector"] == "bias" and pause["severity"] == "high" and pause["who"] == "understanding"
        assert pause["resume_note"] == "Context added; go on." and pause["resumed_by"] == "operator"
        around = await pool.fetch("SELECT detector FROM detections_around('e2e', $1, 50)", pause["step"])
        assert "bias" in {r["detector"] for r in around}
        assert await pool.fetchval("SELECT count(*) FROM loss_by_step WHERE run_id = 'e2e'") > 10
        assert await pool.fetchval("SELECT count(*) FROM health WHERE run_id = 'e2e'") > 0
        assert await pool.fetchval("SELECT count(*) FROM journal_entries WHERE run_id = 'e2e' "
                                   "AND author = 'human' AND entry_type = 'resume_note'") == 1
        wrote = await pool.fetch("SELECT source, text FROM model_writing WHERE run_id = 'e2e'")
        assert any("criminals" in r["text"] for r in wrote if r["source"] == "sample")
        exits = processes.terminate_all()
        assert exits == dict.fromkeys([*SERVICES, TRAINER], 0), processes.logs()  # 0 = drained, closed
        assert "Violation" not in auth_nats.log.read_text()  # no one was refused anything it needed
    finally:
        for proc in processes.procs.values():
            if proc.poll() is None:
                proc.kill()
        await nc.close()
