"""Commands at step boundaries: fetched on rank 0 and broadcast, so every rank acts on the same
ones; a mix command applied to the loader, undone when any part of it fails."""
from __future__ import annotations

from collections import deque
from pathlib import Path

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


def data_roots(paths) -> list[Path]:
    """The folders a mix command may read from: those of the data the trainer was started with
    (a folder itself, or a file's folder)."""
    roots = []
    for path in map(lambda p: Path(p).resolve(), paths):
        roots.append(path if path.is_dir() else path.parent)
    return sorted(set(roots))


def confined(path: str, roots: list[Path]) -> str:
    """`path` if it lies inside one of `roots` (symlinks followed), else PermissionError: a
    command from the bus must not make the trainer read /etc/passwd into its training mix."""
    resolved = Path(path).resolve()
    if not any(resolved.is_relative_to(root) for root in roots):
        raise PermissionError(f"{path} is outside the data folders {[str(r) for r in roots]}")
    return str(resolved)


def apply_mix(loader: MixedTokenLoader, mix: Mix, roots: list[Path]) -> list[str]:
    """New sources join (paths inside `roots`, or inline texts as an in-memory source), then the
    weights change; returns the names that joined. On a bad path or weight the sources added here
    are removed and the error is raised."""
    added = []
    for path in mix.paths.values():
        confined(path, roots)
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
    return added
