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

import msgspec
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError

from shared import bus
from shared.contract import events
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
