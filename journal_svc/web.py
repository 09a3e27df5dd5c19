"""The small web journal: runs, the journal of a run (human, model and system entries,
collapsible, with step badges) and the model journal (its reflections). A human note posted from
the page is published on the bus like any other journal entry, so it lands through the same path.
"""
from __future__ import annotations

import asyncio
import functools
import json
import re
from pathlib import Path

import asyncpg
from aiohttp import web

from journal_svc import compare_view, run_view, samples_view, web_render, web_resume
from journal_svc.live import LiveHub
from journal_svc.web_guard import beyond_localhost, write_guard
from journal_svc.web_params import choice, journaled_run, journaled_runs, known_run
from shared import bus
from shared.contract import events


def as_dicts(records) -> list[dict]:
    rows = []
    for r in records:
        row = dict(r)
        if "ts" in row and row["ts"] is not None:
            row["ts"] = row["ts"].timestamp()
        for key in ("scores", "refs", "details"):
            if isinstance(row.get(key), str):
                row[key] = json.loads(row[key])
        rows.append(row)
    return rows


async def fetch_runs(pool):
    return as_dicts(await pool.fetch("SELECT run_id, state, last_step FROM runs ORDER BY last_seen DESC"))


@functools.cache
def plotly_source() -> str:
    """plotly.js as the plotly wheel ships it, read once."""
    from plotly.offline import get_plotlyjs
    return get_plotlyjs()


async def current_pause(pool, run: str) -> dict | None:
    """The pause the run is in (step, reason, who), from its latest reported status; else None."""
    row = await pool.fetchrow(
        """SELECT step, state, reason, detail->>'who' AS who FROM statuses WHERE run_id = $1
           ORDER BY ts DESC LIMIT 1""", run)
    return dict(row) if row and row["state"] == "paused" else None


@functools.cache
def live_js() -> str:
    return (Path(__file__).parent / "static" / "live.js").read_text()


