"""The small web journal: runs, the journal of a run (human, model and system entries,
collapsible, with step badges) and the model journal (its reflections). A human note posted from
the page is published on the bus like any other journal entry, so it lands through the same path.
"""
from __future__ import annotations

import asyncio
import json

import asyncpg
from aiohttp import web

from journal_svc import web_render
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


def make_app(pool: asyncpg.Pool, js) -> web.Application:
    async def index(request):
        return web.Response(text=web_render.render_index(await fetch_runs(pool)), content_type="text/html")

    async def journal(request):
        run = request.query.get("run", "")
        entries = as_dicts(await pool.fetch(
            "SELECT * FROM journal_entries WHERE run_id = $1 ORDER BY step, ts", run))
        conversations = as_dicts(await pool.fetch(
            "SELECT * FROM conversations WHERE run_id = $1 ORDER BY ts", run))
        detections = as_dicts(await pool.fetch(
            "SELECT * FROM detections WHERE run_id = $1 ORDER BY step, ts LIMIT 500", run))
        html = web_render.render_journal(run, entries, await fetch_runs(pool),
                                         conversations=conversations, detections=detections)
        return web.Response(text=html, content_type="text/html")

    async def model(request):
        run = request.query.get("run", "")
        reflections = as_dicts(await pool.fetch(
            "SELECT * FROM reflections WHERE run_id = $1 ORDER BY step, ts", run))
        html = web_render.render_model_journal(run, reflections, await fetch_runs(pool))
        return web.Response(text=html, content_type="text/html")

    async def post_entry(request):
        form = await request.post()
        run = subjects.check_run_id(request.query.get("run", ""))
        entry_type = form.get("entry_type", "note")
        if entry_type not in ("note", "counter_example", "explanation", "question"):
            raise web.HTTPBadRequest(text=f"entry_type {entry_type!r} is not allowed")
        await bus.publish(js, events.JournalEntry(
            event_id=events.new_event_id(), run_id=run, author="human",
            step=await pool.fetchval("SELECT coalesce(max(last_step), -1) FROM runs WHERE run_id = $1", run),
            entry_type=entry_type, body=str(form.get("body", "")), who="web",
            conversation_id=events.new_event_id() if entry_type == "question" else None))
        raise web.HTTPSeeOther(f"{web_render.JOURNAL_PATH}?run={run}")

    app = web.Application()
    app.add_routes([web.get("/", index), web.get(web_render.JOURNAL_PATH, journal),
                    web.get(web_render.MODEL_PATH, model), web.post(web_render.JOURNAL_PATH, post_entry)])
    return app


async def serve(pool, js, port: int, stopping: asyncio.Event) -> None:
    runner = web.AppRunner(make_app(pool, js))
    await runner.setup()
    await web.TCPSite(runner, "0.0.0.0", port).start()
    try:
        await stopping.wait()
    finally:
        await runner.cleanup()
