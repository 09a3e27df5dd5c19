"""`introspect report --run R [--out report.html]`: one HTML file that works offline, with the
run's plots on one step axis and its story (pauses, resumes, detections, mix changes,
reflections, conversations, journal entries) in time order.

Plots are drawn with plotly (the Python wheel ships plotly.js; the report inlines it, so the
file needs no network and no server). Journal rows come from PostgreSQL.
"""
from __future__ import annotations

import html
import json
from pathlib import Path

import asyncpg

from journal_svc.run_view import figure, read_run, story_html

STYLE = """body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}table{border-collapse:collapse;width:100%}
td,th{border-bottom:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}
tr.detection td{background:#fff4f0}tr.command td{background:#f0f6ff}td:last-child{white-space:pre-wrap}"""


def render(run_id: str, run: dict) -> str:
    """The whole report as one self-contained HTML page (plotly.js inlined)."""
    steps = run["steps"]
    last = steps[-1] if steps else None
    head = (f"{len(steps)} steps logged, last step {last['step']}, loss {last['loss']:.4f}" if last
            else "no step metrics")
    counts = {}
    for r in run["story"]:
        counts[r["kind"]] = counts.get(r["kind"], 0) + 1
    plot = figure(run).to_html(full_html=False, include_plotlyjs=True)
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>run {html.escape(run_id)}</title>"
            f"<style>{STYLE}</style></head><body><h1>Run {html.escape(run_id)}</h1><p>{html.escape(head)}; "
            f"{html.escape(json.dumps(counts))}</p>{plot}<h2>What happened</h2>{story_html(run['story'])}"
            "</body></html>")


async def report(database_url: str, run_id: str, out: Path) -> Path:
    try:
        conn = await asyncpg.connect(database_url, timeout=5)
        try:
            run = await read_run(conn, run_id)
        finally:
            await conn.close()
    except (OSError, TimeoutError, asyncpg.PostgresError) as err:
        raise ValueError(f"the journal database did not answer ({err})") from None
    if not run["steps"] and not run["story"]:
        raise ValueError(f"run {run_id!r} has nothing in the journal")
    out.write_text(render(run_id, run), encoding="utf-8")
    return out
