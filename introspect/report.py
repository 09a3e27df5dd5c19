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

STORY_SQL = {  # kind -> rows of (step, ts, what, why) for the story, from each journal table
    "status": "SELECT step, ts, state AS what, reason AS why FROM statuses WHERE run_id = $1 "
              "AND (state IN ('paused', 'stopped', 'finished', 'failed') OR reason ILIKE '%rejected%')",
    "command": "SELECT step, ts, action AS what, concat_ws(' | ', nullif(reason, ''), 'by ' || nullif(who, ''), "
               "nullif(note, '')) AS why FROM commands WHERE run_id = $1",
    "detection": "SELECT step, ts, detector || ' ' || severity AS what, summary AS why FROM detections "
                 "WHERE run_id = $1",
    "mix": "SELECT step, ts, 'mix' AS what, concat_ws(' | ', weights::text, reason) AS why FROM mixes "
           "WHERE run_id = $1",
    "reflection": "SELECT step, ts, 'reflection ' || coalesce(prompt_version, '') AS what, text AS why "
                  "FROM reflections WHERE run_id = $1",
    "conversation": "SELECT step, ts, 'Q: ' || question AS what, 'A: ' || answer AS why FROM conversations "
                    "WHERE run_id = $1",
    "entry": "SELECT step, ts, author || ' ' || entry_type AS what, concat_ws(': ', nullif(title, ''), body) AS why "
             "FROM journal_entries WHERE run_id = $1",
    "checkpoint": "SELECT step, ts, 'checkpoint' AS what, reason AS why FROM checkpoints WHERE run_id = $1",
}
MARKED = ("command", "detection", "mix", "checkpoint")  # kinds drawn as markers on the step axis


async def read_run(database_url: str, run_id: str) -> dict:
    conn = await asyncpg.connect(database_url, timeout=5)
    try:
        story = []
        for kind, sql in STORY_SQL.items():
            story += [dict(row, kind=kind) for row in await conn.fetch(sql, run_id)]
        return {
            "steps": await conn.fetch("SELECT step, loss, loss_smooth, grad_norm, tokens_per_s, mfu FROM steps "
                                      "WHERE run_id = $1 ORDER BY step", run_id),
            "evals": await conn.fetch("SELECT step, value FROM evals WHERE run_id = $1 AND name = 'val_bpb' "
                                      "ORDER BY step", run_id),
            "shimmer": await conn.fetch("SELECT step, mean FROM shimmer WHERE run_id = $1 ORDER BY step", run_id),
            "activations": await conn.fetch("SELECT step, name, rms FROM activations WHERE run_id = $1 "
                                            "AND name LIKE '%resid' ORDER BY step, layer", run_id),
            "story": sorted(story, key=lambda r: (r["ts"], r["step"])),
        }
    finally:
        await conn.close()


def figure(run: dict):
    """Loss and val bpb, tokens/s and MFU, grad norm, shimmer and the residual RMS heatmap on one
    shared step axis, with the run's commands, detections, mix changes and checkpoints marked."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots
    rows = ["loss / val bpb", "tokens/s", "MFU", "grad norm", "shimmer", "activation RMS (residual)"]
    fig = make_subplots(rows=len(rows), cols=1, shared_xaxes=True, subplot_titles=rows, vertical_spacing=0.04)
    steps = run["steps"]
    x = [r["step"] for r in steps]

    def line(row, name, xs, ys, mode="lines", **kw):
        fig.add_trace(go.Scatter(x=xs, y=ys, name=name, mode=mode, **kw), row=row, col=1)
    line(1, "loss", x, [r["loss"] for r in steps], opacity=0.4)
    line(1, "loss (smoothed)", x, [r["loss_smooth"] for r in steps])
    line(1, "val bpb", [r["step"] for r in run["evals"]], [r["value"] for r in run["evals"]], mode="lines+markers")
    line(2, "tokens/s", x, [r["tokens_per_s"] for r in steps])
    line(3, "MFU", x, [r["mfu"] for r in steps])
    line(4, "grad norm", x, [r["grad_norm"] for r in steps])
    line(5, "shimmer", [r["step"] for r in run["shimmer"]], [r["mean"] for r in run["shimmer"]])
    if run["activations"]:
        names = list(dict.fromkeys(r["name"] for r in run["activations"]))
        at = sorted({r["step"] for r in run["activations"]})
        grid = {(r["step"], r["name"]): r["rms"] for r in run["activations"]}
        fig.add_trace(go.Heatmap(x=at, y=names, z=[[grid.get((s, n)) for s in at] for n in names],
                                 colorscale="Viridis", showscale=False, name="RMS"), row=6, col=1)
    marks = [r for r in run["story"] if r["kind"] in MARKED and r["step"] >= 0]
    if marks:  # one hoverable marker per event, on the loss plot's axis
        top = max((r["loss"] for r in steps if r["loss"] is not None), default=1.0)
        fig.add_trace(go.Scatter(
            x=[r["step"] for r in marks], y=[top] * len(marks), mode="markers", name="events",
            marker={"symbol": "triangle-down", "size": 10},
            hovertext=[f"{r['what']}: {(r['why'] or '')[:200]}" for r in marks], hoverinfo="text+x"), row=1, col=1)
        for r in marks:
            if r["kind"] == "command" and r["what"] in ("pause", "resume", "stop"):
                fig.add_vline(x=r["step"], line_dash="dot", line_color="red" if r["what"] == "pause" else "green")
    fig.update_layout(height=260 * len(rows), hovermode="x unified", margin={"t": 40, "l": 60, "r": 20})
    fig.update_xaxes(title_text="step", row=len(rows), col=1)
    return fig


def story_html(story: list[dict]) -> str:
    rows = "".join(
        f"<tr class='{html.escape(r['kind'])}'><td>{r['ts']:%Y-%m-%d %H:%M:%S}</td>"
        f"<td>{'' if r['step'] < 0 else r['step']}</td><td>{html.escape(r['kind'])}</td>"
        f"<td>{html.escape(r['what'] or '')}</td><td>{html.escape(r['why'] or '')}</td></tr>" for r in story)
    return ("<table><thead><tr><th>time</th><th>step</th><th>kind</th><th>what</th><th>why / text</th></tr>"
            f"</thead><tbody>{rows}</tbody></table>")


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
        run = await read_run(database_url, run_id)
    except (OSError, TimeoutError, asyncpg.PostgresError) as err:
        raise ValueError(f"the journal database did not answer ({err})") from None
    if not run["steps"] and not run["story"]:
        raise ValueError(f"run {run_id!r} has nothing in the journal")
    out.write_text(render(run_id, run), encoding="utf-8")
    return out
