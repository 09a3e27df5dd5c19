"""Turn events into table rows. Pure: no SQL here, only which table and which values.

Column lists come from the database at start-up (see writer.py), so a row is built by taking each
column from the event's field of the same name; the migration is the single source of truth.
"""
from __future__ import annotations

from datetime import datetime, timezone

from shared.contract import events
from shared.contract.probes import parse_probe_name

TABLE_FOR_KIND = {
    "step": "steps", "sample": "samples", "eval": "evals", "checkpoint": "checkpoints",
    "status": "statuses", "mix": "mixes", "detection": "detections", "health": "health",
    "shimmer": "shimmer", "concept": "concepts", "reflection": "reflections",
    "entry": "journal_entries", "reply": "conversations", "command": "commands",
    "activations": "activations", "coupling": "couplings",
}

DERIVED_TABLES = ("bias_probes",)  # rows some events add besides their kind's table
TABLES = [*TABLE_FOR_KIND.values(), *DERIVED_TABLES]


def kind_of(event: events.Event) -> str:
    return type(event).__struct_config__.tag


def timestamp(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=timezone.utc)


def value(obj, column: str, jsonb: bool):
    raw = getattr(obj, column)
    if column == "ts":
        return timestamp(raw)
    if jsonb:
        return events.encode(raw).decode()  # NaN kept as "NaN", not turned into null
    return raw


def event_row(event: events.Event, subject: str, raw: bytes) -> tuple:
    """The `events` table keeps every event whole (its bytes as received), for any question."""
    return (event.event_id, event.run_id, event.step, timestamp(event.ts), kind_of(event),
            subject, raw.decode())


def typed_rows(event: events.Event, columns: list[str], jsonb: set[str]) -> list[tuple]:
    if isinstance(event, events.ActivationStats):
        base = {"event_id": event.event_id, "run_id": event.run_id, "step": event.step,
                "ts": timestamp(event.ts)}
        return [tuple(base[c] if c in base else getattr(layer, c) for c in columns)
                for layer in event.layers]
    return [tuple(value(event, c, c in jsonb) for c in columns)]


def derived_rows(event: events.Event, columns: dict[str, tuple[list[str], set[str]]]) -> dict[str, list[tuple]]:
    """The rows an event adds to a DERIVED_TABLES table: a bias probe's score (an EvalResult named
    "probe:...") also goes to bias_probes, in columns."""
    probe = parse_probe_name(event.name) if isinstance(event, events.EvalResult) else None
    if probe is None:
        return {}
    n = event.details.get("n")
    fields = {"event_id": event.event_id, "run_id": event.run_id, "step": event.step, "ts": timestamp(event.ts),
              "probe": probe[0], "axis": probe[1], "score": event.value, "n": n if isinstance(n, int) else None}
    return {"bias_probes": [tuple(fields[c] for c in columns["bias_probes"][0])]}
