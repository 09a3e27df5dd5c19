"""A bounded on-disk outbox: what could not be published waits here, in order, until the bus is
back. Items are JSON lines: an encoded event, or a checkpoint upload to do before its event.
Event ids are stable, so an item sent twice (crash between send and truncate) is de-duplicated by
JetStream and by the journal. Only the publisher thread touches the outbox.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import msgspec

log = logging.getLogger(__name__)


class Item(msgspec.Struct):
    subject: str
    data: bytes
    msg_id: str
    upload: str = ""  # local checkpoint file to put in the object store before publishing


class Outbox:
    def __init__(self, path: Path, max_bytes: int = 256 * 2**20):
        self.path, self.max_bytes = Path(path), max_bytes
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.dropped = 0
        self._pending = self.path.exists() and self.path.stat().st_size > 0  # no disk check per event

    def __len__(self) -> int:
        if not self.path.exists():
            return 0
        with open(self.path, "rb") as f:
            return sum(1 for _ in f)

    def pending(self) -> bool:
        return self._pending

    def append(self, items: list[Item]) -> None:
        size = self.path.stat().st_size if self.path.exists() else 0
        lines = [msgspec.json.encode(item) + b"\n" for item in items]
        room = [line for line in lines if (size := size + len(line)) <= self.max_bytes]
        if len(room) < len(lines):  # bounded: say loudly what could not be kept
            self.dropped += len(lines) - len(room)
            log.error("outbox full: events dropped", extra={"dropped": self.dropped})
        with open(self.path, "ab") as f:
            f.writelines(room)
            f.flush()
            os.fsync(f.fileno())
        self._pending = self._pending or bool(room)

    def read(self) -> list[Item]:
        if not self.path.exists():
            return []
        with open(self.path, "rb") as f:
            return [msgspec.json.decode(line, type=Item) for line in f if line.strip()]

    def keep_from(self, items: list[Item], sent: int) -> None:
        """After `sent` items went out, keep only the rest (atomically)."""
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            f.writelines(msgspec.json.encode(item) + b"\n" for item in items[sent:])
        os.replace(tmp, self.path)
        self._pending = sent < len(items)