def make_app(pool: asyncpg.Pool, js, token: str = "", token_required: bool = False,
             nc=None) -> web.Application:
    """The web journal. With `nc` (the core NATS connection) pages are live (server-sent events)
    and a paused run can be resumed from its page; without it they are plain pages."""
    async def index(request):
        return web.Response(text=web_render.render_index(await fetch_runs(pool)), content_type="text/html")

    async def journal(request):
        run = await journaled_run(pool, request)
        entries = as_dicts(await pool.fetch(
            "SELECT * FROM journal_entries WHERE run_id = $1 ORDER BY step, ts", run))
        conversations = as_dicts(await pool.fetch(
            "SELECT * FROM conversations WHERE run_id = $1 ORDER BY ts", run))
        detections = as_dicts(await pool.fetch(  # one card per finding: its group's latest revision
            "SELECT * FROM detection_groups WHERE run_id = $1 ORDER BY step DESC, ts DESC LIMIT 500", run))
        pauses = as_dicts(await pool.fetch("SELECT * FROM pauses WHERE run_id = $1 ORDER BY ts", run))
        html = web_render.render_journal(run, entries, await fetch_runs(pool),
                                         conversations=conversations, detections=detections,
                                         ask_token=token_required, pauses=pauses)
        return web.Response(text=html, content_type="text/html")

    async def run_page(request):
        run = await journaled_run(pool, request)
        plot = run_view.figure(await run_view.read_run(pool, run)).to_html(
            full_html=False, include_plotlyjs=web_render.PLOTLY_PATH)
        html = web_render.render_run(run, plot, await fetch_runs(pool), await current_pause(pool, run),
                                     ask_token=token_required)
        return web.Response(text=html, content_type="text/html")

    async def compare(request):
        if len(chosen := request.query.getall("run", [])) > compare_view.MAX_RUNS:
            raise web.HTTPBadRequest(text=f"compare at most {compare_view.MAX_RUNS} runs at once")
        chosen = await journaled_runs(pool, chosen)
        curves = {run: await compare_view.read_curves(pool, run) for run in chosen}
        plot = compare_view.figure(curves).to_html(full_html=False, include_plotlyjs=web_render.PLOTLY_PATH)
        html = compare_view.render_compare(await fetch_runs(pool), chosen, plot if chosen else "")
        return web.Response(text=html, content_type="text/html")

    async def samples(request):
        run = await journaled_run(pool, request)
        detector = choice(request, "detector", events.DETECTORS)
        severity = choice(request, "severity", events.SEVERITIES)
        before = request.query.get("before", "")
        if before and not re.fullmatch(r"[0-9]{1,18}", before):  # a bigint step
            raise web.HTTPBadRequest(text=f"before {before[:64]!r} is not a step number")
        page = await samples_view.read_page(pool, run, detector, severity, int(before) if before else None)
        html = samples_view.render_samples(run, page, await fetch_runs(pool), detector, severity)
        return web.Response(text=html, content_type="text/html")

    async def plotly_js(request):
        return web.Response(text=plotly_source(), content_type="application/javascript",
                            headers={"Cache-Control": "max-age=86400"})

    async def model(request):
        run = await journaled_run(pool, request)
        reflections = as_dicts(await pool.fetch(
            "SELECT * FROM reflections WHERE run_id = $1 ORDER BY step, ts", run))
        html = web_render.render_model_journal(run, reflections, await fetch_runs(pool))
        return web.Response(text=html, content_type="text/html")

    async def post_entry(request):
        form = await request.post()
        run = known_run(request.query.get("run", ""))
        entry_type = form.get("entry_type", "note")
        if entry_type not in ("note", "counter_example", "explanation", "question"):
            raise web.HTTPBadRequest(text=f"entry_type {entry_type!r} is not allowed")
        body = str(form.get("body", ""))
        if not body.strip() or "\x00" in body:  # PostgreSQL text cannot hold NUL
            raise web.HTTPBadRequest(text="the entry must be non-empty text without NUL characters")
        await bus.publish(js, events.JournalEntry(
            event_id=events.new_event_id(), run_id=run, author="human",
            step=await pool.fetchval("SELECT coalesce(max(last_step), -1) FROM runs WHERE run_id = $1", run),
            entry_type=entry_type, body=body, who="web",
            conversation_id=events.new_event_id() if entry_type == "question" else None))
        raise web.HTTPSeeOther(f"{web_render.JOURNAL_PATH}?run={run}")

    async def live_script(request):
        return web.Response(text=live_js(), content_type="application/javascript")

    app = web.Application(middlewares=[write_guard(token, token_required)])
    app.add_routes([web.get("/", index), web.get(web_render.JOURNAL_PATH, journal),
                    web.get(web_render.MODEL_PATH, model), web.post(web_render.JOURNAL_PATH, post_entry),
                    web.get(web_render.RUN_PATH, run_page), web.get(web_render.PLOTLY_PATH, plotly_js),
                    web.get(web_render.COMPARE_PATH, compare), web.get(web_render.SAMPLES_PATH, samples),
                    web.get(web_render.LIVE_JS_PATH, live_script)])
    if nc is not None:
        add_live_routes(app, pool, nc, js)
    return app


def add_live_routes(app: web.Application, pool, nc, js) -> None:
    """/events (server-sent events of a run) and /resume (the PAUSED banner's form)."""
    hub = LiveHub(nc)
    app.on_shutdown.append(hub.close)  # end every stream before the server waits for handlers

    async def events_stream(request):
        return await hub.stream(request, await journaled_run(pool, request))

    async def resume(request):
        return await web_resume.resume(request, await journaled_run(pool, request), pool, nc, js)

    app.add_routes([web.get(web_render.EVENTS_PATH, events_stream), web.post(web_render.RESUME_PATH, resume)])


async def serve(pool, nc, host: str, port: int, token: str, stopping: asyncio.Event) -> None:
    """Serve on host:port (localhost by default); beyond localhost, writing needs the token."""
    runner = web.AppRunner(make_app(pool, nc.jetstream(), token, token_required=beyond_localhost(host), nc=nc))
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    try:
        await stopping.wait()
    finally:
        await runner.cleanup()
