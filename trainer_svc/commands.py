"""Commands at step boundaries: fetched on rank 0 and broadcast, so every rank acts on the same
ones; a mix command applied to the loader, undone when any part of it fails."""
from __future__ import annotations

from collections import deque

import torch.distributed as dist

from shared.contract.events import ControlCommand, Mix
from trainer_svc.build import Placement
from trainer_svc.data import MixedTokenLoader
from trainer_svc.hooks import Controls


def broadcast(value, placement: Placement):
    """Rank 0's `value` on every rank."""
    box = [value]
    if placement.world_size > 1:
        dist.broadcast_object_list(box, src=0)
    return box[0]


def poll(controls: Controls, placement: Placement) -> list[ControlCommand]:
    return broadcast(controls.poll() if placement.is_main else None, placement)


def wait_for_resume_or_stop(controls: Controls, pending: deque, placement: Placement) -> ControlCommand:
    """The command that ends a pause: the first resume/stop already in `pending` (taken out of
    it), else the next one to arrive."""
    for command in pending:
        if command.action in ("resume", "stop"):
            pending.remove(command)
            return command
    return broadcast(controls.wait_while_paused() if placement.is_main else None, placement)


def apply_mix(loader: MixedTokenLoader, mix: Mix) -> None:
    """New sources join (paths, or inline texts as an in-memory source), then the weights change.
    On a bad path or weight the sources added here are removed and the error is raised."""
    added = []
    try:
        for name, path_or_texts in {**mix.paths, **mix.texts}.items():
            if name not in loader.sources:
                loader.add_source(name, path_or_texts, mix.weights.get(name, 1.0))
                added.append(name)
                loader.prepare(name)
        loader.set_weights(mix.weights)
    except (OSError, ValueError, KeyError):
        for name in added:
            loader.remove_source(name)
        raise
