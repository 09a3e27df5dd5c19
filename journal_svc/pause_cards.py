"""A pause on the journal page (a row of the `pauses` view): who paused the run, at which step,
why (a person's reason or note, else the detection that caused it) and how it ended (who resumed,
with their note). A person's reason is their own words: shown as they wrote them, escaped."""
from __future__ import annotations

from journal_svc.web_render import details, esc, fmt_time, step_badge

SERVICE_WHO = ("understanding_svc", "selfplay_svc", "trainer_svc")  # who a service signs as


def author_of(pause: dict) -> str:
    """'system' for a detector's or a service's pause, 'human' for a person's."""
    who = str(pause.get("who") or "")
    return "system" if pause.get("detection_id") or who.startswith(SERVICE_WHO) else "human"


def ending(pause: dict) -> str:
    if not pause.get("resumed_at"):
        return '<div class="meta">not resumed yet</div>'
    note = f": {esc(pause['resume_note'])}" if pause.get("resume_note") else ""
    resumed = pause["resumed_at"]
    resumed = resumed.timestamp() if hasattr(resumed, "timestamp") else resumed  # a row's timestamptz
    return (f'<div class="meta">resumed {esc(fmt_time(resumed))} by '
            f'{esc(pause.get("resumed_by") or "someone")}{note}</div>')


def render_pause(pause: dict) -> str:
    cause = (f'<div class="meta">caused by detection {esc(pause["detector"])} {esc(pause.get("severity"))}: '
             f'{esc(pause.get("summary"))}</div>' if pause.get("detector") else "")
    note = (f'<div class="body">{esc(pause["note"])}</div>'
            if pause.get("note") and pause.get("note") != pause.get("why") else "")
    rejected = ' <span class="badge sev-high">rejected</span>' if pause.get("outcome") == "rejected" else ""
    return details(author_of(pause), [
        step_badge(pause.get("step")), f'<span class="who">{esc(pause.get("who") or "someone")}</span>',
        f'<span class="type">pause{rejected}</span>',
        f'<span class="title">{esc(pause.get("why") or "no reason given")}</span>',
        f'<span class="time">{esc(fmt_time(pause.get("ts")))}</span>',
    ], note + cause + ending(pause), open_=True)
