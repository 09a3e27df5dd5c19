"""Run control: the desired state of a run lives in the control KV bucket, and every command is
also published on `control.<run>.<action>` for the audit trail and the journal.

A pause for a detection is idempotent: its event id derives from the detection id and the KV
revision it changes, the KV update is a compare-and-set, and a run that is already paused is not
paused again, so several instances seeing the same finding, or several findings in one batch of
samples, issue one pause. A detection whose pause a person resumed is answered: it is remembered
in the desired state and never pauses the run again (a redelivered sample would otherwise re-pause
the run behind the person's back). Every pause that changes the desired state is published with
an id of its own, so the journal has every pause the trainer obeys.
"""
from __future__ import annotations

import msgspec
import msgspec.structs
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError

from shared import bus
from shared.contract import events
from shared.contract.subjects import check_run_id

STATE_FOR_ACTION = {"pause": "paused", "resume": "running", "stop": "stopped"}
ANSWERED_KEPT = 256  # detections remembered as answered, per run


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
    """A detection's pause adds nothing when its detection already paused the run, a person
    already answered it (resumed its pause), or the run is paused anyway."""
    return bool(cmd.detection_id and current and (current.detection_id == cmd.detection_id
                                                  or cmd.detection_id in current.answered
                                                  or current.state == "paused"))


def next_state(cmd: events.ControlCommand, state: str,
               current: events.DesiredState | None) -> events.DesiredState:
    """The desired state after `cmd`; a resume marks the detection it answers as answered."""
    answered = list(current.answered) if current else []
    if cmd.action == "resume" and current and current.detection_id:
        answered = [*answered, current.detection_id][-ANSWERED_KEPT:]
    return events.DesiredState(state=state, reason=cmd.reason, who=cmd.who, command_id=cmd.event_id,
                               detection_id=cmd.detection_id, answered=answered)


def for_revision(cmd: events.ControlCommand, revision: int) -> events.ControlCommand:
    """A detection's pause gets an id per state it changes: a later pause by the same detection
    (if one ever passes the checks above) is a new command in the journal, not a duplicate."""
    if not cmd.detection_id:
        return cmd
    return msgspec.structs.replace(cmd, event_id=events.stable_event_id(
        "command", cmd.run_id, "pause", cmd.detection_id, revision))


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
        cmd = for_revision(cmd, revision)
        try:
            await kv.update(cmd.run_id, msgspec.json.encode(next_state(cmd, state, current)),
                            last=revision)
        except KeyWrongLastSequenceError:  # another command changed it first; re-read once
            current, revision = await read_state(kv, cmd.run_id)
            if pause_not_needed(cmd, current):
                return False
            cmd = for_revision(cmd, revision)
            await kv.put(cmd.run_id, msgspec.json.encode(next_state(cmd, state, current)))
    await bus.publish(js, cmd)
    return True
