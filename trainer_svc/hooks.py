"""What the training loop is given: `emit`, `controls` and `on_checkpoint`, and in-memory versions.

`emit(event)` must return at once (the bus wiring puts events on a bounded queue for a publisher
thread); `controls.poll()` returns the commands that arrived since the last call and
`controls.wait_while_paused()` blocks until a resume or stop; `controls.reflect_schedule` is the
run's reflection schedule, if it has one (the loop also checkpoints at those steps);
`on_checkpoint(path, step, size, sha256, reason)` is told about every checkpoint written locally.
"""
from __future__ import annotations

import queue
from typing import Protocol

from shared.contract.events import ControlCommand, Event, ReflectSchedule


class Emit(Protocol):
    def __call__(self, event: Event) -> None: ...


class Controls(Protocol):
    reflect_schedule: ReflectSchedule | None

    def poll(self) -> list[ControlCommand]: ...

    def wait_while_paused(self) -> ControlCommand: ...


class OnCheckpoint(Protocol):
    def __call__(self, path: str, step: int, size: int, sha256: str, reason: str) -> None: ...


class EventLog(list):
    """An `emit` that keeps every event in memory (tests, local runs)."""

    def __call__(self, event: Event) -> None:
        self.append(event)


class LocalControls:
    """In-memory `Controls`: `send` from any thread; the trainer polls at step boundaries."""

    def __init__(self):
        self.reflect_schedule: ReflectSchedule | None = None  # set from any thread
        self._queue: queue.Queue[ControlCommand] = queue.Queue()
        self._held: list[ControlCommand] = []  # arrived while paused, applied after resuming

    def send(self, command: ControlCommand) -> None:
        self._queue.put(command)

    def poll(self) -> list[ControlCommand]:
        commands, self._held = self._held, []
        while True:
            try:
                commands.append(self._queue.get_nowait())
            except queue.Empty:
                return commands

    def wait_while_paused(self) -> ControlCommand:
        while True:
            command = self._queue.get()
            if command.action in ("resume", "stop"):
                return command
            self._held.append(command)


def ignore_checkpoint(path: str, step: int, size: int, sha256: str, reason: str) -> None:
    """The default `on_checkpoint`: the file stays local."""
