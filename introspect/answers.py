"""The trainer's answer to a control command: the Status event that names the command's id.

The CLI subscribes to the run's status subject BEFORE it sends, so an answer that comes back at
once is not missed, then waits for the status whose `command_id` is the command's event id.
"""
from __future__ import annotations

import asyncio
import time

import msgspec

from shared.contract import events, subjects


class NoAnswer(Exception):
    """The trainer did not answer in time (not running, paused with the command held, or slow)."""


async def subscribe(nc, run_id: str):
    return await nc.subscribe(subjects.train(run_id, "status"))


async def wait_for_answer(sub, command_id: str, timeout_s: float) -> events.Status:
    """The Status that answers `command_id`; NoAnswer after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while (left := deadline - time.monotonic()) > 0:
        try:
            msg = await sub.next_msg(timeout=left)
        except (asyncio.TimeoutError, TimeoutError):
            break
        try:
            status = events.decode(msg.data)
        except msgspec.ValidationError:  # not ours to judge here; the journal dead-letters it
            continue
        if isinstance(status, events.Status) and status.command_id == command_id:
            return status
    raise NoAnswer(f"no answer from the trainer within {timeout_s:g} s")


def describe(action: str, run_id: str, status: events.Status) -> str:
    """One line for a person: what the trainer did with the command."""
    if status.outcome == "rejected":
        return f"{action} REJECTED by run {run_id} at step {status.step}: {status.reason}"
    why = f" ({status.reason})" if status.reason else ""
    return f"{action} applied by run {run_id} at step {status.step}: {status.state}{why}"
