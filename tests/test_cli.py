"""The `introspect` command against real NATS and PostgreSQL, as a person runs it (a subprocess):
commands wait for the trainer's answer and say it, exit codes tell applied from rejected."""
import asyncio
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from processes import ROOT
from support import Running, trainer_on, write_corpus
from trainer_svc.wiring import wire


def cli_env(settings) -> dict:
    return {**os.environ, "NATS_URL": settings.nats_url, "DATABASE_URL": settings.database_url,
            "INTROSPECT_STATE_DIR": settings.state_dir}


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
        assert running.trainer.bar.bar.desc == "paused: look"  # the progress bar says why it stands
        held = await cli(settings, "freeze", "--run", "c1", "--names", "transformer.h.0.mlp")
        assert held.returncode == 0 and "holds" in held.stdout
        resumed = await cli(settings, "resume", "--run", "c1", "--note", "go on")
        assert resumed.returncode == 0 and "applied" in resumed.stdout
        assert running.trainer.bar.bar.desc == ""
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


async def leave_a_run(nc, settings, pool, publish_checkpoint, run_id: str) -> None:
    """A run's traces everywhere: a checkpoint (object store + event), a desired state and a
    selfplay key in KV, its own durable, journal rows, local files."""
    from shared import bus
    from shared.bus import control, kv_state
    from shared.contract import events, subjects
    from support import wait_row
    js = nc.jetstream()
    await publish_checkpoint(run_id, 10)
    await control.send(js, await bus.control_bucket(js, settings), control.command(run_id, events.Stop()),
                       "operator")
    await (await kv_state.state_bucket(js, subjects.SELFPLAY_STATE_BUCKET)).put(f"protocol.{run_id}", b"{}")
    stream, durable, filters = subjects.trainer_control(run_id)
    from nats.js.api import ConsumerConfig
    await js.add_consumer(stream, ConsumerConfig(durable_name=durable, filter_subjects=filters))
    (local := Path(settings.state_dir) / "runs" / run_id).mkdir(parents=True)
    (local / "step_000010.pt").write_bytes(b"x" * 100)
    await wait_row(pool, "SELECT 1 FROM checkpoints WHERE run_id = $1", run_id)


@pytest.fixture
def state_settings(settings, tmp_path):
    return msgspec.structs.replace(settings, state_dir=str(tmp_path / "state"))


async def test_clean_removes_one_runs_traces_after_asking_and_leaves_the_others(
        state_settings, nc, pool, journal_running, publish_checkpoint):
    from introspect import runs
    settings = state_settings
    for run_id in ("gone", "kept"):
        await leave_a_run(nc, settings, pool, publish_checkpoint, run_id)
    listed = await cli(settings, "runs")
    assert listed.returncode == 0 and "gone" in listed.stdout and "kept" in listed.stdout
    before = await runs.survey(nc, settings, "gone")
    assert before.checkpoints and before.consumers and len(before.kv_keys) == 2 and before.local
    assert before.rows["checkpoints"] == 1 and before.messages["TRAIN"] == 1

    refused = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "introspect", "clean", "--run", "gone"], cwd=ROOT,
        env=cli_env(settings), input="n\n", capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0 and "step_000010" not in refused.stderr
    assert not (await runs.survey(nc, settings, "gone")).empty()  # nothing deleted on "n"

    done = await cli(settings, "clean", "--run", "gone", "--yes")
    assert done.returncode == 0, done.stderr
    assert (await runs.survey(nc, settings, "gone")).empty()
    kept = await runs.survey(nc, settings, "kept")
    assert kept.checkpoints and kept.consumers and kept.local and kept.rows["checkpoints"] == 1


async def test_up_refuses_a_run_id_that_was_stopped(state_settings, nc):
    from shared import bus
    from shared.bus import control
    from shared.contract import events
    js = nc.jetstream()
    await control.send(js, await bus.control_bucket(js, state_settings),
                       control.command("done1", events.Stop(), reason="enough", who="ana"), "operator")
    refused = await cli(state_settings, "up", "--run", "done1", "--steps", "5")
    assert refused.returncode != 0 and "stopped" in refused.stderr and "enough" in refused.stderr
    assert "Traceback" not in refused.stderr


def tensorboard_scalars(path: Path) -> dict[str, list[tuple[int, float]]]:
    """Scalars of a TensorBoard event file (TFRecord framing: length, crc, record, crc)."""
    import struct
    from tensorboardX.proto import event_pb2
    data, at, scalars = path.read_bytes(), 0, {}
    while at < len(data):
        (length,) = struct.unpack("<Q", data[at:at + 8])
        event = event_pb2.Event.FromString(data[at + 12:at + 12 + length])
        at += 12 + length + 4
        for value in event.summary.value:
            scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
    return scalars


