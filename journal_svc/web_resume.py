"""Resume a paused run from its PAUSED banner. A person must say why the run may go on (the note
is required and journaled as their resume note); the command goes through the same
`send_and_wait` as `introspect resume`, and the page shows what the trainer answered: applied,
rejected (with its reason) or no answer in time. The write guard (same origin, operator token
beyond localhost) covers this POST like every other.
"""
from __future__ import annotations

from aiohttp import web

from journal_svc import web_render
from shared.bus import control
from shared.contract import events, subjects

ANSWER_TIMEOUT_S = 20.0  # a person is looking at the page; the CLI waits longer
HTTP_STATUS = {"applied": 200, "rejected": 409, "timeout": 504, "held": 202, "sent": 202}
WHO = "web"  # who resumed, as the web journal's notes say


async def control_bucket(js):
    """The control bucket every service provisions at start (the web journal runs in one)."""
    return await js.key_value(subjects.CONTROL_BUCKET)


def reply(request: web.Request, run: str, status: int, outcome: str, text: str) -> web.Response:
    """JSON for the page's script, a small page for a browser without it."""
    if "application/json" in request.headers.get("Accept", ""):
        return web.json_response({"outcome": outcome, "text": text}, status=status)
    back = f'<p><a href="{web_render.esc(web_render.run_link(web_render.RUN_PATH, run))}">back to the run</a></p>'
    body = f"<main><h1>Resume · {web_render.esc(run)}</h1><p>{web_render.esc(text)}</p>{back}</main>"
    return web.Response(text=web_render.page(f"Resume · {run}", body), content_type="text/html", status=status)


async def resume(request: web.Request, run: str, pool, nc, js,
                 timeout_s: float = ANSWER_TIMEOUT_S) -> web.Response:
    note = str((await request.post()).get("note", "")).strip()
    if not note or "\x00" in note:
        return reply(request, run, 400, "refused",
                     "a resume needs a note: say why the run may go on (it is kept in the journal)")
    cmd = control.command(run, events.Resume(), reason="resumed from the web journal", who=WHO, note=note)
    step = await pool.fetchval("SELECT coalesce(max(last_step), -1) FROM runs WHERE run_id = $1", run)
    answer = await control.send_and_wait(nc, js, await control_bucket(js), cmd, timeout_s, note_step=step)
    return reply(request, run, HTTP_STATUS[answer.outcome], answer.outcome, answer.describe())
