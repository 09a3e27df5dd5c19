"""One card per finding: a grouped detection (the latest revision of its group, from the
`detection_groups` view) with the levels, samples and counts it covers and each occurrence's span
quoted from its excerpt. One loop seen at line and word level in four samples is one card, not
five. Journal rows from before grouping (no occurrences) show as a card of one occurrence.
"""
from __future__ import annotations

import json
from urllib.parse import quote

from journal_svc.web_render import SAMPLES_PATH, details, esc, fmt_time, step_badge


def occurrences(group: dict) -> list[dict]:
    """The group's raw per-sample spans; a pre-grouping row is its own single occurrence."""
    found = group.get("occurrences")
    if isinstance(found, str):  # asyncpg hands jsonb over as text
        found = json.loads(found)
    if found:
        return found
    return [{key: group.get(key) for key in ("source_event_id", "source_subject", "span_start", "span_end",
                                             "severity", "summary")}]


def mark_title(detector: str, occurrence: dict) -> str:
    """What a highlighted span says on hover: detector, severity and the finding's explanation."""
    level = f" ({occurrence['level']} level)" if occurrence.get("level") else ""
    return f"{detector} · {occurrence.get('severity')}{level}: {occurrence.get('summary') or ''}"


def quoted_span(occurrence: dict) -> str:
    """The span inside its excerpt, marked; empty when the occurrence carries no excerpt."""
    excerpt, start = occurrence.get("excerpt") or "", occurrence.get("excerpt_start") or 0
    if not excerpt or occurrence.get("span_start") is None or occurrence.get("span_end") is None:
        return ""
    lo, hi = occurrence["span_start"] - start, occurrence["span_end"] - start
    if not 0 <= lo <= hi <= len(excerpt):
        return ""
    return (f'<q>{"…" if start else ""}{esc(excerpt[:lo])}<mark class="sev-{esc(occurrence["severity"])}">'
            f"{esc(excerpt[lo:hi])}</mark>{esc(excerpt[hi:])}</q>")


def occurrence_row(occurrence: dict) -> str:
    count = f" ×{occurrence['count']}" if occurrence.get("count") else ""
    level = esc(occurrence.get("level") or "")
    return (f'<li><span class="badge sev-{esc(occurrence.get("severity"))}">{esc(occurrence.get("severity"))}</span>'
            f' {level}{count} <span class="meta">sample {esc(str(occurrence.get("source_event_id"))[:8])}</span>'
            f" {quoted_span(occurrence)}</li>")


def counts_line(group: dict, found: list[dict]) -> str:
    """How much the finding covers: occurrences, samples and levels."""
    total = group.get("revision") or len(found)
    samples = group.get("samples") or len({o.get("source_event_id") for o in found})
    levels = group.get("levels") or sorted({o["level"] for o in found if o.get("level")})
    parts = [f"{total} occurrence{'s' * (total != 1)}", f"{samples} sample{'s' * (samples != 1)}"]
    if levels:
        parts.append("levels " + "+".join(levels))
    shown = f" (first {len(found)} listed)" if len(found) < total else ""
    return f'<div class="meta">{esc(", ".join(parts))}{esc(shown)}</div>'


def render_group(group: dict) -> str:
    """One finding as a collapsible card: what, how severe, how much it covers, where."""
    found = occurrences(group)
    severity = group.get("severity") or "unknown"
    samples_link = (f"{SAMPLES_PATH}?run={quote(str(group.get('run_id', '')), safe='')}"
                    f"&detector={quote(str(group.get('detector', '')), safe='')}#step-{group.get('step')}")
    inner = (counts_line(group, found) + f'<ul class="occurrences">{"".join(map(occurrence_row, found))}</ul>'
             + (f'<a href="{esc(samples_link)}">in the samples</a>' if group.get("run_id") else ""))
    return details("system", [
        step_badge(group.get("step")), '<span class="who">system</span>',
        f'<span class="type">detection: {esc(group.get("detector"))}</span>',
        f'<span class="badge sev-{esc(severity)}">{esc(severity)}</span>',
        f'<span class="title">{esc(group.get("summary"))}</span>',
        f'<span class="time">{esc(fmt_time(group.get("ts")))}</span>',
    ], inner)
