"""Checkpoints off the training thread: the step boundary takes a host-memory snapshot (pinned
buffers, non-blocking copies, one sync), and a background thread writes it, hashes it and hands it
on (the wiring then uploads it to the object store) while training goes on.

At most one checkpoint is in flight: a new one first waits for the last. The final, pause and
stop checkpoints are waited for, so a resumed or restarted run always finds them complete. An
error in the writer is raised in the training thread at the next wait, so it fails the run loudly.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Callable

from shared.model.checkpoint import write_checkpoint

OnWritten = Callable[[str, int, int, str, str], None]  # (path, step, size, sha256, reason)


class CheckpointWriter:
    def __init__(self, on_written: OnWritten):
        self.on_written = on_written
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def submit(self, path: Path, state: dict, step: int, reason: str, wait: bool = False) -> None:
        """Write `state` (a host snapshot) to `path` in the background; `wait` blocks until done."""
        self.wait()
        self._thread = threading.Thread(target=self._write, args=(path, state, step, reason),
                                        name="checkpoint-writer")
        self._thread.start()
        if wait:
            self.wait()

    def in_flight(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wait(self) -> None:
        """Block until the checkpoint in flight is written and handed on; re-raise its error."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            error, self._error = self._error, None
            raise RuntimeError("writing a checkpoint failed") from error

    def _write(self, path: Path, state: dict, step: int, reason: str) -> None:
        try:
            size, sha256 = write_checkpoint(path, state)
            self.on_written(str(path), step, size, sha256, reason)
        except BaseException as error:  # noqa: BLE001 - handed to the training thread
            self._error = error
