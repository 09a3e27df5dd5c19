"""A run at a glance, for the web journal's run page and `introspect report`: the journal rows a
run's plots and story need, and the plotly figure that puts loss and val bpb, the CORE-style
score (mean and per task), the bias probes, tokens/s, MFU, grad norm, shimmer and the residual RMS
heatmap on one step axis with the run's commands, detections,
mix changes and checkpoints marked (hover: what and why).

plotly because its Python wheel ships plotly.js: the web journal serves that file itself and the
report inlines it, so neither needs a CDN or the network; heatmaps, shared axes and hover come
with it.
"""
from __future__ import annotations

import html

from shared.contract.probes import STEREOTYPE_SCORES

STORY_SQL = {  # kind -> rows of (step, ts, what, why) for the story, from each journal table
    "status": "SELECT step, ts, state AS what, reason AS why FROM statuses WHERE run_id = $1 "
              "AND (state IN ('paused', 'stopped', 'finished', 'failed') OR reason ILIKE '%rejected%')",
    # a command sits at the step where the trainer answered it (a person's command is sent at step -1)
    "command": "SELECT coalesce((SELECT a.step FROM events a WHERE a.run_id = c.run_id AND a.kind = 'status' "
               "AND a.payload->>'command_id' = c.event_id ORDER BY a.ts LIMIT 1), c.step) AS step, c.ts, "
               "c.action AS what, concat_ws(' | ', nullif(c.reason, ''), 'by ' || nullif(c.who, ''), "
               "nullif(c.note, '')) AS why FROM commands c WHERE c.run_id = $1",
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


MAX_POINTS = 2000  # per series on a page: a long run is thinned to every k-th step


async def read_run(db, run_id: str) -> dict:
    """Everything the plots and the story need, from a pool or a connection (anything with fetch)."""
    story = []
    for kind, sql in STORY_SQL.items():
        story += [dict(row, kind=kind) for row in await db.fetch(sql, run_id)]
    count = await db.fetchval("SELECT count(*) FROM steps WHERE run_id = $1", run_id)
    every = max(1, -(-count // MAX_POINTS))
    return {
        "steps": await db.fetch("SELECT step, loss, loss_smooth, grad_norm, tokens_per_s, mfu FROM steps "
                                "WHERE run_id = $1 AND step % $2 = 0 ORDER BY step", run_id, every),
        "evals": await db.fetch("SELECT step, value FROM evals WHERE run_id = $1 AND name = 'val_bpb' "
                                "ORDER BY step", run_id),
        "core": await db.fetch("SELECT step, value FROM evals WHERE run_id = $1 AND name = 'core' "
                               "ORDER BY step", run_id),
        "core_tasks": await db.fetch("SELECT step, substr(name, 6) AS task, value FROM evals WHERE run_id = $1 "
                                     "AND name LIKE 'core:%' ORDER BY step", run_id),
        "probes": await db.fetch("SELECT step, probe, score FROM bias_probes WHERE run_id = $1 AND axis = 'all' "
                                 "ORDER BY step", run_id),
        "shimmer": await db.fetch("SELECT step, mean FROM shimmer WHERE run_id = $1 ORDER BY step", run_id),
        "activations": await db.fetch("SELECT step, name, rms FROM activations WHERE run_id = $1 "
                                      "AND name LIKE '%resid' ORDER BY step, layer", run_id),
        "story": sorted(story, key=lambda r: (r["ts"], r["step"])),
    }


def by_key(rows, key: str) -> dict[str, list]:
    """Rows grouped by one column, in first-seen order (one trace per task or probe)."""
    groups: dict[str, list] = {}
    for r in rows:
        groups.setdefault(r[key], []).append(r)
    return groups


def figure(run: dict):
    """Loss and val bpb, CORE, tokens/s and MFU, grad norm, shimmer and the residual RMS heatmap on
    one shared step axis, with the run's commands, detections, mix changes and checkpoints marked."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots
    rows = ["loss / val bpb", "CORE (centred; 0 = chance; bold: mean of tasks)",
            "bias probes (share preferring the stereotype; 0.5 = no preference)", "tokens/s", "MFU", "grad norm",
            "shimmer", "activation RMS (residual)"]
    steps = run["steps"]
    if steps and all(r["mfu"] is None for r in steps):  # an empty plot would look broken
        rows[rows.index("MFU")] = "MFU (none: no peak-FLOPs figure for this device, e.g. a CPU)"
    fig = make_subplots(rows=len(rows), cols=1, shared_xaxes=True, subplot_titles=rows, vertical_spacing=0.04)
    x = [r["step"] for r in steps]

    def line(row, name, xs, ys, mode="lines", **kw):
        fig.add_trace(go.Scatter(x=xs, y=ys, name=name, mode=mode, **kw), row=row, col=1)
    line(1, "loss", x, [r["loss"] for r in steps], opacity=0.4)
    line(1, "loss (smoothed)", x, [r["loss_smooth"] for r in steps])
    line(1, "val bpb", [r["step"] for r in run["evals"]], [r["value"] for r in run["evals"]], mode="lines+markers")
    core = run.get("core", [])
    line(2, "CORE", [r["step"] for r in core], [r["value"] for r in core], mode="lines+markers",
         line={"width": 3})
    for task, points in by_key(run.get("core_tasks", []), "task").items():
        line(2, f"CORE {task}", [r["step"] for r in points], [r["value"] for r in points], opacity=0.5)
    for probe, points in by_key(run.get("probes", []), "probe").items():
        shown = probe in STEREOTYPE_SCORES  # LMS and ICAT measure the language model: hidden until clicked
        line(3, f"probe {probe}", [r["step"] for r in points], [r["score"] for r in points], mode="lines+markers",
             visible=True if shown else "legendonly")
    line(4, "tokens/s", x, [r["tokens_per_s"] for r in steps])
    line(5, "MFU", x, [r["mfu"] for r in steps])
    line(6, "grad norm", x, [r["grad_norm"] for r in steps])
    line(7, "shimmer", [r["step"] for r in run["shimmer"]], [r["mean"] for r in run["shimmer"]])
    if run["activations"]:
        names = list(dict.fromkeys(r["name"] for r in run["activations"]))
        at = sorted({r["step"] for r in run["activations"]})
        grid = {(r["step"], r["name"]): r["rms"] for r in run["activations"]}
        fig.add_trace(go.Heatmap(x=at, y=names, z=[[grid.get((s, n)) for s in at] for n in names],
                                 colorscale="Viridis", showscale=False, name="RMS"), row=8, col=1)
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


