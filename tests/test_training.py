"""The training loop's contract: events, commands at step boundaries, options, schedule, MFU."""
import json
import random

import pytest
import torch

from shared.model.checkpoint import checkpoint_path, load_checkpoint
from shared.contract.events import (ActivationStats, ControlCommand, EvalResult, Freeze, Mix, MixChange, Pause, Resume,
                                    Sample, Status, StepMetrics, Stop,
                                    decode, encode)
from trainer_svc.mfu import mfu, peak_flops, device_peak_flops
from support import WORDS, tiny_run_args, write_corpus
from trainer_svc.options import parse_args
from trainer_svc.schedule import lr_multiplier
from trainer_svc.training import EventLog, LocalControls, Trainer


def command(action, **fields):
    order = {"pause": Pause, "resume": Resume, "stop": Stop, "freeze": Freeze, "mix": Mix}[action]
    return ControlCommand(event_id=f"{action}-{random.random()}", run_id="t", step=0,
                          args=order(**fields), reason=f"test {action}")


def scripted(controls, at_step):
    """An emit that records events and sends at_step[s] commands after step s's metrics."""
    log = EventLog()

    def emit(event):
        log(event)
        if isinstance(event, StepMetrics):
            for cmd in at_step.get(event.step, []):
                controls.send(cmd)
        if isinstance(event, Status) and event.state == "paused":
            controls.send(command("resume"))
    return emit, log


def of(log, kind):
    return [e for e in log if isinstance(e, kind)]


@pytest.fixture(scope="module")
def reported_run(tmp_path_factory):
    """(events, checkpoints) of one 12-step run with every periodic report and checkpoints on."""
    tmp_path = tmp_path_factory.mktemp("reported")
    bundle = tmp_path / "core"
    bundle.mkdir()
    (bundle / "pick.jsonl").write_text("\n".join(json.dumps(
        {"context": f"the king said {w}", "choices": ["crown", "sword"], "gold": i % 2}) for i, w in enumerate(WORDS)))
    log, checkpoints = EventLog(), []
    args = tiny_run_args(tmp_path, "--eval-every", "5", "--sample-every", "10", "--sample-tokens", "3",
                         "--activations-every", "4", "--checkpoint-every", "5", "--core-bundle", str(bundle),
                         "--core-every", "5")
    assert Trainer(args, log, on_checkpoint=lambda *a: checkpoints.append(a)).run() == "finished"
    return log, checkpoints


def test_every_step_reports_its_metrics(reported_run):
    steps = of(reported_run[0], StepMetrics)
    assert [e.step for e in steps] == list(range(12))
    assert all(e.mfu is None and e.tokens_per_s > 0 and e.data_mix == {"main": 1.0} for e in steps)
    assert steps[-1].tokens_seen == 12 * 4 * 32


def test_status_goes_starting_running_finished(reported_run):
    assert [s.state for s in of(reported_run[0], Status)] == ["starting", "running", "finished"]


def test_reports_come_at_their_interval_and_once_more_at_the_end(reported_run):
    log = reported_run[0]
    assert [e.step for e in of(log, ActivationStats)] == [4, 8, 12]
    assert {(e.name, e.step) for e in of(log, EvalResult) if e.name == "val_bpb"} == {
        ("val_bpb", 5), ("val_bpb", 10), ("val_bpb", 12)}
    samples = of(log, Sample)
    assert {s.mode for s in samples} == {"greedy", "sampled"} and {s.step for s in samples} == {10, 12}


def test_a_core_bundle_adds_a_result_per_task_and_their_mean(reported_run):
    assert {e.name for e in of(reported_run[0], EvalResult)} == {"val_bpb", "core:pick", "core"}


def test_checkpoints_at_their_interval_and_at_the_end(reported_run):
    assert [(c[1], c[4]) for c in reported_run[1]] == [(5, "interval"), (10, "interval"), (12, "final")]


def test_event_ids_are_unique_and_events_decode_strictly(reported_run):
    log = reported_run[0]
    ids = [e.event_id for e in log]
    assert len(ids) == len(set(ids))
    for event in log:
        assert decode(encode(event)) == event  # strict decode: types match the contract


