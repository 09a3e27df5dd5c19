"""`introspect dlq list|replay`: what was dead-lettered, and sending it back where it came from.

A dead letter keeps the original bytes and its subject (`Introspect-Subject`, see
shared/bus/consumer.py). Replaying re-publishes them to that subject, so every consumer of the
stream sees them again (the journal ignores what it already has), and then deletes the dead
letter unless `--keep`. A message that fails again is dead-lettered again, with the new reason.
"""
from __future__ import annotations

from nats.js.errors import NotFoundError

from shared.contract import subjects

DLQ_STREAM = "DLQ"


def subject_matches(pattern: str, subject: str) -> bool:
    """NATS wildcards: `*` is one token, `>` the rest."""
    want, have = pattern.split("."), subject.split(".")
    for i, token in enumerate(want):
        if token == ">":
            return len(have) > i
        if i >= len(have) or (token != "*" and token != have[i]):
            return False
    return len(want) == len(have)


def selected(msg, subject_filter: str | None, contains: str | None) -> bool:
    headers = msg.headers or {}
    original = headers.get("Introspect-Subject", "")
    if subject_filter and not subject_matches(subject_filter, original):
        return False
    if contains and contains not in headers.get("Introspect-Error", "") and \
            contains.encode() not in (msg.data or b""):
        return False
    return bool(original)


async def dead_letters(js, service: str | None):
    """Every dead letter in the DLQ stream (of one service, or all), oldest first."""
    subject = subjects.dlq(service) if service else "dlq.>"
    seq = 1
    while True:
        try:
            msg = await js.get_msg(DLQ_STREAM, seq=seq, subject=subject, next=True)
        except NotFoundError:
            return
        yield msg
        seq = msg.seq + 1


async def replay(js, service: str | None = None, subject_filter: str | None = None,
                 contains: str | None = None, keep: bool = False, dry_run: bool = False,
                 echo=print) -> int:
    """Re-publish the selected dead letters to their original subjects; returns how many."""
    count = 0
    async for msg in dead_letters(js, service):
        if not selected(msg, subject_filter, contains):
            continue
        original = msg.headers["Introspect-Subject"]
        echo(f"{'would replay' if dry_run else 'replay'} #{msg.seq} -> {original}  "
             f"({msg.headers.get('Introspect-Error', '')[:100]})")
        count += 1
        if dry_run:
            continue
        # a replay of the same dead letter inside the duplicate window is stored once
        await js.publish(original, msg.data, headers={"Nats-Msg-Id": f"dlq-replay-{msg.seq}"})
        if not keep:
            await js.delete_msg(DLQ_STREAM, msg.seq)
    return count


async def list_dead_letters(js, service: str | None = None, subject_filter: str | None = None,
                            contains: str | None = None, echo=print) -> int:
    count = 0
    async for msg in dead_letters(js, service):
        if selected(msg, subject_filter, contains):
            count += 1
            echo(f"#{msg.seq} {msg.subject} <- {msg.headers['Introspect-Subject']}  "
                 f"{msg.headers.get('Introspect-Error', '')[:160]}")
    return count
