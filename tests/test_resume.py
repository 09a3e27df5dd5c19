"""Resume is exact: 20 steps straight equal 10 steps, a checkpoint, a new Trainer, and 10 more."""
import pytest
import torch

from shared.model.checkpoint import checkpoint_path, load_checkpoint, load_model_for_inference
from shared.contract.events import ControlCommand, StepMetrics, Stop
from shared.model.generate import generate
from trainer_svc.training import EventLog, LocalControls, Trainer

RESUME_FLAGS = ("--steps", "20", "--grad-accum", "2", "--warmup-steps", "3")


def losses(events):
    return {e.step: e.loss for e in events if isinstance(e, StepMetrics)}


@pytest.mark.parametrize("optimizer", ["adamw", "muon"])
def test_resumed_run_matches_straight_run(tmp_path, trainer_args, optimizer):
    straight = EventLog()
    assert Trainer(trainer_args(*RESUME_FLAGS, "--optimizer", optimizer, run_id="straight"), straight).run() == "finished"

    controls, first = LocalControls(), EventLog()

    def emit(event):
        first(event)
        if isinstance(event, StepMetrics) and event.step == 9:
            controls.send(ControlCommand(event_id="stop", run_id="split", step=9, args=Stop()))

    checkpoints = []
    trainer = Trainer(trainer_args(*RESUME_FLAGS, "--optimizer", optimizer, run_id="split"), emit, controls,
                      lambda *a: checkpoints.append(a))
    assert trainer.run() == "stopped"
    assert max(losses(first)) == 9
    path, step, size, sha256, reason = checkpoints[-1]
    assert (step, reason) == (10, "stop") and size > 0 and len(sha256) == 64

    second = EventLog()
    resumed = Trainer(trainer_args(*RESUME_FLAGS, "--optimizer", optimizer, "--resume", "latest",
                                    run_id="split"), second)
    assert resumed.step == 10
    assert resumed.run() == "finished"
    expected, got = losses(straight), losses(second)
    assert sorted(got) == list(range(10, 20))
    for step in got:
        assert got[step] == pytest.approx(expected[step], abs=1e-6), step
    a = load_checkpoint(checkpoint_path(tmp_path / "ckpt" / "straight", 20))["model"]
    b = load_checkpoint(checkpoint_path(tmp_path / "ckpt" / "split", 20))["model"]
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_checkpoint_loads_for_inference(tmp_path, trainer_args):
    Trainer(trainer_args("--steps", "3", run_id="infer"), EventLog()).run()
    model, tokenizer, meta = load_model_for_inference(checkpoint_path(tmp_path / "ckpt" / "infer", 3))
    assert meta["step"] == 3 and meta["run_id"] == "infer" and meta["model_config"]["n_layer"] == 1
    checkpoint = load_checkpoint(checkpoint_path(tmp_path / "ckpt" / "infer", 3))
    assert {"model", "optimizers", "data", "rng", "tokenizer", "frozen", "meta"} <= set(checkpoint)
    assert isinstance(generate(model, tokenizer, "the king", 4), str)
