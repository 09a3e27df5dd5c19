"""`introspect tail`: the live event streams, one readable line per event.

Core NATS subscriptions on the subjects of the kinds asked for (every kind by default), so tail
reads along without a durable consumer and takes nothing from the services' queues.
"""
from __future__ import annotations

import asyncio
import math
import sys
import time

import msgspec

from shared.contract import events, subjects

KINDS = tuple(subjects.ROOT_FOR_KIND)


def parse_kinds(text: str | None) -> list[str]:
    """`step,detection` -> ["step", "detection"]; unknown kinds are an error naming the known."""
    kinds = [k.strip() for k in (text or "").split(",") if k.strip()] or list(KINDS)
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise ValueError(f"unknown kind {', '.join(unknown)}; one of {', '.join(KINDS)}")
    return kinds


def number(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def short(text: str, width: int = 100) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[:width - 1] + "…"


def summary(event: events.Event) -> str:
    """What a person wants to read of an event, on one line."""
    match event:
        case events.StepMetrics():
            return (f"loss {number(event.loss, 4)} (smooth {number(event.loss_smooth, 4)})  lr {number(event.lr)}"
                    f"  grad {number(event.grad_norm)}  {event.tokens_per_s:,.0f} tok/s  mfu {number(event.mfu)}")
        case events.Status():
            answer = f"  [{event.outcome} {event.command_id[:8]}]" if event.outcome else ""
            return f"{event.state}  {short(event.reason)}{answer}"
        case events.Detection():
            return f"{event.detector} {event.severity}  {short(event.summary)}"
        case events.Sample():
            return f"{event.mode}  {short(event.prompt, 30)!r} -> {short(event.text, 70)!r}"
        case events.EvalResult():
            return f"{event.name} = {number(event.value, 5)}"
        case events.Checkpoint():
            return f"{event.object_name}  {event.size / 1e6:.1f} MB  ({event.reason})"
        case events.MixChange():
            return f"{event.weights}  {short(event.reason)}"
        case events.ActivationStats():
            return f"{len(event.layers)} layers  max rms {number(max((l.rms for l in event.layers), default=None))}"
        case events.Health():
            return f"{event.status} ({event.focus})  {short('; '.join(event.notes))}"
        case events.Shimmer():
            return f"mean {number(event.mean)}  per layer {[round(v, 3) for v in event.per_layer]}"
        case events.Concept():
            return f"{event.feature} {event.tier}  score {number(event.score)}"
        case events.Coupling():
            return f"{event.leader} -> {event.follower}  strength {number(event.strength)}  lag {event.lag_steps} steps"
        case events.Reflection():
            return f"[{event.prompt_version}] {short(event.text)}"
        case events.Reply():
            return f"Q {short(event.question, 40)!r}  A {short(event.answer, 60)!r}"
        case events.JournalEntry():
            return f"{event.author}/{event.entry_type}  {short(event.title + ': ' + event.body if event.title else event.body)}"
        case events.ControlCommand():
            who = f" by {event.who}" if event.who else ""
            return f"{event.action}{who}  {short(event.reason)}"
    return short(str(event))


def line(event: events.Event) -> str:
    kind = type(event).__struct_config__.tag
    clock = time.strftime("%H:%M:%S", time.localtime(event.ts))
    step = f"step {event.step:>7}" if event.step >= 0 else " " * 12
    return f"{clock}  {event.run_id:<12} {step}  {kind:<11} {summary(event)}"


async def tail(nc, run_id: str, kinds: list[str], count: int = 0, out=sys.stdout) -> int:
    """Print events as they arrive until `count` were printed (0: until interrupted)."""
    run = subjects.check_run_id(run_id) if run_id != "*" else "*"
    queue: asyncio.Queue = asyncio.Queue()

    async def received(msg):
        await queue.put(msg)
    subs = [await nc.subscribe(subjects.filter_for_kind(kind, run), cb=received) for kind in kinds]
    await nc.flush()  # the subscriptions are in place before we say so
    print(f"watching {', '.join(kinds) if len(kinds) < len(KINDS) else 'every kind'} "
          f"of {'every run' if run == '*' else 'run ' + run} (Ctrl-C stops)", file=out, flush=True)
    printed = 0
    try:
        while not count or printed < count:
            msg = await queue.get()
            try:
                event = events.decode(msg.data)
            except msgspec.ValidationError as err:
                print(f"{msg.subject}: not a contract event ({err})", file=out, flush=True)
                continue
            print(line(event), file=out, flush=True)
            printed += 1
    finally:
        for sub in subs:
            await sub.unsubscribe()
    return printed