def test_eval_every_zero_runs_no_evaluation_even_at_the_end(trainer_args):
    log = EventLog()
    assert Trainer(trainer_args("--eval-every", "0", "--steps", "3"), log).run() == "finished"
    assert of(log, EvalResult) == []


def test_pause_resume_keeps_training_identical(tmp_path, trainer_args):
    straight = EventLog()
    Trainer(trainer_args(), straight).run()
    controls, checkpoints = LocalControls(), []
    emit, log = scripted(controls, {4: [command("pause")]})
    assert Trainer(trainer_args(), emit, controls, lambda *a: checkpoints.append(a)).run() == "finished"
    states = [s.state for s in of(log, Status)]
    assert states == ["starting", "running", "paused", "running", "finished"]
    assert of(log, Status)[2].step == 5 and (checkpoints[0][1], checkpoints[0][4]) == (5, "pause")
    assert [e.loss for e in of(log, StepMetrics)] == [e.loss for e in of(straight, StepMetrics)]


def test_stop_checkpoints_and_returns(tmp_path, trainer_args):
    controls, checkpoints = LocalControls(), []
    emit, log = scripted(controls, {6: [command("stop")]})
    assert Trainer(trainer_args(), emit, controls, lambda *a: checkpoints.append(a)).run() == "stopped"
    assert of(log, StepMetrics)[-1].step == 6
    assert of(log, Status)[-1].state == "stopped"
    assert [(c[1], c[4]) for c in checkpoints] == [(7, "stop")]


def test_stop_while_paused(tmp_path, trainer_args):
    controls = LocalControls()
    log = EventLog()

    def emit(event):
        log(event)
        if isinstance(event, StepMetrics) and event.step == 2:
            controls.send(command("pause"))
        if isinstance(event, Status) and event.state == "paused":
            controls.send(command("freeze", names=["lm_head"]))  # held until after the pause
            controls.send(command("stop"))
    assert Trainer(trainer_args(), emit, controls).run() == "stopped"
    assert [s.state for s in of(log, Status)][-2:] == ["paused", "stopped"]


def test_freeze_names_and_rows(tmp_path, trainer_args):
    controls = LocalControls()
    freeze = command("freeze", names=["transformer.h.0.attn.c_q"],
                     rows={"transformer.h.0.mlp.c_fc.weight": [0, 3], "lm_head.weight": [5]})
    snapshot = {}
    log = EventLog()

    def emit(event):
        log(event)
        if isinstance(event, StepMetrics) and event.step == 2:
            controls.send(freeze)
            snapshot.update({k: v.detach().clone() for k, v in trainer.model.named_parameters()})
    trainer = Trainer(trainer_args("--weight-decay", "0.1"), emit, controls)
    trainer.run()
    params = dict(trainer.model.named_parameters())
    assert torch.equal(params["transformer.h.0.attn.c_q.weight"], snapshot["transformer.h.0.attn.c_q.weight"])
    fc, fc_before = params["transformer.h.0.mlp.c_fc.weight"], snapshot["transformer.h.0.mlp.c_fc.weight"]
    assert torch.equal(fc[[0, 3]], fc_before[[0, 3]]) and not torch.equal(fc[1], fc_before[1])
    assert torch.equal(params["lm_head.weight"][5], snapshot["lm_head.weight"][5])
    assert not torch.equal(params["lm_head.weight"][6], snapshot["lm_head.weight"][6])
    frozen = load_checkpoint(checkpoint_path(tmp_path / "ckpt" / "t", 12))["frozen"]
    assert frozen == {"names": ["transformer.h.0.attn.c_q"],
                      "rows": {"transformer.h.0.mlp.c_fc.weight": [0, 3], "lm_head.weight": [5]}}


def test_bad_freeze_is_rejected_not_fatal(tmp_path, trainer_args):
    controls = LocalControls()
    emit, log = scripted(controls, {1: [command("freeze", names=["no.such.param"])]})
    assert Trainer(trainer_args(), emit, controls).run() == "finished"
    assert any("rejected" in s.reason for s in of(log, Status))


