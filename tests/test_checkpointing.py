"""Checkpoints written in the background: the same bytes as a synchronous write, one in flight at a
time, and complete (final, pause, stop) by the time the trainer says so."""
import threading
import time

import pytest
import torch

from shared.model.checkpoint import (_HashingFile, checkpoint_path, checkpoint_state, file_sha256,
                                     latest_checkpoint, load_checkpoint, save_checkpoint)
from shared.model.gpt import build_model, config_for_depth
from trainer_svc.checkpointing import CheckpointWriter
from trainer_svc.optim import setup_optimizers
from trainer_svc.training import EventLog, Trainer


def small_state(step=3):
    torch.manual_seed(0)
    model = build_model(config_for_depth(1, 300, 32))
    optimizers = setup_optimizers(model, "adamw")
    model(torch.randint(0, 300, (2, 8)), torch.randint(0, 300, (2, 8))).backward()
    for opt in optimizers:
        opt.step()
    return model, optimizers, dict(model=model, optimizers=optimizers, step=step, tokenizer_json="{}")


def test_a_background_checkpoint_holds_what_a_synchronous_one_holds(tmp_path):
    model, optimizers, fields = small_state()
    save_checkpoint(tmp_path / "sync.pt", **fields)
    written = []
    writer = CheckpointWriter(lambda *a: written.append(a))
    writer.submit(tmp_path / "bg.pt", checkpoint_state(**fields), 3, "interval")
    writer.wait()
    assert_same(load_checkpoint(tmp_path / "sync.pt"), load_checkpoint(tmp_path / "bg.pt"))
    [(path, step, size, sha256, reason)] = written
    assert (step, reason) == (3, "interval") and size == (tmp_path / "bg.pt").stat().st_size
    assert sha256 == file_sha256(tmp_path / "bg.pt")  # hashed while writing = hashed from the disk


def assert_same(a, b, where="checkpoint"):
    """Equal contents: tensors element for element, everything else by ==."""
    assert type(a) is type(b), where
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_same(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def test_a_write_that_fails_midway_leaves_no_partial_checkpoint(tmp_path, monkeypatch):
    _, _, fields = small_state()
    save_checkpoint(checkpoint_path(tmp_path, 2), **fields)
    original = _HashingFile.write

    def disk_full_after_a_kilobyte(self, data):
        if self.size > 1024:
            raise OSError(28, "No space left on device")
        return original(self, data)

    monkeypatch.setattr(_HashingFile, "write", disk_full_after_a_kilobyte)
    writer = CheckpointWriter(lambda *a: pytest.fail("a failed checkpoint was handed on"))
    writer.submit(checkpoint_path(tmp_path, 4), checkpoint_state(**fields), 4, "interval")
    with pytest.raises(RuntimeError, match="writing a checkpoint failed"):
        writer.wait()  # torch's zip writer reports the OSError as its own RuntimeError
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_00000002.pt"]  # no step 4, no temp file
    assert latest_checkpoint(tmp_path) == checkpoint_path(tmp_path, 2)


def test_the_snapshot_does_not_change_when_training_goes_on(tmp_path):
    model, optimizers, fields = small_state()
    state = checkpoint_state(**fields)
    before = {k: v.clone() for k, v in state["model"].items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)  # the next steps change the live weights in place
    assert all(torch.equal(before[k], state["model"][k]) for k in before)


def test_at_most_one_checkpoint_is_in_flight(tmp_path):
    in_flight, most = [0], [0]
    lock = threading.Lock()

    def slow_on_written(*_):
        with lock:
            in_flight[0] += 1
            most[0] = max(most[0], in_flight[0])
        time.sleep(0.2)
        with lock:
            in_flight[0] -= 1

    _, _, fields = small_state()
    writer = CheckpointWriter(slow_on_written)
    for step in range(3):
        writer.submit(tmp_path / f"{step}.pt", checkpoint_state(**fields), step, "interval")
    writer.wait()
    assert most[0] == 1 and all((tmp_path / f"{s}.pt").exists() for s in range(3))


def test_a_failed_write_fails_the_run_at_the_next_wait(tmp_path):
    _, _, fields = small_state()
    (tmp_path / "taken").write_text("a file where a folder should be")
    writer = CheckpointWriter(lambda *a: None)
    writer.submit(tmp_path / "taken" / "x.pt", checkpoint_state(**fields), 1, "interval")
    try:
        writer.wait()
    except RuntimeError as error:
        assert isinstance(error.__cause__, OSError)
    else:
        raise AssertionError("the write error was swallowed")


def test_interval_and_final_checkpoints_are_complete_when_the_run_returns(tmp_path, trainer_args):
    told = []
    args = trainer_args("--steps", "6", "--checkpoint-every", "2")
    assert Trainer(args, EventLog(), None, lambda *a: told.append(a)).run() == "finished"
    assert [(step, reason) for _, step, _, _, reason in told] == [(2, "interval"), (4, "interval"),
                                                                   (6, "final")]
    for path, step, size, _, _ in told:
        assert str(checkpoint_path(f"{args.out_dir}/t", step)) == path
        assert load_checkpoint(path)["step"] == step
