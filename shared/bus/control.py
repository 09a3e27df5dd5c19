"""Run control: the desired state of a run lives in the control KV bucket, and every command is
also published on `control.<run>.<action>` for the audit trail and the journal.

A pause for a detection is idempotent: its event id derives from the detection id, the KV update
is a compare-and-set, and a run that is already paused is not paused again, so several instances
seeing the same finding, or several findings in one batch of samples, issue one pause. A detection
pauses a run at most once: the desired state remembers the detections that paused it
(`paused_by`), so a sample redelivered after a person resumed the run cannot re-pause it behind
their back, and no pause the trainer obeys hides behind an earlier one's (de-duplicated) id.
"""
from __future__ import annotations

import asyncio
import functools
import time

import msgspec
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError

from shared import bus
from shared.contract import events
from shared.contract import subjects
from shared.contract.subjects import check_run_id, reflect_schedule_key

STATE_FOR_ACTION = {"pause": "paused", "resume": "running", "stop": "stopped"}
PAUSED_BY_KEPT = 256  # detections remembered per run


async def read_state(kv, run_id: str) -> tuple[events.DesiredState | None, int]:
    """The run's desired state and the KV revision it was read at (0 when unset)."""
    try:
        entry = await kv.get(check_run_id(run_id))
    except KeyNotFoundError:
        return None, 0
    if entry.value is None:  # deleted or purged key
        return None, entry.revision
    return msgspec.json.decode(entry.value, type=events.DesiredState), entry.revision


def command(run_id: str, args: events.Order, step: int = -1, **fields) -> events.ControlCommand:
    cause = getattr(args, "cause", None)
    if cause:  # one pause per detection, however often it is seen
        event_id = events.stable_event_id("command", run_id, "pause", cause.detection_id)
    else:
        event_id = events.new_event_id()
    return events.ControlCommand(event_id=event_id, run_id=run_id, step=step, args=args, **fields)


def pause_not_needed(cmd: events.ControlCommand, current: events.DesiredState | None) -> bool:
    """A detection's pause adds nothing when its detection already paused the run (now, or
    before a person resumed it), or the run is paused anyway."""
    return bool(cmd.detection_id and current and (current.detection_id == cmd.detection_id
                                                  or cmd.detection_id in current.paused_by
                                                  or current.state == "paused"))


def next_state(cmd: events.ControlCommand, state: str,
               current: events.DesiredState | None) -> events.DesiredState:
    """The desired state after `cmd`; a detection's pause is remembered in `paused_by`."""
    paused_by = list(current.paused_by) if current else []
    if cmd.detection_id:
        paused_by = [*paused_by, cmd.detection_id][-PAUSED_BY_KEPT:]
    return events.DesiredState(state=state, reason=cmd.reason, who=cmd.who, command_id=cmd.event_id,
                               detection_id=cmd.detection_id, paused_by=paused_by)


async def send(js, kv, cmd: events.ControlCommand) -> bool:
    """Apply `cmd`: update the desired state (pause/resume/stop), then publish the command.

    Returns False for a detection's pause when the run is already paused (by this detection or
    any other): the finding is on record, and one pause is enough.
    """
    state = STATE_FOR_ACTION.get(cmd.action)
    if state:
        current, revision = await read_state(kv, cmd.run_id)
        if pause_not_needed(cmd, current):
            return False
        try:
            await kv.update(cmd.run_id, msgspec.json.encode(next_state(cmd, state, current)),
                            last=revision)
        except KeyWrongLastSequenceError:  # another command changed it first; re-read once
            current, _ = await read_state(kv, cmd.run_id)
            if pause_not_needed(cmd, current):
                return False
            await kv.put(cmd.run_id, msgspec.json.encode(next_state(cmd, state, current)))
    await bus.publish(js, cmd)
    return True


async def read_reflect_schedule(kv, run_id: str) -> events.ReflectSchedule | None:
    """The run's own reflection schedule (`introspect prompt every N`), None when it has none."""
    try:
        entry = await kv.get(reflect_schedule_key(run_id))
    except KeyNotFoundError:
        return None
    return msgspec.json.decode(entry.value, type=events.ReflectSchedule) if entry.value else None


