"""Several runs side by side: their loss (raw and smoothed) and val bpb overlaid on one step axis.

The page is `/compare?run=a&run=b`, with a picker (one checkbox per run, a plain GET form) to
choose them. Each run keeps one colour across both plots, so its loss and its val bpb read
together; the raw loss is faint behind the smoothed one, as on the run page. Long runs are thinned
the same way (run_view.MAX_POINTS a series).
"""
from __future__ import annotations

from typing import Iterable

from journal_svc import run_view, web_render
from journal_svc.web_render import COMPARE_PATH, esc

MAX_RUNS = 8  # more would be an unreadable tangle of lines, and a page that takes long to query


async def read_curves(db, run_id: str) -> dict:
    """One run's loss and val bpb, thinned to at most run_view.MAX_POINTS steps."""
    count = await db.fetchval("SELECT count(*) FROM steps WHERE run_id = $1", run_id)
    every = max(1, -(-count // run_view.MAX_POINTS))
    return {
        "steps": await db.fetch("SELECT step, loss, loss_smooth FROM steps WHERE run_id = $1 AND step % $2 = 0 "
                                "ORDER BY step", run_id, every),
        "evals": await db.fetch("SELECT step, value FROM evals WHERE run_id = $1 AND name = 'val_bpb' "
                                "ORDER BY step", run_id),
    }


def figure(curves: dict[str, dict]):
    """Loss above, val bpb below, on one shared step axis; one colour per run."""
    import plotly.graph_objects as go
    from plotly.colors import qualitative
    from plotly.subplots import make_subplots
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.06,
                        subplot_titles=["loss (faint: raw, solid: smoothed)", "val bpb"])
    for i, (run_id, run) in enumerate(curves.items()):
        colour = qualitative.Plotly[i % len(qualitative.Plotly)]
        x = [r["step"] for r in run["steps"]]
        fig.add_trace(go.Scatter(x=x, y=[r["loss"] for r in run["steps"]], name=f"{run_id} loss",
                                 legendgroup=run_id, mode="lines", opacity=0.3, line={"color": colour}), row=1, col=1)
        fig.add_trace(go.Scatter(x=x, y=[r["loss_smooth"] for r in run["steps"]], name=f"{run_id} loss (smoothed)",
                                 legendgroup=run_id, mode="lines", line={"color": colour}), row=1, col=1)
        fig.add_trace(go.Scatter(x=[r["step"] for r in run["evals"]], y=[r["value"] for r in run["evals"]],
                                 name=f"{run_id} val bpb", legendgroup=run_id, mode="lines+markers",
                                 line={"color": colour}), row=2, col=1)
    fig.update_layout(height=760, hovermode="x unified", margin={"t": 40, "l": 60, "r": 20})
    fig.update_xaxes(title_text="step", row=2, col=1)
    return fig


def run_picker(runs: Iterable[dict], chosen: list[str]) -> str:
    """One checkbox per run the journal knows, the chosen ones ticked; a plain GET form."""
    boxes = "".join(
        f'<label class="pick"><input type="checkbox" name="run" value="{esc(r["run_id"])}"'
        f'{" checked" if r["run_id"] in chosen else ""}> {esc(r["run_id"])}</label> ' for r in runs)
    return (f'<form method="get" action="{COMPARE_PATH}" class="picker">{boxes}'
            f'<button>Compare</button></form>')


def render_compare(runs: Iterable[dict], chosen: list[str], plot_html: str) -> str:
    """The compare page: the picker, then the overlaid plots (or a hint when nothing is chosen)."""
    runs = list(runs)
    body = plot_html or '<p class="meta">Tick two or more runs and press Compare.</p>'
    links = " ".join(f'<a href="{esc(web_render.run_link(web_render.RUN_PATH, r))}">{esc(r)}</a>' for r in chosen)
    head = (f'<header><h1>Compare runs</h1><a href="/">runs</a>{links}</header>'
            f"{run_picker(runs, chosen)}")
    return web_render.page("Compare runs", f'{head}\n<main class="wide">{body}</main>')
