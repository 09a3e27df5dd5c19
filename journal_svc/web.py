"""The small web journal: runs, the journal of a run (human, model and system entries,
collapsible, with step badges) and the model journal (its reflections). A human note posted from
the page is published on the bus like any other journal entry, so it lands through the same path.
"""
from __future__ import annotations

import asyncio
import functools
import json
from pathlib import Path

import asyncpg
from aiohttp import web

from journal_svc import run_view, web_render, web_resume
from journal_svc.live import LiveHub
from journal_svc.web_guard import beyond_localhost, write_guard
from shared import bus
from shared.contract import events, subjects


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


def known_run(run: str) -> str:
    """The run id of a request, or 400 with the reason (it becomes a subject token)."""
    try:
        return subjects.check_run_id(run)
    except ValueError as error:
        raise web.HTTPBadRequest(text=str(error)) from None


async def journaled_run(pool, request) -> str:
    """The request's run, which the journal must know (else a 404 page)."""
    run = known_run(request.query.get("run", ""))
    if not await pool.fetchval("SELECT 1 FROM runs WHERE run_id = $1", run):
        page = web_render.page("Unknown run", f'<main><h1>No run {web_render.esc(run)}</h1>'
                                              '<p><a href="/">All runs</a></p></main>')
        raise web.HTTPNotFound(text=page, content_type="text/html")
    return run


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
        detections = as_dicts(await pool.fetch(
            "SELECT * FROM detections WHERE run_id = $1 ORDER BY step, ts LIMIT 500", run))
        html = web_render.render_journal(run, entries, await fetch_runs(pool),
                                         conversations=conversations, detections=detections,
                                         ask_token=token_required)
        return web.Response(text=html, content_type="text/html")

    async def run_page(request):
        run = await journaled_run(pool, request)
        plot = run_view.figure(await run_view.read_run(pool, run)).to_html(
            full_html=False, include_plotlyjs=web_render.PLOTLY_PATH)
        html = web_render.render_run(run, plot, await fetch_runs(pool), await current_pause(pool, run),
                                     ask_token=token_required)
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