async def set_reflect_schedule(kv, run_id: str, every: int, who: str) -> events.ReflectSchedule:
    """Reflect every `every` steps: selfplay reflects at those checkpoints, the trainer writes them."""
    schedule = msgspec.convert({"every": every, "who": who, "command_id": events.new_event_id()},
                               events.ReflectSchedule)
    await kv.put(reflect_schedule_key(run_id), msgspec.json.encode(schedule))
    return schedule


# --- sending a command and waiting for the trainer's answer -------------------------------------
# The trainer answers a command with a Status naming its id (`command_id`) and outcome. The sender
# subscribes to the run's status subject BEFORE it sends, so an answer that comes back at once is
# not missed. The CLI and the web journal both send this way, so both say what really happened.

ANSWER_TIMEOUT_S = 30.0


class Answer(msgspec.Struct, frozen=True):
    """What became of a command: `applied` or `rejected` by the trainer (`status` is its answer),
    `timeout` (no answer in time), `held` (a paused run applies it once resumed), `sent` (not waited)."""
    outcome: str
    action: str
    run_id: str
    command_id: str
    status: events.Status | None = None
    waited_s: float = 0.0

    def describe(self) -> str:
        """One line for a person: what the trainer did with the command."""
        if self.outcome == "rejected":
            return f"{self.action} REJECTED by run {self.run_id} at step {self.status.step}: {self.status.reason}"
        if self.outcome == "applied":
            why = f" ({self.status.reason})" if self.status.reason else ""
            return f"{self.action} applied by run {self.run_id} at step {self.status.step}: {self.status.state}{why}"
        if self.outcome == "held":
            return (f"run {self.run_id} is paused: the trainer holds this {self.action} and answers "
                    f"once resumed")
        if self.outcome == "timeout":
            return f"{self.action}: no answer from the trainer within {self.waited_s:g} s"
        return f"{self.action} sent to run {self.run_id} ({self.command_id})"


async def wait_for_status(sub, command_id: str, timeout_s: float) -> events.Status | None:
    """The Status on `sub` that answers `command_id`; None after `timeout_s`."""
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
    return None


def note_entry(cmd: events.ControlCommand, step: int) -> events.JournalEntry:
    """A person's note on a command (a resume note above all), as their own journal entry."""
    return events.JournalEntry(
        event_id=events.stable_event_id("note", cmd.event_id), run_id=cmd.run_id, step=step,
        author="human", entry_type="resume_note" if cmd.action == "resume" else "note",
        body=cmd.note, who=cmd.who, refs={"command": cmd.event_id})


async def send_and_wait(nc, js, kv, cmd: events.ControlCommand, timeout_s: float = ANSWER_TIMEOUT_S,
                        note_step: int = -1) -> Answer:
    """Send `cmd` (desired state, command, and its note in the journal at `note_step`), then wait
    up to `timeout_s` for the trainer's answer. A paused run holds commands other than resume and
    stop, so for those the answer is `held` rather than a wait that must time out."""
    answer = functools.partial(Answer, action=cmd.action, run_id=cmd.run_id, command_id=cmd.event_id)
    replies = await nc.subscribe(subjects.train(cmd.run_id, "status"))
    try:
        desired, _ = await read_state(kv, cmd.run_id)
        await send(js, kv, cmd)
        if cmd.note:
            await bus.publish(js, note_entry(cmd, note_step))
        if timeout_s <= 0:
            return answer(outcome="sent")
        if desired and desired.state == "paused" and cmd.action not in ("resume", "stop"):
            return answer(outcome="held")
        status = await wait_for_status(replies, cmd.event_id, timeout_s)
        if status is None:
            return answer(outcome="timeout", waited_s=timeout_s)
        return answer(outcome="rejected" if status.outcome == "rejected" else "applied", status=status)
    finally:
        await replies.unsubscribe()
