"""Under torchrun-style DDP (two CPU processes, gloo), rank 0's commands reach every rank: both
freeze the same parameters and stop at the same step; only rank 0 checkpoints."""
import json
import os
import time

import torch.multiprocessing as mp

from introspect import servers
from shared.contract.events import ControlCommand, Freeze, StepMetrics, Stop
from support import tiny_run_args


def train_rank(rank: int, tmp_path, port: int) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE="2", RANK=str(rank),
                      LOCAL_RANK=str(rank))
    import torch.distributed as dist
    from trainer_svc.training import LocalControls, Trainer
    controls, checkpoints = LocalControls(), []
    at_step = {1: Freeze(names=["lm_head"]), 3: Stop()}

    def emit(event):  # called on rank 0 only
        if isinstance(event, StepMetrics) and event.step in at_step:
            controls.send(ControlCommand(event_id=f"c{event.step}", run_id="ddp", step=event.step,
                                         args=at_step[event.step]))
    trainer = Trainer(tiny_run_args(tmp_path, "--device", "cpu", run_id="ddp"), emit, controls,
                      lambda *a: checkpoints.append(a[4]))
    state = trainer.run()
    (tmp_path / f"rank{rank}.json").write_text(json.dumps(
        {"state": state, "step": trainer.step, "frozen": trainer.frozen.names, "checkpoints": checkpoints}))
    # both ranks done before either tears gloo down: rank 1 finished first (rank 0 still writing its
    # stop checkpoint), destroyed its group and once aborted ("terminate called without an active exception")
    dist.barrier()
    dist.destroy_process_group()


def test_commands_reach_every_rank_and_only_rank_zero_checkpoints(tmp_path):
    tiny_run_args(tmp_path)  # writes the corpus once, before the ranks read it
    # spawn, not fork: a fork after earlier tests (threads, held locks) can hang
    ranks = mp.start_processes(train_rank, args=(tmp_path, servers.free_port()), nprocs=2, join=False,
                               start_method="spawn")
    deadline = time.monotonic() + 120
    while not ranks.join(timeout=1):
        if time.monotonic() > deadline:
            for process in ranks.processes:
                process.kill()
            raise AssertionError("the ranks did not finish in 120 s")
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["state"] for r in ranks] == ["stopped", "stopped"]
    assert ranks[0]["step"] == ranks[1]["step"] == 4
    assert ranks[0]["frozen"] == ranks[1]["frozen"] == ["lm_head"]
    assert ranks[0]["checkpoints"] == ["stop"] and ranks[1]["checkpoints"] == []
