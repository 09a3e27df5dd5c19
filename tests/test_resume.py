"""Resume is exact: 20 steps straight equal 10 steps, a checkpoint, a new Trainer, and 10 more."""
import random

import pytest
import torch

from shared.model.checkpoint import checkpoint_path, load_checkpoint, load_model_for_inference
from shared.contract.events import ControlCommand, StepMetrics, Stop
from shared.model.generate import generate
from trainer_svc.options import parse_args
from trainer_svc.training import EventLog, LocalControls, Trainer

WORDS = "the king queen said to be or not that is question of love death night day sword crown".split()


def corpus(path, n_lines=400, seed=0):
    rng = random.Random(seed)
    path.write_text("\n".join(" ".join(rng.choices(WORDS, k=9)) for _ in range(n_lines)) + "\n")
    return path


def args_for(tmp_path, run_id, *extra):
    data = tmp_path / "corpus.txt"
    if not data.exists():
        corpus(data)
    return parse_args([
        "--run-id", run_id, "--data", f"main={data}", "--depth", "1", "--seq-len", "32",
        "--vocab-size", "300", "--batch-size", "4", "--grad-accum", "2", "--steps", "20",
        "--warmup-steps", "3", "--threads", "1", "--eval-every", "0", "--sample-every", "0",
        "--activations-every", "0", "--checkpoint-every", "0", "--no-progress",
        "--out-dir", str(tmp_path / "ckpt"), *extra])


def losses(events):
    return {e.step: e.loss for e in events if isinstance(e, StepMetrics)}


@pytest.mark.parametrize("optimizer", ["adamw", "muon"])
def test_resumed_run_matches_straight_run(tmp_path, optimizer):
    straight = EventLog()
    assert Trainer(args_for(tmp_path, "straight", "--optimizer", optimizer), straight).run() == "finished"

    controls, first = LocalControls(), EventLog()

    def emit(event):
        first(event)
        if isinstance(event, StepMetrics) and event.step == 9:
            controls.send(ControlCommand(event_id="stop", run_id="split", step=9, args=Stop()))

    checkpoints = []
    trainer = Trainer(args_for(tmp_path, "split", "--optimizer", optimizer), emit, controls,
                      lambda *a: checkpoints.append(a))
    assert trainer.run() == "stopped"
    assert max(losses(first)) == 9
    path, step, size, sha256, reason = checkpoints[-1]
    assert (step, reason) == (10, "stop") and size > 0 and len(sha256) == 64

    second = EventLog()
    resumed = Trainer(args_for(tmp_path, "split", "--optimizer", optimizer, "--resume", "latest"), second)
    assert resumed.step == 10
    assert resumed.run() == "finished"
    expected, got = losses(straight), losses(second)
    assert sorted(got) == list(range(10, 20))
    for step in got:
        assert got[step] == pytest.approx(expected[step], abs=1e-6), step
    a = load_checkpoint(checkpoint_path(tmp_path / "ckpt" / "straight", 20))["model"]
    b = load_checkpoint(checkpoint_path(tmp_path / "ckpt" / "split", 20))["model"]
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_checkpoint_loads_for_inference(tmp_path):
    Trainer(args_for(tmp_path, "infer", "--steps", "3"), EventLog()).run()
    model, tokenizer, meta = load_model_for_inference(checkpoint_path(tmp_path / "ckpt" / "infer", 3))
    assert meta["step"] == 3 and meta["run_id"] == "infer" and meta["model_config"]["n_layer"] == 1
    checkpoint = load_checkpoint(checkpoint_path(tmp_path / "ckpt" / "infer", 3))
    assert {"model", "optimizers", "data", "rng", "tokenizer", "frozen", "meta"} <= set(checkpoint)
    assert isinstance(generate(model, tokenizer, "the king", 4), str)