def test_mix_command_adds_source(tmp_path, trainer_args):
    philosophy = write_corpus(tmp_path / "philosophy.txt", seed=3, words="know thyself virtue reason soul".split())
    controls = LocalControls()
    emit, log = scripted(controls, {3: [command("mix", weights={"philosophy": 3.0, "main": 1.0},
                                                paths={"philosophy": str(philosophy)})]})
    Trainer(trainer_args(), emit, controls).run()
    [change] = of(log, MixChange)
    assert change.step == 4 and change.weights == {"main": 0.25, "philosophy": 0.75}
    mixes = {e.step: e.data_mix for e in of(log, StepMetrics)}
    assert mixes[3] == {"main": 1.0} and mixes[4] == {"main": 0.25, "philosophy": 0.75}


def test_two_short_counter_examples_join_the_mix_and_reach_the_batches(trainer_args):
    texts = ["Nobody is a criminal because of where they were born.",
             "Crime does not follow nationality."]
    controls = LocalControls()
    emit, log = scripted(controls, {3: [command("mix", weights={"mitigation": 1.0}, texts={"mitigation": texts})]})
    trainer = Trainer(trainer_args(), emit, controls)
    batches = []
    next_batch = trainer.loader.next_batch
    trainer.loader.next_batch = lambda device: batches.append(next_batch(device)) or batches[-1]
    assert trainer.run() == "finished"
    [change] = of(log, MixChange)  # accepted (it used to be rejected: fewer tokens than a row)
    assert change.weights == {"main": 0.5, "mitigation": 0.5} and "joined: mitigation (2 texts" in change.reason
    wanted = [trainer.tokenizer.bos_id, *trainer.tokenizer.encode(texts[1])[:8]]  # a document's start

    def seen(some_batches) -> bool:
        rows = [row for x, _ in some_batches for row in x.tolist()]
        return any(row[i:i + len(wanted)] == wanted for row in rows for i in range(len(row)))
    assert seen(batches[4:]) and not seen(batches[:4])


def test_scheduled_mix_joins_at_step(tmp_path, trainer_args):
    philosophy = write_corpus(tmp_path / "philosophy.txt", seed=3, words="know thyself virtue reason soul".split())
    log = EventLog()
    Trainer(trainer_args("--mix", f"philosophy={philosophy}@5:1.0"), log).run()
    [change] = of(log, MixChange)
    assert change.step == 5 and change.weights == {"main": 0.5, "philosophy": 0.5} and "scheduled" in change.reason


@pytest.mark.parametrize("argv, flag", [
    (["--depth", "0"], "--depth"), (["--mix", "oops"], "--mix"), (["--val-fraction", "1.5"], "--val-fraction"),
    (["--vocab-size", "100"], "--vocab-size"), ([], "--data"), (["--data", "/no/such/path"], "--data"),
])
def test_option_errors_name_the_flag(tmp_path, capsys, argv, flag):
    data = write_corpus(tmp_path / "c.txt")
    base = ["--data", str(data)] if flag != "--data" else []
    with pytest.raises(SystemExit):
        parse_args(base + argv)
    assert flag in capsys.readouterr().err


def test_options_parse_sources_and_mix(tmp_path):
    data = write_corpus(tmp_path / "c.txt")
    args = parse_args(["--data", str(data), "--data", f"extra={tmp_path}", "--mix", f"late={data}@100:0.5"])
    assert args.data == [("c", str(data)), ("extra", str(tmp_path))]
    assert args.mix == [("late", str(data), 100, 0.5)] and args.lr == 0.003


def test_schedule():
    values = [lr_multiplier(s, 100, 10, 0.2) for s in range(100)]
    assert values[0] == 0.1 and values[9] == 1.0 and values[50] == 1.0
    assert values[80] == 1.0 and values[81] == pytest.approx(19 / 20) and values[99] == pytest.approx(1 / 20)
    assert all(a >= b for a, b in zip(values[10:], values[11:]))


def test_mfu_table():
    assert peak_flops("NVIDIA H100 80GB HBM3") == 989e12
    assert peak_flops("NVIDIA H100 PCIe") == 756e12
    assert peak_flops("NVIDIA A100-SXM4-80GB", torch.float32) == 19.5e12
    assert peak_flops("NVIDIA L4") == 121e12 and peak_flops("NVIDIA L40S") == 362e12
    assert peak_flops("Some Future Card") is None
    assert device_peak_flops("cpu", torch.float32) is None
    assert mfu(1e9, 1000.0, None) is None
    assert mfu(1e9, 1000.0, 1e13) == pytest.approx(0.1)