async def test_export_writes_jsonl_csv_and_tensorboard_files_of_one_run(
        settings, nc, pool, journal_running, tmp_path):
    from shared import bus
    from shared.contract import events
    from support import wait_row
    js = nc.jetstream()
    for run_id in ("ex", "other"):
        for step in (1, 2, 3):
            await bus.publish(js, events.StepMetrics(
                event_id=f"{run_id}s{step}", run_id=run_id, step=step, loss=4.0 - step, loss_smooth=4.0,
                lr=0.01, grad_norm=1.0, tokens_per_s=100.0, step_time_s=0.1, mfu=None, tokens_seen=step))
    await bus.publish(js, events.EvalResult(event_id="ev", run_id="ex", step=2, name="val_bpb", value=1.5))
    await bus.publish(js, events.Shimmer(event_id="sh", run_id="ex", step=3, per_layer=[0.1, 0.2], mean=0.15))
    await wait_row(pool, "SELECT 1 FROM shimmer WHERE run_id = 'ex'")
    await wait_row(pool, "SELECT 1 FROM steps WHERE run_id = 'other' AND step = 3")
    await wait_row(pool, "SELECT 1 FROM evals WHERE run_id = 'ex'")

    for fmt in ("jsonl", "csv", "tensorboard"):
        done = await cli(settings, "export", "--run", "ex", "--format", fmt, "--out", str(tmp_path / fmt))
        assert done.returncode == 0, done.stderr
    lines = (tmp_path / "jsonl" / "events.jsonl").read_text().splitlines()
    assert len(lines) == 5 and all(json.loads(line)["run_id"] == "ex" for line in lines)
    assert json.loads((tmp_path / "jsonl" / "shimmer_history.jsonl").read_text()) == \
        {"step": 3, "mean": 0.15, "per_layer": [0.1, 0.2]}
    with (tmp_path / "csv" / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [float(r["loss"]) for r in rows] == [3.0, 2.0, 1.0] and rows[2]["val_bpb"] == "1.5"
    (events_file,) = (tmp_path / "tensorboard").glob("events.out.tfevents.*")
    scalars = tensorboard_scalars(events_file)
    assert [step for step, _ in scalars["train/loss"]] == [1, 2, 3]
    assert scalars["eval/val_bpb"] == [(2, 1.5)] and scalars["shimmer/layer_1"][0][0] == 3

    unknown = await cli(settings, "export", "--run", "nothing", "--format", "csv", "--out", str(tmp_path / "n"))
    assert unknown.returncode != 0 and "no events" in unknown.stderr and "Traceback" not in unknown.stderr


async def test_report_is_one_offline_html_file_with_plots_and_the_runs_story(
        settings, nc, pool, journal_running, tmp_path):
    from shared import bus
    from shared.bus import control
    from shared.contract import events
    from support import wait_row
    js = nc.jetstream()
    for step in range(1, 6):
        await bus.publish(js, events.StepMetrics(
            event_id=f"rp{step}", run_id="rp", step=step, loss=5.0 - step, loss_smooth=5.0, lr=0.01,
            grad_norm=1.0, tokens_per_s=100.0, step_time_s=0.1, mfu=None, tokens_seen=step))
    await bus.publish(js, events.EvalResult(event_id="rpe", run_id="rp", step=4, name="val_bpb", value=1.5))
    await bus.publish(js, events.Detection(
        event_id="rpd", run_id="rp", step=3, detector="loop", severity="high", source_event_id="s",
        source_subject="train.rp.sample", span_start=0, span_end=4, summary="the the the the"))
    await bus.publish(js, control.command("rp", events.Pause(), step=3, reason="loop <found>", who="ana"),
                      sender="operator")
    await bus.publish(js, events.Reflection(event_id="rpr", run_id="rp", step=4, text="I repeat myself.",
                                            prompt_version="v1.4", prompt="p", checkpoint="rp/x",
                                            checkpoint_sha256="0" * 64))
    await wait_row(pool, "SELECT 1 FROM reflections WHERE run_id = 'rp'")
    await wait_row(pool, "SELECT 1 FROM commands WHERE run_id = 'rp'")
    await wait_row(pool, "SELECT 1 FROM steps WHERE run_id = 'rp' AND step = 5")
    await wait_row(pool, "SELECT 1 FROM detections WHERE run_id = 'rp'")

    out = tmp_path / "report.html"
    done = await cli(settings, "report", "--run", "rp", "--out", str(out), timeout=120)
    assert done.returncode == 0, done.stderr
    page = out.read_text()
    assert "<script src=" not in page and "Plotly.newPlot" in page  # plotly.js inlined: works offline
    assert "the the the the" in page and "I repeat myself." in page
    assert "loop &lt;found&gt;" in page and "loop <found>" not in page  # reasons are escaped
    unknown = await cli(settings, "report", "--run", "nothing", "--out", str(tmp_path / "n.html"))
    assert unknown.returncode != 0 and "nothing in the journal" in unknown.stderr


def test_service_logs_are_readable_lines_unless_json_is_asked_for(capsys):
    import logging
    from shared.bus.logs import setup_logging
    from shared.contract.settings import ConfigError, load_settings
    for fmt in ("text", "json"):
        setup_logging("svc_x", "INFO", fmt).warning("mix rejected: %s", "no such file", extra={"run": "r1"})
        line = capsys.readouterr().err.strip()
        if fmt == "text":
            assert "WARNING svc_x: mix rejected: no such file run=r1" in line
        else:
            assert json.loads(line)["msg"] == "mix rejected: no such file" and json.loads(line)["run"] == "r1"
    logging.getLogger().handlers.clear()
    assert load_settings({"INTROSPECT_LOG_FORMAT": "json"}).log_format == "json"
    with pytest.raises(ConfigError, match="INTROSPECT_LOG_FORMAT"):
        load_settings({"INTROSPECT_LOG_FORMAT": "xml"})
